"""Uncertainty and significance: bootstrap intervals on the leaderboard's means, Holm-corrected paired
tests between its rows (``harness leaderboard show --ci``), and ``harness compare RUN_A RUN_B``.

Real runs: ``harness eval --model center-bias`` on the first 20 and 80 OSIE stimuli (which also
writes the ``uniform`` baseline and the human ceiling); synthetic run folders (``site_helpers``)
where exact per-stimulus values are needed."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.leaderboard.significance import holm, mean_interval, run_intervals, table_statistics
from harness.leaderboard.table import render_table
from harness.results import load_runs
from site_helpers import write_run


# --- Holm ---------------------------------------------------------------------------------------------

def test_holm_on_a_hand_worked_example():
    # m = 4, alpha 0.05. Sorted: 0.005 <= 0.05/4 = 0.0125 reject; 0.01 <= 0.05/3 = 0.0167 reject;
    # 0.03 > 0.05/2 = 0.025 stop: 0.03 and 0.04 are not rejected (0.04 <= 0.05/1 would pass alone).
    # Adjusted: 4 * 0.005 = 0.02, 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, max(0.06, 1 * 0.04) = 0.06.
    reject, adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert reject == [True, False, False, True]
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # the step-down stops at the first non-rejection: 0.024 <= 0.05/2 but 0.02 > 0.05/3 came first
    reject, adjusted = holm([0.024, 0.001, 0.06, 0.02])
    assert reject == [False, True, False, False]
    assert adjusted == pytest.approx([0.06, 0.004, 0.06, 0.06])
    # a NaN p-value (no test made) is not counted in m: m = 2 here, 0.02 <= 0.05/2 and 0.04 <= 0.05
    reject, adjusted = holm([0.04, math.nan, 0.02])
    assert reject == [True, False, True] and math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.04) and adjusted[2] == pytest.approx(0.04)
    assert holm([]) == ([], [])
    assert holm([0.3]) == ([False], [0.3]) and holm([0.05]) == ([True], [0.05])  # p <= alpha/1 rejects
    with pytest.raises(ValueError):
        holm([1.5])


def _closed_bonferroni(p, alpha):
    """Holm written as what it is, closed testing of Bonferroni tests (Marcus, Peritz & Gabriel
    1976): H_i is rejected iff every intersection S that contains i has min_{j in S} p_j <=
    alpha/|S|; its adjusted p-value is the largest min(1, |S| min_{j in S} p_j) over those S."""
    m = len(p)
    reject, adjusted = [], []
    for i in range(m):
        worst = 0.0
        for size in range(1, m + 1):
            for s in itertools.combinations(range(m), size):
                if i in s:
                    worst = max(worst, min(1.0, size * min(p[j] for j in s)))
        adjusted.append(worst)
        reject.append(worst <= alpha)
    return reject, adjusted


def test_holm_agrees_with_closed_testing_and_statsmodels():
    rng = np.random.default_rng(7)
    try:
        from statsmodels.stats.multitest import multipletests
    except ImportError:
        multipletests = None
    for trial in range(200):
        m = int(rng.integers(1, 8))
        p = rng.uniform(0, 0.1, m) if trial % 2 else rng.beta(0.3, 1.0, m)
        if trial % 5 == 0:
            p[rng.integers(0, m)] = p[0]  # ties
        for alpha in (0.05, 0.1):
            reject, adjusted = holm(p, alpha)
            ref_reject, ref_adjusted = _closed_bonferroni(list(p), alpha)
            assert reject == ref_reject, (p, alpha)
            assert adjusted == pytest.approx(ref_adjusted, abs=1e-12)
            if multipletests is not None:
                sm_reject, sm_adjusted, _, _ = multipletests(p, alpha=alpha, method="holm")
                assert reject == list(sm_reject) and adjusted == pytest.approx(list(sm_adjusted))


# --- one mean -----------------------------------------------------------------------------------------

def test_mean_interval_is_the_paired_bootstrap_against_zero(monkeypatch):
    """The same resamples as harness.alignment.compare.paired_bootstrap, so the same interval; also
    when the resamples are drawn in several chunks."""
    from harness.alignment import compare

    v = np.random.default_rng(3).normal(0.7, 0.3, 57)
    for chunk in (compare._CHUNK, 200):
        monkeypatch.setattr(compare, "_CHUNK", chunk)
        ours = mean_interval(v, n_boot=3000, seed=5)
        ref = compare.paired_bootstrap(np.zeros_like(v), v, n_boot=3000, seed=5)
        assert ours["mean"] == float(v.mean()) == ref["diff"]
        assert ours["lo"] == pytest.approx(ref["lo"], rel=1e-12) and ours["hi"] == pytest.approx(ref["hi"], rel=1e-12)
        assert ours["lo"] < ours["mean"] < ours["hi"]


def test_mean_interval_edge_cases():
    out = mean_interval([1.0, math.nan, 3.0, math.inf])
    assert out["mean"] == 2.0 and out["n"] == 2 and out["n_dropped"] == 2 and 1.0 <= out["lo"] <= out["hi"] <= 3.0
    one = mean_interval([0.4])
    assert one["mean"] == 0.4 and math.isnan(one["lo"]) and math.isnan(one["hi"])
    none = mean_interval([math.nan])
    assert math.isnan(none["mean"]) and none["n"] == 0
    const = mean_interval([0.5] * 10)
    assert const["lo"] == const["hi"] == 0.5
    with pytest.raises(ValueError):
        mean_interval([1.0, 2.0], n_boot=0)


def test_explained_information_gain_gets_the_interval_of_its_ratio(tmp_path):
    """ig_explained = 100 * mean(ig) / mean(ig of the calibrated ceiling): each resample draws
    stimuli with both runs' values, the ratio of its two means is one replicate (computed here by
    hand from the per-stimulus rows and the same draws)."""
    root = tmp_path / "runs"
    n, n_boot = 30, 2000
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
              metrics={"ig": 2.0, "nss": 2.5}, n_images=n, scoring="calibrated", shuffle=1)
    model = write_run(root, model="net-a", metrics={"ig": 0.8, "nss": 1.0}, n_images=n, scoring="calibrated",
                      shuffle=2)
    runs = load_runs(root)
    stats = table_statistics(runs, "nss", n_boot=n_boot, seed=4)
    got = stats.intervals[model.name]["ig_explained"]
    frames = {r.summary["model"]: r.per_image().set_index("stimulus_id") for r in runs}
    ig, gold = frames["net-a"]["ig"].to_numpy(), frames["human-ceiling"].loc[frames["net-a"].index, "ig"].to_numpy()
    draws = np.random.default_rng(4).integers(0, n, size=(n_boot, n))
    ratios = 100 * ig[draws].mean(axis=1) / gold[draws].mean(axis=1)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    assert got["mean"] == pytest.approx(100 * ig.mean() / gold.mean(), rel=1e-12) == pytest.approx(40.0)
    assert got["lo"] == pytest.approx(lo, rel=1e-12) and got["hi"] == pytest.approx(hi, rel=1e-12)
    assert got["lo"] < 40.0 < got["hi"] and got["n"] == n and got["n_dropped"] == 0
    # the ceiling against itself: exactly 100 in every resample
    ceiling = next(r for r in runs if r.summary["model"] == "human-ceiling")
    assert stats.intervals[ceiling.run_id]["ig_explained"]["lo"] == stats.intervals[ceiling.run_id]["ig_explained"]["hi"] == 100.0
    table = render_table(runs, ci=True, n_boot=n_boot, seed=4, width=400)
    assert f"40.0000 [{got['lo']:.3f}, {got['hi']:.3f}]" in table
    assert "for ig_explained, of the ratio of the run's mean ig to the human ceiling's" in table
    from harness.leaderboard.site import page_statistics  # the page's hover intervals: the same

    default = table_statistics(runs, "nss").intervals[model.name]["ig_explained"]
    assert page_statistics(runs, "nss")[model.name]["intervals"]["ig_explained"] == [default["lo"], default["hi"]]
    # raw scoring has no explained information gain, and its notes say nothing of it
    raw = tmp_path / "raw"
    write_run(raw, model="net-a", metrics={"ig": 0.8}, n_images=n)
    assert "ig_explained" not in render_table(load_runs(raw), ci=True, n_boot=200)


def test_run_intervals_count_what_the_summary_counts():
    """Failed rows and non-finite values are left out, as the summary leaves them out; metrics with
    values on other stimuli get their own resamples."""
    import pandas as pd

    from harness.results.summary import aggregate

    frame = pd.DataFrame({
        "stimulus_id": [f"{i:03d}" for i in range(8)][::-1],  # not in stimulus-id order
        "status": ["ok", "ok", "degenerate", "failed", "ok", "ok", "ok", "ok"],
        "nss": [1.0, 2.0, 0.0, 99.0, 1.5, 0.5, 2.5, 1.0],
        "kld": [1.0, np.nan, 1.2, 99.0, 0.9, np.inf, 1.1, 1.3],
    })
    iv = run_intervals(frame, n_boot=500)
    agg = aggregate(frame, ["nss", "kld"])
    assert iv["nss"]["mean"] == agg["metrics"]["nss"] and iv["kld"]["mean"] == agg["metrics"]["kld"]
    assert iv["nss"]["n"] == 7 and iv["kld"]["n"] == 5 and iv["kld"]["n_dropped"] == 2
    scored = frame.sort_values("stimulus_id")
    scored = scored[scored["status"] != "failed"]
    assert iv["kld"]["lo"] == pytest.approx(mean_interval(scored["kld"], n_boot=500)["lo"])


# --- real runs ----------------------------------------------------------------------------------------

def _eval(root, limit, *more):
    r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", str(limit),
                                  "--output", str(root), "--no-show", *more])
    assert r.exit_code == 0, r.output
    return root


@pytest.fixture(scope="module")
def real(tmp_path_factory, osie_dir, osie_cache):
    """{20: folder, 80: folder}: center-bias, uniform and the human ceiling on the first 20 stimuli;
    center-bias alone on the first 80 (the ceiling is the costly part)."""
    base = tmp_path_factory.mktemp("significance")
    return {20: _eval(base / "runs20", 20), 80: _eval(base / "runs80", 80, "--no-references")}


def _by_model(folder):
    return {r.summary["model"]: r for r in load_runs(folder)}


def test_point_estimate_is_the_summary_and_lies_in_the_interval(real):
    for folder in real.values():
        for run in load_runs(folder):
            iv = run_intervals(run.per_image())
            assert set(iv) == set(run.summary["metrics"])
            for m, value in run.summary["metrics"].items():
                assert iv[m]["mean"] == value, (run.run_id, m)  # the very same mean, to the bit
                assert iv[m]["lo"] <= value <= iv[m]["hi"], (run.run_id, m)
                assert iv[m]["n"] == run.summary["n_images"] - run.summary["n_failed"] - run.summary["nonfinite"][m]


def test_interval_narrows_with_more_stimuli(real):
    small = run_intervals(_by_model(real[20])["center-bias"].per_image())
    large = run_intervals(_by_model(real[80])["center-bias"].per_image())
    for m in ("nss", "auc_judd", "cc", "kld"):
        assert 0 < large[m]["hi"] - large[m]["lo"] < small[m]["hi"] - small[m]["lo"], m


def test_interval_is_deterministic_for_a_seed(real):
    frame = _by_model(real[20])["center-bias"].per_image()
    a, b = run_intervals(frame, seed=0), run_intervals(frame, seed=0)
    assert a == b
    c = run_intervals(frame, seed=1)
    assert c["nss"]["mean"] == a["nss"]["mean"] and c["nss"]["lo"] != a["nss"]["lo"]
    assert run_intervals(frame, n_boot=2000, seed=3) == run_intervals(frame, n_boot=2000, seed=3)


def test_uniform_vs_center_bias_is_significant_and_a_run_vs_itself_is_not(real):
    from harness.alignment.compare import pair

    runs = _by_model(real[20])
    cb, uni = runs["center-bias"], runs["uniform"]
    result = pair(uni.settings, uni.per_image(), cb.settings, cb.per_image(), metrics=["nss"])
    nss = result["metrics"]["nss"]
    assert nss["n"] == 20 and nss["lo"] > 0 and nss["p"] < 0.001 and nss["better"] is True
    same = pair(cb.settings, cb.per_image(), cb.settings, cb.per_image(), metrics=["nss"])["metrics"]["nss"]
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["p"] == 1 and same["better"] is None
    # in the table: uniform is tested against center-bias (significant); the ceiling and
    # center-bias itself are not tested
    stats = table_statistics(load_runs(real[20]))
    assert [(c["model"], c["role"], c["against_model"]) for c in stats.comparisons] == [
        ("uniform", "reference", "center-bias")]
    assert stats.comparisons[0]["significant"] and stats.marks(uni.run_id) == ""


def test_show_ci_on_real_runs(real):
    runner = CliRunner()
    for fmt in ("github", "markdown"):
        r = runner.invoke(main, ["leaderboard", "show", "--results", str(real[20]), "--ci", "--format", fmt])
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()
        assert all(line.startswith("|") for line in lines[:5])
        cb = next(line for line in lines if line.startswith("| center-bias"))
        iv = run_intervals(_by_model(real[20])["center-bias"].per_image())
        assert f"{iv['nss']['mean']:.4f} [{iv['nss']['lo']:.3f}, {iv['nss']['hi']:.3f}]" in cb
        assert "[lo, hi]: 95% percentile-bootstrap interval of the mean over stimuli (10,000 resamples, seed 0)." \
            in r.output
        assert "Holm-corrected across the 1 test of this table" in r.output
        assert "†" not in cb and "‡" not in r.output.split("\n\n")[0]  # everything here differs significantly
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(real[20]), "--ci", "--format", "csv"])
    assert r.exit_code == 0, r.output
    table = list(csv.DictReader(io.StringIO(r.output)))
    header = r.output.splitlines()[0].split(",")
    assert header[17:20] == ["auc_judd", "auc_judd_lo", "auc_judd_hi"] and header[-5:] == [
        "above_model", "p_above", "p_above_holm", "p_center_bias", "p_center_bias_holm"]
    for row in table:
        assert float(row["nss_lo"]) <= float(row["nss"]) <= float(row["nss_hi"])
    uni = next(row for row in table if row["model"] == "uniform")
    assert float(uni["p_center_bias_holm"]) < 0.05 and uni["above_model"] == "" and uni["p_above"] == ""
    # without --ci: the table it always was (tests/test_leaderboard_table.py checks its shape)
    plain = runner.invoke(main, ["leaderboard", "show", "--results", str(real[20])])
    assert plain.exit_code == 0 and plain.output == render_table(load_runs(real[20])) + "\n"
    assert "[" not in plain.output and "†" not in plain.output and "bootstrap" not in plain.output
    plain_csv = runner.invoke(main, ["leaderboard", "show", "--results", str(real[20]), "--format", "csv"]).output
    assert "_lo" not in plain_csv and "p_above" not in plain_csv
    # --seed and --n-boot reach the bootstrap
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(real[20]), "--ci", "--n-boot", "500",
                             "--seed", "4"])
    assert r.exit_code == 0 and "(500 resamples, seed 4)" in r.output
    r = runner.invoke(main, ["leaderboard", "show", "--from", str(real[20]), "--ci"])
    assert r.exit_code == 1 and r.output.strip() == \
        "Error: --ci needs the runs' per-image rows: use it with --results, not --from"


# --- marks in the table (synthetic runs: exact per-stimulus values) -----------------------------------

N_BOARD = 12


@pytest.fixture
def board(tmp_path):
    """net-b equals net-a on every stimulus (not significantly different from the model above), net-c
    equals center-bias (not significantly different from it); every other difference is the same on
    every stimulus, so it is significant. Twelve stimuli: the sign-flip test's smallest p is 2 / 2^12,
    significant after Holm's correction over 6 tests (on 4, 2 / 16 could never be)."""
    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", n_images=N_BOARD, kind="ceiling", attention="leave-one-subject-out",
              metrics={"nss": 3.0, "kld": 0.9})
    write_run(root, model="center-bias", n_images=N_BOARD, kind="baseline", attention="prior", metrics={"nss": 1.0, "kld": 1.2})
    write_run(root, model="uniform", n_images=N_BOARD, kind="baseline", attention="prior", metrics={"nss": 0.0, "kld": 1.6})
    write_run(root, model="net-a", n_images=N_BOARD, metrics={"nss": 1.4, "kld": 1.1})
    write_run(root, model="net-b", n_images=N_BOARD, metrics={"nss": 1.4, "kld": 1.0})
    write_run(root, model="net-c", n_images=N_BOARD, metrics={"nss": 1.0, "kld": 1.3})
    return root


def test_table_statistics_compare_neighbours_and_center_bias(board):
    stats = table_statistics(load_runs(board))
    got = {(c["model"], c["role"]): c for c in stats.comparisons}
    assert set(got) == {("net-a", "reference"), ("net-b", "above"), ("net-b", "reference"), ("net-c", "above"),
                        ("net-c", "reference"), ("uniform", "reference")}
    assert got[("net-b", "above")]["against_model"] == "net-a" and got[("net-c", "above")]["against_model"] == "net-b"
    assert got[("net-b", "above")]["p"] == 1 and not got[("net-b", "above")]["significant"]
    assert got[("net-c", "reference")]["p"] == 1 and not got[("net-c", "reference")]["significant"]
    # Holm over the table's 6 tests: the four constant differences have p = 2/2^12 each (the exact
    # sign-flip test: only the two all-alike assignments are as far from 0), adjusted to 6 * 2/2^12;
    # the two zero differences p = 1
    for key in (("net-a", "reference"), ("net-b", "reference"), ("net-c", "above"), ("uniform", "reference")):
        assert got[key]["p"] == pytest.approx(2 / 4096) and got[key]["significant"]
        assert got[key]["p_holm"] == pytest.approx(6 * 2 / 4096)
    assert got[("net-b", "above")]["p_holm"] == 1 and got[("net-c", "reference")]["p_holm"] == 1
    assert got[("net-a", "reference")]["diff"] == pytest.approx(0.4) and got[("net-a", "reference")]["n"] == N_BOARD
    ids = {r.summary["model"]: r.run_id for r in load_runs(board)}
    assert [stats.marks(ids[m]) for m in ("net-a", "net-b", "net-c", "uniform", "center-bias")] == [
        "", "†", "‡", "", ""]


def test_show_ci_marks_and_footnotes(board):
    runner = CliRunner()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--wide"])
    assert r.exit_code == 0, r.output
    rows = {line.split("|")[1].strip(): line for line in r.output.splitlines() if line.startswith("| ")}
    assert "1.4000 [1.365, 1.435]†" in rows["net-b"] and "‡" not in rows["net-b"]
    assert "1.0000 [0.965, 1.035]‡" in rows["net-c"] and "†" not in rows["net-c"]
    assert "†" not in rows["net-a"] + rows["uniform (baseline)"] + rows["human-ceiling"]
    assert "1.1000 [1.065, 1.135]" in rows["net-a"]  # the other metrics get intervals, never marks
    assert ("nss †: not significantly different from the model ranked just above; ‡: not significantly different "
            "from center-bias (paired sign-flip test over the stimuli both runs scored, Holm-corrected across the 6 tests "
            "of this table, alpha 0.05).") in r.output
    md = runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--format", "markdown"])
    assert md.exit_code == 0 and "1.4000 [1.365, 1.435]†" in md.output and "---:|" in md.output
    html = runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--format", "html"])
    assert html.exit_code == 0 and "<p>nss †: not significantly different" in html.output
    table = list(csv.DictReader(io.StringIO(
        runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--format", "csv"]).output)))
    by = {row["model"]: row for row in table}
    assert by["net-b"]["above_model"] == "net-a" and float(by["net-b"]["p_above_holm"]) == 1
    assert float(by["net-c"]["p_center_bias_holm"]) == 1 and float(by["net-a"]["p_center_bias_holm"]) < 0.05
    assert by["human-ceiling"]["p_center_bias"] == "" and float(by["net-a"]["nss_lo"]) == pytest.approx(1.365, abs=5e-4)
    # --primary kld: the tests follow the primary metric; on kld every neighbour differs on every stimulus
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--primary", "kld", "--wide"])
    assert r.exit_code == 0 and "kld †: not significantly different" in r.output
    assert not {"†", "‡"} & set("".join(line for line in r.output.splitlines() if line.startswith("| ")))


def test_csv_ci_corrects_each_table_alone_and_keeps_its_rows_together(board):
    """The human formats print one table per metric profile (and scoring), each Holm-corrected over
    its own tests; csv puts every row in one file. Its p-values must be the human tables' (not one
    correction over both tables' tests), and its rows grouped by profile, not interleaved by score."""
    for model, kind, metrics in (("center-bias", "baseline", {"nss": 1.0}), ("net-a", "model", {"nss": 1.2}),
                                 ("net-b", "model", {"nss": 1.6})):
        write_run(board, model=model, kind=kind, attention="prior" if kind == "baseline" else "grad-cam",
                  metrics=metrics, profile="pysaliency", n_images=N_BOARD)
    runner = CliRunner()
    out = runner.invoke(main, ["leaderboard", "show", "--results", str(board), "--ci", "--format", "csv"])
    assert out.exit_code == 0, out.output
    table = list(csv.DictReader(io.StringIO(out.output)))
    profiles = [row["metric_profile"] for row in table]
    assert profiles == sorted(profiles), profiles  # mit's rows, then pysaliency's
    runs = load_runs(board)
    for profile in ("mit", "pysaliency"):
        alone = table_statistics([r for r in runs if r.settings["metric_profile"] == profile])
        for c in alone.comparisons:
            row = next(row for row in table if row["run_id"] == c["run_id"])
            column = "p_above_holm" if c["role"] == "above" else "p_center_bias_holm"
            assert float(row[column]) == pytest.approx(c["p_holm"]), (profile, c["model"], c["role"])
    # mit's table has 6 tests, pysaliency's 3: 6 * p and 3 * p, not 9 * p for both
    pys = {row["model"]: row for row in table if row["metric_profile"] == "pysaliency"}
    assert float(pys["net-a"]["p_center_bias_holm"]) == pytest.approx(3 * 2 / 4096)


def test_a_test_that_cannot_be_made_is_named_not_left_unmarked(tmp_path):
    """On one stimulus no test can be made (p NaN): no mark there read as "significantly different",
    and the note counted it among the tests Holm corrected."""
    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=1)
    write_run(root, model="net-a", metrics={"nss": 1.4}, n_images=1)
    write_run(root, model="net-b", metrics={"nss": 1.2}, n_images=1)
    stats = table_statistics(load_runs(root))
    assert stats.comparisons == []
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--ci", "--wide"])
    assert r.exit_code == 0, r.output
    assert "net-a: not tested against center-bias: 1 stimulus scored by both (a test needs two)" in r.output
    assert "net-b: not tested against net-a: 1 stimulus scored by both (a test needs two)" in r.output
    assert "across the 3 tests" not in r.output and "across the 0 tests" not in r.output


def test_a_model_without_center_bias_is_named_under_the_table(tmp_path):
    root = tmp_path / "runs"
    write_run(root, model="net-a", metrics={"nss": 1.4})
    write_run(root, model="net-b", metrics={"nss": 1.4})
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--ci"])
    assert r.exit_code == 0, r.output
    # named as untested against center-bias only: net-b was tested against net-a (the † below)
    assert "net-a: not tested against center-bias: no center-bias run with the same dataset, task and metric " \
           "settings." in r.output
    assert "net-b: not tested against center-bias: no center-bias" in r.output
    assert "1.4000 [1.333, 1.467]†" in r.output


def test_a_row_not_tested_against_the_one_just_above_says_so(tmp_path):
    """A run of another --seed just above (a rerun superseded that model's seed-0 row) was skipped in
    silence: the row below it had no †, which reads as "significantly below it" (found by QA)."""
    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=N_BOARD)
    write_run(root, model="net-a", metrics={"nss": 1.6}, n_images=N_BOARD, seed=1)
    write_run(root, model="net-b", metrics={"nss": 1.4}, n_images=N_BOARD)
    write_run(root, model="net-d", metrics={"nss": 1.3}, n_images=N_BOARD, seed=1)
    stats = table_statistics(load_runs(root))
    ids = {r.summary["model"]: r.run_id for r in load_runs(root) if r.summary["model"] != "center-bias"}
    above = {c["model"]: c["against_model"] for c in stats.comparisons if c["role"] == "above"}
    assert above == {"net-d": "net-a"}
    assert stats.not_compared[ids["net-b"]] == ["not tested against net-a ranked just above (another --seed)"]
    assert stats.not_compared[ids["net-d"]][0] == (
        "not tested against net-b ranked just above (another --seed); tested against net-a, the nearest above run alike")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--ci", "--wide"])
    assert r.exit_code == 0 and "net-b: not tested against net-a ranked just above (another --seed)" in r.output


def test_center_bias_of_another_limit_is_not_used_in_silence(tmp_path):
    """The 40-stimulus row was tested against a 20-stimulus center-bias over the 20 both scored, its
    mark flipped, and nothing said so (found by QA): a center-bias of the same --limit or none."""
    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=N_BOARD)
    write_run(root, model="net-a", metrics={"nss": 1.4}, n_images=N_BOARD)
    write_run(root, model="net-a", metrics={"nss": 1.3}, n_images=2 * N_BOARD)
    stats = table_statistics(load_runs(root))
    by_n = {r.settings["limit"]: r.run_id for r in load_runs(root) if r.summary["model"] == "net-a"}
    assert [c["run_id"] for c in stats.comparisons if c["role"] == "reference"] == [by_n[N_BOARD]]
    assert stats.not_compared[by_n[2 * N_BOARD]] == [
        "not tested against net-a ranked just above (another --limit)",
        "not tested against center-bias: no center-bias run with the same --limit (its runs scored other stimuli)"]


def test_show_ci_fits_the_terminal(board, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(board), "--ci"])
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 100
    assert "nss ↑" in r.output.splitlines()[0] and "Not shown, to fit 100 columns" in r.output


# --- harness compare ----------------------------------------------------------------------------------

def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_compare_prints_the_paired_test_of_every_metric(real):
    runs = _by_model(real[20])
    uni, cb = runs["uniform"].path, runs["center-bias"].path
    r = _compare(uni, cb)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == f"A: {uni.name}" and lines[1] == f"B: {cb.name}"
    assert lines[2] == "uniform → center-bias on osie/free-viewing: 20 stimuli paired of 20 shared"
    nss = next(line for line in lines if line.startswith("nss "))
    assert "+0.9834 [+0.8311, +1.1298]" in nss and "<0.001" in nss and nss.endswith("▲ better")
    assert {line.split()[0] for line in lines[5:14]} == set(runs["uniform"].summary["metrics"])
    assert lines[-1] == ("diff = B - A, mean over the paired stimuli; interval: paired percentile bootstrap, 10,000 "
                         "resamples, seed 0; p: two-sided sign-flip permutation test (exact up to 30 stimuli), not "
                         "corrected for the 9 comparisons.")
    # a run against itself: no difference anywhere
    r = _compare(cb, cb, "--metric", "nss", "--metric", "kld")
    assert r.exit_code == 0, r.output
    rows = [line for line in r.output.splitlines() if line.startswith(("nss ", "kld "))]
    assert len(rows) == 2 and all("+0.0000 [+0.0000, +0.0000]" in line and "1.000" in line and "n.s." in line
                                  for line in rows)


def test_compare_json_metric_n_boot_seed(real):
    runs = _by_model(real[20])
    uni, cb = runs["uniform"].path, runs["center-bias"].path
    r = _compare(uni, cb, "--json", "--metric", "nss", "--n-boot", "2000", "--seed", "3")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["run_a"] == str(uni) and doc["run_b"] == str(cb)
    assert list(doc["metrics"]) == ["nss"] and doc["task"] == {} and doc["n_paired"] == 20
    nss = doc["metrics"]["nss"]
    assert nss["n_boot"] == 2000 and doc["seed"] == 3 and nss["lo"] > 0 and nss["p"] < 0.01
    assert nss["diff"] == pytest.approx(runs["center-bias"].summary["metrics"]["nss"])
    assert json.loads(_compare(uni, cb, "--json", "--metric", "nss", "--n-boot", "2000", "--seed", "3").output) == doc
    # other stimulus counts: compared on the 20 shared stimuli
    big = _by_model(real[80])["center-bias"].path
    doc = json.loads(_compare(big, cb, "--json").output)
    assert doc["n_shared"] == 20 and doc["n_before"] == 80 and "sauc" in doc["left_out"]


def test_a_negative_bootstrap_seed_is_a_usage_error(real):
    """`leaderboard show --ci --seed -3` and `compare --seed -3` ended in numpy's traceback (found by QA)."""
    runs = _by_model(real[20])
    r = _compare(runs["uniform"].path, runs["center-bias"].path, "--seed", "-3")
    assert r.exit_code == 2 and "Invalid value for '--seed': -3 is not in the range x>=0" in r.output
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(real[20]), "--ci", "--seed", "-3"])
    assert r.exit_code == 2 and "Invalid value for '--seed': -3 is not in the range x>=0" in r.output


def test_compare_errors_are_one_line(real, tmp_path):
    runs = _by_model(real[20])
    cb = runs["center-bias"].path

    def error(*args):
        r = _compare(*args)
        assert r.exit_code == 1, r.output
        assert len(r.output.strip().splitlines()) == 1 and r.output.startswith("Error: "), r.output
        return r.output.strip()

    assert error(tmp_path / "nope", cb) == f"Error: {tmp_path / 'nope'} does not exist"
    (tmp_path / "folder").mkdir()
    assert error(cb, tmp_path / "folder") == f"Error: {tmp_path / 'folder'}: not a run folder (no settings.json)"
    unfinished = tmp_path / cb.name
    shutil.copytree(cb, unfinished)
    (unfinished / "summary.json").unlink()
    assert error(unfinished, cb).startswith(f"Error: {unfinished}: not a finished run (no summary.json)")
    damaged = tmp_path / "damaged" / cb.name
    shutil.copytree(cb, damaged)
    summary = json.loads((damaged / "summary.json").read_text())
    summary["metrics"]["nss"] += 0.5
    (damaged / "summary.json").write_text(json.dumps(summary))
    assert error(cb, damaged).startswith(f"Error: {damaged}: damaged run (summary.json: nss says ")
    assert error(cb, runs["uniform"].path, "--metric", "bogus").startswith(
        "Error: --metric bogus: not a metric of both runs; they share: auc_judd, ")
    # runs scored another way cannot be compared
    a = write_run(tmp_path / "synthetic", model="net-a", metrics={"nss": 1.0})
    b = write_run(tmp_path / "synthetic", model="net-b", metrics={"nss": 1.2}, profile="pysaliency")
    assert error(a, b) == "Error: cannot compare 'net-a' with 'net-b': metric_profile differs, 'mit' vs 'pysaliency'"
    c = write_run(tmp_path / "synthetic", model="net-c", metrics={"nss": 1.2}, scoring="calibrated")
    assert error(a, c) == "Error: cannot compare 'net-a' with 'net-c': scoring differs, 'raw' vs 'calibrated'"
    assert error(a, cb).startswith("Error: cannot compare 'net-a' with 'center-bias': dataset_fingerprint differs")


def test_the_page_explains_only_tests_that_were_made(tmp_path):
    """A pair that shares one stimulus cannot be tested (p is NaN, no mark); the page's tooltip
    listed it anyway as "not significantly different from a (p = –)"."""
    from harness.leaderboard.site import page_statistics

    root = tmp_path / "runs"
    write_run(root, model="a", metrics={"nss": 1.0}, stimulus_ids=["1001", "1002", "1003", "1004"])
    b = write_run(root, model="b", metrics={"nss": 0.9}, stimulus_ids=["1001", "2002", "2003", "2004"])
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 0.9},
              stimulus_ids=["1001", "2002", "2003", "2004"])
    runs = load_runs(root)
    stats = table_statistics(runs, "nss")
    # one stimulus paired with a: no test, and said
    assert stats.comparison(b.name, "above") is None
    assert stats.not_compared[b.name] == ["not tested against a: 1 stimulus scored by both (a test needs two)"]
    page = page_statistics(runs, "nss")[b.name]
    assert [t["role"] for t in page["tests"]] == ["reference"] and page["tests"][0]["against"] == "center-bias"
    assert page["marks"] == "‡" and not page["tests"][0]["significant"]


def test_too_few_sign_flips_to_resolve_any_test_is_refused(tmp_path):
    """Above 30 stimuli the sign-flip p-value is (1 + count) / (B + 1): at --n-boot 100 never below
    0.0099, and Holm's smallest threshold among 6 tests is 0.0083, so every row was marked "not
    significantly different" whatever the data (uniform against center-bias, all 40 differences < 0)."""
    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out", metrics={"nss": 3.0},
              n_images=40)
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=40)
    write_run(root, model="uniform", kind="baseline", attention="prior", metrics={"nss": 0.0}, n_images=40)
    for i, nss in enumerate((2.0, 1.6, 1.3)):
        write_run(root, model=f"net-{i}", metrics={"nss": nss}, n_images=40, shuffle=i)
    runner = CliRunner()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(root), "--ci", "--n-boot", "100"])
    assert r.exit_code == 1 and "‡" not in r.output
    assert r.output.strip() == ("Error: --n-boot 100 is too few for the 6 sign-flip tests of this table: above 30 "
                                "stimuli a p-value is estimated from --n-boot random sign flips, so no Holm-corrected "
                                "p-value can go below 6/(100+1) = 0.0594, above alpha 0.05, and no difference could "
                                "be marked significant; use --n-boot 119 or more")
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(root), "--ci", "--n-boot", "119", "--wide"])
    assert r.exit_code == 0, r.output
    (line,) = [l for l in r.output.splitlines() if l.startswith("| uniform")]
    assert "‡" not in line  # all 40 differences negative: significant once the test can say so
