"""The thread plan: each process' share of the cores, split deliberately between stages."""

from __future__ import annotations

import os

import pytest

from harness.evaluation import threads


@pytest.mark.parametrize("cores, local, model, n, expected", [
    (2, 1, True, 700, (1, 2, 0, 0)),   # two one-thread copies of the model, scoring inline between batches
    (2, 1, False, 700, (1, 1, 2, 0)),  # references: every core scores
    (2, 2, True, 700, (1, 1, 0, 0)),   # two processes on two cores: one core each
    (8, 1, True, 700, (1, 6, 2, 1)),   # three quarters of the cores run the model, the rest score
    (8, 2, False, 700, (1, 1, 4, 0)),
    (8, 1, True, 10, (1, 1, 0, 0)),    # too few stimuli to pay for a pool or more copies
    (64, 1, True, 700, (1, 8, 56, 1)),  # at most 8 copies by default (each holds the weights)
])
def test_plan_shares_the_cores(monkeypatch, cores, local, model, n, expected):
    monkeypatch.setattr(threads, "cores", lambda: cores)
    p = threads.plan(local_processes=local, n_stimuli=n, model=model)
    assert (p.model_threads, p.model_copies, p.score_workers, p.loader_workers) == expected
    assert threads.plan(local_processes=local, n_stimuli=n, model=model, device="cuda").model_copies == 1


def test_explicit_choices_win(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    p = threads.plan(n_stimuli=5, score_workers=3, loader_workers=1, model_threads=2, model_copies=3)
    assert (p.model_threads, p.model_copies, p.score_workers, p.loader_workers) == (2, 3, 3, 1)


def test_a_model_not_known_to_run_as_copies_gets_one_unless_asked(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    p = threads.plan(n_stimuli=700, copies_ok=False)
    assert (p.model_threads, p.model_copies, p.score_workers, p.loader_workers) == (1, 1, 7, 1)
    assert threads.plan(n_stimuli=700, copies_ok=False, model_copies=3).model_copies == 3


def test_keep_heap_reuses_pages_for_map_sized_arrays():
    """After keep_heap, a freed 4 MB map's pages are reused: allocating and filling another costs
    (almost) no new page faults, where glibc's default mmap threshold would fault every page again."""
    import resource
    import subprocess
    import sys

    code = (
        "import resource, numpy as np\n"
        "from harness.evaluation.threads import keep_heap\n"
        "import sys\n"
        "if sys.argv[1] == 'keep': assert keep_heap()\n"
        # a stimulus' arrays: two 800x600 float64 maps and a float32 one, freed together
        "def once():\n"
        "    a = np.ones(480_000); b = np.ones(480_000); c = np.ones(240_000); a.sum(); del a, b, c\n"
        "once()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(50):\n"
        "    once()\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    faults = {mode: int(subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("keep", "default")}
    assert faults["default"] > 50 * 2 * 900  # glibc trims the freed heap: every page faults again
    assert faults["keep"] < 0.01 * faults["default"]


def test_cuda_runs_pin_deterministic_full_precision_kernels_and_put_the_settings_back(monkeypatch):
    # a CUDA model run computes with cuDNN's deterministic algorithms, no autotuning, no TF32 and
    # torch's deterministic implementations (else two runs, or 1 and N GPUs, may differ in the
    # bits); the flags are the process' own, so the Python API restores what it found
    import torch

    from harness.evaluation.parallel import CUDA_KERNELS, deterministic_kernels

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = True, False, True, True
    assert not torch.are_deterministic_algorithms_enabled()
    deterministic_kernels("cpu")()  # CPU (and MPS): nothing changes
    assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32) == (True, False, True, True)
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    try:
        restore = deterministic_kernels("cuda:1")
        assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32) == (False, True, False, False)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        restore()
        assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32) == (True, False, True, True)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32, matmul.allow_tf32 = False, False, True, False
    assert CUDA_KERNELS == "deterministic-fp32"


def test_only_cuda_model_runs_carry_the_kernel_setting_in_their_id(osie_dir, osie_cache):
    from harness.data import load_gaze_dataset
    from harness.data.density import sigma_px
    from harness.evaluation import EvalConfig
    from harness.evaluation.context import DatasetContext
    from harness.evaluation.runner import _settings
    from harness.results.store import run_id_for

    gaze, ds = load_gaze_dataset("osie", data_dir=osie_dir)
    ctx = DatasetContext(gaze, ds, 4, sigma_px(gaze))
    ids = {}
    for device in ("cpu", "cuda"):
        cfg = EvalConfig(model="efficientnet-lite0", dataset="osie", limit=4)
        cfg.resolved_device, cfg.resolved_threads = device, 1
        settings = _settings(cfg, model_name="efficientnet-lite0", provenance={"model_id": "x"}, attention="grad-cam",
                             kind="model", gaze=gaze, ctx=ctx, batch_size=8)
        assert settings.get("cuda_kernels") == ("deterministic-fp32" if device == "cuda" else None)
        assert settings["device"] == device
        ids[device] = run_id_for(settings)
    assert ids["cpu"] != ids["cuda"]
