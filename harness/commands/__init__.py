"""Sub-commands of the ``harness`` CLI, one module each; each attaches itself to the groups in
:mod:`harness.cli`. Importing them must stay light (no torch)."""

import importlib

MODULES = ("align", "compare", "datasets_info", "evaluate", "leaderboard", "leaderboard_site", "report", "verify")


def load_all() -> None:
    for name in MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            # a sub-command module not written yet is simply absent from the CLI
            if exc.name != f"{__name__}.{name}":
                raise
