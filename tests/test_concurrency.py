"""Two real `harness eval` processes on one results folder: one writer per run at a time, shared
references computed once and reused, numbers identical to a sequential run, no duplicate rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.results import load_runs

LIMIT = 30  # the ceiling then takes several seconds: long enough for the second process to meet the lock


def _cmd(out: Path, osie_dir: Path, model: str) -> list[str]:
    return [sys.executable, "-m", "harness", "eval", "--model", model, "--dataset", "osie", "--limit", str(LIMIT),
            "--batch-size", "4", "--data-dir", str(osie_dir), "--output", str(out), "--no-show"]


def _env(osie_cache: Path) -> dict[str, str]:
    import os

    # one thread each: two processes on two cores, as a user starting two jobs would
    return {**os.environ, "HARNESS_CACHE_DIR": str(osie_cache), "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def _together(cmds: list[list[str]], env) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    outs = [p.communicate(timeout=600) for p in procs]
    return [subprocess.CompletedProcess(c, p.returncode, o, e) for c, p, (o, e) in zip(cmds, procs, outs)]


def _by_model(out: Path) -> dict[str, object]:
    runs = load_runs(out)
    by = {r.summary["model"]: r for r in runs}
    assert len(by) == len(runs), "one run per model"
    return by


def _comparable(summary: dict) -> str:
    return json.dumps({k: v for k, v in summary.items() if k != "finished_at"}, sort_keys=True)


def _check_against_sequential(out: Path, seq: Path) -> None:
    together, alone = _by_model(out), _by_model(seq)
    assert sorted(together) == sorted(alone)
    for model, run in together.items():
        frame = run.per_image()
        assert len(frame) == LIMIT and frame["stimulus_id"].is_unique, model
        assert run.summary["n_images"] == LIMIT
        # computed by exactly one process, once
        assert run.manifest["sessions"] == 1, model
        assert _comparable(run.summary) == _comparable(alone[model].summary), model
    for folder in (out, seq):
        r = CliRunner().invoke(main, ["verify", str(folder)])
        assert r.exit_code == 0, r.output


@pytest.mark.slow
def test_same_command_twice_at_once(tmp_path, osie_dir, osie_cache):
    env = _env(osie_cache)
    out, seq = tmp_path / "together", tmp_path / "sequential"
    results = _together([_cmd(out, osie_dir, "uniform"), _cmd(out, osie_dir, "uniform")], env)
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
    # the second process met the first one's lock and waited instead of writing the same rows
    assert any("another harness process is computing this run; waiting" in r.stderr for r in results)
    assert any("already complete, reused" in r.stderr for r in results)
    done = subprocess.run(_cmd(seq, osie_dir, "uniform"), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_against_sequential(out, seq)


@pytest.mark.slow
def test_two_models_at_once_share_the_references(tmp_path, osie_dir, osie_cache):
    env = _env(osie_cache)
    out, seq = tmp_path / "together", tmp_path / "sequential"
    results = _together([_cmd(out, osie_dir, "uniform"), _cmd(out, osie_dir, "center-bias")], env)
    for r in results:
        assert r.returncode == 0, r.stderr[-2000:]
    assert any("waiting" in r.stderr for r in results)
    for model in ("uniform", "center-bias"):
        done = subprocess.run(_cmd(seq, osie_dir, model), env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    _check_against_sequential(out, seq)
    assert sorted(_by_model(out)) == ["center-bias", "human-ceiling", "uniform"]
