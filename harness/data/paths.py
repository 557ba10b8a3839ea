"""Where a gaze dataset's files and its Arrow cache live.

Data folder resolution, first match wins:

1. ``data_dir`` given explicitly (CLI ``--data-dir``): ``data_dir/<name>`` when that folder exists (a
   folder holding one folder per dataset, like ``$HARNESS_DATA_DIR``), else ``data_dir`` itself (the
   dataset's own folder); see :func:`dataset_folder`. Missing -> error;
2. ``$HARNESS_DATA_DIR/<name>``;
3. ``<cache root>/data/<name>`` (where a previous download put it);
4. otherwise the dataset is downloaded from its original source into 3 (atomically).

The cache root is ``cache_dir`` (CLI ``--cache-dir``), else ``$HARNESS_CACHE_DIR``, else
``~/.cache/gaze-harness``. Converted Arrow tables live under ``<cache root>/arrow/<name>/``.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "HARNESS_DATA_DIR"
CACHE_ENV = "HARNESS_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/gaze-harness")

#: the help text of every command's ``--data-dir`` (eval, align, datasets info/prune, leaderboard
#: build/publish): one rule, one wording
DATA_DIR_HELP = ("Folder holding the dataset's files, or a folder holding one folder per dataset (like "
                 "$HARNESS_DATA_DIR): DIR/NAME is used when it exists, else DIR itself "
                 "(default: $HARNESS_DATA_DIR/NAME, then the cache).")


def dataset_folder(name: str, data_dir: str | os.PathLike | None) -> Path | None:
    """The data folder of dataset ``name`` given ``--data-dir DIR``: ``DIR/<name>`` when it is a
    folder (DIR holds one folder per dataset, like ``$HARNESS_DATA_DIR``), else ``DIR`` itself (the
    dataset's own folder). None when no folder was given."""
    if data_dir is None or str(data_dir) == "":
        return None
    root = Path(data_dir).expanduser()
    return root / name if (root / name).is_dir() else root


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: explicit argument, else ``$HARNESS_CACHE_DIR``, else ``~/.cache/gaze-harness``."""
    if cache_dir:
        root, given = Path(cache_dir).expanduser(), "--cache-dir"
    elif os.environ.get(CACHE_ENV):
        root, given = Path(os.environ[CACHE_ENV]).expanduser(), f"${CACHE_ENV}"
    else:
        root, given = DEFAULT_CACHE.expanduser(), "the default cache"
    if root.is_file():  # said here, not as 'afile/arrow/osie: Not a directory' later (found by QA)
        from ..errors import HarnessError

        raise HarnessError(f"{given} {root} is a file, not a folder")
    return root


def downloaded_data_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a download of dataset ``name`` is installed."""
    return cache_root(cache_dir) / "data" / name


def arrow_cache_dir(name: str, cache_dir: str | os.PathLike | None = None) -> Path:
    """Parent folder of the converted Arrow tables of dataset ``name`` (one sub-folder per fingerprint)."""
    return cache_root(cache_dir) / "arrow" / name


def candidate_data_dirs(name: str, cache_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The folders searched when no explicit data folder is given, in order, each with its origin."""
    out: list[tuple[Path, str]] = []
    env = os.environ.get(DATA_ENV)
    if env:
        out.append((Path(env).expanduser() / name, f"${DATA_ENV}/{name}"))
        if Path(env).expanduser().name == name:  # set to the dataset's own folder (named for it), not its parent
            out.append((Path(env).expanduser(), f"${DATA_ENV}, named {name}"))
    out.append((downloaded_data_dir(name, cache_dir), "cache"))
    return out
