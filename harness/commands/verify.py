"""``harness verify``: check that every run of a results folder holds together."""

from __future__ import annotations

import json
from pathlib import Path

import click

from . import FOLDER
from ..cli import main


@main.command()
@click.argument("results", type=FOLDER)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output: one object per run.")
def verify(results: Path, as_json: bool) -> None:
    """Recompute every summary under RESULTS from its shards and check shard hashes and types.

    Exit status 0 when every run holds together, 1 when any does not (each problem is listed).
    RESULTS may be a results folder or one run folder."""
    from ..errors import HarnessError
    from ..results import read_run, run_dirs
    from ..results.store import terminal_safe
    from ..results.verify import run_problems

    paths = [results] if (results / "settings.json").is_file() else run_dirs(results)
    if not paths:
        raise HarnessError(f"{results}: no run folders (folders with settings.json) found")
    report = []
    for path in paths:
        try:
            run = read_run(path)
            problems = run_problems(run)
            state = "finished" if run.finished else "unfinished"
        except HarnessError as exc:
            problems, state = [str(exc).removeprefix(f"{path}/")], "unreadable"
        report.append({"run": str(path), "state": state, "ok": not problems, "problems": problems})
    bad = [r for r in report if not r["ok"]]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for r in report:
            mark = "ok  " if r["ok"] else "FAIL"
            click.echo(terminal_safe(f"{mark} {r['run']} ({r['state']})"))  # folder names are data too
            for p in r["problems"]:
                click.echo(terminal_safe(f"     - {p}", one_line=True))
        good = len(report) - len(bad)
        click.echo(f"{good} of {len(report)} {'run holds' if len(report) == 1 else 'runs hold'} together"
                   + (f"; {len(bad)} {'does' if len(bad) == 1 else 'do'} not" if bad else ""))
    if bad:
        raise SystemExit(1)
