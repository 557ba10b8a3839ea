"""``harness compare RUN_A RUN_B``: are two runs' numbers really different? Every metric's paired
bootstrap interval and sign-flip test over the stimuli both runs scored
(:func:`harness.alignment.compare.pair`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import main
from . import FOLDER, MIN_BOOT


def load_checked(path: Path):
    """A finished run folder that holds together, or one line saying why not (the checks every
    reader of a results folder makes, :func:`harness.results.verify.run_problems`)."""
    from ..errors import HarnessError
    from ..results import read_run
    from ..results.verify import run_problems

    path = Path(path)
    if not path.exists():
        raise HarnessError(f"{path} does not exist")
    if not (path / "settings.json").is_file():
        raise HarnessError(f"{path}: not a run folder (no settings.json)")
    run = read_run(path)
    if not run.finished:
        raise HarnessError(f"{path}: not a finished run (no summary.json); run the same `harness eval` again to finish it")
    problems = run_problems(run)
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise HarnessError(f"{path}: damaged run ({problems[0]}{more}); `harness verify` tells more")
    return run


@main.command()
@click.argument("run_a", type=FOLDER)
@click.argument("run_b", type=FOLDER)
@click.option("--metric", "metrics", multiple=True,
              help="Compare only this metric (repeatable; a task score as task:NAME). Default: every metric.")
@click.option("--n-boot", type=click.IntRange(min=MIN_BOOT), default=10000, show_default=True, help="Bootstrap resamples.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the bootstrap (and of the sign flips above 30 stimuli).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (NaN as null).")
def compare(run_a: Path, run_b: Path, metrics: tuple[str, ...], n_boot: int, seed: int, as_json: bool) -> None:
    """Paired test of RUN_B against RUN_A (run folders) on the stimuli both scored: for every
    metric, the mean difference B - A with its 95% percentile-bootstrap interval and the p-value of
    the paired sign-flip test.

    The runs must be scored the same way (dataset, metric profile and parameters, task, seed);
    a pair that is not, or a run that is unfinished or damaged, is refused with one line."""
    from ..alignment.compare import format_table, pair
    from ..errors import HarnessError
    from .report import _jsonable

    a, b = load_checked(run_a), load_checked(run_b)
    ceilings = [r for r in (a, b) if r.settings.get("kind") == "ceiling"]
    if len(ceilings) == 1:  # printed '-2.83 ... worse' for a model against it (found by QA)
        raise HarnessError(f"{ceilings[0].path}: the human ceiling scores each observer against the others, one "
                           "left-out observer at a time, not the fixations a model is scored against: a paired "
                           "difference would not compare like with like (`harness leaderboard show --ci` gives its "
                           "interval)")
    if Path(a.path).resolve() == Path(b.path).resolve():  # all-zero differences, p = 1, unsaid (found by QA)
        click.echo(f"note: {run_a} and {run_b} are the same run: every difference is 0", err=True)
    frame_a, frame_b = a.per_image(), b.per_image()
    gaze = [m for m in metrics if not m.startswith("task:")]
    tasks = [m for m in metrics if m.startswith("task:")]
    if metrics:
        unknown = [m for m in metrics if m not in frame_a.columns or m not in frame_b.columns]
        if unknown:
            from ..results.summary import metric_columns

            shared = [m for m in metric_columns(frame_a) if m in frame_b.columns]
            shared += [c for c in frame_a.columns if str(c).startswith("task:") and c in frame_b.columns]
            raise HarnessError(f"--metric {unknown[0]}: not a metric of both runs; they share: "
                               f"{', '.join(map(str, shared)) or 'none'}")
    directions = {**(a.summary.get("metric_directions") or {}), **(b.summary.get("metric_directions") or {})}
    result = pair(a.settings, frame_a, b.settings, frame_b, metrics=gaze if metrics else None, n_boot=n_boot,
                  seed=seed, directions=directions)
    if metrics:  # pair compares every shared task score; keep the ones asked for
        result["task"] = {k: v for k, v in result["task"].items() if f"task:{k}" in tasks}
    result = {"run_a": str(a.path), "run_b": str(b.path), **result}
    if as_json:
        click.echo(json.dumps(_jsonable(result), indent=2, allow_nan=False))
        return
    click.echo(f"A: {a.run_id}\nB: {b.run_id}")
    click.echo(format_table(result))
    tests = len(result["metrics"]) + len(result["task"])
    click.echo(f"diff = B - A, mean over the paired stimuli; interval: paired percentile bootstrap, {n_boot:,} "
               f"resamples, seed {seed}; p: two-sided sign-flip permutation test (exact up to 30 stimuli)"
               + (f", not corrected for the {tests} comparisons" if tests > 1 else "") + ".")
