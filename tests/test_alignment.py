"""``harness align``: the split, the checkpoint (atomic, resumable, checked), the trainer on a tiny
real CNN registered as a third-party plugin (the opt-in protocol of docs/alignment.md), evaluation of
an aligned model on its held-out stimuli only, and one slow test training the real EfficientNet-Lite0
on real OSIE fixations."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.alignment.split import key, split_stimuli
from harness.cli import main
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.plugins import pm


# -- the split ---------------------------------------------------------------------------------------


def test_split_depends_on_seed_and_ids_only():
    ids = [f"{i:04d}" for i in range(100)]
    a = split_stimuli(ids, 0.3, seed=0)
    shuffled = ids[:]
    random.Random(1).shuffle(shuffled)
    b = split_stimuli(shuffled, 0.3, seed=0)
    assert len(a.held_out) == 30 and len(a.train) == 70
    assert set(a.held_out) == set(b.held_out) and a.sha256 == b.sha256
    assert not set(a.held_out) & set(a.train)
    # the rule, by hand: the 30 smallest sha256 keys
    assert set(a.held_out) == set(sorted(ids, key=lambda s: key(0, s))[:30])
    assert set(split_stimuli(ids, 0.3, seed=1).held_out) != set(a.held_out)
    # lists keep the dataset's order
    assert list(a.train) == [s for s in ids if s in set(a.train)]


def test_split_refuses_what_cannot_split():
    with pytest.raises(HarnessError, match="--holdout"):
        split_stimuli(["a", "b"], 1.0, 0)
    with pytest.raises(HarnessError, match="at least 2"):
        split_stimuli(["a"], 0.5, 0)
    s = split_stimuli(["a", "b", "c"], 0.01, 0)  # rounds to 0: still one held out
    assert len(s.held_out) == 1 and len(s.train) == 2


# -- a tiny real CNN that opts in to training --------------------------------------------------------


class TinyCNN:
    """A two-layer random CNN on 32x32 inputs with Grad-CAM, implementing predict and trainable()."""

    name = "tiny-cnn"
    tasks = ("free-viewing",)
    attention_methods = ("grad-cam",)

    def __init__(self):
        import torch

        torch.manual_seed(0)
        self.net = torch.nn.ModuleDict({
            "features": torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU()),
            "head": torch.nn.Linear(8, 5),
        }).eval()
        self.net.requires_grad_(False)
        self.input_size = (32, 32)
        self.class_names = ()
        self.module = self.net

    def provenance(self):
        return {"model_id": self.name, "weights": "torch.manual_seed(0)"}

    def _forward(self, x):
        f = self.net["features"](x)
        return self.net["head"](f.mean(dim=(2, 3)))

    def preprocess(self, images):
        import torch
        from PIL import Image

        arr = np.stack([np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32)
                        for im in images]) / 255.0
        return torch.from_numpy(arr.transpose(0, 3, 1, 2).copy())

    def logits(self, x):
        return self._forward(x)

    def attention(self, x, targets):
        from harness.attention.gradcam import grad_cam_differentiable

        return grad_cam_differentiable(self._forward, self.net["features"], x, targets)

    def trainable(self):
        return self

    def predict(self, images, *, task, attention):
        from harness.attention.gradcam import grad_cam_with_logits
        from harness.attention.resize import to_stimulus
        from harness.models import Prediction

        maps, targets, _ = grad_cam_with_logits(self._forward, self.net["features"], self.preprocess(images))
        return [Prediction(attention=to_stimulus(maps[i].numpy().astype(np.float64) + 1e-6, im.size[1], im.size[0]),
                           output={"label": f"c{int(targets[i])}"}) for i, im in enumerate(images)]


class TinyPlugin:
    @hookimpl
    def register_models(self, register):
        register("tiny-cnn", TinyCNN, tasks=("free-viewing",), attention=("grad-cam",), description="test")


@pytest.fixture
def tiny_model():
    pm.register(TinyPlugin(), name="tiny-align-test")
    yield "tiny-cnn"
    pm.unregister(name="tiny-align-test")


def _align(out: Path, *extra: str, model: str = "tiny-cnn", loss: str = "density-kl", limit: str = "12"):
    return CliRunner().invoke(main, ["align", "--model", model, "--dataset", "osie", "--loss", loss, "--limit", limit,
                                     "--output", str(out), "--batch-size", "4", "--lr", "0.01", "--no-progress",
                                     *extra])


def _weights(folder: Path):
    from harness.alignment.checkpoint import read_checkpoint

    return read_checkpoint(folder).weights()


def test_align_writes_a_checkpoint_with_provenance(tiny_model, tmp_path):
    out = tmp_path / "ck"
    r = _align(out, "--epochs", "2")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "align.json").read_text())
    assert meta["epochs_done"] == 2 and [h["epoch"] for h in meta["history"]] == [0, 1, 2]
    assert meta["base"] == {"model": "tiny-cnn", "provenance": TinyCNN().provenance()}
    s = meta["settings"]
    assert (s["loss"], s["task_loss"], s["dataset"], s["limit"], s["holdout"]) == ("density-kl", "distill", "osie", 12, 0.3)
    assert len(s["dataset_fingerprint"]) >= 16 and s["split_sha256"] == meta["split"]["sha256"]
    assert len(meta["split"]["held_out"]) == 4 and len(meta["split"]["train"]) == 8  # round(0.3 * 12)
    assert sorted(p.name for p in out.iterdir()) == [".lock", "align.json", "state-e002.pt", "weights-e002.pt"]
    assert all(np.isfinite(h["train_total"]) for h in meta["history"][1:])
    # training changed the weights, and moved the alignment term down from the first epoch
    assert any(not np.array_equal(v.numpy(), TinyCNN().net.state_dict()[k].numpy()) for k, v in _weights(out).items())


def test_training_takes_its_devices_deterministic_kernels_and_puts_them_back(tiny_model, tmp_path, monkeypatch):
    # the same switch as a CUDA evaluation's (what it sets on CUDA: test_threads.py); no GPU is
    # lent to this project's CI, so here the device is the CPU, where it changes nothing
    from harness.evaluation import parallel

    calls, real = [], parallel.deterministic_kernels

    def spy(device):
        restore = real(device)
        calls.append(device)
        return lambda: (calls.append("put back"), restore())

    monkeypatch.setattr(parallel, "deterministic_kernels", spy)
    r = _align(tmp_path / "ck", "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert calls == ["cpu", "put back"]
    assert "kernels" not in json.loads((tmp_path / "ck" / "align.json").read_text())["settings"]  # a CUDA-only key


def test_resume_continues_exactly_where_it_stopped(tiny_model, tmp_path):
    import torch

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert _align(straight, "--epochs", "2").exit_code == 0
    assert _align(resumed, "--epochs", "1").exit_code == 0  # as if killed after epoch 1's checkpoint
    r = _align(resumed, "--epochs", "2")
    assert r.exit_code == 0 and "resuming after epoch 1" in r.output
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    r = _align(resumed, "--epochs", "2")  # complete: reused, nothing trained
    assert r.exit_code == 0 and "already trained" in r.output


def test_sigterm_ends_training_with_one_line_and_it_resumes(tiny_model, tmp_path, monkeypatch):
    import os
    import signal

    from harness.alignment import checkpoint

    write_epoch = checkpoint.write_epoch

    def then_terminated(folder, meta, weights, state, epoch):
        out = write_epoch(folder, meta, weights, state, epoch)
        if epoch == 1:  # a scheduler's time limit, right after the first epoch's checkpoint
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(checkpoint, "write_epoch", then_terminated)
    out = tmp_path / "ck"
    r = _align(out, "--epochs", "2")
    assert r.exit_code == 143 and "Traceback" not in r.output, r.output
    last = r.output.strip().splitlines()[-1]
    assert last == "Terminated. Finished epochs are kept; run the same command again to resume."
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the CLI put the handler back
    monkeypatch.setattr(checkpoint, "write_epoch", write_epoch)
    r = _align(out, "--epochs", "2")
    assert r.exit_code == 0 and "resuming after epoch 1" in r.output, r.output


def test_a_training_killed_while_writing_its_first_epoch_resumes(tiny_model, tmp_path):
    """SIGKILL during the first checkpoint's write leaves only the atomic write's hidden temporary
    file: the folder used to count as "other files", and the same command could not go on."""
    out = tmp_path / "ck"
    out.mkdir()
    (out / ".weights-e001.pt.w3128dd2.tmp").write_bytes(b"half a checkpoint")
    r = _align(out, "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert "removed 1 temporary file(s) an interrupted training left" in r.output
    assert sorted(p.name for p in out.iterdir()) == [".lock", "align.json", "state-e001.pt", "weights-e001.pt"]


def test_a_training_killed_between_its_first_epoch_files_and_align_json_starts_again(tiny_model, tmp_path):
    """Killed after weights-e001.pt and state-e001.pt were in place but before align.json named them,
    the folder "holds other files" and the same command was refused (found by QA)."""
    import torch

    straight = tmp_path / "straight"
    assert _align(straight, "--epochs", "1").exit_code == 0
    out = tmp_path / "ck"
    out.mkdir()
    (out / ".lock").write_text("")
    for name in ("weights-e001.pt", "state-e001.pt"):
        (out / name).write_bytes((straight / name).read_bytes()[:1000])  # complete or not: unnamed
    r = _align(out, "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert "removed 2 file(s) of a first epoch an interrupted training left unfinished" in r.output
    a, b = _weights(straight), _weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # anything else beside them is the user's: refused as before, nothing removed
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights-e001.pt").write_bytes(b"x")
    (other / "notes.txt").write_text("mine")
    r = _align(other, "--epochs", "1")
    assert r.exit_code != 0 and "holds other files" in r.output
    assert sorted(p.name for p in other.iterdir()) == [".lock", "notes.txt", "weights-e001.pt"]


def test_the_thread_count_is_a_setting_and_the_summary_prints_a_zero(tiny_model, tmp_path):
    """Trained on 1 or 2 torch threads the weights differ (sums in another order), but the folder did
    not say on how many, and a resume on another count went on in silence; a held-out value of 0
    printed as nan (``x or nan``); a huge --seed ended in a traceback after the data was prepared."""
    from harness.alignment.checkpoint import read_checkpoint

    out = tmp_path / "ck"
    r = _align(out, "--epochs", "1", "--threads", "1")
    assert r.exit_code == 0, r.output
    assert read_checkpoint(out).meta["settings"]["threads"] == 1
    r = _align(out, "--epochs", "2", "--threads", "2")
    assert r.exit_code != 0 and "other settings (differs in: threads)" in r.output, r.output
    meta = json.loads((out / "align.json").read_text())
    meta["history"][-1]["held_out_top1_agreement"] = 0.0  # as a model that agrees on no held-out stimulus
    (out / "align.json").write_text(json.dumps(meta))
    r = _align(out, "--epochs", "1", "--threads", "1")  # reused: prints the summary line of the stored history
    line = next(line for line in r.output.splitlines() if "top-1 agreement" in line)
    assert line.endswith("top-1 agreement 0.000)") and "nan" not in line, line
    r = _align(tmp_path / "seed", "--seed", str(10**15))
    assert r.exit_code == 2 and "Traceback" not in r.output and "--seed" in r.output, r.output


def test_a_second_training_into_the_folder_waits_for_the_first(tiny_model, tmp_path):
    """Two trainings into one folder both ended "1 epochs -> folder", one model silently lost: the
    second now waits for the first, then finds its model (reused, or refused if its settings
    differ)."""
    import threading
    import time

    from filelock import FileLock

    out = tmp_path / "ck"
    out.mkdir()
    taken = threading.Event()

    def other_training():  # another process' training, as far as the lock tells
        with FileLock(str(out / ".lock")):
            taken.set()
            time.sleep(1.5)

    release = threading.Thread(target=other_training)
    release.start()
    taken.wait()
    t0 = time.monotonic()
    r = _align(out, "--epochs", "1")
    assert r.exit_code == 0, r.output
    assert f"{out}: another harness align is training into this folder; waiting for it" in r.output
    assert time.monotonic() - t0 >= 1.0
    release.join()


def test_checkpoint_mismatch_and_damage_are_one_line_errors(tiny_model, tmp_path):
    out = tmp_path / "ck"
    assert _align(out, "--epochs", "1").exit_code == 0
    r = _align(out, "--epochs", "1", "--seed", "3")
    assert r.exit_code != 0 and "other settings (differs in: seed)" in r.output and "Traceback" not in r.output
    weights = next(out.glob("weights-*.pt"))
    weights.write_bytes(weights.read_bytes()[:100])
    r = CliRunner().invoke(main, ["eval", "--model", str(out), "--dataset", "osie", "--limit", "12",
                                  "--output", str(tmp_path / "runs"), "--no-references", "--no-show"])
    assert r.exit_code != 0 and "damaged" in r.output and weights.name in r.output and "Traceback" not in r.output
    other = tmp_path / "full"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = _align(other)
    assert r.exit_code != 0 and "holds other files" in r.output


def test_unknown_loss_and_untrainable_model_are_refused(tiny_model, tmp_path):
    r = _align(tmp_path / "a", loss="density-k")
    assert r.exit_code != 0 and "density-kl" in r.output  # did you mean
    r = _align(tmp_path / "b", model="center-bias")
    assert r.exit_code != 0 and "baseline" in r.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a --train-only prefix no parameter has: refused before the output folder is made (it was
    # refused after, leaving an empty, locked folder)
    r = _align(tmp_path / "c", "--train-only", "features.0,head.nothing")
    assert r.exit_code == 1 and "--train-only head.nothing: no parameter of" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_the_printed_evaluate_command_works_for_a_bare_folder_name(tiny_model, tmp_path, monkeypatch):
    """``--output l2`` printed ``harness eval --model l2``, which read l2 as a registered model's
    name ("unknown model 'l2'")."""
    import shlex

    monkeypatch.chdir(tmp_path)
    r = _align(Path("l2"), "--epochs", "1")
    assert r.exit_code == 0, r.output
    (line,) = [x for x in r.output.splitlines() if x.startswith("evaluate: ")]
    assert line == "evaluate: harness eval --model ./l2 --dataset osie"
    argv = shlex.split(line.removeprefix("evaluate: harness "))
    r = CliRunner().invoke(main, [*argv, "--limit", "12", "--output", "runs", "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    # a folder that holds no model, or none at all: said as such, not "unknown model"
    Path("empty").mkdir()
    for name, why in (("./empty", "not a model folder written by `harness align` (no align.json)"),
                      ("./nowhere", "no such folder (and no registered model of that name)")):
        r = CliRunner().invoke(main, ["eval", "--model", name, "--output", "runs", "--no-show"])
        assert r.exit_code == 1 and r.output.strip() == f"Error: --model {name}: {why}", r.output


def test_aligned_model_scores_only_its_held_out_stimuli(tiny_model, tmp_path):
    from harness.results import load_runs

    out, runs = tmp_path / "ck", tmp_path / "runs"
    assert _align(out, "--epochs", "1", "--name", "tiny-aligned").exit_code == 0
    held = json.loads((out / "align.json").read_text())["split"]["held_out"]
    r = CliRunner().invoke(main, ["eval", "--model", str(out), "--dataset", "osie", "--limit", "12",
                                  "--output", str(runs), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    assert "scoring its 4 held-out stimuli of 12" in r.output
    (run,) = load_runs(runs)
    assert run.summary["model"] == "tiny-aligned" and run.summary["n_images"] == 4
    assert sorted(run.per_image()["stimulus_id"]) == sorted(held)
    assert run.settings["stimuli"]["subset"] == "held-out"
    prov = run.settings["model_provenance"]["aligned"]
    assert prov["base_model"] == "tiny-cnn" and prov["loss"] == "density-kl"
    # in-sample: every stimulus, marked, in a run of its own
    r = CliRunner().invoke(main, ["eval", "--model", str(out), "--dataset", "osie", "--limit", "12",
                                  "--output", str(runs), "--no-references", "--no-show", "--in-sample"])
    assert r.exit_code == 0, r.output
    insample = [x for x in load_runs(runs) if x.settings.get("stimuli", {}).get("in_sample")]
    assert len(insample) == 1 and insample[0].summary["n_images"] == 12
    # a held-out stimulus scores the same in both runs (same context, same model)
    a = run.per_image().set_index("stimulus_id")
    b = insample[0].per_image().set_index("stimulus_id").loc[a.index]
    assert np.allclose(a["nss"], b["nss"], rtol=0, atol=1e-9)
    shown = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(runs), "--wide"])
    assert shown.exit_code == 0 and "4 (held-out" in shown.output and "12 (in-sample" in shown.output, shown.output
    # beyond the --limit it was trained with, every stimulus is unseen too: scored as held-out (it
    # scored the 4 held-out ones only, and --in-sample said "16 of 16 seen in training"; found by QA)
    r = CliRunner().invoke(main, ["eval", "--model", str(out), "--dataset", "osie", "--limit", "16",
                                  "--output", str(runs), "--no-references", "--no-show"])
    assert r.exit_code == 0 and "scoring its 8 held-out stimuli of 16" in r.output, r.output
    r = CliRunner().invoke(main, ["eval", "--model", str(out), "--dataset", "osie", "--limit", "16",
                                  "--output", str(runs), "--no-references", "--no-show", "--in-sample"])
    assert r.exit_code == 0 and "scoring all 16 stimuli, 8 of them seen in training" in r.output, r.output
    # the base model's name is not a folder: --in-sample on it is a user mistake
    r = CliRunner().invoke(main, ["eval", "--model", "tiny-cnn", "--dataset", "osie", "--limit", "4",
                                  "--output", str(runs), "--no-references", "--no-show", "--in-sample"])
    assert r.exit_code != 0 and "aligned models" in r.output


@pytest.mark.slow
def test_real_lite0_density_kl_moves_held_out_alignment_up(tmp_path):
    """A handful of steps of efficientnet-lite0 (ImageNet weights) toward real OSIE fixations."""
    out = tmp_path / "lite0"
    r = _align(out, "--epochs", "2", "--lr", "1e-4", model="efficientnet-lite0", limit="48", loss="density-kl")
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "align.json").read_text())
    before, after = meta["history"][0], meta["history"][-1]
    print("held-out before/after:", {k: (before[k], after[k]) for k in before if k.startswith("held_out")})
    # measured: NSS 0.513 -> 0.730, AUC-Judd 0.626 -> 0.683 on these 14 held-out stimuli
    assert after["held_out_nss"] > before["held_out_nss"] + 0.1
    assert after["held_out_auc_judd"] > before["held_out_auc_judd"] + 0.02


def center_mass(batch):
    """docs/alignment.md's example loss, verbatim."""
    import torch

    a = batch.attention()
    h = batch.human
    ys = torch.arange(a.shape[1], dtype=a.dtype)[:, None]
    xs = torch.arange(a.shape[2], dtype=a.dtype)[None, :]
    p = a / a.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    dy = (p * ys).sum((1, 2)) - (h * ys).sum((1, 2))
    dx = (p * xs).sum((1, 2)) - (h * xs).sum((1, 2))
    return (dx ** 2 + dy ** 2).mean()


class LossPlugin:
    @hookimpl
    def register_alignment_losses(self, register):
        register("center-mass", center_mass, needs=("attention",), default_weight=1.0,
                 description="Squared distance between the centres of mass.")


def test_a_third_party_loss_trains(tiny_model, tmp_path):
    pm.register(LossPlugin(), name="loss-test")
    try:
        listing = CliRunner().invoke(main, ["alignment-losses", "--json"])
        assert "center-mass" in [r["name"] for r in json.loads(listing.output)]
        out = tmp_path / "ck"
        r = _align(out, "--epochs", "2", loss="center-mass")
        assert r.exit_code == 0, r.output
        meta = json.loads((out / "align.json").read_text())
        assert meta["settings"]["loss"] == "center-mass" and meta["settings"]["loss_plugin"] == "loss-test"
        assert all(np.isfinite(h["train_align"]) and h["train_align"] > 0 for h in meta["history"][1:])
    finally:
        pm.unregister(name="loss-test")


@pytest.mark.slow
def test_torchrun_two_processes_train_the_same_steps(tmp_path, osie_dir, osie_cache):
    """Data-parallel training: two real processes (torchrun, gloo) split every batch and sum their
    gradients; the weights match one process up to floating-point summation order.

    Compared as whole updates, not weight by weight: Adam divides each gradient coordinate by its
    own magnitude, so a weight whose gradient is summation-order noise (terms that cancel to ~1e-8)
    moves by about +-lr in either run, whichever sign the rounding gave it (measured on an AMD EPYC:
    44 of 10k weights of one layer, 2.3e-4 apart after two steps of 1e-4). Over all weights the two
    updates agree to 1.8% (relative L2 distance), where a batch split wrongly across the ranks gives
    unrelated updates."""
    import os
    import subprocess
    import sys

    import torch

    from harness.alignment.checkpoint import read_checkpoint

    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "HARNESS_CACHE_DIR": str(osie_cache)}
    args = ["-m", "harness", "align", "--model", "efficientnet-lite0", "--dataset", "osie", "--data-dir", str(osie_dir),
            "--loss", "density-kl", "--limit", "12", "--epochs", "1", "--batch-size", "4", "--lr", "1e-4",
            "--no-progress"]
    two = subprocess.run([str(torchrun), "--nproc_per_node", "2", *args, "--output", str(tmp_path / "two")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("1 epochs ->") == 1  # rank 0 reports for both
    one = subprocess.run([sys.executable, *args, "--threads", "1", "--output", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    a, b = read_checkpoint(tmp_path / "two"), read_checkpoint(tmp_path / "one")
    assert a.meta["settings"]["processes"] == 2 and b.meta["settings"]["processes"] == 1
    assert a.meta["split"] == b.meta["split"]
    wa, wb = a.weights(), b.weights()
    base = torch.load(next(iter([__import__("plugins.models.efficientnet_lite", fromlist=["x"]).weights_path("lite0")])),
                      map_location="cpu", weights_only=True)
    names = [k for k in wb if wb[k].is_floating_point()]
    step_one = torch.cat([(wb[k].double() - base[k].double()).reshape(-1) for k in names])
    step_two = torch.cat([(wa[k].double() - base[k].double()).reshape(-1) for k in names])
    assert float(step_one.abs().max()) > 1e-5  # training moved the weights ...
    # ... and both runs moved them the same way
    assert float((step_two - step_one).norm() / step_one.norm()) < 0.05


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_weights(tmp_path, osie_dir, osie_cache):
    """SIGKILL `harness align` once its first epoch is on disk; the same command resumes after that
    epoch and ends with the weights of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    from harness.alignment.checkpoint import read_checkpoint

    env = {**os.environ, "HARNESS_CACHE_DIR": str(osie_cache)}
    args = [sys.executable, "-m", "harness", "align", "--model", "efficientnet-lite0", "--dataset", "osie",
            "--data-dir", str(osie_dir), "--loss", "density-kl", "--limit", "12", "--epochs", "4", "--batch-size", "4",
            "--lr", "1e-4", "--train-only", "_blocks.15,_conv_head,_bn1", "--threads", "1", "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--output", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            if read_checkpoint(killed).epochs_done >= 1:
                break
        except Exception:
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = read_checkpoint(killed).epochs_done
    assert 1 <= done < 4, f"killed after epoch {done}: too late to test resuming"
    r = subprocess.run([*args, "--output", str(killed)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and f"resuming after epoch {done}" in r.stderr, r.stderr[-2000:]
    straight = tmp_path / "straight"
    r = subprocess.run([*args, "--output", str(straight)], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a, b = read_checkpoint(killed), read_checkpoint(straight)
    assert a.epochs_done == b.epochs_done == 4
    wa, wb = a.weights(), b.weights()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert [h["train_total"] for h in a.meta["history"][1:]] == [h["train_total"] for h in b.meta["history"][1:]]


def test_page_pairs_an_aligned_model_with_its_base(tiny_model, tmp_path):
    """`harness leaderboard build` shows each aligned model against its base on its held-out stimuli
    (data in the page; rendered in headless Chromium when it is installed)."""
    from site_helpers import page_data

    out, runs, site = tmp_path / "ck", tmp_path / "runs", tmp_path / "site"
    assert _align(out, "--epochs", "1", "--name", "tiny-aligned").exit_code == 0
    for model in (str(out), "tiny-cnn"):
        r = CliRunner().invoke(main, ["eval", "--model", model, "--dataset", "osie", "--limit", "12",
                                      "--output", str(runs), "--no-show"])
        assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(runs), "--output", str(site)])
    assert r.exit_code == 0, r.output
    (entry,) = page_data(site / "index.html")["before_after"]
    assert (entry["base"], entry["aligned"], entry["n"]) == ("tiny-cnn", "tiny-aligned", 4)
    nss = next(m for m in entry["metrics"] if m["name"] == "nss")
    assert nss["lo"] <= nss["diff"] <= nss["hi"]
    assert nss["diff"] == pytest.approx(nss["after"] - nss["before"], abs=1e-12)

    from pathlib import Path as _Path

    if not _Path("/usr/bin/chromium").exists():
        return
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            pg.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
            pg.wait_for_selector("body[data-ready=true]")
            assert pg.is_visible("#before-after")
            heading = pg.text_content("#before-after h3")
            assert "tiny-cnn" in heading and "tiny-aligned" in heading and "4 held-out stimuli" in heading
            assert pg.eval_on_selector_all("#before-after tbody tr", "rows => rows.length") == len(entry["metrics"])
            assert errors == []
            browser.close()
    finally:
        server.shutdown()


def test_differentiable_grad_cam_is_grad_cam_with_gradients():
    """The training-time Grad-CAM gives the evaluation-time maps, and a loss on them reaches every
    parameter before and after the layer (through the activations and the channel weights)."""
    import torch

    from harness.attention.gradcam import grad_cam_differentiable, grad_cam_with_logits

    m = TinyCNN()
    m.net.requires_grad_(True)
    x = torch.rand(3, 3, 32, 32)
    maps, targets, logits = grad_cam_with_logits(m._forward, m.net["features"], x)
    logits2, maps2 = grad_cam_differentiable(m._forward, m.net["features"], x, targets)
    assert torch.allclose(maps, maps2.detach(), atol=1e-6) and torch.allclose(logits, logits2.detach(), atol=1e-6)
    # a class whose map is not all zero (ReLU) on this random net, so the loss has a gradient
    target = next(c for c in range(5)
                  if grad_cam_differentiable(m._forward, m.net["features"], x, torch.full((3,), c))[1].sum() > 0)
    _, maps3 = grad_cam_differentiable(m._forward, m.net["features"], x, torch.full((3,), target))
    maps3.sum().backward()
    assert m.net["features"][0].weight.grad.abs().sum() > 0  # before the layer
    assert m.net["head"].weight.grad.abs().sum() > 0  # the channel weights come from the head


@pytest.mark.slow
def test_two_processes_train_the_model_one_process_trains(osie_dir, osie_cache, tmp_path):
    """``torchrun --nproc_per_node 2 -m harness align`` (docs/alignment.md): each rank computes its
    share of every batch's gradient, the gradients are averaged, and the model is that of one
    process up to the order of the floating-point sums; the folder records its processes."""
    from harness.alignment.checkpoint import read_checkpoint
    from harness.models import load_model
    from test_parallel import _env, two_then_one

    args = ["-m", "harness", "align", "--model", "efficientnet-lite0", "--dataset", "osie", "--data-dir",
            str(osie_dir), "--loss", "density-kl", "--limit", "12", "--epochs", "2", "--batch-size", "4", "--lr",
            "1e-4", "--train-only", "_blocks.15,_conv_head,_bn1", "--no-progress"]
    two, _ = two_then_one(args, _env(osie_cache), tmp_path)
    a, b = read_checkpoint(tmp_path / "one"), read_checkpoint(tmp_path / "two")
    assert (a.meta["settings"]["processes"], b.meta["settings"]["processes"]) == (1, 2)
    # and each process' torch threads (the cores shared among them)
    assert a.meta["settings"]["threads"] >= b.meta["settings"]["threads"] >= 1
    assert {k: v for k, v in a.meta["settings"].items() if k not in ("processes", "threads")} == \
        {k: v for k, v in b.meta["settings"].items() if k not in ("processes", "threads")}
    wa, wb, w0 = a.weights(), b.weights(), {k: v.detach() for k, v in
                                            load_model("efficientnet-lite0").trainable().module.state_dict().items()}
    trained = [k for k in wa if not np.array_equal(wa[k].numpy(), w0[k].numpy())]
    assert trained and all(k.startswith(("_blocks.15", "_conv_head", "_bn1")) for k in trained)
    # the same training: the two updates differ by a small fraction of the update itself (Adam
    # divides by the gradients' running magnitude, so summation-order differences grow a little)
    import torch

    update = torch.cat([(wa[k].float() - w0[k].float()).ravel() for k in trained])
    apart = torch.cat([(wa[k].float() - wb[k].float()).ravel() for k in trained])
    assert float(apart.norm()) < 0.05 * float(update.norm()), (float(apart.norm()), float(update.norm()))
    for ha, hb in zip(a.meta["history"][1:], b.meta["history"][1:], strict=True):
        assert hb["train_total"] == pytest.approx(ha["train_total"], rel=1e-4)
        assert hb["held_out_nss"] == pytest.approx(ha["held_out_nss"], abs=1e-3)
    out = two.stdout + two.stderr  # rank 0 alone reports
    assert out.count("efficientnet-lite0+density-kl: 2 epochs") == 1, out[-2000:]


def _bad_losses():
    import torch

    def as_float(batch):
        return float(batch.attention().mean().detach())

    def vector(batch):
        return batch.attention().mean(dim=(1, 2))

    def none(batch):
        return None

    def raises(batch):
        raise ValueError("boom in my loss")

    def detached(batch):
        return batch.attention().mean().detach()

    def constant(batch):
        return torch.tensor(0.5)

    def nan(batch):
        return batch.attention().mean() * float("nan")

    def integer(batch):
        return torch.tensor(3)

    return {
        "as-float": (as_float, "returned float, not a scalar torch tensor"),
        "vector": (vector, "returned a tensor of shape (4,), not a scalar"),
        "none": (none, "returned NoneType"),
        "raises": (raises, "raised ValueError: boom in my loss"),
        "detached": (detached, "returned a value with no gradient"),
        "constant": (constant, "returned a value with no gradient"),
        "nan": (nan, "gave nan at epoch 1 before any update"),
        "integer": (integer, "not a floating-point one"),
    }


@pytest.mark.parametrize("name", sorted(_bad_losses()))
def test_a_bad_loss_plugin_is_one_line_naming_it(tiny_model, tmp_path, name):
    """A loss plugin's value is checked before it trains anything (found by an alignment QA
    session): a float, a vector, None or an exception gave torch's traceback, and a detached or
    constant value trained only the task term while the run reported success."""
    fn, message = _bad_losses()[name]

    class Bad:
        @hookimpl
        def register_alignment_losses(self, register):
            register(f"bad-{name}", fn, needs=("attention",))

    pm.register(Bad(), name="bad-loss-test")
    try:
        r = _align(tmp_path / "ck", "--epochs", "1", loss=f"bad-{name}")
        assert r.exit_code == 1, r.output
        last = r.output.strip().splitlines()[-1]
        assert last.startswith(f"Error: alignment loss 'bad-{name}' (plugin 'bad-loss-test') "), r.output
        assert message in last and "Traceback" not in r.output
    finally:
        pm.unregister(name="bad-loss-test")


def test_training_only_the_head_trains_density_kl(tiny_model, tmp_path):
    """Grad-CAM's channel weights come from the head, so an attention loss trains a head alone
    (`--train-only _fc` on EfficientNet-Lite): the activations then need no gradient of their own,
    and taking eq. 1's gradient failed with torch's traceback (found by an alignment QA session)."""
    out = tmp_path / "ck"
    r = _align(out, "--epochs", "1", "--train-only", "head", "--weight", "100")
    assert r.exit_code == 0, r.output
    before, after = TinyCNN().net.state_dict(), _weights(out)
    assert not np.array_equal(before["head.weight"].numpy(), after["head.weight"].numpy())
    assert np.array_equal(before["features.0.weight"].numpy(), after["features.0.weight"].numpy())


def test_density_kl_of_a_nan_attention_map_is_nan_not_uniform():
    """A NaN in the attention map made its total NaN, which read as 'no mass': the map became
    uniform and the loss finite, with a zero gradient (found by an alignment QA session)."""
    import torch

    from plugins.alignment_losses import kl_from_maps

    human = torch.rand(2, 6, 6)
    attention = torch.rand(2, 6, 6)
    attention[1, 2, 3] = float("nan")
    loss = kl_from_maps(human, attention)
    assert torch.isfinite(loss[0]) and torch.isnan(loss[1])
    zero = kl_from_maps(human, torch.zeros(2, 6, 6))  # all-zero still reads as uniform
    uniform = kl_from_maps(human, torch.ones(2, 6, 6))
    assert torch.allclose(zero, uniform)


def _hand_made_checkpoint(folder: Path, **changes) -> Path:
    """An align.json as harness align writes it (no weights: these are refused before any are read)."""
    meta = {"format": "gaze-harness aligned model", "format_version": 1, "epochs_done": 1,
            "settings": {"epochs": 1, "name": "x", "dataset": "osie", "dataset_fingerprint": "f0" * 32},
            "files": {"weights": {"name": "weights-e001.pt", "sha256": "0" * 64},
                      "state": {"name": "state-e001.pt", "sha256": "0" * 64}},
            "split": {"seed": 0, "holdout": 0.2, "train": [], "held_out": []},
            "base": {"model": "efficientnet-lite0", "provenance": {}}}
    for key, value in changes.items():
        *parents, last = key.split(".")
        doc = meta
        for p in parents:
            doc = doc[p]
        doc[last] = value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "align.json").write_text(json.dumps(meta))
    return folder


def test_a_hostile_align_json_is_one_line_naming_the_field(tmp_path, monkeypatch):
    """A base that is the folder itself recursed until RecursionError; a chain of folders each the
    base of the next too; epochs_done "x" and epochs null were a ValueError and a TypeError; a
    deeply nested align.json a RecursionError in the parser (found by the security QA)."""
    monkeypatch.chdir(tmp_path)
    al1 = _hand_made_checkpoint(tmp_path / "al1")
    _hand_made_checkpoint(al1, **{"base.load_as": str(al1)})
    _hand_made_checkpoint(tmp_path / "al2", **{"base.model": "./al2"})
    for k in range(8):  # c0's base is c1, c1's is c2, ...
        _hand_made_checkpoint(tmp_path / f"c{k}", **{"base.model": f"./c{k + 1}"})
    _hand_made_checkpoint(tmp_path / "c8")
    _hand_made_checkpoint(tmp_path / "loop-a", **{"base.model": "./loop-b"})
    _hand_made_checkpoint(tmp_path / "loop-b", **{"base.model": "./loop-a"})
    _hand_made_checkpoint(tmp_path / "done", epochs_done="x")
    _hand_made_checkpoint(tmp_path / "epochs", **{"settings.epochs": None})
    _hand_made_checkpoint(tmp_path / "nested", epochs_done=[[[1]]])
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "align.json").write_text("[" * 100_000 + "]" * 100_000)
    expected = {
        "al1": "field 'base.load_as' names the folder itself",
        "al2": "field 'base.model' names the folder itself",
        "c0": "field 'base.model' names an aligned model more than 4 aligned folders deep",
        "loop-a": "field 'base.model' names an aligned folder whose base leads back to this one",
        "done": "field 'epochs_done' must be a whole number of epochs (0 or more), not \"x\"",
        "epochs": "field 'settings.epochs' must be a whole number of epochs (1 or more), not null",
        "nested": "field 'epochs_done' must be a whole number of epochs (0 or more), not a JSON array",
        "deep": "unreadable (nested too deeply",
    }
    for name, why in expected.items():
        r = CliRunner().invoke(main, ["eval", "--model", f"./{name}", "--limit", "2", "-o", "x",
                                      "--no-references", "--no-show"])
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, (name, r.output)
        assert r.output.startswith("Error: ") and f"align.json: {why}" in r.output, (name, r.output)
