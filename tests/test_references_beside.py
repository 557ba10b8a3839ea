"""The references (human ceiling, baselines) scored in a thread beside a model run in one process:
their scoring processes are gated to the cores the model leaves idle, a reference that fails ends
the model run with its error, and an interrupted model run stops the references too, keeping what
both finished (the same command then completes them, to the bit). That the rows are the same as
when the references run first is tested against torchrun (which runs them first) in
``test_parallel.py``."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from harness.data.density import sigma_px
from harness.errors import HarnessError
from harness.evaluation import run_eval
from harness.evaluation.context import DatasetContext
from harness.evaluation.scoring import Gate, Job, RunSpec, Scorer
from harness.hookspecs import hookimpl
from harness.models import Prediction
from harness.plugins import pm
from harness.results import read_run
from test_evaluate import _cfg, flaky  # noqa: F401  (a fixture)
from test_parallel import assert_identical


def _no_reference_thread() -> bool:
    return not any(t.name == "harness-references" and t.is_alive() for t in threading.enumerate())


def test_gated_scorer_keeps_to_its_lanes_then_opens(osie, osie_dataset):
    ctx = DatasetContext(osie, osie_dataset, 20, sigma_px(osie))
    spec = RunSpec(kind="ceiling", profile="mit", seed=0)
    jobs = [Job(i) for i in range(6)]
    inline = Scorer(ctx, 0).submit(spec, jobs).result()
    gate = Gate(1)
    with Scorer(ctx, 2, gate=gate) as scorer:
        # one part per batch and no batch left in flight: one scoring process busy at a time
        assert scorer.backlog == 0
        handle = scorer.submit(spec, jobs)
        assert len(handle.futures) == 1
        gated = handle.result()
        gate.lanes = None  # the model is done: every process
        assert scorer.backlog == 2
        handle = scorer.submit(spec, jobs)
        assert len(handle.futures) == 2
        opened = handle.result()
    def timeless(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r, _ in rows]

    assert timeless(gated) == timeless(inline) == timeless(opened)


class _BrokenMetric:
    @hookimpl
    def register_metrics(self, register):
        register("always_fails", _fails, higher_is_better=True, description="test metric")


def _fails(saliency_map, fix_x, fix_y, **context):
    raise RuntimeError("no good\n(second line)")


def test_a_failing_plugin_metric_is_nan_and_changes_no_other_number(tmp_path, osie_dir, flaky):  # noqa: F811
    # in the model's run and in every reference's alike: that metric is NaN with the reason in the
    # row, every other column the same bits as without the plugin
    plain = {r.summary["model"]: r for r in run_eval(_cfg(tmp_path / "plain", osie_dir, limit=4))}
    pm.register(_BrokenMetric(), name="always-fails-test")
    try:
        broken = {r.summary["model"]: r for r in run_eval(_cfg(tmp_path / "broken", osie_dir, limit=4))}
    finally:
        pm.unregister(name="always-fails-test")
    assert _no_reference_thread()
    assert set(broken) == set(plain) and {"flaky", "human-ceiling", "uniform"} <= set(broken)
    for name, result in broken.items():
        s, frame = result.summary, read_run(result.run_dir).per_image()
        assert s["n_failed"] == plain[name].summary["n_failed"] == 0, name
        assert s["nonfinite"]["always_fails"] == 4 and frame["always_fails"].isna().all(), name
        assert {k: v for k, v in s["metrics"].items() if k != "always_fails"} == plain[name].summary["metrics"]
        before = read_run(plain[name].run_dir).per_image()
        columns = [c for c in before.columns if c not in ("seconds", "error")]
        assert frame[columns].equals(before[columns]), name
        why = "metric 'always_fails' failed: RuntimeError: no good (second line) ("
        assert all(why in e and e.endswith("recorded as NaN)") and "\n" not in e for e in frame["error"]), name
        if name == "human-ceiling":  # one line per stimulus, naming the subjects it raised for
            assert all(e.count(why) == 1 and "(subjects " in e for e in frame["error"])


def _peek(saliency_map, fix_x, fix_y, density=None, **context):
    return float(saliency_map.sum() + fix_x.sum() + fix_y.sum() + density.sum())


def _vandal(saliency_map, fix_x, fix_y, density=None, **context):
    saliency_map[...] = 0  # a metric that writes into what it is given
    return 1.0


def _metrics_plugin(*entries):
    """A plugin registering ``(name, function, description)`` metrics, in that order."""
    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            for name, fn, description in entries:
                register(name, fn, higher_is_better=True, description=description)

    return Plugin()


def test_unruly_metric_plugins_change_no_other_number_and_leave_a_valid_run(tmp_path, osie_dir, flaky):  # noqa: F811
    """Found by a plugin author's QA: a metric that zeroed its map changed the metrics after it and
    the saved maps; a string "0.7" was stored as 0.7; a metric named ``status`` overwrote the rows'
    status (every mean NaN, verify "ok"); a plugin's ``nss`` beside the built-in one left ``nss`` in
    the shards but not in the summary, and every run was "damaged"."""
    from harness.results.verify import run_problems

    pm.register(_metrics_plugin(("peek_sum", _peek, "test metric")), name="peek-test")
    try:
        plain = {r.summary["model"]: r for r in run_eval(_cfg(tmp_path / "plain", osie_dir, limit=3))}
    finally:
        pm.unregister(name="peek-test")
    unruly = _metrics_plugin(("vandal", _vandal, "writes into its map"),
                             ("as_text", lambda *a, **k: "0.7", "a string, not a number"),
                             ("peek_sum", _peek, "test metric"))
    for plugin, name in ((unruly, "unruly-test"), (_metrics_plugin(("nss", _peek, "a built-in metric's name")),
                                                   "clash-test"),
                         (_metrics_plugin(("status", _peek, "a column of the rows")), "reserved-test")):
        pm.register(plugin, name=name)
    try:
        got = {r.summary["model"]: r for r in run_eval(_cfg(tmp_path / "unruly", osie_dir, limit=3))}
    finally:
        for name in ("unruly-test", "clash-test", "reserved-test"):
            pm.unregister(name=name)
    assert set(got) == set(plain) and {"flaky", "human-ceiling", "uniform"} <= set(got)
    for model, result in got.items():
        run = read_run(result.run_dir)
        s, frame = result.summary, run.per_image()
        assert run_problems(run) == [], model  # shards and summary agree
        assert "nss" not in frame.columns and "nss" not in s["metrics"], model  # contested: used by neither
        assert "status" in frame.columns and set(frame["status"]) == {"ok"} and "status" not in s["metrics"]
        before = plain[model].summary["metrics"]
        assert s["metrics"]["peek_sum"] == before["peek_sum"], model  # the map it read was not zeroed
        assert {k: v for k, v in s["metrics"].items() if k not in ("vandal", "as_text")} \
            == {k: v for k, v in before.items() if k != "nss"}, model
        assert frame["vandal"].isna().all() and frame["as_text"].isna().all(), model
        assert all("metric 'as_text' failed: TypeError: returned str '0.7', not a real number" in e
                   and "metric 'vandal' failed: ValueError:" in e and "read-only" in e for e in frame["error"]), model


class _BrokenBaseline:
    @hookimpl
    def register_models(self, register):
        register("broken-baseline", _no_baseline, tasks=("free-viewing",), attention=("grey",), baseline=True,
                 description="test baseline that cannot be made")


def _no_baseline(**kwargs):
    raise RuntimeError("no weights")


def test_a_failing_reference_ends_the_model_run_with_its_error(tmp_path, osie_dir, flaky):  # noqa: F811
    # a baseline that cannot be made stops the whole command: its error reaches the caller from
    # the reference thread, which ends
    pm.register(_BrokenBaseline(), name="broken-baseline-test")
    try:
        with pytest.raises(HarnessError, match="broken-baseline.*RuntimeError: no weights"):
            run_eval(_cfg(tmp_path, osie_dir, limit=4))
    finally:
        pm.unregister(name="broken-baseline-test")
    assert _no_reference_thread()


def test_interrupted_model_run_stops_the_references_and_resumes(tmp_path, osie_dir, flaky):  # noqa: F811
    class Stop(KeyboardInterrupt):
        pass

    def interrupt(k: int) -> None:
        raise Stop

    cfg = dict(limit=6, score_workers=2)
    with pytest.raises(Stop):
        run_eval(_cfg(tmp_path, osie_dir, **cfg), on_batch=interrupt)
    assert _no_reference_thread()
    runs = tmp_path / "runs"
    # the model's first batch is on disk; the same call completes everything
    assert len(list(runs.glob("flaky__*/shards/part-*.parquet"))) == 1
    again = run_eval(_cfg(tmp_path, osie_dir, **cfg))
    assert [r.summary["kind"] for r in again] == ["ceiling", "baseline", "baseline", "model"]
    assert again[-1].resumed_images == 2 and again[-1].computed_images == 4
    clean = run_eval(_cfg(tmp_path / "clean", osie_dir, **cfg))
    assert all(np.isfinite(r.summary["metrics"]["nss"]) for r in clean)
    assert_identical(runs, tmp_path / "clean" / "runs")


class _Brightness:
    """A third-party baseline that reads the pixels: the image's grey levels as its map."""

    name = "brightness"
    tasks = ("free-viewing",)
    attention_methods = ("grey",)

    def provenance(self):
        return {"model_id": "brightness", "revision": "test"}

    def predict(self, images, *, task, attention):
        return [Prediction(attention=np.asarray(im.convert("L"), dtype=np.float64) + 1.0, output={}) for im in images]


class _BrightnessPlugin:
    @hookimpl
    def register_models(self, register):
        register("brightness", _Brightness, tasks=("free-viewing",), attention=("grey",), baseline=True,
                 description="test baseline reading pixels")


def test_a_baseline_that_reads_pixels_is_scored_beside_the_model(tmp_path, osie_dir, flaky):  # noqa: F811
    # the references' thread decodes images from the same dataset as the model
    pm.register(_BrightnessPlugin(), name="brightness-test")
    try:
        results = run_eval(_cfg(tmp_path, osie_dir, limit=3))
    finally:
        pm.unregister(name="brightness-test")
    grey = next(r for r in results if r.summary["model"] == "brightness")
    assert grey.summary["kind"] == "baseline" and grey.summary["n_failed"] == 0
    assert read_run(grey.run_dir).per_image()["nss"].notna().all()


def _lower(saliency_map, fix_x, fix_y, **context):
    return float(np.mean(saliency_map))


def test_a_run_stays_whole_when_a_metric_plugin_goes_or_a_clash_comes(tmp_path, osie_dir, flaky):  # noqa: F811
    """A run made with a metric plugin, evaluated again after the plugin was uninstalled (or after
    another plugin began to contest a built-in name): the summary recomputed on reuse lost that
    column while the shards kept it, so the run was rewritten as "damaged" and left out of every
    table."""
    from harness.results.verify import run_problems

    cfg = _cfg(tmp_path / "runs", osie_dir, limit=3)
    pm.register(_metrics_plugin(("lower_mean", _lower, "test metric")), name="lower-test")
    try:
        first = {r.summary["model"]: r for r in run_eval(cfg)}
    finally:
        pm.unregister(name="lower-test")
    for clash in (None, _metrics_plugin(("nss", _peek, "a built-in metric's name"))):
        if clash is not None:
            pm.register(clash, name="clash-test")
        try:
            again = {r.summary["model"]: r for r in run_eval(cfg)}
        finally:
            if clash is not None:
                pm.unregister(name="clash-test")
        for model, result in again.items():
            assert result.reused and result.summary == first[model].summary, model
            assert run_problems(read_run(result.run_dir)) == [], model
