"""`harness eval` end to end on real OSIE data: results, provenance, failures, resume, settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.evaluation import EvalConfig, run_eval
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.results import load_runs, read_run

REPO = Path(__file__).resolve().parent.parent

# A model plugin for tests: a centred blob, except that it misbehaves on chosen stimuli and can be
# slowed down so that a test can kill it mid-run. Written as source so that a subprocess can load
# it through a real entry point.
FLAKY_SOURCE = textwrap.dedent(
    '''
    import os, time
    import numpy as np
    from harness.hookspecs import hookimpl
    from harness.models import Prediction

    class Flaky:
        name = "flaky"
        tasks = ("free-viewing", "classification")
        attention_methods = ("blob",)

        def __init__(self):
            # which calls misbehave, counted from 0 over the images this instance sees
            self.nan_on = {int(v) for v in os.environ.get("FLAKY_NAN_ON", "").split(",") if v}
            self.bad_shape_on = {int(v) for v in os.environ.get("FLAKY_BAD_SHAPE_ON", "").split(",") if v}
            self.calls = 0

        def provenance(self):
            return {"model_id": "flaky", "weights_sha256": "0" * 64}

        def predict(self, images, *, task, attention):
            time.sleep(float(os.environ.get("FLAKY_DELAY", "0")))
            out = []
            for im in images:
                k = self.calls
                self.calls += 1
                w, h = im.size
                yy, xx = np.mgrid[0:h, 0:w]
                m = np.exp(-(((xx - w / 2) / (w / 5)) ** 2 + ((yy - h / 2) / (h / 5)) ** 2))
                if k in self.nan_on:
                    m[0, 0] = np.nan
                if k in self.bad_shape_on:
                    m = m[:-1]
                out.append(Prediction(attention=m, output={"label": "cat", "topk": ["cat"]}))
            return out

    class FlakyPlugin:
        @hookimpl
        def register_models(self, register):
            register("flaky", "flaky_plugin:Flaky", tasks=("free-viewing",), attention=("blob",),
                     description="test model")

    plugin = FlakyPlugin()
    '''
)


def _install_dist(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "flaky_plugin.py").write_text(FLAKY_SOURCE)
    info = root / "flaky_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flaky-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[harness]\nflaky = flaky_plugin:plugin\n")
    return root


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    """The flaky model registered for the duration of one test."""
    from harness.plugins import load_plugins

    load_plugins()  # entry points are scanned before the test's distribution is on sys.path
    src = _install_dist(tmp_path / "dist")
    monkeypatch.syspath_prepend(str(src))
    import importlib

    mod = importlib.import_module("flaky_plugin")
    pm.register(mod.plugin, name="flaky-test")
    try:
        yield mod
    finally:
        pm.unregister(name="flaky-test")
        sys.modules.pop("flaky_plugin", None)


def _cfg(tmp_path, osie_dir, **kw):
    base = dict(model="flaky", dataset="osie", limit=6, batch_size=2, output=tmp_path / "runs",
                data_dir=osie_dir, progress=False)
    base.update(kw)
    return EvalConfig(**base)


def test_failed_images_are_recorded_and_the_run_goes_on(tmp_path, osie_dir, flaky, monkeypatch):
    monkeypatch.setenv("FLAKY_NAN_ON", "1")
    monkeypatch.setenv("FLAKY_BAD_SHAPE_ON", "4")
    (result,) = run_eval(_cfg(tmp_path, osie_dir), references=False)
    s = result.summary
    assert s["n_images"] == 6 and s["n_failed"] == 2
    frame = read_run(result.run_dir).per_image().set_index("stimulus_id")
    assert frame.loc["1002", "status"] == "failed" and "NaN" in frame.loc["1002", "error"]
    assert frame.loc["1005", "status"] == "failed" and "(599, 800)" in frame.loc["1005", "error"]
    ok = frame[frame.status == "ok"]
    assert len(ok) == 4 and ok["nss"].notna().all() and ok["auc_judd"].between(0, 1).all()
    assert {f["stimulus_id"] for f in s["failures"]} == {"1002", "1005"}
    # the means are over the scored images only
    assert s["metrics"]["nss"] == pytest.approx(ok["nss"].mean())


def test_manifest_has_full_provenance(tmp_path, osie_dir, flaky):
    (result,) = run_eval(_cfg(tmp_path, osie_dir, limit=2), references=False)
    m = json.loads((result.run_dir / "manifest.json").read_text())
    for key in ("harness_version", "model_provenance", "dataset_fingerprint", "metric_profile", "metric_params",
                "attention", "seed", "batch_size", "wall_time_s", "packages", "settings_sha256"):
        assert key in m, key
    assert m["model_provenance"]["weights_sha256"] == "0" * 64
    assert len(m["dataset_fingerprint"]) == 64
    assert m["packages"]["numpy"] == np.__version__
    assert m["metric_params"]["sigma_px"] > 0 and m["wall_time_s"] > 0
    # the machine: a CPU model's last bits depend on the vector instructions its kernels use
    assert isinstance(m["hardware"]["cpu"], str) and m["hardware"]["cpu"] and m["hardware"]["cores"] >= 1
    assert "gpu" not in m["hardware"]  # a CPU run


def test_references_are_computed_once_per_dataset(tmp_path, osie_dir, flaky):
    first = run_eval(_cfg(tmp_path, osie_dir, limit=3))
    kinds = sorted(r.summary["kind"] for r in first)
    assert kinds == ["baseline", "baseline", "ceiling", "model"]
    ceiling = next(r for r in first if r.summary["kind"] == "ceiling")
    # humans agree with each other far better than chance
    assert ceiling.summary["metrics"]["auc_judd"] > 0.75
    again = run_eval(_cfg(tmp_path, osie_dir, limit=3))
    assert all(r.computed_images == 0 and r.resumed_images == 3 for r in again)
    assert len(load_runs(tmp_path / "runs")) == 4


def test_different_settings_never_reuse_results(tmp_path, osie_dir, flaky):
    (a,) = run_eval(_cfg(tmp_path, osie_dir, limit=2), references=False)
    (b,) = run_eval(_cfg(tmp_path, osie_dir, limit=2, profile="pysaliency"), references=False)
    (c,) = run_eval(_cfg(tmp_path, osie_dir, limit=2, seed=1), references=False)
    assert len({a.run_dir, b.run_dir, c.run_dir}) == 3
    assert b.resumed_images == 0 and c.resumed_images == 0
    # a model's arithmetic depends on its batch (EfficientNet-Lite0's Grad-CAM maps differ by ~1e-7
    # between batches of 1 and 8 on CPU), so another batch size is another model run ...
    (d,) = run_eval(_cfg(tmp_path, osie_dir, limit=2, batch_size=1), references=False)
    assert d.run_dir != a.run_dir and d.computed_images == 2
    assert d.summary["n_images"] == 2 and read_run(d.run_dir).settings["batch_size"] == 1
    # ... while the references do not depend on it and are reused
    refs = run_eval(_cfg(tmp_path, osie_dir, limit=2))
    again = run_eval(_cfg(tmp_path, osie_dir, limit=2, batch_size=1))
    for r1, r2 in zip(refs[:3], again[:3]):
        assert r1.run_dir == r2.run_dir and r2.reused


def test_killed_run_resumes_where_it_stopped(tmp_path, osie_dir, osie_cache):
    dist = _install_dist(tmp_path / "dist")
    env = {**os.environ, "PYTHONPATH": f"{dist}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "HARNESS_CACHE_DIR": str(osie_cache), "FLAKY_DELAY": "0.4"}
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness", "eval", "--model", "flaky", "--dataset", "osie", "--limit", "24",
           "--batch-size", "2", "--data-dir", str(osie_dir), "--output", str(out), "--no-references", "--no-show"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*/shards/part-*.parquet"))) < 3:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = list(out.glob("*/shards/part-*.parquet"))
    assert 3 <= len(shards) < 12, "the run should have been killed part-way"
    assert not list(out.glob("*/summary.json"))
    env["FLAKY_DELAY"] = "0"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "6 reused from an earlier session, 18 computed" in done.stderr or "reused from an earlier session" in done.stderr
    (run,) = load_runs(out)
    frame = run.per_image()
    assert len(frame) == 24 and frame["stimulus_id"].is_unique
    sessions = json.loads((run.path / "sessions.json").read_text())
    assert run.manifest["sessions"] == 2 and run.manifest["started_at"] == sessions[0] <= sessions[1]
    # identical numbers to a run that was never interrupted
    fresh = subprocess.run([*cmd[:-6], "--output", str(tmp_path / "fresh"), "--no-references", "--no-show"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    (ref,) = load_runs(tmp_path / "fresh")
    a = frame.set_index("stimulus_id").sort_index()
    b = ref.per_image().set_index("stimulus_id").sort_index()
    pd.testing.assert_series_equal(a["nss"], b["nss"])
    pd.testing.assert_series_equal(a["auc_judd"], b["auc_judd"])


def test_cli_evaluates_several_models_with_one_set_of_references(tmp_path, osie_dir, osie_cache):
    out = tmp_path / "runs"
    base = ["eval", "--dataset", "osie", "--limit", "2", "--data-dir", str(osie_dir), "--cache-dir", str(osie_cache),
            "--output", str(out)]
    # a typo in the last model is reported before the first one runs
    r = CliRunner().invoke(main, [*base, "-m", "efficientnet-lite0", "-m", "efficientnet-lite9"])
    assert r.exit_code == 1 and "unknown model 'efficientnet-lite9'" in r.output and not out.exists()
    r = CliRunner().invoke(main, [*base, "-m", "efficientnet-lite0", "-m", "efficientnet-lite1", "-m", "efficientnet-lite0"])
    assert r.exit_code == 0, r.output
    runs = load_runs(out)
    assert sorted(run.summary["model"] for run in runs) == [
        "center-bias", "efficientnet-lite0", "efficientnet-lite1", "human-ceiling", "uniform"]
    assert all(run.manifest["sessions"] == 1 for run in runs)  # references computed once, not per model
    table = r.output[r.output.index("| model"):]
    assert "efficientnet-lite0" in table and "efficientnet-lite1" in table and "human-ceiling" in table


def test_cli_errors_are_one_line(tmp_path, osie_dir):
    runner = CliRunner()
    r = runner.invoke(main, ["eval", "--model", "centre-bias", "--data-dir", str(osie_dir), "--output", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.strip().startswith("Error: unknown model 'centre-bias'; did you mean 'center-bias'")
    assert len(r.output.strip().splitlines()) == 1
    r = runner.invoke(main, ["eval", "--model", "uniform", "--task", "detection", "--data-dir", str(osie_dir),
                             "--output", str(tmp_path)])
    assert r.exit_code == 1 and "cannot serve task 'detection'" in r.output and "free-viewing" in r.output


def test_dataset_without_viewing_geometry_needs_sigma_px(tmp_path):
    """COCO-FreeView's viewing distance is not documented: the blur must then be given in pixels."""
    from test_formats_coco_freeview import write_freeview

    root = tmp_path / "coco-freeview"
    write_freeview(root)
    runner = CliRunner()
    args = ["eval", "--model", "center-bias", "--dataset", "coco-freeview", "--data-dir", str(root),
            "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "runs"), "--no-show"]
    r = runner.invoke(main, args)
    assert r.exit_code == 1 and "--sigma-px" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(main, [*args, "--sigma-px", "30"])
    assert r.exit_code == 0, r.output
    runs = load_runs(tmp_path / "runs")
    assert {run.summary["kind"] for run in runs} == {"ceiling", "baseline"}
    assert all(run.settings["metric_params"]["sigma_px"] == 30 for run in runs)
    cb = next(run for run in runs if run.summary["model"] == "center-bias")
    assert cb.summary["n_images"] == 2 and cb.summary["n_failed"] == 0


class _MedianHitsPlugin:
    """A third-party metric: share of fixations where the map is above its median."""

    @hookimpl
    def register_metrics(self, register):
        register("median_hits", _median_hits, higher_is_better=True, description="test metric")


def _median_hits(saliency_map, fix_x, fix_y, **context):
    rows = np.floor(np.asarray(fix_y) + 0.5).astype(int)
    cols = np.floor(np.asarray(fix_x) + 0.5).astype(int)
    return float(np.mean(saliency_map[rows, cols] > np.median(saliency_map)))


def test_a_metric_plugin_is_scored_by_eval(tmp_path, osie_dir, osie_dataset, flaky):
    pm.register(_MedianHitsPlugin(), name="median-hits-test")
    try:
        (result,) = run_eval(_cfg(tmp_path, osie_dir, limit=3), references=False)
    finally:
        pm.unregister(name="median-hits-test")
    frame = read_run(result.run_dir).per_image()
    assert result.summary["metric_directions"]["median_hits"] == "higher"
    # recompute by hand from the flaky model's blob and the stored fixations
    from harness.schema import Fixations

    records = {r["stimulus_id"]: r for r in osie_dataset.select(range(3)).remove_columns("image")}
    for _, row in frame.iterrows():
        fix = Fixations.from_record(records[row["stimulus_id"]])
        yy, xx = np.mgrid[0:600, 0:800]
        blob = np.exp(-(((xx - 400) / 160) ** 2 + ((yy - 300) / 120) ** 2))
        assert row["median_hits"] == pytest.approx(_median_hits(blob, fix.x, fix.y))
    assert 0 < result.summary["metrics"]["median_hits"] <= 1


def test_unloadable_checkpoint_fails_before_any_reference_is_computed(tmp_path, osie_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(main, ["eval", "--model", "hf:google/vit-base-patch16-224", "--data-dir", str(osie_dir),
                                  "--output", str(tmp_path / "runs")])
    assert r.exit_code == 1 and r.output.startswith("Error:") and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_ctrl_c_is_a_message_not_a_traceback(tmp_path, osie_dir, flaky, monkeypatch):
    from harness.evaluation import runner as evaluate

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate_ceiling", interrupted)
    r = CliRunner().invoke(main, ["eval", "--model", "flaky", "--limit", "2", "--data-dir", str(osie_dir),
                                  "--output", str(tmp_path / "runs")])
    assert r.exit_code == 130 and "run the same command again to resume" in r.output
    assert "Traceback" not in r.output


def _wrapped_interrupt():
    """What Ctrl-C looks like when it lands while a numba kernel calls back into Python (seen under
    torchrun: the kernel loading itself from the cache): a SystemError caused by it."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as exc:
        raise SystemError("CPUDispatcher(<function kernel>) returned a result with an exception set") from exc


@pytest.mark.parametrize("where", ["ceiling", "model"])
def test_ctrl_c_inside_compiled_code_is_an_interrupt_not_a_failure(tmp_path, osie_dir, flaky, monkeypatch, where):
    from harness.evaluation import runner as evaluate
    from harness.models import load_model

    if where == "ceiling":
        monkeypatch.setattr(evaluate, "evaluate_ceiling", lambda *a, **k: _wrapped_interrupt())
    else:  # in the model: a batch that fails is recorded and the run goes on; this must stop it
        model_class = type(load_model("flaky"))
        monkeypatch.setattr(model_class, "predict", lambda self, images, **k: _wrapped_interrupt())
    r = CliRunner().invoke(main, ["eval", "--model", "flaky", "--limit", "2", "--data-dir", str(osie_dir),
                                  "--output", str(tmp_path / "runs"), "--no-show",
                                  *(["--no-references"] if where == "model" else [])])
    assert r.exit_code == 130 and "run the same command again to resume" in r.output, r.output
    assert "Traceback" not in r.output and "SystemError" not in r.output
    assert not list((tmp_path / "runs").rglob("summary.json"))  # no run finished with failed batches


def test_wrong_attention_fails_before_any_work(tmp_path, osie_dir):
    runner = CliRunner()
    base = ["eval", "--model", "efficientnet-lite0", "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs")]
    r = runner.invoke(main, [*base, "--attention", "gradcam"])
    assert r.exit_code == 1 and "unknown attention 'gradcam'; did you mean 'grad-cam'" in r.output
    r = runner.invoke(main, [*base, "--attention", "rollout"])
    assert r.exit_code == 1 and "does not support attention 'rollout'; it supports: grad-cam" in r.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_limit_at_or_above_the_dataset_size_is_the_run_without_one(tmp_path, small_osie, flaky):
    """``--limit 100000`` on 700 stimuli recorded limit 100000: another run id for the same stimuli,
    so the run, its ceiling and baselines were computed again for each such limit."""
    root = small_osie(n=3)
    out = tmp_path / "runs"
    first = CliRunner().invoke(main, ["eval", "--model", "flaky", "--limit", "100000", "--data-dir", str(root),
                                      "--output", str(out), "--no-show", "--cache-dir", str(tmp_path / "cache")])
    assert first.exit_code == 0, first.output
    runs = load_runs(out)
    assert len(runs) == 4 and all(r.settings["limit"] is None and r.summary["n_images"] == 3 for r in runs)
    again = CliRunner().invoke(main, ["eval", "--model", "flaky", "--data-dir", str(root), "--output", str(out),
                                      "--no-show", "--cache-dir", str(tmp_path / "cache")])
    assert again.exit_code == 0 and again.output.count("already complete, reused") == 4, again.output
    assert len(load_runs(out)) == 4  # the model, the ceiling and both baselines, once each
