"""``harness leaderboard build`` (static site) and ``harness leaderboard publish`` (Hub dataset repo,
optionally a Space). Both attach to the ``leaderboard`` group of :mod:`harness.commands.leaderboard`."""

from __future__ import annotations

from pathlib import Path

import click

from ..data.paths import DATA_DIR_HELP
from ..results.examples import EXAMPLE_MAPS as DEFAULT_EXAMPLES
from . import FOLDER, results_option
from .leaderboard import leaderboard

_results = results_option("Folder holding run folders (as written by `harness eval --output`).")
_data_dir = click.option("--data-dir", type=FOLDER, default=None,
                         help=DATA_DIR_HELP + " Read only for a dataset whose converted table (the one its "
                              "runs scored) is not in the cache; nothing is ever downloaded.")
_cache_dir = click.option("--cache-dir", type=FOLDER, default=None,
                          help="Cache root of the converted datasets (default: $HARNESS_CACHE_DIR or "
                               "~/.cache/gaze-harness).")
_primary = click.option("--primary", default=None, help="Headline gaze metric (default: nss).")
_examples = click.option("--examples", "n_examples", type=click.IntRange(min=0), default=DEFAULT_EXAMPLES,
                         show_default=True,
                         help="Example stimuli per run, three to a page: best, median and worst by NSS, then evenly "
                              "spaced NSS ranks (from the maps each run kept).")


def _warnings():
    """A ``warn`` for the site builder that prints each line on stderr at once and counts them."""
    lines: list[str] = []

    def warn(line: str) -> None:
        lines.append(line)
        click.secho(line, err=True, fg="yellow", bold=True)

    return warn, lines


@leaderboard.command("build")
@_results
@click.option("--output", "-o", type=FOLDER, default=Path("site"), show_default=True,
              help="Folder to write the site into (replaced if it holds an earlier build).")
@_data_dir
@_cache_dir
@_primary
@_examples
@click.option("--title", default="gaze-harness leaderboard", show_default=True,
              help="Title of the page (its <title> and heading).")
def build(results_dir: Path, output: Path, data_dir: Path | None, cache_dir: Path | None, primary: str | None,
          n_examples: int, title: str) -> None:
    """Build the static leaderboard site: open OUTPUT/index.html in a browser, or serve the folder.

    A dataset whose human fixation densities cannot be drawn (its converted table is not in the
    cache and its files are not here), and a run's example map that cannot be read, get a warning
    line on stderr; the page is still written and the exit status is 0."""
    from ..leaderboard.site import build_site

    warn, lines = _warnings()
    index = build_site(results_dir, output, data_dir=data_dir, cache_dir=cache_dir, primary=primary,
                       n_examples=n_examples, title=title, warn=warn)
    # not all about human densities: a run's maps left off the page are warned of too
    click.echo(f"wrote {index}" + (f" ({len(lines)} warning(s) above: examples left off the page or drawn "
                                   "without the human fixation density)" if lines else ""))


@leaderboard.command("publish")
@_results
@click.option("--repo", default=None, help="Hub dataset repo ORG/NAME to publish to (required unless --to-folder).")
@click.option("--space", default=None, help="Also upload the static page to this Space ORG/NAME.")
@click.option("--private", is_flag=True, help="Create the repo (and Space) private.")
@click.option("--to-folder", type=FOLDER, default=None,
              help="Write the tree that would be committed into this folder instead; no network.")
@_data_dir
@_cache_dir
@_primary
@_examples
def publish_command(results_dir: Path, repo: str | None, space: str | None, private: bool, to_folder: Path | None,
                    data_dir: Path | None, cache_dir: Path | None, primary: str | None, n_examples: int) -> None:
    """Publish the leaderboard to the Hugging Face Hub in one commit, merging with what is there.

    Uses HF_ENDPOINT and HF_TOKEN from the environment; HF_HUB_OFFLINE=1 refuses to publish."""
    from ..errors import HarnessError
    from ..leaderboard import publish as pub

    if to_folder is not None:
        if space is not None:
            raise HarnessError("--space cannot be combined with --to-folder (use `harness leaderboard build` "
                               "for the page)")
        if repo is not None:
            pub.check_repo_id(repo)
        result = pub.publish_to_folder(results_dir, to_folder, repo=repo, primary=primary)
        click.echo(f"wrote {', '.join(result.files)} to {to_folder} ({result.n_new} run(s), "
                   f"{result.n_rows} rows)")
        return
    if repo is None:
        raise HarnessError("--repo ORG/NAME is required (or --to-folder DIR to write the files locally)")
    warn, _ = _warnings()
    pub.publish(results_dir, repo, space=space, private=private, primary=primary, data_dir=data_dir,
                cache_dir=cache_dir, n_examples=n_examples, echo=lambda s: click.echo(s, err=True), warn=warn)
