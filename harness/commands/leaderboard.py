"""``harness leaderboard show``: the leaderboard of a results folder as a table."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli import LazyHelpOption, main, output_width, task_help
from . import MIN_BOOT, results_option


@main.group()
def leaderboard() -> None:
    """Leaderboard tables, the static site, and Hub publishing."""


@leaderboard.command()
@results_option("Folder holding run folders (as written by `harness eval --output`).")
@click.option("--from", "source", default=None, help="A published leaderboard: a Hub dataset repo ORG/NAME or a folder.")
@click.option("--format", "fmt", type=click.Choice(["github", "markdown", "html", "csv", "plain"]), default="github",
              show_default=True,
              help="Table format; csv is machine-readable: plain column names, a kind column, plain model names "
                   "and numeric n_images, n_failed, n_degenerate columns.")
@click.option("--primary", default=None, help="Metric to sort by (default: nss).")
@click.option("--dataset", default=None, help="Only rows of this dataset.")
@click.option("--task", default=None, cls=LazyHelpOption, help_fn=task_help("Only rows of this task"))
@click.option("--wide", is_flag=True,
              help="Keep every column. By default the github and plain tables, on a terminal or with $COLUMNS "
                   "set, leave out the columns that do not fit (a line under the table names them).")
@click.option("--ci", is_flag=True,
              help="Show each metric's 95% bootstrap interval over stimuli (csv: <metric>_lo/_hi columns) and mark "
                   "primary cells not significantly different from the model above (†) or from center-bias (‡): "
                   "paired sign-flip test, Holm-corrected across the table. Computed from the runs' per-image rows.")
@click.option("--normalise", "--normalize", "normalise", is_flag=True,
              help="Show each gaze metric ceiling-normalised: (model - center-bias) / (human ceiling - center-bias) "
                   "of the same dataset, task and stimuli (0: center-bias, 1: the ceiling; higher is better "
                   "throughout).")
@click.option("--n-boot", type=click.IntRange(min=MIN_BOOT), default=10000, show_default=True,
              help="Bootstrap resamples for --ci.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the --ci bootstrap (and sign flips).")
def show(results_dir: Path, source: str | None, fmt: str, primary: str | None, dataset: str | None, task: str | None,
         wide: bool, ci: bool, normalise: bool, n_boot: int, seed: int) -> None:
    """Print the leaderboard: one row per model x attention x dataset x task."""
    # on a terminal (or with $COLUMNS set) the github and plain tables fit it; markdown, html and csv never
    # are cut, nor is a table redirected to a file
    width = None if wide else output_width(default=None)
    if source is not None:
        from . import folder_path

        def refuse(why):
            raise click.BadParameter(why, param_hint="'--from'")

        # a folder: '~' as for every folder option (`publish --to-folder '~/x'` writes the home
        # folder's); a Hub repo ORG/NAME is left as it is
        if str(source).startswith(("~", ".")) or str(source).strip() == "" or Path(str(source)).exists():
            source = str(folder_path(source, refuse))
        if ci:
            from ..errors import HarnessError

            raise HarnessError("--ci needs the runs' per-image rows: use it with --results, not --from")
        if click.get_current_context().get_parameter_source("results_dir") not in (
                None, click.core.ParameterSource.DEFAULT):
            # one of the two was ignored without a word (found by QA)
            raise click.UsageError("--from shows a published leaderboard and --results a folder of runs: give one")
        from ..leaderboard.publish import render_published

        click.echo(render_published(source, fmt=fmt, primary=primary, width=width, normalise=normalise,
                                    dataset=dataset, task=task))
        return
    from ..leaderboard.table import render_table
    from ..results import load_runs

    from ..leaderboard.table import filtered

    runs = filtered(load_runs(results_dir), lambda r: r.summary, dataset, task, str(results_dir))
    click.echo(render_table(runs, fmt=fmt, primary=primary, width=width, ci=ci, n_boot=n_boot, seed=seed,
                            normalise=normalise))
