"""Several instances of a CPU model running batches side by side in threads (``--model-copies``):
the real EfficientNet-Lite0 on real OSIE stimuli gives the same bits with 1, 2 and 3 copies; a
batch that crashes in one copy is recorded and the run goes on; an error or an interrupt in one
stops the run with no model thread left, and the same command resumes to the same rows."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.evaluation import EvalConfig, run_eval
from harness.hookspecs import hookimpl
from harness.models import Prediction
from harness.plugins import pm
from harness.results import read_run
from model_helpers import blob
from test_parallel import assert_identical


def _cfg(out, osie_dir, **kw) -> EvalConfig:
    base = dict(model="efficientnet-lite0", dataset="osie", limit=16, batch_size=4, output=out, data_dir=osie_dir,
                progress=False, score_workers=0, loader_workers=0)
    base.update(kw)
    return EvalConfig(**base)


def _no_model_threads() -> bool:
    return not any(t.name.startswith("harness-model") and t.is_alive() for t in threading.enumerate())


def test_copies_give_the_bits_of_one(tmp_path, osie_dir):
    for n in (1, 2, 3):
        (result,) = run_eval(_cfg(tmp_path / f"c{n}", osie_dir, model_copies=n), references=False)
        manifest = json.loads((result.run_dir / "manifest.json").read_text())
        assert manifest["model_copies"] == n and result.summary["n_failed"] == 0
    assert_identical(tmp_path / "c1", tmp_path / "c2")
    assert_identical(tmp_path / "c1", tmp_path / "c3")
    assert _no_model_threads()


class ByContent:
    """Each stimulus' map from its own pixels (the same whichever copy or batch computes it); a
    batch holding an image of mean brightness in ``crash_on`` raises ``error``."""

    name = "by-content"
    tasks = ("free-viewing",)
    attention_methods = ("blob",)
    crash_on: set[float] = set()
    error: type[Exception] = RuntimeError

    def provenance(self):
        return {"model_id": self.name, "weights_sha256": "1" * 64}

    def predict(self, images, *, task, attention):
        means = [round(float(np.asarray(im).mean()), 6) for im in images]
        if self.crash_on & set(means):
            raise self.error("this batch cannot be run")
        return [Prediction(attention=blob(*im.size, cx=0.2 + 0.6 * (m % 1)), output={}) for im, m in zip(images, means)]


class _Plugin:
    @hookimpl
    def register_models(self, register):
        register("by-content", ByContent, tasks=("free-viewing",), attention=("blob",), description="test model")


@pytest.fixture
def by_content(osie_dataset):
    pm.register(_Plugin(), name="by-content-test")
    ByContent.crash_on = {round(float(np.asarray(osie_dataset[5]["image"]).mean()), 6)}  # stimulus 1006
    try:
        yield ByContent
    finally:
        pm.unregister(name="by-content-test")
        ByContent.crash_on, ByContent.error = set(), RuntimeError


def test_a_batch_that_crashes_in_a_copy_is_recorded(tmp_path, osie_dir, by_content):
    one, two = (run_eval(_cfg(tmp_path / name, osie_dir, model="by-content", limit=12, batch_size=2, model_copies=n),
                         references=False)[0] for name, n in (("one", 1), ("two", 2)))
    assert_identical(tmp_path / "one", tmp_path / "two")
    frame = read_run(two.run_dir).per_image().set_index("stimulus_id")
    assert two.summary["n_failed"] == 2  # the batch of stimuli 1005 and 1006
    assert set(frame.index[frame["status"] == "failed"]) == {"1005", "1006"}
    assert frame.loc["1006", "error"] == "RuntimeError: this batch cannot be run"
    assert _no_model_threads()


def test_an_error_or_an_interrupt_in_a_copy_stops_the_run_and_it_resumes(tmp_path, osie_dir, by_content):
    by_content.error = HarnessError
    with pytest.raises(HarnessError, match="this batch cannot be run"):
        run_eval(_cfg(tmp_path / "err", osie_dir, model="by-content", limit=12, batch_size=2, model_copies=2),
                 references=False)
    assert _no_model_threads()
    by_content.crash_on = set()

    class Stop(KeyboardInterrupt):
        pass

    def interrupt(k: int) -> None:
        raise Stop

    cfg = _cfg(tmp_path / "runs", osie_dir, model="by-content", limit=12, batch_size=2, model_copies=2)
    with pytest.raises(Stop):
        run_eval(cfg, references=False, on_batch=interrupt)
    assert _no_model_threads()
    (run,) = (tmp_path / "runs").iterdir()
    assert len(list((run / "shards").glob("part-*.parquet"))) == 1  # the first batch is on disk
    (resumed,) = run_eval(cfg, references=False)
    assert resumed.resumed_images == 2 and resumed.computed_images == 10
    run_eval(_cfg(tmp_path / "whole", osie_dir, model="by-content", limit=12, batch_size=2, model_copies=1),
             references=False)
    assert_identical(tmp_path / "runs", tmp_path / "whole")


def test_copies_load_only_when_the_run_has_stimuli_to_compute(tmp_path, osie_dir, by_content, monkeypatch):
    """The extra instances are loaded by a run with chunks to share out, not by one found complete
    (a rerun of a finished sweep loaded every copy's weights for nothing) nor by one with a single
    chunk to compute (one instance computes it whole)."""
    by_content.crash_on = set()
    made = []
    monkeypatch.setattr(by_content, "__init__", lambda self: made.append(self))
    cfg = _cfg(tmp_path / "runs", osie_dir, model="by-content", limit=8, batch_size=2, model_copies=3)
    (first,) = run_eval(cfg, references=False)
    assert len(made) == 3 and first.computed_images == 8
    (again,) = run_eval(cfg, references=False)
    assert len(made) == 4 and again.computed_images == 0 and again.run_dir == first.run_dir  # the model, no copy
    manifest = json.loads((first.run_dir / "manifest.json").read_text())
    assert manifest["model_copies"] == 3
    one = _cfg(tmp_path / "one", osie_dir, model="by-content", limit=2, batch_size=2, model_copies=3)
    (single,) = run_eval(one, references=False)
    assert len(made) == 5 and single.computed_images == 2  # one chunk: the model, no copy
    # the manifest records the instances that computed the run, not the plan's count
    assert json.loads((single.run_dir / "manifest.json").read_text())["model_copies"] == 1


def test_only_models_registered_with_copies_run_as_copies_by_default(tmp_path, osie_dir, by_content, monkeypatch):
    """A plugin's instances may share state (a module-level cache handing both the same torch
    module): by default a plugin model runs as one instance unless it is registered with
    ``copies=True``; ``--model-copies`` still asks for more."""
    from harness.evaluation import threads
    from harness.models import copies_allowed

    by_content.crash_on = set()
    monkeypatch.setattr(threads, "cores", lambda: 4)  # the default plan: 3 copies if allowed

    def copies(name: str, **kw) -> int:
        cfg = _cfg(tmp_path / name, osie_dir, model="by-content", limit=48, batch_size=8, **kw)
        (result,) = run_eval(cfg, references=False)
        return json.loads((result.run_dir / "manifest.json").read_text())["model_copies"]

    assert not copies_allowed("by-content") and copies_allowed("efficientnet-lite0") and copies_allowed("hf:x")
    assert copies("plain") == 1
    assert copies("asked", model_copies=2) == 2

    class Declared:
        @hookimpl
        def register_models(self, register):
            register("by-content-copies", ByContent, tasks=("free-viewing",), attention=("blob",), copies=True)

    pm.register(Declared(), name="by-content-copies-test")
    try:
        assert copies_allowed("by-content-copies")
        cfg = _cfg(tmp_path / "declared", osie_dir, model="by-content-copies", limit=48, batch_size=8)
        (result,) = run_eval(cfg, references=False)
        assert json.loads((result.run_dir / "manifest.json").read_text())["model_copies"] == 3
    finally:
        pm.unregister(name="by-content-copies-test")
    assert_identical(tmp_path / "plain", tmp_path / "asked")


def test_copies_run_side_by_side_up_to_what_is_allowed():
    """Chunks run on as many instances at once as ``allowed`` says when each is handed over (the
    model leaves a core to the references while they run beside it), and come back in order."""
    import time

    from harness.evaluation.runner import ModelThreads

    running, peak = [0], []
    lock = threading.Lock()

    def infer(idx, images):
        with lock:
            running[0] += 1
            peak.append(running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return [f"job {i}" for i in idx]

    for allowed, most in ((1, 1), (3, 3)):
        peak.clear()
        models = ModelThreads([infer] * 3, allowed=lambda: allowed)
        try:
            out = [done for k in range(9) for done in models.submit(k, [k], [None])] + models.finish()
        finally:
            models.close()
        assert [k for k, _, _ in out] == list(range(9)) and [jobs for _, _, jobs in out][4] == ["job 4"]
        assert max(peak) == most
    assert _no_model_threads()
