"""`harness leaderboard show`: rows, order, directions, references, formats."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.leaderboard.table import leaderboard_rows, render_table
from harness.results import load_runs
from site_helpers import write_run


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
              metrics={"nss": 3.0, "auc_judd": 0.94, "kld": 0.9})
    write_run(root, model="center-bias", kind="baseline", attention="prior",
              metrics={"nss": 1.0, "auc_judd": 0.78, "kld": 1.2})
    write_run(root, model="uniform", kind="baseline", attention="prior", metrics={"nss": 0.0, "auc_judd": 0.5, "kld": 1.6})
    write_run(root, model="net-a", metrics={"nss": 1.4, "auc_judd": 0.80, "kld": 1.4})
    write_run(root, model="net-b", metrics={"nss": 0.7, "auc_judd": 0.85, "kld": 1.1})
    # an older run of net-b with the same settings but another seed: superseded by the newer one
    write_run(root, model="net-b", metrics={"nss": 9.9, "auc_judd": 0.99, "kld": 0.1}, seed=5,
              finished_at="2024-01-01T00:00:00+00:00")
    write_run(root, model="net-c", dataset="salicon", metrics={"nss": 2.0, "auc_judd": 0.9, "kld": 1.0})
    return root


def test_rows_sorted_by_primary_metric_in_its_direction(results):
    runs = load_runs(results)
    rows, cols, directions = leaderboard_rows([r for r in runs if r.summary["dataset"] == "osie"])
    assert [r["model"] for r in rows] == ["human-ceiling", "net-a", "center-bias", "net-b", "uniform"]
    assert cols == ["auc_judd", "nss", "kld"]  # the metrics plugin's order, not alphabetical
    assert directions["kld"] == "lower"
    rows, _, _ = leaderboard_rows([r for r in runs if r.summary["dataset"] == "osie"], primary="kld")
    assert [r["model"] for r in rows] == ["human-ceiling", "net-b", "center-bias", "net-a", "uniform"]
    nb = next(r for r in rows if r["model"] == "net-b")
    assert nb["nss"] == pytest.approx(0.7)  # the latest run, not the older seed-5 one


def test_datasets_are_grouped(results):
    rows, _, _ = leaderboard_rows(load_runs(results))
    assert [r["dataset"] for r in rows] == ["osie"] * 5 + ["salicon"]


def test_formats_and_arrows(results):
    runs = load_runs(results)
    github = render_table(runs, "github")
    assert "nss ↑" in github and "kld ↓" in github and "center-bias (baseline)" in github
    assert github.splitlines()[1].startswith("|--")
    assert "<table>" in render_table(runs, "html")
    md = render_table(runs, "markdown").splitlines()
    assert all(line.startswith("|") for line in md) and set(md[1]) <= set("|:-")
    table = list(csv.reader(io.StringIO(render_table(runs, "csv"))))
    assert table[0][:5] == ["model", "attention", "dataset", "task", "images"]
    assert len(table) == 1 + 6
    assert float(table[1][table[0].index("nss ↑")]) == pytest.approx(3.0)


def test_cli_show_and_errors(results, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(results), "--dataset", "osie", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert [line.split(",")[0] for line in r.output.strip().splitlines()[1:]] == [
        "human-ceiling", "net-a", "center-bias (baseline)", "net-b", "uniform (baseline)"]
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(results), "--primary", "nope"])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown primary metric 'nope'")
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "does not exist" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no finished runs" in r.output
