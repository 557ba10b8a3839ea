"""Alignment versus task success (harness/analysis.py) and ``harness report``, with numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr

from harness.analysis import across_models, alignment_vs_task, bootstrap_ci, spearman
from harness.cli import main
from harness.results import SCHEMA_VERSION, atomic_write_json, atomic_write_parquet, run_id_for
from harness.results.files import sha256_file

# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_ci_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(2.0, 1.0, 20), rng.normal(2.0, 1.0, 2000)
    widths = []
    for values in (small, large):
        mean, lo, hi = bootstrap_ci(values)
        assert mean == pytest.approx(values.mean())
        assert lo < mean < hi
        # the percentile interval of the mean is close to mean +- 1.96 s / sqrt(n)
        normal = 2 * 1.96 * values.std(ddof=1) / math.sqrt(values.size)
        assert hi - lo == pytest.approx(normal, rel=0.2)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 5  # 100x the data: about 10x narrower
    assert bootstrap_ci(small) == bootstrap_ci(small)  # seeded: reproducible


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci(np.array([3.0, np.nan, 5.0]))[0] == 4.0  # NaNs left out
    # one value: its mean, no interval (every resample is that value: a width of 0 would claim certainty)
    mean, lo, hi = bootstrap_ci(np.array([7.0]))
    assert mean == 7.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([np.nan])))
    assert all(math.isnan(v) for v in bootstrap_ci(np.array([])))


# ------------------------------------------------------------------------------------------ spearman


def test_spearman_by_hand_and_against_scipy():
    # ranks differ by d = (-1, 1, -1, 1, 0): rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 24/120 = 0.8
    rho, p, n = spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert (rho, n) == (pytest.approx(0.8), 5)
    # the exact p: of the 120 pairings, those with |rho| >= 0.8 (counted by brute force here)
    from itertools import permutations

    ranks = [1, 2, 3, 4, 5]
    far = sum(abs(spearmanr(ranks, perm).statistic) >= 0.8 - 1e-12 for perm in permutations(ranks))
    assert far == 16 and p == pytest.approx(16 / 120)
    # rho = 1 on 3 and 4 models: exact p 2/3! and 2/4! (the t approximation said 0)
    assert spearman([1, 2, 3], [4, 5, 6])[1] == pytest.approx(1 / 3)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40])[1] == pytest.approx(1 / 12)
    # above 8 pairs, scipy's t approximation
    a, b = list(range(12)), [1, 0, 2, 3, 5, 4, 6, 7, 9, 8, 11, 10]
    assert spearman(a, b)[1] == pytest.approx(spearmanr(a, b).pvalue)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40])[0] == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1])[0] == pytest.approx(-1.0)
    # ties get average ranks, as scipy does
    a, b = [0.1, 0.4, 0.4, 0.9, 0.3, 0.7], [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert spearman(a, b)[0] == pytest.approx(spearmanr(a, b).statistic)


def test_spearman_drops_nan_pairs_and_refuses_constant_input():
    a = [1.0, np.nan, 3.0, 4.0, 5.0, 2.0]
    b = [2.0, 9.0, np.nan, 3.0, 5.0, 1.0]
    rho, p, n = spearman(a, b)
    assert n == 4 and rho == pytest.approx(spearmanr([1, 4, 5, 2], [2, 3, 5, 1]).statistic)
    for x, y in (([1, 2, 3, 4], [1, 1, 1, 1]), ([2, 2, 2], [1, 2, 3]), ([1, 2], [1, 2])):
        rho, p, _ = spearman(x, y)
        assert math.isnan(rho) and math.isnan(p)


# ------------------------------------------------------------------------------------ per-run analysis


def _frame():
    """Eight stimuli: five solved with nss 2, 3, 4, 2, 4 (mean 3), two unsolved with nss 1, 0
    (mean 0.5), one failed (left out), one without a task score (left out of the split)."""
    return pd.DataFrame({
        "stimulus_id": list("abcdefgh"),
        "status": ["ok"] * 7 + ["failed"],
        "nss": [2.0, 3.0, 4.0, 2.0, 4.0, 1.0, 0.0, np.nan],
        "auc_judd": [0.8, 0.9, 0.7, 0.8, 0.6, 0.5, 0.4, np.nan],
        "task:top1": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, np.nan],
        "task:top5": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, np.nan],
        "task:solved": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, np.nan],
    })


def test_alignment_vs_task_splits_solved_and_unsolved():
    frame = pd.concat([_frame(), pd.DataFrame({"stimulus_id": ["i"], "status": ["ok"], "nss": [10.0],
                                                "auc_judd": [0.99]})], ignore_index=True)
    out = alignment_vs_task(frame, {"nss": "higher", "auc_judd": "higher", "cc": "higher"})
    assert out["task_score"] == "top1" and (out["n_solved"], out["n_unsolved"]) == (5, 2)
    assert set(out["metrics"]) == {"nss", "auc_judd"}  # cc is not in the frame
    nss = out["metrics"]["nss"]
    assert nss["solved"]["mean"] == pytest.approx(3.0) and nss["unsolved"]["mean"] == pytest.approx(0.5)
    assert nss["solved"]["ci95"][0] <= 3.0 <= nss["solved"]["ci95"][1]
    assert 0.0 <= nss["unsolved"]["ci95"][0] <= 0.5 <= nss["unsolved"]["ci95"][1] <= 1.0
    # the rank correlation with the per-stimulus task score, over the seven scored stimuli
    x, y = [2, 3, 4, 2, 4, 1, 0], [1, 1, 1, 1, 1, 0, 0]
    ref = spearmanr(x, y)
    assert nss["spearman_rho"] == pytest.approx(ref.statistic) and nss["n"] == 7
    # seven stimuli: the exact p, the share of the 5040 pairings with |rho| at least the observed one
    from itertools import permutations

    rhos = [spearmanr(x, [y[k] for k in perm]).statistic for perm in permutations(range(7))]
    exact = sum(abs(r) >= abs(ref.statistic) - 1e-12 for r in rhos) / len(rhos)
    assert nss["spearman_p"] == pytest.approx(exact) and exact > ref.pvalue
    auc = out["metrics"]["auc_judd"]
    assert auc["solved"]["mean"] == pytest.approx(0.76) and auc["unsolved"]["mean"] == pytest.approx(0.45)
    # each mean says how many values it holds: a NaN value leaves its stimulus out of its group
    nan_one = frame.assign(nss=[np.nan] + list(frame["nss"].iloc[1:]))
    got = alignment_vs_task(nan_one, {"nss": "higher"})["metrics"]["nss"]
    assert (got["solved"]["n"] + got["unsolved"]["n"], nss["solved"]["n"] + nss["unsolved"]["n"]) == (6, 7)


def test_alignment_vs_task_without_task_scores():
    frame = _frame().drop(columns=["task:top1", "task:top5", "task:solved"])
    assert alignment_vs_task(frame, {"nss": "higher"}) == {"task_score": None, "metrics": {}}


# --------------------------------------------------------------------------------------- across models


def _summary(model, nss, top1, *, attention="grad-cam", kind="model", n_images=10, profile="mit",
             finished_at="2025-01-01T00:00:00+00:00", dataset="cub-gha", task="classification"):
    return {"model": model, "attention": attention, "kind": kind, "dataset": dataset, "task": task,
            "metric_profile": profile, "n_images": n_images, "metrics": {"nss": nss, "auc_judd": nss / 10},
            "task_metrics": {"top1": top1, "top5": min(1.0, top1 + 0.2)}, "task_primary": "top1",
            "finished_at": finished_at}


def test_across_models_ranks_models():
    monotone = [_summary("a", 0.5, 0.30), _summary("b", 1.5, 0.60), _summary("c", 1.0, 0.45),
                _summary("d", 2.0, 0.80)]
    refs = [_summary("human-ceiling", 3.0, 0.0, kind="ceiling"), _summary("uniform", 0.0, 0.9, kind="baseline")]
    out = across_models(monotone + refs)
    assert [(r["metric"], r["n_models"]) for r in out] == [("auc_judd", 4), ("nss", 4)]
    nss = out[1]
    assert nss["spearman_rho"] == pytest.approx(1.0) and nss["task_metric"] == "top1"
    assert nss["models"] == ["a [grad-cam]", "b [grad-cam]", "c [grad-cam]", "d [grad-cam]"]
    assert nss["alignment"] == [0.5, 1.5, 1.0, 2.0] and nss["performance"] == [0.30, 0.60, 0.45, 0.80]
    # reversed performance: rho -1; one swap of four: 1 - 6 * 2 / (4 * 15) = 0.8
    reverse = [_summary(m, s["metrics"]["nss"], 1 - s["task_metrics"]["top1"]) for m, s in zip("abcd", monotone)]
    assert across_models(reverse)[1]["spearman_rho"] == pytest.approx(-1.0)
    swapped = [_summary("a", 1, 0.1), _summary("b", 2, 0.3), _summary("c", 3, 0.2), _summary("d", 4, 0.4)]
    assert across_models(swapped)[1]["spearman_rho"] == pytest.approx(0.8)


def test_across_models_groups_comparable_runs_only():
    three = [_summary("a", 0.5, 0.3), _summary("b", 1.5, 0.6), _summary("c", 1.0, 0.45)]
    assert across_models(three[:2]) == []  # two models: no rank correlation to report
    # a re-run of model a (later) replaces the earlier one, it does not count twice
    rerun = _summary("a", 1.9, 0.7, finished_at="2025-02-01T00:00:00+00:00")
    out = across_models(three + [rerun])
    assert out[1]["n_models"] == 3 and out[1]["alignment"] == [1.9, 1.5, 1.0]
    # other stimuli (n_images), another metric profile or dataset: separate groups, each too small
    mixed = [three[0], _summary("b", 1.5, 0.6, n_images=20), _summary("c", 1.0, 0.45, profile="pysaliency")]
    assert across_models(mixed) == []
    # the same model with another attention method is another entry
    out = across_models(three[:2] + [_summary("a", 1.2, 0.3, attention="rollout")])
    assert out[1]["models"] == ["a [grad-cam]", "a [rollout]", "b [grad-cam]"]


def test_across_models_never_mixes_blurs_scorings_or_task_versions():
    """A later run of model a at another blur, calibrated, or scored by another version of the
    task is another group, not model a's latest run of this one (its nss replaced a's and the
    correlation changed)."""
    blur = {"metric_params": {"sigma_deg": 1.0, "sigma_px": 24.0}, "seed": 0}
    three = [{**_summary(m, v, t), "settings": blur}
             for m, v, t in (("a", 0.5, 0.3), ("b", 1.5, 0.6), ("c", 1.0, 0.45))]
    later = "2025-02-01T00:00:00+00:00"
    others = [
        {**_summary("a", 9.0, 0.3, finished_at=later),
         "settings": {**blur, "metric_params": {"sigma_deg": 2.0, "sigma_px": 48.0}}},
        {**_summary("a", 9.0, 0.3, finished_at=later), "scoring": "calibrated", "settings": {**blur, "scoring": "calibrated"}},
        {**_summary("a", 9.0, 0.3, finished_at=later), "settings": {**blur, "task_params": {"version": "2"}}},
        {**_summary("a", 9.0, 0.3, finished_at=later), "settings": {**blur, "stimuli": {"subset": "held-out"}}},
    ]
    for other in others:
        out = across_models(three + [other])
        assert len(out) == 2 and out[1]["alignment"] == [0.5, 1.5, 1.0], other["settings"]
        assert out[1]["scoring"] == "raw" and out[1]["sigma_deg"] == 1.0


# ----------------------------------------------------------------------------------------- the report


def write_task_run(root: Path, *, model: str, frame: pd.DataFrame, top1: float, attention: str = "grad-cam",
                   seed: int = 0) -> Path:
    """A finished classification run folder as harness eval writes it, its summary's
    alignment_vs_task computed from ``frame`` the way harness eval does."""
    import pyarrow as pa

    settings = {"schema_version": SCHEMA_VERSION, "model": model, "kind": "model", "dataset": "cub-gha",
                "task": "classification", "attention": attention, "metric_profile": "mit", "seed": seed,
                "n_images": len(frame)}
    run = root / run_id_for(settings)
    atomic_write_json(run / "settings.json", settings)
    shard = run / "shards" / "part-000000.parquet"
    atomic_write_parquet(shard, pa.Table.from_pandas(frame, preserve_index=False))
    # a finished run's manifest lists its shards (verify and every reader check them)
    atomic_write_json(run / "manifest.json", {"schema_version": SCHEMA_VERSION, "run_id": run.name,
                                              "shards": {shard.name: sha256_file(shard)}})
    ok = frame[frame.status == "ok"]
    directions = {"nss": "higher", "auc_judd": "higher"}
    summary = {"schema_version": SCHEMA_VERSION, "model": model, "kind": "model", "attention": attention,
               "dataset": "cub-gha", "task": "classification", "metric_profile": "mit", "n_images": len(frame),
               "n_failed": int((frame.status != "ok").sum()),
               "metrics": {m: float(ok[m].mean()) for m in directions}, "metric_directions": directions,
               "task_metrics": {"top1": top1}, "task_primary": "top1",
               "alignment_vs_task": alignment_vs_task(frame, directions, seed=seed), "finished_at": "2025-01-01T00:00:00+00:00"}
    atomic_write_json(run / "summary.json", summary)
    return run


def _results(root: Path) -> dict[str, Path]:
    base = _frame()
    runs = {}
    for k, (model, top1) in enumerate([("model-a", 0.5), ("model-b", 0.7), ("model-c", 0.6)]):
        frame = base.copy()
        frame["nss"] = frame["nss"] + k  # mean alignment a < b < c, task a < c < b: rho 0.5
        runs[model] = write_task_run(root, model=model, frame=frame, top1=top1)
    return runs


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_report_prints_per_run_and_across_models_and_stores_them(tmp_path):
    root = tmp_path / "runs"
    runs = _results(root)
    before = _files(root)
    r = CliRunner().invoke(main, ["report", "--results", str(root)])
    assert r.exit_code == 0, r.output
    text = r.output
    assert "model-a [grad-cam] on cub-gha/classification — solved 5, unsolved 2; task score: top1" in text
    # every number as formatted (tabulate printed 0.0000 as "0", 1.5000 as "1.5" beside "[…, …]" texts)
    cells = [line.split() for line in text.splitlines() if line.startswith(("nss ", "cc "))]
    assert cells and all(len(c[1].split(".")[-1]) == 4 for c in cells if c[1] != "–"), cells
    assert "Across models (mean alignment vs task performance):" in text
    row = next(line for line in text.splitlines() if line.startswith("cub-gha") and " nss " in line)
    assert row.split()[-3:-2] == ["0.5000"] and row.split()[-1] == "3"  # rho and the number of models
    # written: the stored report, and nothing else; atomically (no temporary file left behind)
    assert _files(root) - before == {"alignment_vs_task.json"}
    stored = json.loads((root / "alignment_vs_task.json").read_text())
    assert set(stored["runs"]) == {p.name for p in runs.values()}
    nss = next(c for c in stored["across_models"] if c["metric"] == "nss")
    assert nss["spearman_rho"] == pytest.approx(0.5) and nss["n_models"] == 3
    assert nss["performance"] == [0.5, 0.7, 0.6]
    per_run = stored["runs"][runs["model-b"].name]["metrics"]["nss"]
    assert per_run["solved"]["mean"] == pytest.approx(4.0) and per_run["unsolved"]["mean"] == pytest.approx(1.5)

    # --json prints the same document (valid JSON: NaN becomes null) and rewrites the same file
    r = CliRunner().invoke(main, ["report", "--results", str(root), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == stored
    assert json.loads((root / "alignment_vs_task.json").read_text()) == stored
    assert _files(root) - before == {"alignment_vs_task.json"}
    # the results folder given as the argument, as docs/alignment.md writes it: the same report
    r = CliRunner().invoke(main, ["report", str(root), "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == stored, r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 1 and r.output.strip() == f"Error: {tmp_path / 'nowhere'}: no such run folder"


def test_report_computes_each_runs_statistics_again_from_its_rows(tmp_path):
    """A summary written by an older version kept the statistics of then (Spearman's t
    approximation: p = 0 for rho = 1 on 3 stimuli; no n per mean), and the report printed them."""
    root = tmp_path / "runs"
    runs = _results(root)
    r = CliRunner().invoke(main, ["report", "--results", str(root), "--json"])
    assert r.exit_code == 0 and "computed again" not in r.output, r.output  # this version's summaries: as stored
    current = json.loads(r.output)
    old = runs["model-b"]
    summary = json.loads((old / "summary.json").read_text())
    for v in summary["alignment_vs_task"]["metrics"].values():  # as an older version wrote it
        v["spearman_p"] = 0.0
        del v["solved"]["n"], v["unsolved"]["n"]
    atomic_write_json(old / "summary.json", summary)
    r = CliRunner().invoke(main, ["report", "--results", str(root), "--json"])
    assert r.exit_code == 0, r.output
    assert f"statistics of 1 run(s) were computed again from their per-image rows: their summaries hold an " \
           f"older version's ({old.name})" in r.output
    document = json.loads(r.output[r.output.index("{"):])
    assert document == current  # the numbers this version computes, not the stored ones
    stored = json.loads((root / "alignment_vs_task.json").read_text())
    assert stored["runs"][old.name]["metrics"]["nss"]["spearman_p"] != 0.0
    text = CliRunner().invoke(main, ["report", "--results", str(root)]).output
    nss = [line.split() for line in text.split("model-b")[1].splitlines() if line.startswith("nss ")][0]
    assert nss[-2] == "{:.4f}".format(current["runs"][old.name]["metrics"]["nss"]["spearman_p"]), text


def test_report_tells_apart_groups_that_differ_beyond_its_columns(tmp_path):
    """Two groups of three models alike in dataset, task, profile and images but run with another
    seed printed two identical-looking lines: what differs is a column now."""
    root = tmp_path / "runs"
    base = _frame()
    for seed in (0, 1):
        for k, (model, top1) in enumerate([("model-a", 0.5), ("model-b", 0.7), ("model-c", 0.6)]):
            frame = base.copy()
            frame["nss"] = frame["nss"] + (k if seed == 0 else -k)
            write_task_run(root, model=model, frame=frame, top1=top1, seed=seed)
    r = CliRunner().invoke(main, ["report", "--results", str(root)])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("cub-gha") and " nss " in line]
    assert len(lines) == 2 and "seed=0" in lines[0] and "seed=1" in lines[1], r.output
    assert "settings" in r.output.split("Across models")[1].splitlines()[1]


def test_report_on_run_folders_writes_nothing(tmp_path):
    root = tmp_path / "runs"
    runs = _results(root)
    before = _files(root)
    r = CliRunner().invoke(main, ["report", "--json", *map(str, runs.values())])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc["runs"]) == {p.name for p in runs.values()} and len(doc["across_models"]) == 2
    assert _files(root) == before


def test_report_nan_is_null_and_no_task_runs_is_said(tmp_path):
    root = tmp_path / "runs"
    frame = _frame()
    frame["task:solved"] = 1.0  # everything solved: the unsolved side has no stimulus
    frame["task:top1"] = 1.0  # constant task score: no rank correlation
    write_task_run(root, model="model-a", frame=frame, top1=1.0)
    r = CliRunner().invoke(main, ["report", "--results", str(root), "--json"])
    assert r.exit_code == 0 and "NaN" not in r.output
    (entry,) = json.loads(r.output)["runs"].values()
    assert entry["metrics"]["nss"]["unsolved"] == {"mean": None, "ci95": [None, None], "n": 0}
    assert entry["metrics"]["nss"]["spearman_rho"] is None
    r = CliRunner().invoke(main, ["report", "--results", str(root)])
    assert "solved 7, unsolved 0" in r.output and "Across models" not in r.output

    empty = tmp_path / "free"
    empty.mkdir()
    r = CliRunner().invoke(main, ["report", "--results", str(empty)])
    assert r.exit_code == 0 and r.output.startswith("No run with a task metric")
    r = CliRunner().invoke(main, ["report", "--results", str(tmp_path / "missing")])
    assert r.exit_code == 1 and r.output.strip().splitlines() == [f"Error: results folder {tmp_path / 'missing'} does not exist"]
    assert not (empty / "alignment_vs_task.json").exists()  # no runs there: nothing to store
    # a report stored earlier, of runs no longer there: not left to describe them
    (empty / "alignment_vs_task.json").write_text('{"runs": {"gone": {}}}')
    r = CliRunner().invoke(main, ["report", "--results", str(empty)])
    assert r.exit_code == 0 and not (empty / "alignment_vs_task.json").exists()
    assert "(the earlier alignment_vs_task.json, of runs no longer there, was removed)" in r.output
    # a file of that name the user wrote was removed too (found by QA): only a report is
    (empty / "alignment_vs_task.json").write_text('{"my": "notes"}')
    r = CliRunner().invoke(main, ["report", "--results", str(empty)])
    assert r.exit_code == 0 and (empty / "alignment_vs_task.json").read_text() == '{"my": "notes"}'
    assert "removed" not in r.output
    (empty / "afile").write_text("")
    r = CliRunner().invoke(main, ["report", "--results", str(empty / "afile")])
    assert r.exit_code == 1 and r.output.strip() == f"Error: results folder {empty / 'afile'} is a file, not a folder"


def test_report_on_free_viewing_runs_says_where_it_applies_and_writes_nothing(tmp_path):
    from site_helpers import write_run

    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0})
    write_run(root, model="net", metrics={"nss": 1.5})
    before = _files(root)
    r = CliRunner().invoke(main, ["report", "--results", str(root)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"No run with a task metric in {root}: nothing to report, nothing written."
    # the tasks that score a model's output, each with the datasets that serve it (from the registry)
    listed = {line.split()[0]: line.split("datasets: ")[1].split(", ") for line in lines if "datasets: " in line}
    assert set(listed) == {"classification", "detection", "captioning"}
    assert {"cub-gha", "poet"} <= set(listed["classification"]) and "osie" not in listed["classification"]
    assert "coco-search18" in listed["detection"] and "capgaze" in listed["captioning"]
    assert _files(root) == before and not (root / "alignment_vs_task.json").exists()

    r = CliRunner().invoke(main, ["report", "--results", str(root), "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {"runs": {}, "across_models": []}
    assert "No run with a task metric" in r.stderr
    assert _files(root) == before


def test_report_on_a_damaged_run_given_alone_fails(tmp_path):
    """It said 'No run with a task metric in these runs' and exit 0 (found by QA)."""
    runs = _results(tmp_path / "runs")
    shard = next((runs["model-a"] / "shards").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"garbage")
    r = CliRunner().invoke(main, ["report", str(runs["model-a"])])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == "Error: the run given is damaged (the warning above says why); nothing to report"
    r = CliRunner().invoke(main, ["report", str(runs["model-a"]), str(runs["model-b"])])
    assert r.exit_code == 0 and "model-b [grad-cam]" in r.output, r.output


def test_report_says_when_a_mean_covers_fewer_stimuli_than_its_group(tmp_path):
    """A stimulus without a metric's value is out of its group's mean; the header's counts did not say
    it (found by QA)."""
    frame = _frame()
    solved = frame.index[frame["task:solved"] == 1.0]
    frame.loc[solved[0], "nss"] = float("nan")
    write_task_run(tmp_path / "runs", model="model-a", frame=frame, top1=0.5)
    r = CliRunner().invoke(main, ["report", "--results", str(tmp_path / "runs")])
    assert r.exit_code == 0, r.output
    nss = next(line for line in r.output.splitlines() if line.startswith("nss "))
    auc = next(line for line in r.output.splitlines() if line.startswith("auc_judd "))
    assert f"(of {len(solved) - 1})" in nss and "(of" not in auc, r.output
