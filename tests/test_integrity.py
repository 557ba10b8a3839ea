"""Results that cannot silently go wrong: damaged shards and run files, hand-edited summaries,
reruns of finished runs, degenerate and non-finite numbers, blur limits, and the errors a user can
cause with folders. Real runs on real OSIE stimuli through the real CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.errors import HarnessError
from harness.evaluation import EvalConfig, run_eval
from harness.hookspecs import hookimpl
from harness.models import Prediction
from harness.plugins import pm
from harness.results import load_runs, read_run
from model_helpers import ByCall, blob

# --------------------------------------------------------------------------------------------
# helpers


def _eval(out: Path, osie_dir: Path, *args: str, model: str = "uniform", limit: int = 40):
    return CliRunner().invoke(main, ["eval", "--model", model, "--dataset", "osie", "--limit", str(limit),
                                     "--batch-size", "2", "--data-dir", str(osie_dir), "--output", str(out),
                                     "--no-show", *args])


def _run_dir(out: Path, model: str) -> Path:
    (path,) = [p for p in out.iterdir() if p.name.startswith(f"{model}__")]
    return path


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _verify(path: Path):
    return CliRunner().invoke(main, ["verify", str(path)])


@pytest.fixture
def two_runs(tmp_path, osie_dir):
    """A finished uniform run and a finished center-bias run in one results folder."""
    out = tmp_path / "runs"
    for model in ("uniform", "center-bias"):
        r = _eval(out, osie_dir, "--no-references", model=model)
        assert r.exit_code == 0, r.output
    return out


# --------------------------------------------------------------------------------------------
# damaged shards


def test_fresh_runs_verify_and_manifest_hashes_every_shard(two_runs):
    r = _verify(two_runs)
    assert r.exit_code == 0, r.output
    assert "2 of 2 runs hold together" in r.output
    run = _run_dir(two_runs, "uniform")
    # the uniform baseline is constant by design: not a degenerate map
    assert _summary(run)["n_degenerate"] == 0 and _summary(run)["metrics"]["auc_judd"] == 0.5
    manifest = json.loads((run / "manifest.json").read_text())
    shards = sorted(p.name for p in (run / "shards").glob("part-*.parquet"))
    assert sorted(manifest["shards"]) == shards and len(shards) == 3  # the references are cut in chunks of 16: 16 + 16 + 8
    import hashlib

    for name in shards:
        digest = hashlib.sha256((run / "shards" / name).read_bytes()).hexdigest()
        assert manifest["shards"][name] == digest and name.endswith(f"-{digest[:16]}.parquet")


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_damaged_shard_is_named_set_aside_and_recomputed(two_runs, osie_dir, damage):
    run = _run_dir(two_runs, "uniform")
    before = _summary(run)
    shard = sorted((run / "shards").glob("part-*.parquet"))[1]
    data = shard.read_bytes()
    if damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    else:  # same size, a few bytes changed in the middle: only the hash can tell
        mid = len(data) // 2
        shard.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 4]) + data[mid + 4:])

    # the leaderboard reports the damaged run in one line and still shows the other
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(two_runs)])
    assert r.exit_code == 0, r.output
    assert f"{run}: damaged run left out" in r.output and shard.name in r.output
    assert "center-bias" in r.output and "| uniform" not in r.output
    assert "Traceback" not in r.output
    # verify names the shard and fails
    r = _verify(two_runs)
    assert r.exit_code == 1 and shard.name in r.output and "1 of 2 runs hold together" in r.output

    # eval sets it aside, recomputes its stimuli and ends with the numbers of the intact run
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0, r.output
    assert f"{shard}:" in r.output and "set aside as damaged/" in r.output
    assert "Traceback" not in r.output
    assert (run / "damaged" / shard.name).is_file()
    after = _summary(run)
    assert after["metrics"] == before["metrics"] and after["n_images"] == 40
    assert read_run(run).per_image()["stimulus_id"].is_unique
    assert _verify(two_runs).exit_code == 0


def test_shard_missing_from_the_manifest_or_swapped_is_reported(two_runs):
    run = _run_dir(two_runs, "uniform")
    other = _run_dir(two_runs, "center-bias")
    # a shard of another run copied in: rows for stimuli already present, and not in the manifest
    stray = sorted((other / "shards").glob("part-*.parquet"))[0]
    (run / "shards" / stray.name).write_bytes(stray.read_bytes())
    r = _verify(run)
    assert r.exit_code == 1
    assert "not listed in the manifest" in r.output and f"{stray.name}: a shard of another run" in r.output


def test_a_shard_of_another_run_swapped_in_is_set_aside_not_adopted(two_runs, osie_dir):
    """A lost shard "restored" from another run of the same stimuli (uniform's first shard replaced by
    center-bias' first): eval rewrote the manifest and summary around it, the other model's numbers
    became this run's and verify then passed (found by QA). A shard names its run's settings."""
    run = _run_dir(two_runs, "uniform")
    other = _run_dir(two_runs, "center-bias")
    before = _summary(run)
    mine = sorted((run / "shards").glob("part-*.parquet"))[0]
    stray = sorted((other / "shards").glob("part-*.parquet"))[0]
    mine.unlink()
    (run / "shards" / stray.name).write_bytes(stray.read_bytes())
    r = _verify(run)
    assert r.exit_code == 1 and f"{stray.name}: a shard of another run" in r.output
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0, r.output
    assert f"{run / 'shards' / stray.name}: a shard of another run" in r.output
    assert (run / "damaged" / stray.name).is_file()
    assert _summary(run)["metrics"] == before["metrics"] and _verify(two_runs).exit_code == 0


def _rewritten(shard: Path, keep, salt: int = 0) -> tuple[str, bytes]:
    """(name, bytes) of a shard holding the rows ``keep`` selects from ``shard``'s, as another process
    would write them (the same run's settings hash; ``salt`` changes the bytes and so the name)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.results.files import parquet_bytes
    from harness.results.store import SHARD_RUN_KEY

    table = pq.read_table(shard)
    table = table.take(pa.array(keep(table.num_rows))).replace_schema_metadata(
        {**table.schema.metadata, b"salt": str(salt).encode()} if salt else table.schema.metadata)
    data = parquet_bytes(table)
    assert SHARD_RUN_KEY in pq.read_schema(pa.BufferReader(data)).metadata
    first = int(shard.name.split("-")[1])
    return f"part-{first:08d}-{hashlib.sha256(data).hexdigest()[:16]}.parquet", data


def test_rows_another_process_wrote_meanwhile_are_not_counted_twice(tmp_path, osie_dir):
    """A launcher's rank that outlived its rank 0 (a multi-machine run) went on writing shards while
    a second command took the run over and computed the same stimuli: the summary counted 69 images
    of 48 and exited 0 (found by QA). The shards are checked again before the summary is written."""
    out = tmp_path / "runs"
    copied = []

    def other_process(k):  # after chunk k's shard: the same rows, written again by "another process"
        if k == 0:
            (shard,) = (_run_dir(out, "uniform") / "shards").glob("part-00000000-*.parquet")
            name, data = _rewritten(shard, lambda n: list(range(n))[::-1])
            (shard.parent / name).write_bytes(data)
            copied.append(name)

    run_eval(EvalConfig(model="uniform", dataset="osie", data_dir=osie_dir, output=out, limit=8, batch_size=4,
                        progress=False), references=False, on_batch=other_process)
    run = _run_dir(out, "uniform")
    assert copied and _summary(run)["n_images"] == 8
    assert len(list((run / "damaged").glob("part-*"))) == 1 and _verify(run).exit_code == 0

    # a copy of two of a shard's eight rows, read first (names carry hashes): the original, whose other
    # six rows no shard holds, is the one set aside; the command stops instead of summarising fewer
    out = tmp_path / "runs2"

    def partial_copy(k):
        if k == 0:
            (shard,) = (_run_dir(out, "uniform") / "shards").glob("part-00000000-*.parquet")
            name, data = next((n, d) for n, d in (_rewritten(shard, lambda n: [0, 1], salt) for salt in range(1, 500))
                              if n < shard.name)
            (shard.parent / name).write_bytes(data)

    with pytest.raises(HarnessError, match=r"^.*: 6 stimuli lost their rows when shards written by another process "
                                           r"meanwhile were set aside \(e.g. '\d+'\); run the same command again"):
        run_eval(EvalConfig(model="uniform", dataset="osie", data_dir=osie_dir, output=out, limit=8, batch_size=4,
                            progress=False), references=False, on_batch=partial_copy)
    run = _run_dir(out, "uniform")
    assert not (run / "summary.json").exists()
    run_eval(EvalConfig(model="uniform", dataset="osie", data_dir=osie_dir, output=out, limit=8, batch_size=4,
                        progress=False), references=False)  # the same command again: computes the two, finishes
    assert _summary(run)["n_images"] == 8 and _verify(run).exit_code == 0


def test_corrupt_run_json_files_are_one_line(two_runs, osie_dir):
    run = _run_dir(two_runs, "uniform")
    (run / "sessions.json").write_text('["2025-01-01T00:00:00+00:00", ')
    (run / "manifest.json").write_text("{not json")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(two_runs)])
    assert r.exit_code == 0 and "manifest.json" in r.output and "center-bias" in r.output
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0, r.output
    assert "sessions.json: unreadable" in r.output and "Traceback" not in r.output
    assert (run / "damaged" / "sessions.json").is_file()
    assert _verify(two_runs).exit_code == 0


def test_page_publish_and_report_leave_a_damaged_run_out(two_runs, tmp_path):
    from harness.leaderboard.publish import publish_to_folder

    run = _run_dir(two_runs, "uniform")
    shard = sorted((run / "shards").glob("part-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(two_runs), "--output",
                                  str(tmp_path / "site"), "--data-dir", str(tmp_path / "no-data")])
    assert r.exit_code == 0, r.output
    assert f"{run}: damaged run left out" in r.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert "center-bias" in page and run.name not in page
    publish_to_folder(two_runs, tmp_path / "pub")
    import pyarrow.parquet as pq

    published = pq.read_table(tmp_path / "pub" / "data" / "leaderboard.parquet").to_pylist()
    assert [row["model"] for row in published] == ["center-bias"]
    r = CliRunner().invoke(main, ["report", str(run)])
    assert "damaged run left out" in r.output and "Traceback" not in r.output


# --------------------------------------------------------------------------------------------
# summaries edited by hand


@pytest.mark.parametrize("edit, expected", [
    ({"metrics.nss": 99}, "nss says 99"),
    ({"n_images": "lots"}, "n_images is 'lots', not a count"),
    ({"n_failed": 3}, "n_failed says 3"),
    ({"metrics.cc": "high"}, "metrics.cc is 'high', not a number"),
    # the tables show the summary's names: a row must not pass for another model's
    ({"model": "renamed"}, "summary.json: model 'renamed', but settings.json says 'uniform'"),
    # a direction turned the other way made `harness compare` call the worse model better (found by QA)
    ({"metric_directions.auc_judd": "lower"}, "summary.json: metric_directions says auc_judd is 'lower'-is-better, "
                                              "but metric 'auc_judd' is higher-is-better"),
])
def test_edited_summary_is_caught(two_runs, osie_dir, edit, expected):
    run = _run_dir(two_runs, "uniform")
    original = _summary(run)
    doc = json.loads(json.dumps(original))
    for key, value in edit.items():
        if key.startswith(("metrics.", "metric_directions.")):
            doc[key.split(".", 1)[0]][key.split(".", 1)[1]] = value
        else:
            doc[key] = value
    (run / "summary.json").write_text(json.dumps(doc))
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(two_runs)])
    assert r.exit_code == 0 and "damaged run left out" in r.output and expected in r.output
    assert "| uniform" not in r.output and "| center-bias" in r.output
    r = _verify(two_runs)
    assert r.exit_code == 1 and expected in r.output
    # eval puts back the summary its shards give
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0 and "not the summary its shards give" in r.output
    assert _summary(run)["metrics"] == original["metrics"]
    assert _verify(two_runs).exit_code == 0


# --------------------------------------------------------------------------------------------
# reruns of finished runs


def test_rerun_of_finished_run_is_reused_without_rewriting(two_runs, osie_dir):
    run = _run_dir(two_runs, "uniform")
    files = {name: (run / name).read_bytes() for name in ("summary.json", "manifest.json", "sessions.json")}
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0, r.output
    assert "already complete, reused" in r.output
    for name, data in files.items():
        assert (run / name).read_bytes() == data, f"{name} was rewritten"


# --------------------------------------------------------------------------------------------
# one environment per run


def _unfinish(run: Path) -> str:
    """Make a finished run unfinished with one batch missing, as an interrupted session leaves it;
    returns the name of the removed shard."""
    shard = sorted((run / "shards").glob("part-*.parquet"))[-1]
    shard.unlink()
    (run / "summary.json").unlink()
    (run / "manifest.json").unlink()
    return shard.name


def test_a_run_is_not_resumed_in_another_environment(two_runs, osie_dir):
    from harness.evaluation.record import environment

    run = _run_dir(two_runs, "uniform")
    here = environment("cpu", kind="baseline")
    recorded = json.loads((run / "environment.json").read_text())
    assert recorded == here and recorded["packages"]["numpy"] == np.__version__ and recorded["cpu"]
    # a baseline runs no network: its numbers do not depend on torch, whose upgrade may not stop it
    assert "torch" not in recorded["packages"] and "torch" in environment("cpu")["packages"]
    assert read_run(run).manifest["packages"] == {**environment("cpu")["packages"]}
    _unfinish(run)
    kept = sorted((run / "shards").glob("*.parquet"))
    n_kept = len(read_run(run).per_image())
    # the first session ran under another numpy and on another processor
    (run / "environment.json").write_text(json.dumps(
        {**recorded, "packages": {**recorded["packages"], "numpy": "1.26.4"}, "cpu": "Some Other CPU"}))
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 1 and "Traceback" not in r.output
    line = r.output.strip()
    assert "\n" not in line and str(run) in line and f"its {n_kept} rows were computed with" in line
    assert f"numpy 1.26.4 (here {np.__version__})" in line and f"cpu 'Some Other CPU' (here {here['cpu']!r})" in line
    assert not (run / "summary.json").exists() and sorted((run / "shards").glob("*.parquet")) == kept
    # in its own environment it resumes, and its rows are those of a run computed in one session
    (run / "environment.json").write_text(json.dumps(recorded))
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0, r.output
    assert read_run(run).manifest["sessions"] == 2 and _verify(two_runs).exit_code == 0


def test_a_run_is_not_resumed_under_other_harness_code(two_runs, osie_dir):
    # the version number stays 0.1.0 from commit to commit; the code's own fingerprint does not
    from harness.evaluation.record import source_fingerprint

    here = source_fingerprint()
    run = _run_dir(two_runs, "center-bias")
    recorded = json.loads((run / "environment.json").read_text())
    assert recorded["harness source"] == here and read_run(run).manifest["harness_source"] == here
    _unfinish(run)
    kept = sorted((run / "shards").glob("*.parquet"))
    (run / "environment.json").write_text(json.dumps({**recorded, "harness source": "sha256:0123456789abcdef"}))
    r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
    assert r.exit_code == 1 and "Traceback" not in r.output
    line = r.output.strip()
    assert "\n" not in line and str(run) in line
    assert f"harness source 'sha256:0123456789abcdef' (here {here!r})" in line
    assert not (run / "summary.json").exists() and sorted((run / "shards").glob("*.parquet")) == kept
    (run / "environment.json").write_text(json.dumps(recorded))
    r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
    assert r.exit_code == 0, r.output


def test_source_fingerprint_follows_the_code_and_nothing_else(tmp_path):
    from harness.evaluation.record import source_fingerprint

    pkg = tmp_path / "harness"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "metrics" / "kernels.py").write_text("def f(x):\n    return x + 1\n")
    registry = tmp_path / "registry.yaml"
    registry.write_text("plugins: []\n")
    first = source_fingerprint((pkg,), (registry,))
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 16
    # caches, data and notes beside the code are not code
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "kernels.cpython-311.pyc").write_bytes(b"\0" * 8)
    (pkg / "metrics" / "kernels.f-1.nbi").write_bytes(b"\1")
    (pkg / "README.md").write_text("notes")
    assert source_fingerprint((pkg,), (registry,)) == first
    (pkg / "metrics" / "kernels.py").write_text("def f(x):\n    return x + 2\n")
    changed = source_fingerprint((pkg,), (registry,))
    assert changed != first
    # a file moved is other code even with the same bytes; so is another registry
    (pkg / "metrics" / "kernels.py").rename(pkg / "kernels.py")
    assert source_fingerprint((pkg,), (registry,)) not in (first, changed)
    (pkg / "kernels.py").rename(pkg / "metrics" / "kernels.py")
    assert source_fingerprint((pkg,), (registry,)) == changed
    registry.write_text("plugins: [x]\n")
    assert source_fingerprint((pkg,), (registry,)) != changed


class _ExtraMetricPlugin:
    @hookimpl
    def register_metrics(self, register):
        register("centre_mass", _centre_mass, higher_is_better=True, description="test")


def _centre_mass(saliency_map, fix_x, fix_y, **context):
    h, w = saliency_map.shape
    return float(saliency_map[h // 4: 3 * h // 4, w // 4: 3 * w // 4].sum() / saliency_map.sum())


def test_a_metric_plugin_installed_between_sessions_stops_the_resume(two_runs, osie_dir):
    # the rows of the first session would lack the new metric's column, and its mean would be
    # taken over the second session's rows only
    run = _run_dir(two_runs, "center-bias")
    _unfinish(run)
    pm.register(_ExtraMetricPlugin(), name="extra-metric-test")
    try:
        r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
        assert r.exit_code == 1 and "Traceback" not in r.output
        assert "computed with plugin extra-metric-test absent (here ?)" in r.output, r.output
    finally:
        pm.unregister(name="extra-metric-test")
    r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")  # as it was: resumes
    assert r.exit_code == 0, r.output
    assert "centre_mass" not in read_run(run).per_image().columns
    assert read_run(run).manifest["plugins"] == {}


def test_finished_runs_of_another_environment_are_reused_and_old_folders_resume_with_a_note(two_runs, osie_dir):
    run, other = _run_dir(two_runs, "uniform"), _run_dir(two_runs, "center-bias")
    recorded = json.loads((run / "environment.json").read_text())
    # finished: nothing is computed, nothing mixed; the manifest keeps its provenance
    (run / "environment.json").write_text(json.dumps({**recorded, "cpu": "Some Other CPU"}))
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0 and "already complete, reused" in r.output, r.output
    # a folder written before environments were recorded resumes, saying so, and records this one
    _unfinish(other)
    (other / "environment.json").unlink()
    r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
    assert r.exit_code == 0, r.output
    assert "the environment of its earlier sessions was not recorded; resuming it in this one" in r.output
    assert json.loads((other / "environment.json").read_text()) == recorded


def test_a_rank_in_another_environment_stops_with_one_line(tmp_path):
    from harness.errors import HarnessError
    from harness.evaluation.record import environment
    from harness.results.writer import RunFollower

    here = environment("cpu")
    (tmp_path / "environment.json").write_text(json.dumps({**here, "cpu": "Rank Zero CPU"}))
    with pytest.raises(HarnessError,
                       match=r"rank 0's rows are computed with cpu 'Rank Zero CPU' \(here .*machines of one type"):
        RunFollower(tmp_path, here)
    (tmp_path / "environment.json").write_text(json.dumps(here))
    RunFollower(tmp_path, here)  # the same machine type: fine


# --------------------------------------------------------------------------------------------
# degenerate and non-finite numbers


class _OddMaps(ByCall):
    """A model whose maps are, per stimulus index: constant 0, constant 5, slightly negative
    round-off, truly negative, then a proper blob."""

    name = "odd-maps"

    def prediction(self, k, w, h):
        maps = {0: np.zeros((h, w)), 1: np.full((h, w), 5.0), 2: blob(w, h) - 1e-12, 3: blob(w, h) - 0.5}
        return Prediction(attention=maps.get(k, blob(w, h)), output={})


class _OddPlugin:
    @hookimpl
    def register_models(self, register):
        register("odd-maps", _OddMaps, tasks=("free-viewing",), attention=("odd",), description="test")

    @hookimpl
    def register_metrics(self, register):
        register("nan_sometimes", _nan_sometimes, higher_is_better=True, description="NaN on small maps' left half")


def _nan_sometimes(saliency_map, fix_x, fix_y, **context):
    return math.nan if float(np.mean(fix_x)) < saliency_map.shape[1] / 2 else 1.0


@pytest.fixture
def odd_plugin():
    pm.register(_OddPlugin(), name="odd-test")
    try:
        yield
    finally:
        pm.unregister(name="odd-test")


def test_degenerate_negative_and_nonfinite_are_counted(tmp_path, osie_dir, osie_dataset, odd_plugin):
    cfg = EvalConfig(model="odd-maps", dataset="osie", limit=6, batch_size=3, output=tmp_path / "runs",
                     data_dir=osie_dir, progress=False)
    (result,) = run_eval(cfg, references=False)
    s = result.summary
    frame = read_run(result.run_dir).per_image().set_index("stimulus_id")
    assert list(frame["status"]) == ["degenerate", "degenerate", "ok", "failed", "ok", "ok"]
    assert "constant attention map (every pixel 0)" in frame.loc["1001", "error"]
    assert "negative values" in frame.loc["1004", "error"]
    assert s["n_degenerate"] == 2 and s["n_failed"] == 1
    assert {d["stimulus_id"] for d in s["degenerate"]} == {"1001", "1002"}
    # a constant map is the uniform prediction: chance, and it counts in the mean
    assert frame.loc["1001", "auc_judd"] == 0.5 and frame.loc["1002", "nss"] == 0.0
    scored = frame[frame["status"] != "failed"]
    assert s["metrics"]["nss"] == pytest.approx(scored["nss"].mean())
    # round-off below zero is not a negative map: scored like the blob itself
    assert frame.loc["1003", "nss"] == pytest.approx(frame.loc["1005", "nss"], abs=5) and frame.loc["1003", "status"] == "ok"
    # non-finite metric values are counted per metric, and left out of the mean
    xs = {r["stimulus_id"]: np.mean([f["x"] for f in r["fixations"]])
          for r in osie_dataset.select(range(6)).remove_columns("image")}
    expected_nan = sum(1 for sid in scored.index if xs[sid] < 400)
    assert s["nonfinite"]["nan_sometimes"] == expected_nan > 0
    assert s["nonfinite"]["nss"] == 0
    # the leaderboard shows the counts
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    assert "1 failed" in r.output and "2 constant" in r.output
    assert "nan_sometimes*" in r.output and "non-finite" in r.output
    assert _verify(tmp_path / "runs").exit_code == 0


class _OtherForms(ByCall):
    """Maps as a plugin may hand them back, per stimulus index: a torch tensor still attached to its
    graph, the same in bfloat16, nested lists, complex numbers, a string, an object that is not a
    Prediction, then the plain numpy blob."""

    name = "other-forms"

    def prediction(self, k, w, h):
        import torch

        plain = blob(w, h, cx=1 / 3).astype(np.float32)
        weight = torch.ones(1, requires_grad=True)
        forms = {0: torch.from_numpy(plain) * weight, 1: (torch.from_numpy(plain) * weight).bfloat16(),
                 2: plain.tolist(), 3: plain + 1j, 4: "map", 5: None}
        if k == 5:
            return {"attention": plain}
        return Prediction(attention=forms.get(k, plain), output={})


class _OtherFormsPlugin:
    @hookimpl
    def register_models(self, register):
        register("other-forms", _OtherForms, tasks=("free-viewing",), attention=("odd",), description="test")


def test_maps_in_other_forms_are_converted_or_failed_with_a_reason(tmp_path, osie_dir):
    import torch

    pm.register(_OtherFormsPlugin(), name="other-forms-test")
    try:
        # one scoring process: the maps must also travel to it (a tensor attached to a graph cannot)
        cfg = EvalConfig(model="other-forms", dataset="osie", limit=7, batch_size=7, output=tmp_path / "runs",
                         data_dir=osie_dir, progress=False, score_workers=1)
        (result,) = run_eval(cfg, references=False)
    finally:
        pm.unregister(name="other-forms-test")
    frame = read_run(result.run_dir).per_image().set_index("stimulus_id")
    assert list(frame["status"]) == ["ok", "ok", "ok", "failed", "failed", "failed", "ok"]
    assert frame.loc["1004", "error"] == "attention map has dtype complex64, not real numbers"
    assert frame.loc["1005", "error"] == "attention map has dtype <U3, not real numbers"
    assert frame.loc["1006", "error"] == "model returned a dict, not a harness.models.Prediction"
    # the tensor and the lists are converted to the map itself, the numbers the numpy map gives
    from harness.evaluation.scoring import as_array

    preds = _OtherForms().predict([type("I", (), {"size": (80, 60)})()] * 7, task="free-viewing", attention="odd")
    plain = preds[6].attention
    assert np.array_equal(as_array(preds[0].attention)[0], plain)
    assert np.array_equal(as_array(preds[1].attention)[0], torch.from_numpy(plain).bfloat16().float().numpy())
    assert np.array_equal(as_array(preds[2].attention)[0], plain.astype(np.float64))
    assert np.isfinite(frame.loc[["1001", "1002", "1003"], "nss"]).all()


def test_density_round_off_is_tolerated_real_negatives_are_not(osie_dataset):
    from harness.data.density import fixation_density
    from harness.metrics import compute_suite
    from harness.metrics.inputs import MetricInputError
    from harness.schema import Fixations

    rec = osie_dataset.select([0]).remove_columns("image")[0]
    fix = Fixations.from_record(rec)
    d = fixation_density(fix.x, fix.y, (600, 800), 24.0)
    smap = d + 0.1
    clean = compute_suite(smap, fix.x, fix.y, density=d, profile="mit")
    noisy = d.copy()
    noisy[noisy < 1e-12] = -1e-18  # what an FFT blur leaves in the tails
    assert compute_suite(smap, fix.x, fix.y, density=noisy, profile="mit")["cc"] == pytest.approx(clean["cc"], rel=1e-9)
    bad = d.copy()
    bad[0, 0] = -d.max() * 0.01
    with pytest.raises(MetricInputError, match="negative"):
        compute_suite(smap, fix.x, fix.y, density=bad, profile="mit")


# --------------------------------------------------------------------------------------------
# blur limits and folders


@pytest.mark.parametrize("args", [["--sigma-px", "inf"], ["--sigma-px", "1e300"], ["--sigma-px", "0.01"],
                                  ["--sigma-deg", "inf"], ["--sigma-deg", "1e-9"], ["--sigma-deg", "nan"],
                                  ["--sigma-px", "-3"]])
def test_insane_blur_is_one_line_and_makes_no_folder(tmp_path, osie_dir, args):
    out = tmp_path / "runs"
    r = _eval(out, osie_dir, *args)
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and "blur" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-4", str(2**62 + 1)])
def test_seed_out_of_range_is_refused_before_any_folder(tmp_path, osie_dir, seed):
    """A negative seed failed every stimulus' randomised metrics after the run folders were made; one
    above 2**63 ran, then stopped `leaderboard publish` with an OverflowError (found by QA)."""
    out = tmp_path / "runs"
    r = _eval(out, osie_dir, "--seed", seed)
    assert r.exit_code == 2 and "Invalid value for '--seed'" in r.output
    assert not out.exists()
    for bad in (int(seed), 1.5, True):  # the Python API checks it too
        with pytest.raises(HarnessError, match=r"the seed must be an integer from 0 to 2\*\*62, got"):
            run_eval(EvalConfig(model="uniform", dataset="osie", data_dir=osie_dir, output=out, seed=bad, limit=2))
    assert not out.exists()


def test_both_blurs_given_is_a_usage_error(tmp_path, osie_dir):
    """--sigma-px 30 --sigma-deg 2 ran with 30 px and dropped the 2 degrees without a word (found by QA)."""
    out = tmp_path / "runs"
    r = _eval(out, osie_dir, "--sigma-px", "30", "--sigma-deg", "2")
    assert r.exit_code == 2 and "--sigma-deg and --sigma-px are two ways to give the one blur" in r.output
    assert not out.exists()


def test_output_that_is_a_file_is_one_line(tmp_path, osie_dir):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    r = _eval(target, osie_dir)
    assert r.exit_code == 1 and r.output.strip() == f"Error: --output {target} is a file, not a folder"


def _immutable(path: Path):
    """Make ``path`` unwritable even for root (chattr +i); skip where the file system cannot."""
    path.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")


def test_read_only_output_and_cache_are_one_line(tmp_path, osie_dir):
    ro = tmp_path / "ro"
    _immutable(ro)
    try:
        r = _eval(ro / "runs", osie_dir)
        assert r.exit_code == 1 and r.output.startswith("Error: --output") and "cannot be written" in r.output
        assert len(r.output.strip().splitlines()) == 1
        r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--limit", "2", "--data-dir", str(osie_dir),
                                      "--cache-dir", str(ro / "cache"), "--output", str(tmp_path / "runs")])
        assert r.exit_code == 1 and r.output.startswith("Error: ") and str(ro / "cache") in r.output
        assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    finally:
        subprocess.run(["chattr", "-i", str(ro)])


def test_stimuli_skipped_in_conversion_are_said_and_recorded(small_osie, tmp_path):
    root = small_osie(n=5)
    (root / "stimuli" / "1002.jpg").write_bytes(b"this is not a jpeg" * 100)
    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--data-dir", str(root), "--cache-dir",
                                  str(tmp_path / "cache"), "--output", str(out), "--no-show"])
    assert r.exit_code == 0, r.output
    assert "1 stimuli were skipped while converting" in r.output and "(1 corrupt image)" in r.output
    # the command the note points to works as printed: it carries --data-dir and --cache-dir (without
    # them it looked for the data elsewhere; found by QA)
    import shlex

    note = next(line for line in r.output.splitlines() if "skipped while converting" in line)
    command = shlex.split(note.split("`")[1])
    assert command[:3] == ["harness", "datasets", "info"]
    listed = CliRunner().invoke(main, command[1:])
    assert listed.exit_code == 0 and "1002.jpg" in listed.output, listed.output
    for run in load_runs(out):
        assert run.summary["n_images"] == 4
        assert len(run.manifest["dataset_skipped"]) == 1 and "1002.jpg" in run.manifest["dataset_skipped"][0]


def test_fixations_dropped_in_conversion_are_said_and_recorded(small_osie, tmp_path):
    """Fixations out of the image (coordinates in another resolution, say) were dropped in silence:
    16% of a dataset's fixations could go without a word from `harness eval` (found by QA)."""
    def stretch(cell):  # the first stimulus' x in a 1.5 times wider resolution
        subjects = cell[0, 0]["subjects"][0, 0]
        for k in range(subjects.shape[1]):
            subjects[0, k]["fix_x"][0, 0] = subjects[0, k]["fix_x"][0, 0].astype(float) * 1.5

    root = small_osie(n=3, edit=stretch)
    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--data-dir", str(root), "--cache-dir",
                                  str(tmp_path / "cache"), "--output", str(out), "--no-show"])
    assert r.exit_code == 0, r.output
    line = next(line for line in r.output.splitlines() if "fixations were dropped while converting" in line)
    dropped = int(line.split(": ")[2].split()[0])
    assert dropped > 0 and f"({dropped} out of bounds)" in line, line
    for run in load_runs(out):
        assert run.manifest["dataset_dropped"] == {"out_of_bounds": dropped}


# --------------------------------------------------------------------------------------------
# file names made from stimulus ids


def test_map_files_stay_inside_the_run_folder(tmp_path):
    from harness.results.writer import RunWriter

    settings = {"model": "m", "dataset": "d", "task": "free-viewing", "attention": "a", "seed": 0}
    with RunWriter(tmp_path / "runs", settings, note=lambda _: None) as writer:
        for bad in ("../../x", "/tmp/x", "../../etc/passwd"):
            with pytest.raises(ValueError):
                writer.save_map(bad, np.ones((2, 2)))
        for sid in ("a/b", "A/b", "a__b"):
            writer.save_map(sid, np.full((2, 2), 1.0))
    maps = writer.dir / "maps"
    files = sorted(p.name for p in maps.iterdir() if p.suffix == ".npy")
    assert len(files) == 3 and all("/" not in f for f in files)
    index = json.loads((maps / "index.json").read_text())
    assert sorted(index.values()) == ["A/b", "a/b", "a__b"] and sorted(index) == files
    # nothing was written anywhere else
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()) == \
        ["runs"] * len([p for p in tmp_path.rglob("*") if p.is_file()])


# --------------------------------------------------------------------------------------------
# what the harness writes is readable as the user's umask says (a shared results folder, data
# cache or a site served by a web server's user), and a full disk is one line


def _modes(root: Path) -> dict[str, set[str]]:
    import stat

    out: dict[str, set[str]] = {"files": set(), "folders": {oct(stat.S_IMODE(root.stat().st_mode))}}
    for p in root.rglob("*"):
        if p.name == ".lock":  # filelock's own file (0644 under umask 022 anyway)
            continue
        out["folders" if p.is_dir() else "files"].add(oct(stat.S_IMODE(p.stat().st_mode)))
    return out


@pytest.mark.parametrize("umask, files, folders", [(0o022, "0o644", "0o755"), (0o077, "0o600", "0o700")])
def test_written_files_and_folders_follow_the_umask(tmp_path, osie_dir, umask, files, folders):
    from harness.data import load_gaze_dataset
    from harness.data.download import install_atomically
    from test_formats_mit1003 import write_mit1003

    old = os.umask(umask)
    try:
        out, site = tmp_path / "runs", tmp_path / "site"
        r = _eval(out, osie_dir, "--no-references", limit=4)
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(out), "--output", str(site),
                                      "--data-dir", str(osie_dir)])
        assert r.exit_code == 0, r.output
        write_mit1003(tmp_path / "mit1003")
        load_gaze_dataset("mit1003", data_dir=tmp_path / "mit1003", cache_dir=tmp_path / "cache")
        (converted,) = (tmp_path / "cache" / "arrow" / "mit1003").iterdir()
        installed = install_atomically(tmp_path / "data" / "d", lambda tmp: (tmp / "a.txt").write_text("x"))
        for root in (_run_dir(out, "uniform"), site, converted, installed):
            assert _modes(root) == {"files": {files}, "folders": {folders}}, root
    finally:
        os.umask(old)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, osie_dir):
    full = tmp_path / "full"
    full.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.strip()}")
    try:
        # the first stimuli's full maps (1.9 MB each, for the page's overlays) do not fit
        r = _eval(full / "runs", osie_dir, "--no-references", limit=8)
        assert r.exit_code == 1 and "Traceback" not in r.output
        errors = [x[x.index("Error:"):] for x in r.output.splitlines() if "Error:" in x]
        assert len(errors) == 1 and errors[0].endswith(".npy: No space left on device"), r.output
        assert str(full / "runs") in errors[0]
        assert not list((full / "runs").rglob(".*.tmp")), "a failed write leaves no temporary file"
        # a site on a disk with no room left: one line naming the folder, nothing half-built left
        r = _eval(tmp_path / "runs", osie_dir, "--no-references", limit=4)
        assert r.exit_code == 0, r.output
        with open(full / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 4096)
            except OSError:
                pass
        before = sorted(p.name for p in full.iterdir())
        r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(tmp_path / "runs"),
                                      "--output", str(full / "site"), "--data-dir", str(osie_dir)])
        assert r.exit_code == 1 and "Traceback" not in r.output, r.output
        assert r.output.strip().splitlines()[-1] == f"Error: {full / 'site'}: No space left on device"
        # nothing half-built; the builds' (empty) lock file stays, as every lock file of the harness
        assert sorted(p.name for p in full.iterdir()) == sorted(before + [".site.lock"])
    finally:
        subprocess.run(["umount", str(full)], check=False)


# --------------------------------------------------------------------------------------------
# what a killed process leaves


def killed_at_rename(code: str, match: str, env: dict[str, str] | None = None) -> None:
    """Run ``code`` in a fresh Python process that SIGKILLs itself at the first rename of a path
    containing ``match``: what an out-of-memory kill or ``kill -9`` mid-write leaves on disk."""
    import sys

    prelude = ("import os, signal\n"
               "for _name in ('rename', 'replace'):\n"
               "    def _make(real):\n"
               "        def die_first(src, dst, *a, **k):\n"
               f"            if {match!r} in str(src):\n"
               "                os.kill(os.getpid(), signal.SIGKILL)\n"
               "            return real(src, dst, *a, **k)\n"
               "        return die_first\n"
               "    setattr(os, _name, _make(getattr(os, _name)))\n")
    r = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, **(env or {})})
    assert r.returncode == -9, r.stderr[-3000:]


def test_temporary_files_of_a_killed_session_are_removed_on_resume(tmp_path, osie_dir):
    out = tmp_path / "runs"
    args = ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", "6", "--batch-size", "2",
            "--data-dir", str(osie_dir), "--output", str(out), "--no-references", "--no-show"]
    # killed while renaming its shard into place: a hidden .tmp in shards/
    killed_at_rename(f"from harness.cli import main\nmain({args!r})", match="/shards/.part-")
    run = _run_dir(out, "center-bias")
    left = sorted(p.relative_to(run).as_posix() for p in run.rglob(".*.tmp"))
    assert len(left) == 1 and left[0].startswith("shards/.part-"), left
    outside = tmp_path / "outside.tmp"  # a link among the leftovers is removed, never followed
    outside.write_text("keep me")
    (run / "maps" / ".link.tmp").symlink_to(outside)
    (run / ".notes").write_text("not ours")  # hidden, but not a temporary of ours: kept
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "removed 2 temporary file(s) an interrupted session left" in r.output
    assert not list(run.rglob(".*.tmp")) and outside.read_text() == "keep me" and (run / ".notes").is_file()
    assert _summary(run)["n_images"] == 6 and _verify(run).exit_code == 0


def test_a_conversion_killed_midway_leaves_nothing_the_next_one_keeps(tmp_path):
    from harness.data import load_gaze_dataset
    from test_formats_mit1003 import write_mit1003

    write_mit1003(tmp_path / "mit1003")
    cache = tmp_path / "cache"
    killed_at_rename("from harness.data import load_gaze_dataset\n"
                     f"load_gaze_dataset('mit1003', data_dir={str(tmp_path / 'mit1003')!r}, cache_dir={str(cache)!r})",
                     match=".tmp-")
    (arrow,) = (cache / "arrow").iterdir()
    assert [p.name.split(".tmp-")[0] for p in arrow.iterdir()] != [] and all(".tmp-" in p.name for p in arrow.iterdir())
    gaze, ds = load_gaze_dataset("mit1003", data_dir=tmp_path / "mit1003", cache_dir=cache)
    assert len(ds) > 0 and not [p for p in arrow.iterdir() if ".tmp-" in p.name] and len(list(arrow.iterdir())) == 1


# --------------------------------------------------------------------------------------------
# run files edited by hand: every reader names the run, eval repairs it (found by a QA session)


def _readers_leave_it_out(out: Path, run: Path, why: str) -> None:
    r = _verify(out)
    assert r.exit_code == 1 and why in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(out)])
    assert r.exit_code == 0 and f"{run}: damaged run left out" in r.output and "| uniform" in r.output, r.output
    assert "Traceback" not in r.output


def test_edited_run_files_are_named_and_repaired(two_runs, osie_dir):
    import pyarrow as pa

    from harness.results.files import parquet_bytes, sha256_bytes

    run = _run_dir(two_runs, "center-bias")
    before = _summary(run)
    original = {p.name: p.read_bytes() for p in (run / "shards").iterdir()}

    def repaired():
        r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
        assert r.exit_code == 0 and "Traceback" not in r.output, r.output
        assert _summary(run)["metrics"] == before["metrics"]
        assert {p.name: p.read_bytes() for p in (run / "shards").iterdir()} == original
        assert _verify(two_runs).exit_code == 0
        return r.output

    # a metric the shards do not have (every reader stopped with KeyError)
    summary = _summary(run)
    summary["metrics"]["foo"] = 1.0
    (run / "summary.json").write_text(json.dumps(summary))
    _readers_leave_it_out(two_runs, run, "summary.json: metric 'foo' is not a column of the shards")
    assert "written again" in repaired()

    # a raw run's summary that says calibrated (it was shown in the calibrated table)
    summary = _summary(run)
    summary["scoring"] = "calibrated"
    (run / "summary.json").write_text(json.dumps(summary))
    _readers_leave_it_out(two_runs, run, "summary.json: scoring 'calibrated', but settings.json says 'raw'")
    repaired()

    # a manifest that lists no shard, or none at all (verify passed the latter; eval reused both)
    for edit in ("empty", "deleted"):
        manifest = run / "manifest.json"
        if edit == "empty":
            manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "shards": {}}))
        else:
            manifest.unlink()
        why = "not listed in the manifest" if edit == "empty" else "manifest.json: missing"
        _readers_leave_it_out(two_runs, run, why)
        assert "manifest.json: does not list the run's shards" in repaired()
        assert set(json.loads(manifest.read_text())["shards"]) == set(original)

    # a second shard of the first stimuli, unlisted, with other numbers: the listed one is kept
    first = sorted((run / "shards").glob("part-*.parquet"))[0]
    frame = read_run(run).per_image().head(16)
    for k in range(200):  # one whose name sorts first: the order of the names decided which was kept
        data = parquet_bytes(pa.Table.from_pandas(frame.assign(nss=frame["nss"] + 1.0 + k), preserve_index=False))
        forged = run / "shards" / f"part-00000000-{sha256_bytes(data)[:16]}.parquet"
        if forged.name < first.name:
            break
    assert forged.name < first.name
    forged.write_bytes(data)
    _readers_leave_it_out(two_runs, run, f"{forged.name}: not listed in the manifest")
    r = _eval(two_runs, osie_dir, "--no-references", model="center-bias")
    assert r.exit_code == 0 and f"{forged}:" in r.output, r.output
    assert (run / "damaged" / forged.name).is_file() and first.is_file()
    assert _summary(run)["metrics"] == before["metrics"] and _verify(two_runs).exit_code == 0


def test_a_file_where_a_run_folder_goes_is_named(tmp_path, osie_dir):
    out = tmp_path / "runs"
    assert _eval(out, osie_dir, "--no-references", limit=2).exit_code == 0
    run = _run_dir(out, "uniform")
    shutil.rmtree(run)
    run.write_text("not a folder")
    r = _eval(out, osie_dir, "--no-references", limit=2)
    assert r.exit_code == 1 and r.output.strip() == f"Error: {run}: a file where this run's folder goes; move it away"


def test_a_run_folder_given_as_output_is_refused(tmp_path, osie_dir):
    """`eval -o <a run folder>` made a new run inside that run's folder, without a word (found by QA)."""
    out = tmp_path / "runs"
    assert _eval(out, osie_dir, "--no-references", limit=2).exit_code == 0
    run = _run_dir(out, "uniform")
    r = _eval(run, osie_dir, "--no-references", "--model", "center-bias", limit=2)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == (f"Error: {run} is a run folder (it holds settings.json and "
                                                 "shards/); give the results folder that holds the runs")
    assert not any(p.name.startswith("center-bias") for p in run.iterdir())


def test_an_output_folder_named_tilde_is_the_home_folder_as_for_the_other_folders(tmp_path, osie_dir, monkeypatch):
    """`eval -o '~/runs'` (quoted: no shell expansion) wrote shards under ./~/runs while pyarrow read
    '~/runs/...' from the home folder: every shard 'damaged', the command failed, and again each
    time (found by QA). Shards are read as the files they are, and every folder option expands '~'
    as --cache-dir and --data-dir did (the output alone was literal: found by the next QA)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--limit", "3", "--data-dir", str(osie_dir),
                                  "--output", "~/runs", "--no-references", "--no-show"])
    assert r.exit_code == 0 and "damaged" not in r.output, r.output
    (run,) = load_runs(tmp_path / "home" / "runs")
    assert run.summary["n_images"] == 3 and not (tmp_path / "~").exists()
    r = CliRunner().invoke(main, ["verify", "~/runs"])
    assert r.exit_code == 0, r.output


def test_a_folder_named_tilde_here_and_a_tilde_name_of_no_user_are_folders_here(tmp_path, osie_dir, monkeypatch):
    """After '~' was expanded for every folder option, './~' (pathlib makes it '~') wrote into the
    home folder, '~old_runs' stopped with a RuntimeError traceback, and `show --from '~/pub'` did not
    find what `publish --to-folder '~/pub'` wrote (found by the regression QA)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    for given, folder in (("./~", tmp_path / "~"), ("~old_runs_of_nobody", tmp_path / "~old_runs_of_nobody")):
        r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--limit", "2", "--data-dir", str(osie_dir),
                                      "--output", given, "--no-references", "--no-show"])
        assert r.exit_code == 0, r.output
        assert [run.summary["n_images"] for run in load_runs(folder)] == [2]
        assert CliRunner().invoke(main, ["verify", given]).exit_code == 0
    assert list((tmp_path / "home").iterdir()) == []
    r = CliRunner().invoke(main, ["leaderboard", "publish", "--results", "./~", "--to-folder", "~/pub"])
    assert r.exit_code == 0 and (tmp_path / "home" / "pub").is_dir(), r.output
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", "~/pub"])
    assert r.exit_code == 0 and "uniform" in r.output, r.output
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", ""])
    assert r.exit_code == 2 and "Invalid value for '--from': is empty: give a folder" in r.output, r.output
    r = CliRunner().invoke(main, ["verify", ""])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        "Error: Invalid value for 'RESULTS': is empty: give a folder"), r.output


@pytest.mark.parametrize("command", [["eval", "--model", "uniform"], ["datasets", "info", "osie"],
                                     ["align", "--model", "efficientnet-lite0", "--loss", "density-kl", "--output", "out"]])
def test_an_empty_or_file_data_folder_is_refused_in_one_line(tmp_path, monkeypatch, command):
    """`--data-dir ''` read the current folder ('missing data file eye/fixations.mat'), and a data
    folder that is a file was said not to exist (found by QA)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    r = CliRunner().invoke(main, [*command, "--data-dir", ""])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        "Error: Invalid value for '--data-dir': is empty: give a folder, or leave the option out"), r.output
    r = CliRunner().invoke(main, [*command, "--data-dir", "afile"])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == (
        "Error: osie: data folder afile (given with --data-dir) is a file, not a folder"), r.output


# --------------------------------------------------------------------------------------------
# manifests edited by hand


@pytest.mark.parametrize("edit, expected", [
    ({"dataset_fingerprint": "bb" * 32}, "manifest.json: dataset_fingerprint 'bbbb"),
    ({"model_provenance.weights_sha256": "cd" * 32}, "manifest.json: model_provenance {"),
    ({"seed": 7}, "manifest.json: seed 7, but settings.json says 0"),
    ({"metric_params.sigma_deg": 3.0}, "manifest.json: metric_params {"),
    ({"settings_sha256": "0" * 64}, "manifest.json: settings_sha256 000000000000… is not the hash of settings.json"),
    ({"finished_at": "2020-01-01T00:00:00+00:00"}, "manifest.json: finished_at '2020-01-01T00:00:00+00:00', but "
                                                   "summary.json says"),
])
def test_edited_manifest_provenance_is_caught(two_runs, osie_dir, edit, expected):
    """The manifest is not hashed: its copy of the fingerprint, weights hash or seed could be edited,
    verify passed, and a publish reported the edited value (found by the leaderboard QA, round 2)."""
    run = _run_dir(two_runs, "uniform")
    path = run / "manifest.json"
    original = json.loads(path.read_text())
    doc = json.loads(json.dumps(original))
    for key, value in edit.items():
        if "." in key:
            doc.setdefault(key.split(".", 1)[0], {})[key.split(".", 1)[1]] = value
        else:
            doc[key] = value
    path.write_text(json.dumps(doc))
    r = _verify(two_runs)
    assert r.exit_code == 1 and expected in r.output, r.output
    assert "1 of 2 runs hold together" in r.output
    # eval writes the manifest again from the run's settings
    r = _eval(two_runs, osie_dir, "--no-references")
    assert r.exit_code == 0 and "manifest.json" in r.output and "written again" in r.output, r.output
    assert _verify(two_runs).exit_code == 0


@pytest.mark.parametrize("linked", ["maps", "shards", "damaged", "shards/part-file"])
def test_a_link_inside_a_run_folder_is_refused_before_anything_is_written_through_it(tmp_path, osie_dir, linked):
    """A results folder from someone else whose run has maps/ linked to another folder: resuming into
    it wrote the maps there and deleted that folder's candidates/ files; a linked shards/ received
    the new shards, a linked damaged/ the set-aside ones (found by the security QA)."""
    import os

    out = tmp_path / "runs"
    assert _eval(out, osie_dir, "--no-references", limit=4).exit_code == 0
    run = _run_dir(out, "uniform")
    (run / "summary.json").unlink()
    (run / "manifest.json").unlink()  # unfinished: a rerun writes into it
    outside = tmp_path / "outside"
    (outside / "candidates").mkdir(parents=True)
    (outside / "candidates" / "precious.txt").write_text("keep me")
    if linked == "shards/part-file":
        first = sorted((run / "shards").iterdir())[0]
        (outside / first.name).write_bytes(first.read_bytes())
        first.unlink()
        first.symlink_to(outside / first.name)
        link = first
    else:
        if (run / linked).exists():
            import shutil

            shutil.rmtree(run / linked)
        (run / linked).symlink_to(outside, target_is_directory=True)
        link = run / linked
    before = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    r = _eval(out, osie_dir, "--no-references", limit=4)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == (
        f"Error: {link}: a link inside the run folder (to {os.readlink(link)}); a run keeps its own files, and this "
        "command writes and deletes in it: remove the link")
    assert sorted(str(p.relative_to(outside)) for p in outside.rglob("*")) == before
    assert (outside / "candidates" / "precious.txt").read_text() == "keep me"


# --------------------------------------------------------------------------------------------
# hostile files (found by the security QA)


def _bomb(run: Path, n_rows: int) -> Path:
    """The run's shards replaced by one small file of ``n_rows`` rows of one repeated value, with
    every hash the run records made to match (as `harness verify` checks them)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from harness.results.store import SHARD_RUN_KEY, settings_hash

    settings = json.loads((run / "settings.json").read_text())
    zeros = pa.array(np.zeros(n_rows, np.int8))
    table = pa.table({"stimulus_id": pa.DictionaryArray.from_arrays(zeros, pa.array(["1001"])),
                      "status": pa.DictionaryArray.from_arrays(zeros, pa.array(["ok"])),
                      "nss": pa.array(np.zeros(n_rows))})
    table = table.replace_schema_metadata({SHARD_RUN_KEY: settings_hash(settings).encode()})
    for old in (run / "shards").iterdir():
        old.unlink()
    with open(run / "bomb", "wb") as f:
        pq.write_table(table, f, row_group_size=n_rows)
    data = (run / "bomb").read_bytes()
    (run / "bomb").unlink()
    digest = hashlib.sha256(data).hexdigest()
    shard = run / "shards" / f"part-00000000-{digest[:16]}.parquet"
    shard.write_bytes(data)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["shards"] = {shard.name: digest}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return shard


def test_a_small_shard_declaring_millions_of_rows_is_not_loaded(two_runs, monkeypatch):
    """A 1.8 MB shard of 2e8 rows of one value took `harness verify` to ~6 GB and a traceback
    (found by the security QA): its row count, read from the footer alone, is more than the run's
    stimuli, so it is named and never loaded."""
    import pyarrow.parquet as pq

    run = _run_dir(two_runs, "center-bias")
    shard = _bomb(run, 3_000_000)
    loaded = []
    read_table = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda f, **k: loaded.append(Path(f.name)) or read_table(f, **k))
    r = _verify(two_runs)
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output
    assert f"{shard.name}: damaged shard (it holds 3000000 rows, more than the 40 its run has room for)" in r.output
    _readers_leave_it_out(two_runs, run, "3000000 rows")
    with pytest.raises(HarnessError, match="3000000 rows"):
        read_run(run).per_image()
    assert shard not in loaded


@pytest.mark.parametrize("name", ["settings.json", "manifest.json", "summary.json"])
@pytest.mark.parametrize("text", ["[" * 200000 + "]" * 200000, '{"a":' * 100000 + "1" + "}" * 100000, "[1, 2]"])
def test_run_json_nested_too_deeply_is_one_line(two_runs, name, text):
    """Deeply nested JSON made every reader stop with a RecursionError traceback (found by the
    security QA)."""
    run = _run_dir(two_runs, "center-bias")
    (run / name).write_text(text)
    r = _verify(two_runs)
    assert r.exit_code == 1 and "Traceback" not in r.output and "unreadable run file" in r.output, r.output
    assert f"FAIL {run} (unreadable)\n     - {name}: unreadable run file" in r.output
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(two_runs)])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert f"{run}: damaged run left out ({name}: unreadable run file" in r.output and "| uniform" in r.output


def _sealed_with(run: Path, key: str, value) -> Path:
    """``run`` with settings.json edited and every hash made to match it again (its shards' settings
    hash, their names, the manifest, the folder name), as anyone can: the run id is no signature."""
    import pyarrow.parquet as pq

    from harness.results.files import parquet_bytes, sha256_bytes
    from harness.results.store import SHARD_RUN_KEY, run_id_for, settings_hash
    from harness.results.verify import MANIFEST_FROM_SETTINGS

    settings = json.loads((run / "settings.json").read_text())
    if "." in key:
        settings[key.split(".")[0]][key.split(".")[1]] = value
    else:
        settings[key] = value
    (run / "settings.json").write_text(json.dumps(settings))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["shards"] = {}
    for shard in sorted((run / "shards").glob("part-*.parquet")):
        with open(shard, "rb") as f:
            table = pq.read_table(f)
        data = parquet_bytes(table.replace_schema_metadata({SHARD_RUN_KEY: settings_hash(settings).encode()}))
        shard.unlink()
        name = f"{shard.name[:13]}-{sha256_bytes(data)[:16]}.parquet"
        (run / "shards" / name).write_bytes(data)
        manifest["shards"][name] = sha256_bytes(data)
    manifest["settings_sha256"] = settings_hash(settings)
    manifest.update({k: settings[k] for k in MANIFEST_FROM_SETTINGS if k in settings})
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run.rename(run.parent / run_id_for(settings))


@pytest.mark.parametrize("key, value, expected", [
    ("metric_params", "oops", "settings.json: metric_params is 'oops', not a mapping"),
    ("metric_params.sigma_deg", "abc", "settings.json: metric_params.sigma_deg is 'abc', not a number"),
    ("seed", "abc", "settings.json: seed is 'abc', not a whole number >= 0"),
    ("n_images", 10**9, "settings.json: n_images is 1000000000, not a count of stimuli (at most 1000000)"),
    ("limit", -5, "settings.json: limit is -5, not a number of stimuli"),
    ("dataset_fingerprint", "\x1b]52;c;aGk=\x07", r"settings.json: dataset_fingerprint is '\x1b]52;c;aGk=\x07', not a "
                                                  "hexadecimal digest"),
])
def test_settings_of_the_wrong_type_are_caught(two_runs, tmp_path, key, value, expected):
    """A run whose settings.json was edited and sealed again passed verify, then stopped `leaderboard
    show --ci` and `build` (metric_params "oops": AttributeError) or `publish` (seed "abc":
    ValueError) with a traceback (found by the security QA)."""
    run = _sealed_with(_run_dir(two_runs, "center-bias"), key, value)
    _readers_leave_it_out(two_runs, run, expected)
    for command in (["leaderboard", "show", "--results", str(two_runs), "--ci", "--n-boot", "100"],
                    ["leaderboard", "build", "--results", str(two_runs), "-o", str(tmp_path / "site"),
                     "--data-dir", str(tmp_path / "no-data")],
                    ["leaderboard", "publish", "--results", str(two_runs), "--to-folder", str(tmp_path / "pub")]):
        r = CliRunner().invoke(main, command)
        assert r.exit_code == 0 and f"{run}: damaged run left out" in r.output, r.output
