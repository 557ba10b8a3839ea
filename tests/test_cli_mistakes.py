"""User mistakes on the command line found by a CLI QA session: each is one line naming what to
change, before any work (no traceback, nothing silently ignored)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from site_helpers import write_run


def _last(r) -> str:
    return r.output.strip().splitlines()[-1]


def test_show_refuses_from_with_results(tmp_path):
    """`leaderboard show --from X --results Y` showed X and ignored Y without a word."""
    from harness.leaderboard.publish import publish_to_folder

    write_run(tmp_path / "runs", model="net", metrics={"nss": 1.0})
    publish_to_folder(tmp_path / "runs", tmp_path / "pub")
    r = CliRunner().invoke(main, ["leaderboard", "show", "--from", str(tmp_path / "pub"), "--results",
                                  str(tmp_path / "runs")])
    assert r.exit_code == 2 and "--from shows a published leaderboard and --results a folder of runs: give one" \
        in r.output
    assert CliRunner().invoke(main, ["leaderboard", "show", "--from", str(tmp_path / "pub")]).exit_code == 0


def test_align_refuses_both_blurs(tmp_path):
    """eval refused --sigma-deg with --sigma-px; align recorded sigma_px and dropped the degrees."""
    r = CliRunner().invoke(main, ["align", "--model", "efficientnet-lite0", "--dataset", "osie", "--loss",
                                  "density-kl", "--output", str(tmp_path / "a"), "--sigma-deg", "1",
                                  "--sigma-px", "3"])
    assert r.exit_code == 2 and "two ways to give the one blur" in r.output
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("model, message", [
    ("hf", "Error: --model hf needs a checkpoint: hf:<Hub id or folder>[@revision][?options] (docs/huggingface.md)"),
])
def test_model_names_that_are_not_models(tmp_path, model, message, osie_dir):
    """`-m hf` said 'load() missing 1 required positional argument: checkpoint'."""
    r = CliRunner().invoke(main, ["eval", "--model", model, "--data-dir", str(osie_dir), "--output",
                                  str(tmp_path / "runs")])
    assert r.exit_code == 1 and _last(r) == message


def test_a_bare_aligned_folder_name_says_how_to_give_it(tmp_path, monkeypatch, osie_dir):
    """`-m al2` (a folder written by `harness align`, here) said 'unknown model'; ./al2 works."""
    folder = tmp_path / "al2"
    folder.mkdir()
    (folder / "align.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["eval", "--model", "al2", "--data-dir", str(osie_dir), "--output", "runs"])
    assert r.exit_code == 1 and _last(r) == ("Error: --model al2: no registered model of that name; the folder al2 "
                                             "here was written by `harness align`: give it as ./al2")


def test_a_cache_folder_that_is_a_file_is_named(tmp_path, osie_dir, monkeypatch):
    """'Error: afile/arrow/osie: Not a directory' named neither the option nor the problem."""
    (tmp_path / "afile").write_text("")
    args = ["eval", "--model", "uniform", "--limit", "2", "--data-dir", str(osie_dir), "--output",
            str(tmp_path / "runs"), "--no-show"]
    r = CliRunner().invoke(main, [*args, "--cache-dir", str(tmp_path / "afile")])
    assert r.exit_code == 1 and _last(r) == f"Error: --cache-dir {tmp_path / 'afile'} is a file, not a folder"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "afile"))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and _last(r) == f"Error: $HARNESS_CACHE_DIR {tmp_path / 'afile'} is a file, not a folder"


def test_blur_messages_say_what_was_given(tmp_path, osie_dir):
    """--sigma-deg 0 said '(0 px at 0 px/deg)' for OSIE's 24 px/deg; -1 a nested 'degrees must be...'."""
    base = ["eval", "--model", "uniform", "--limit", "2", "--data-dir", str(osie_dir), "--output",
            str(tmp_path / "runs"), "--no-show"]
    r = CliRunner().invoke(main, [*base, "--sigma-deg", "0"])
    assert r.exit_code == 1 and _last(r).endswith("got --sigma-deg 0.0 (0 px)"), r.output
    r = CliRunner().invoke(main, [*base, "--sigma-deg=-1"])
    assert r.exit_code == 1 and _last(r) == ("Error: the density blur --sigma-deg must be a finite, non-negative "
                                             "number of degrees, got -1.0"), r.output


def test_compare_says_when_a_run_is_compared_with_itself(tmp_path):
    """All-zero differences with p = 1 and no word, also through a link to the same folder (a run
    against itself stays allowed: test_significance checks its zeros)."""
    run = write_run(tmp_path / "runs", model="net", metrics={"nss": 1.0})
    (tmp_path / "link").symlink_to(tmp_path / "runs")
    other = tmp_path / "link" / Path(run).name
    r = CliRunner().invoke(main, ["compare", str(run), str(other)])
    assert r.exit_code == 0 and f"note: {run} and {other} are the same run: every difference is 0" in r.output


def test_a_name_in_other_case_is_suggested(tmp_path):
    """`-d OSIE` listed every dataset without a suggestion (`-t Free-Viewing` got one)."""
    r = CliRunner().invoke(main, ["eval", "--model", "uniform", "--dataset", "OSIE", "--output", str(tmp_path)])
    assert r.exit_code == 1 and _last(r) == "Error: unknown dataset 'OSIE'; did you mean 'osie'?"


def test_the_datasets_groups_json_flag_reaches_info(osie_dir):
    """`harness datasets --json info osie` printed the text description (the group's flag was ignored)."""
    import json

    r = CliRunner().invoke(main, ["datasets", "--json", "info", "osie", "--data-dir", str(osie_dir)])
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "osie"
    r = CliRunner().invoke(main, ["datasets", "--json", "prune", "osie", "--dry-run"])
    assert r.exit_code == 2 and "--json applies to the listing and to `datasets info`" in r.output


def test_a_baseline_asked_for_as_a_model_is_reported_once(tmp_path, osie_dir):
    """`-m uniform -m center-bias`: the references made center-bias, then the model loop reported the
    same run again as 'already complete, reused' (found by QA)."""
    r = CliRunner().invoke(main, ["eval", "-m", "uniform", "-m", "center-bias", "--limit", "2", "--data-dir",
                                  str(osie_dir), "--output", str(tmp_path / "runs"), "--no-show"])
    assert r.exit_code == 0, r.output
    lines = [line for line in r.output.splitlines() if " images" in line and " -> " in line]
    assert sorted(line.split(" [")[0] for line in lines) == ["center-bias", "human-ceiling", "uniform"], r.output
    assert not any("reused" in line for line in lines), r.output


def test_progress_in_a_log_file_is_whole_lines(tmp_path, osie_dir, capsys):
    """In a log file tqdm's redraws were carriage returns and cursor-up escapes, and a notice printed
    while a bar was open was glued to its line (found by QA): a log gets plain lines."""
    from harness.progress import LogProgress

    r = CliRunner().invoke(main, ["eval", "-m", "uniform", "--limit", "3", "--data-dir", str(osie_dir),
                                  "--output", str(tmp_path / "runs"), "--no-show"])
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output and "\x1b" not in r.output, repr(r.output)
    lines = r.output.splitlines()
    assert "uniform on osie: 3/3 img (100%)" in " ".join(lines)
    assert all(line.count(" on osie: ") <= 1 for line in lines), r.output
    bar = LogProgress(4, "net on osie", "img", disable=False, interval=0.0)
    bar.update(1)
    bar.set_postfix(task="0.5000")
    bar.update(2)
    bar.update(1)  # the last step: said once, by close()
    bar.close()
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert [line.split(", ")[0] for line in err] == ["net on osie: 1/4 img (25%)", "net on osie: 3/4 img (75%)",
                                                     "net on osie: 4/4 img (100%)"]
    assert err[1].endswith(", task=0.5000") and err[2].endswith(", task=0.5000")
