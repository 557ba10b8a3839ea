"""`harness leaderboard show`: rows, order, directions, references, formats."""

from __future__ import annotations

import csv
import json
import io
import re

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
    assert table[0][:10] == ["model", "kind", "attention", "dataset", "task", "scoring", "metric_profile",
                             "n_images", "n_failed", "n_degenerate"]
    assert {row[5] for row in table[1:]} == {"raw"}
    assert len(table) == 1 + 6
    assert float(table[1][table[0].index("nss")]) == pytest.approx(3.0)


def test_cli_show_and_errors(results, tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(results), "--dataset", "osie", "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert [line.split(",")[:2] for line in r.output.strip().splitlines()[1:]] == [
        ["human-ceiling", "ceiling"], ["net-a", "model"], ["center-bias", "baseline"], ["net-b", "model"],
        ["uniform", "baseline"]]
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(results), "--primary", "nope"])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown primary metric 'nope'")
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "does not exist" in r.output
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["leaderboard", "show", "--results", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "no finished runs" in r.output


def test_csv_is_machine_readable(tmp_path):
    """Plain column names, a kind column, plain model names, numeric image counts, no footnote;
    the human formats keep arrows, labels and notes."""
    import json

    from harness.leaderboard import hub_table
    from harness.leaderboard.table import render_rows

    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0, "kld": 1.2},
              n_images=700, n_failed=3)
    write_run(root, model="net", metrics={"nss": 1.5, "kld": 1.0}, n_images=700)
    rows = hub_table.rows_from_runs(load_runs(root))
    for r in rows:
        r["n_degenerate"] = 2 if r["model"] == "net" else 0
        r["nonfinite"] = json.dumps({"kld": 5}) if r["model"] == "net" else "{}"

    text = render_rows(rows, "csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert list(table[0]) == ["model", "kind", "attention", "dataset", "task", "scoring", "metric_profile",
                              "n_images", "n_failed", "n_degenerate", "sigma_deg", "sigma_px", "dataset_fingerprint",
                              "task_version", "task_params", "seed", "run_id", "nss", "kld"]
    assert {(r["sigma_deg"], r["sigma_px"]) for r in table} == {("1.0", "24.0")}
    assert {r["run_id"] for r in table} == {r["run_id"] for r in rows}
    by_model = {r["model"]: r for r in table}
    assert set(by_model) == {"center-bias", "net"}
    assert by_model["center-bias"]["kind"] == "baseline" and by_model["net"]["kind"] == "model"
    assert [int(by_model["center-bias"][k]) for k in ("n_images", "n_failed", "n_degenerate")] == [700, 3, 0]
    assert [int(by_model["net"][k]) for k in ("n_images", "n_failed", "n_degenerate")] == [700, 0, 2]
    assert float(by_model["net"]["kld"]) == pytest.approx(1.0)
    # nothing after the rows: the non-finite footnote belongs to the human formats only; no line
    # ending but the rows' (the command adds the last one: a blank row after them read as a row)
    assert len(text.strip().splitlines()) == 3 and "non-finite" not in text and "↑" not in text
    assert not text.endswith("\n") and "\r" not in text
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--format", "csv"])
    assert r.exit_code == 0 and r.output.endswith("\n") and not r.output.endswith("\n\n")
    assert len(list(csv.reader(io.StringIO(r.output)))) == 3

    human = render_rows(rows, "github")
    assert "nss ↑" in human and "kld* ↓" in human and "center-bias (baseline)" in human
    assert "700 (3 failed)" in human and "700 (2 constant)" in human
    assert "kld*: non-finite values left out of the mean: net 5 of 700" in human


def _show(results, *args, env=None):
    return CliRunner().invoke(main, ["leaderboard", "show", "--results", str(results), *args], env=env)


def test_show_fits_the_terminal(results, monkeypatch):
    """COLUMNS=80: the github and plain tables leave out what does not fit, least needed first, and
    say so under the table; --wide, markdown and csv keep everything."""
    monkeypatch.setenv("COLUMNS", "80")
    full = _show(results, "--dataset", "osie", "--wide")
    assert full.exit_code == 0, full.output
    assert max(len(line) for line in full.output.splitlines()) > 80
    assert "osie" in full.output and "free-viewing" in full.output and "kld ↓" in full.output
    for fmt in ("github", "plain"):
        r = _show(results, "--dataset", "osie", "--format", fmt)
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()
        assert max(len(line) for line in lines) <= 80, r.output
        header = lines[0]
        assert "model" in header and "attention" in header and "images" in header and "nss ↑" in header
        # one dataset, one task: their columns go first, and the note says what they hold
        assert "dataset" not in header and " task " not in header
        note = " ".join(r.output.split("\n\n")[-1].split())
        assert note.startswith("Not shown, to fit 80 columns (--wide shows all): dataset (osie in every row), "
                               "task (free-viewing in every row)")
        assert all(m in header or m in note for m in ("auc_judd", "kld"))
    # two datasets: the dataset column is needed to read the rows, and stays
    r = _show(results)
    assert r.exit_code == 0 and "dataset" in r.output.splitlines()[0] and "dataset (" not in r.output
    for fmt in ("markdown", "csv"):
        r = _show(results, "--dataset", "osie", "--format", fmt)
        assert r.exit_code == 0 and "Not shown" not in r.output
        assert "free-viewing" in r.output and "kld" in r.output
    # not a terminal and no COLUMNS: the whole table (redirected to a file, say)
    monkeypatch.delenv("COLUMNS")
    assert _show(results, "--dataset", "osie").output == full.output


def test_ceiling_normalised_scores(tmp_path):
    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
              metrics={"nss": 3.0, "kld": 1.0})
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0, "kld": 1.5})
    write_run(root, model="net", metrics={"nss": 2.0, "kld": 2.0})
    write_run(root, model="other", metrics={"nss": 1.5, "kld": 1.25}, dataset="cub-gha")  # no references there
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--normalise", "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = {row["model"]: row for row in csv.DictReader(io.StringIO(r.output))}
    assert float(rows["human-ceiling"]["nss"]) == 1.0 and float(rows["center-bias"]["nss"]) == 0.0
    assert float(rows["net"]["nss"]) == pytest.approx(0.5)
    # lower-is-better KLD: worse than the centre bias is negative, as for every other metric
    assert float(rows["net"]["kld"]) == pytest.approx(-1.0)
    assert rows["other"]["nss"] == "" and rows["other"]["kld"] == ""
    text = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--normalise", "--wide"]).output
    assert "kld ↑" in text and "Ceiling-normalised: each gaze metric as (model - center-bias)" in text
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--normalise", "--ci"])
    assert r.exit_code == 1 and r.output.strip().splitlines() == [
        "Error: --normalise and --ci cannot be combined: the intervals are in the metrics' own units"]


def test_a_value_that_rounds_to_zero_has_no_sign(tmp_path):
    # the calibrated uniform map's IG comes out as -1e-17: "-0.0000" would read as a loss
    root = tmp_path / "runs"
    write_run(root, model="uniform", kind="baseline", attention="prior", metrics={"nss": -1e-17, "ig": -0.25})
    write_run(root, model="net", metrics={"nss": 0.5, "ig": -0.00004})
    text = render_table(load_runs(root))
    assert "-0.0000" not in text and "0.0000" in text and "-0.2500" in text
    assert float([r for r in csv.DictReader(io.StringIO(render_table(load_runs(root), "csv")))
                  if r["model"] == "uniform"][0]["nss"]) == -1e-17  # machine-readable output keeps the value
    ci = _show(root, "--ci")
    assert ci.exit_code == 0, ci.output
    assert "-0.0000" not in ci.output and "-0.000]" not in ci.output


def test_rows_scored_on_different_stimuli_are_said_not_to_compare(tmp_path):
    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=40)
    write_run(root, model="net-a", metrics={"nss": 1.4}, n_images=20)
    write_run(root, model="net-b", metrics={"nss": 1.2}, n_images=20)
    write_run(root, model="net-c", dataset="salicon", metrics={"nss": 2.0}, n_images=8)
    table = render_table(load_runs(root))
    assert table.splitlines()[-1] == (
        "osie/free-viewing: rows scored on different stimuli (40 images: center-bias; 20 images: net-a, net-b): "
        "their means are over different images and do not compare; evaluate every model with the same --limit")
    assert "salicon" not in table.splitlines()[-1]  # one run there: nothing to compare
    assert "different stimuli" not in render_table(load_runs(root), fmt="csv")
    # runs of one limit: no note
    same = tmp_path / "same"
    write_run(same, model="net-a", metrics={"nss": 1.4}, n_images=20)
    write_run(same, model="net-b", metrics={"nss": 1.2}, n_images=20)
    assert "different stimuli" not in render_table(load_runs(same))


def test_a_task_scored_by_an_older_version_is_labelled_beside_newer_rows(tmp_path):
    """A model whose latest detection run predates detection's version 2 (COCO aliases, maximum
    matching) was ranked beside version-2 rows with nothing to say its mAP was scored otherwise."""
    root = tmp_path / "runs"
    v2 = {"version": "2"}
    for model, params, mAP in (("detr-a", v2, 0.61), ("detr-b", None, 0.40), ("detr-c", v2, 0.55)):
        write_run(root, model=model, dataset="poet", task="detection", metrics={"nss": 1.0},
                  task_metrics={"map": mAP}, task_primary="map", task_params=params)
    text = render_table(load_runs(root), "github")
    lines = text.splitlines()
    assert sum(line.startswith("| detr-b [task v1] ") for line in lines) == 1, text
    assert not any(line.startswith(("| detr-a [", "| detr-c [")) for line in lines), text
    assert ("Rows whose task was scored otherwise than the rest (detr-b [task v1]): their task columns do not "
            "compare with the others' (their gaze metrics do)") in " ".join(lines)
    # the same model evaluated again by version 2 supersedes its old row; nothing left to label
    write_run(root, model="detr-b", dataset="poet", task="detection", metrics={"nss": 1.0},
              task_metrics={"map": 0.5}, task_primary="map", task_params=v2, finished_at="2025-03-02T12:00:00+00:00")
    text = render_table(load_runs(root), "github")
    assert "[task" not in text and "scored otherwise" not in text, text
    assert "| detr-b " in text
    # every row of the older version: they compare with each other, no label
    old = tmp_path / "old"
    for model in ("detr-a", "detr-b"):
        write_run(old, model=model, dataset="poet", task="detection", metrics={"nss": 1.0}, task_metrics={"map": 0.4},
                  task_primary="map")
    assert "[task" not in render_table(load_runs(old), "github")


def test_another_blur_or_profile_is_another_row_labelled_not_a_newer_version(tmp_path):
    """A run at 2 degrees finished after the same model's run at 1 degree used to replace it as the
    model's "latest" row, without a word, beside references blurred at 1 degree; and the rows of two
    metric profiles sat in one table looking alike."""
    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out", metrics={"nss": 3.0})
    write_run(root, model="net", metrics={"nss": 1.0})
    write_run(root, model="net", metrics={"nss": 1.4}, finished_at="2025-03-02T12:00:00+00:00",
              metric_params={"sigma_deg": 2.0, "sigma_px": 48.0})
    text = render_table(load_runs(root), "github")
    lines = text.splitlines()
    assert sum(bool(re.match(r"\| net +\|", line)) for line in lines) == 1  # the 1-degree row, as its references
    assert sum(line.startswith("| net [sigma_deg=2, sigma_px=48] ") for line in lines) == 1
    assert ("Rows blurred otherwise than the rest (net [sigma_deg=2, sigma_px=48]): their density metrics use "
            "another human density, so their scores do not compare with the others'.") in " ".join(lines)
    # the same model re-run with the same settings later still supersedes
    write_run(root, model="net", metrics={"nss": 1.2}, seed=1, finished_at="2025-03-03T12:00:00+00:00")
    rows, _, _ = leaderboard_rows(load_runs(root))
    assert sorted((r["model"], r["nss"]) for r in rows) == [("human-ceiling", 3.0), ("net", 1.2), ("net", 1.4)]

    other = tmp_path / "profiles"
    write_run(other, model="net", metrics={"nss": 1.0})
    write_run(other, model="net", metrics={"nss": 1.1}, profile="pysaliency")
    text = render_table(load_runs(other), "github")
    assert "Metric profile mit:" in text and "Metric profile pysaliency:" in text
    assert text.index("Metric profile mit:") < text.index("1.0000") < text.index("Metric profile pysaliency:") \
        < text.index("1.1000")
    table = list(csv.DictReader(io.StringIO(render_table(load_runs(other), "csv"))))
    assert sorted(r["metric_profile"] for r in table) == ["mit", "pysaliency"]


def test_calibrated_numbers_alone_are_titled(tmp_path):
    """`eval --scoring calibrated` shows only calibrated runs: the table came untitled (uniform's NSS
    0.9 read as a bug); alone or beside raw runs, with or without --ci, it has one title. Raw runs
    alone stay untitled."""
    from harness.leaderboard.table import SCORING_TITLES, render_table
    from harness.results import load_runs

    cal, raw = tmp_path / "cal", tmp_path / "raw"
    for root, scoring in ((cal, "calibrated"), (raw, "raw")):
        write_run(root, model="net", metrics={"nss": 1.2, "ig": 0.4}, scoring=scoring)
        write_run(root, model="uniform", kind="baseline", attention="prior", metrics={"nss": 0.9, "ig": 0.0},
                  scoring=scoring)
    title = SCORING_TITLES["calibrated"]
    for ci in (False, True):
        text = render_table(load_runs(cal), ci=ci, n_boot=100)
        assert text.startswith(title + "\n\n|") and text.count(title) == 1, text
        assert "Raw scoring" not in render_table(load_runs(raw), ci=ci, n_boot=100)
    assert title not in render_table(load_runs(cal), fmt="csv")  # csv says it in its scoring column


def test_the_different_stimuli_note_gives_advice_that_mends_it(tmp_path):
    """An aligned model scored on its held-out subset beside models of the same --limit: the note
    advised "the same --limit", which they already had."""
    root = tmp_path / "runs"
    write_run(root, model="net", metrics={"nss": 1.4}, n_images=20)
    write_run(root, model="net-aligned", metrics={"nss": 1.5}, n_images=6,
              stimuli={"subset": "held-out", "n": 6, "sha256": "0" * 64})
    last = render_table(load_runs(root)).splitlines()[-1]
    assert last == ("osie/free-viewing: rows scored on different stimuli (20 images: net; 6 images (held-out): "
                    "net-aligned): their means are over different images and do not compare; `harness report` "
                    "compares an aligned model with its base on its held-out stimuli"), last
    write_run(root, model="other", metrics={"nss": 1.0}, n_images=40)
    last = render_table(load_runs(root)).splitlines()[-1]
    assert last.endswith("do not compare; evaluate every model with the same --limit; `harness report` compares "
                         "an aligned model with its base on its held-out stimuli"), last


def test_the_different_stimuli_note_labels_rows_of_another_blur(tmp_path):
    """Two runs of one model at two blurs on 20 stimuli beside a 40-stimulus run: the note named
    the model twice ("net, net") without the label the table gives the second."""
    root = tmp_path / "runs"
    write_run(root, model="net", metrics={"nss": 1.4}, n_images=20)
    write_run(root, model="other", metrics={"nss": 1.1}, n_images=20)
    write_run(root, model="net", metrics={"nss": 1.2}, n_images=20,
              metric_params={"sigma_deg": 2.0, "sigma_px": 48.0})
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0}, n_images=40)
    lines = render_table(load_runs(root)).splitlines()
    (note,) = [line for line in lines if "rows scored on different stimuli" in line]
    sets = note.split(" (", 1)[1].split("): their means", 1)[0]
    assert sets == "40 images: center-bias; 20 images: net, net [sigma_deg=2, sigma_px=48], other", sets


def test_a_filter_that_matches_nothing_names_what_there_is(tmp_path):
    """`--task detect` (a typo) said "no finished runs to show", as if the folder were empty."""
    from harness.leaderboard.publish import publish_to_folder

    runs = tmp_path / "runs"
    write_run(runs, model="net", metrics={"nss": 1.0})
    write_run(runs, model="net", metrics={"nss": 1.0}, dataset="mit1003")
    publish_to_folder(runs, tmp_path / "pub")
    for where in (["--results", str(runs)], ["--from", str(tmp_path / "pub")]):
        r = CliRunner().invoke(main, ["leaderboard", "show", *where, "--task", "detect"])
        assert r.exit_code == 1 and r.output.strip().splitlines() == [
            f"Error: no finished run of task 'detect' in {where[1]}; there are: free-viewing"], r.output
        r = CliRunner().invoke(main, ["leaderboard", "show", *where, "--dataset", "osei"])
        assert r.output.strip().endswith("there are: mit1003, osie"), r.output
        r = CliRunner().invoke(main, ["leaderboard", "show", *where, "--dataset", "osie", "--task", "free-viewing"])
        assert r.exit_code == 0 and "mit1003" not in r.output and "net" in r.output


def test_a_row_on_another_version_of_the_dataset_is_labelled_and_noted(tmp_path):
    """A model evaluated on an unedited copy of the data sat beside the references of the edited one,
    unlabelled (only --ci said 'another dataset version'; found by a plugin author's QA)."""
    from harness.leaderboard.publish import publish_to_folder

    root = tmp_path / "runs"
    write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out", metrics={"nss": 3.0})
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0})
    write_run(root, model="net", metrics={"nss": 1.5})
    write_run(root, model="old-net", metrics={"nss": 1.4}, dataset_fingerprint="742c8801" + "0" * 56)
    publish_to_folder(root, tmp_path / "pub")
    for where in (["--results", str(root)], ["--from", str(tmp_path / "pub")]):
        r = CliRunner().invoke(main, ["leaderboard", "show", *where, "--wide"])
        assert r.exit_code == 0, r.output
        lines = r.output.splitlines()
        assert [line.split("|")[1].strip() for line in lines if "old-net" in line and line.startswith("|")] == [
            "old-net [data 742c8801]"]
        assert not any("[data" in line for line in lines if "net" in line and "old-net" not in line)
        assert ("Rows scored on another version of the dataset's files than the rest (old-net [data 742c8801]): "
                "the files changed between their runs") in " ".join(r.output.split())
    # one version: no label
    solo = tmp_path / "solo"
    write_run(solo, model="net", metrics={"nss": 1.5})
    write_run(solo, model="other", metrics={"nss": 1.2})
    assert "[data" not in render_table(load_runs(solo))


def test_a_latin1_terminal_gets_the_table_not_a_traceback(tmp_path):
    """Under a Latin-1 locale the tables' arrows (↑ ↓) and the help's † stopped `leaderboard show`,
    its --help and the end of `eval` with UnicodeEncodeError (found by QA): what the terminal cannot
    write becomes '?'."""
    import os
    import subprocess
    import sys

    write_run(tmp_path / "runs", model="net", metrics={"nss": 1.5, "kld": 1.2})
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "COLUMNS": "200"}
    for args in (["leaderboard", "show", "--results", str(tmp_path / "runs")], ["leaderboard", "show", "--help"]):
        out = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, env=env, timeout=120)
        assert out.returncode == 0 and b"Traceback" not in out.stderr, out.stderr.decode("latin-1")
    assert b"nss ?" in subprocess.run([sys.executable, "-m", "harness", "leaderboard", "show", "--results",
                                       str(tmp_path / "runs")], capture_output=True, env=env, timeout=120).stdout


def _hostile_runs(root):
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0})
    write_run(root, model="a|b", metrics={"nss": 1.3})
    write_run(root, model="line\u2028sep\nnext", metrics={"nss": 1.2})
    write_run(root, model="<img src=x onerror=alert(1)>", metrics={"nss": 1.1})
    write_run(root, model="[link](javascript:alert(4))", metrics={"nss": 0.9})
    write_run(root, model="plain", metrics={"nss": 0.8, "<img src=y onerror=alert(5)>": 0.3, "m|x": 0.2},
              task_metrics={"<svg onload=alert(6)>": 0.5})
    return root


@pytest.mark.parametrize("fmt", ["markdown", "github"])
def test_markdown_formats_escape_names_and_headers(tmp_path, fmt):
    """What these formats print is pasted into Markdown: a `|` in a name added a column, a line
    separator split the row, and HTML or a link in a name or a metric's name stayed live."""
    root = _hostile_runs(tmp_path / "runs")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(root), "--format", fmt, "--wide"])
    assert r.exit_code == 0, r.output
    table = [l for l in r.output.split("\n\n")[0].splitlines() if not re.fullmatch(r"[|:\- ]+", l)]
    cells = [re.split(r"(?<!\\)\|", l.strip().strip("|")) for l in table]
    assert len(table) == 7 and {len(c) for c in cells} == {len(cells[0])}  # header + 6 rows, no extra column
    assert "<" not in r.output and not re.search(r"(?<!\\)\]\(", r.output) and "\u2028" not in r.output
    assert "&lt;img src=y onerror=alert(5)&gt;" in table[0] and "task:&lt;svg onload=alert(6)&gt;" in table[0]
    assert r"m\|x" in table[0] and any(r"a\|b" in l for l in table)
    assert any(r"\[link\](javascript:alert(4))" in l for l in table)


def test_csv_tells_apart_the_rows_the_human_formats_label(tmp_path):
    """Two runs of one model on other versions of the dataset's files, of the task's scoring or with
    another seed: the human formats label them ([data bbbbbbbb], [task v1]); csv rows were identical
    but for their numbers and run ids."""
    root = tmp_path / "runs"
    write_run(root, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 1.0},
              task_params={"version": 2, "aliases": "coco"})
    write_run(root, model="net", metrics={"nss": 1.2}, task_params={"version": 2, "aliases": "coco"})
    write_run(root, model="net-data", metrics={"nss": 1.1}, dataset_fingerprint="bb" * 32,
              task_params={"version": 2, "aliases": "coco"})
    write_run(root, model="net-old", metrics={"nss": 1.3}, seed=4, task_params={"version": 1})
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(render_table(load_runs(root), "csv")))}
    assert rows["net"]["dataset_fingerprint"] == "f0" * 32 and rows["net-data"]["dataset_fingerprint"] == "bb" * 32
    assert rows["net"]["task_version"] == "2" and rows["net-old"]["task_version"] == "1"
    assert json.loads(rows["net"]["task_params"]) == {"version": 2, "aliases": "coco"}
    assert rows["net"]["seed"] == "0" and rows["net-old"]["seed"] == "4"
    assert list(rows["net"])[:17] == ["model", "kind", "attention", "dataset", "task", "scoring", "metric_profile",
                                      "n_images", "n_failed", "n_degenerate", "sigma_deg", "sigma_px",
                                      "dataset_fingerprint", "task_version", "task_params", "seed", "run_id"]


CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def test_control_characters_of_names_never_reach_the_terminal(tmp_path):
    """A model named with ESC ] 52 (a clipboard write) or ESC ] 8 (a hyperlink) passed unchanged
    through `show --format plain` and csv, ESC and BEL through github and markdown, and a build
    warning printed a file's value as it was (found by the security QA)."""
    from harness.leaderboard.publish import publish_to_folder

    runs = tmp_path / "runs"
    clip = "m\x1b]52;c;ZWNobyBwd25lZA==\x07"
    link = "\x1b]8;;https://evil.test\x1b\\click\x1b]8;;\x1b\\\x9b31m"
    write_run(runs, model=clip, metrics={"nss": 1.0}, attention=link)
    write_run(runs, model="center-bias", kind="baseline", attention="prior", metrics={"nss": 0.5},
              metric_params={"sigma_deg": 2.0, "sigma_px": 48.0})
    folder = tmp_path / "pub"
    publish_to_folder(runs, folder)
    for source in (["--results", str(runs)], ["--from", str(folder)]):
        for fmt in ("github", "markdown", "plain", "csv", "html"):
            r = CliRunner().invoke(main, ["leaderboard", "show", *source, "--format", fmt])
            assert r.exit_code == 0, r.output
            assert not CONTROL.search(r.output) and "52;c;ZWNobyBwd25lZA==" in r.output, (fmt, r.output)
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(runs), "--format", "csv"])
    assert list(csv.reader(io.StringIO(r.output)))[1][0] == "m\ufffd]52;c;ZWNobyBwd25lZA==\ufffd"
    # a folder name is data too: it is in every line that names a damaged run
    bad = runs / "x\x1b]52;c;aGk=\x07"
    next(runs.iterdir()).rename(bad)
    for command in (["leaderboard", "show", "--results", str(runs)], ["verify", str(runs)],
                    ["leaderboard", "build", "--results", str(runs), "-o", str(tmp_path / "site"),
                     "--data-dir", str(tmp_path / "no-data")]):
        r = CliRunner().invoke(main, command)
        assert "x\ufffd]52;c;aGk=\ufffd" in r.output and not CONTROL.search(r.output), r.output
