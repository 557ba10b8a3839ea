"""Where a gaze dataset's files and its Arrow cache live.

Data folder resolution, first match wins:

1. ``data_dir`` given explicitly (CLI ``--data-dir``): used as is, never second-guessed; missing -> error;
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


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache root: explicit argument, else ``$HARNESS_CACHE_DIR``, else ``~/.cache/gaze-harness``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return DEFAULT_CACHE.expanduser()


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
    out.append((downloaded_data_dir(name, cache_dir), "cache"))
    return out
