"""Sub-commands of the ``harness`` CLI, one module each; each attaches itself to the groups in
:mod:`harness.cli`. Importing them must stay light (no torch)."""

import importlib
from pathlib import Path

import click

#: the fewest bootstrap resamples (and random sign flips) --n-boot accepts: above 30 stimuli the
#: smallest p-value is 1 / (B + 1), and with few resamples no interval could be trusted
MIN_BOOT = 100

MODULES = ("align", "compare", "datasets_info", "evaluate", "leaderboard", "leaderboard_site", "report", "verify")


def load_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            # a sub-command module not written yet is simply absent from the CLI
            if exc.name != f"{__name__}.{name}":
                raise


class Folder(click.ParamType):
    """A folder option or argument: a leading ``~`` expanded as the shell would (a quoted
    ``'~/runs'`` wrote ``./~/runs`` for ``--output`` while ``--cache-dir`` read the home folder:
    found by QA), and an empty value refused (``--data-dir ''`` read the current folder). Decided on
    the text given: ``./~`` is the folder named ``~`` here (made absolute, so that no later
    ``expanduser`` takes it for the home folder), and ``~name`` of no such user stays a name."""

    name = "folder"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        return folder_path(value, lambda why: self.fail(why, param, ctx),
                           "" if isinstance(param, click.Argument) else ", or leave the option out")


def folder_path(value, fail, leave_out: str = "") -> Path:
    """``value`` as :class:`Folder` reads it; ``fail(why)`` for an empty one."""
    text = str(value)
    if text.strip() == "":
        fail(f"is empty: give a folder{leave_out}")
    path = Path(text)
    if text.startswith("~"):
        try:
            return path.expanduser()
        except RuntimeError:  # '~old_runs': no user of that name, so a folder's name, as in the shell
            pass
    return Path.cwd() / path if path.parts and path.parts[0].startswith("~") else path


FOLDER = Folder()


def _one_results(ctx, param, values) -> Path:
    """``--results`` given twice would otherwise keep the last folder without a word."""
    from ..errors import HarnessError

    if len(values) > 1:
        raise HarnessError(f"--results was given {len(values)} times ({', '.join(map(str, values))}): give one "
                           "folder; it is searched recursively, so a folder holding both works")
    return values[0] if values else Path("runs")


def results_option(help: str):
    """The ``--results`` folder of the commands that read runs (one folder, default ``runs``)."""
    return click.option("--results", "results_dir", type=FOLDER, multiple=True,
                        default=[Path("runs")], show_default=True, callback=_one_results, help=help)
