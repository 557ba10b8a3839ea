"""Permissions of what the harness writes: what ``open()`` and ``mkdir`` would give under the user's umask.

Files and folders written atomically are first made by :mod:`tempfile`, which creates them private
(0600 / 0700) whatever the umask, and keep that mode when renamed into place: run folders,
converted datasets in a shared cache, a leaderboard site served by a web server running as another
user would all be unreadable to anyone else. Each is given the ordinary mode right after it is
made (before anything is written into it), so a private umask (077) still gives private files.
"""

from __future__ import annotations

import os


def _umask_now() -> int:
    """The process' umask, read without changing it (Linux: ``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _UMASK_AT_IMPORT


def _umask_by_setting() -> int | None:
    """Elsewhere os.umask can only be read by setting it: done once, at import (before any thread
    of the harness writes), and not at all where /proc says it."""
    if os.path.exists("/proc/self/status"):
        return None
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK_AT_IMPORT = _umask_by_setting() or 0o022


def file_mode() -> int:
    return 0o666 & ~_umask_now()


def folder_mode() -> int:
    return 0o777 & ~_umask_now()


def as_if_created(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Give a temporary file or folder the mode a plain ``open()`` / ``mkdir`` would have given it."""
    os.chmod(path, folder_mode() if folder else file_mode())
