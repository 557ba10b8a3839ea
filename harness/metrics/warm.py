"""The metric kernels' first compilation, shared by the processes that need it at the same time.

numba compiles a kernel on its first call and caches the machine code on disk, but a process
looks the cache up only once, at that first call: two processes that start scoring together on a
fresh machine (the README's first command: the model's process and the references' scoring
process) each compiled the same kernels, ~10 s of one core each. :func:`warm` compiles (or loads)
a list of kernels for their signatures up front, one kernel at a time under a file lock beside
numba's cache: a process skips a kernel another process is compiling and takes the next one, and
loads the skipped ones from the cache once their lock is free. The work is split instead of
doubled; with a warm cache :func:`warm` only loads what the first calls would have loaded.

The signatures are those the default evaluation calls with (``tests/test_metrics_warm.py`` runs
the scoring paths after :func:`warm` and checks that nothing is left to compile). A kernel left
out still works: it compiles at its first call, as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator

import numpy as np

_DONE: set[str] = set()
_LOCK = threading.Lock()


def _examples() -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    """Per tier, ``(kernel name, example arguments)``: the arguments' numba types are the
    signature (an array's dtype, layout and read-only flag; a Python bool, int or float)."""
    f8, i8, i4, u1 = (np.empty(1, t) for t in (np.float64, np.int64, np.int32, np.uint8))
    f4 = np.empty(1, np.float32)
    f8r = np.empty(1)
    f8r.flags.writeable = False  # maps read from Arrow files are read-only
    f82 = np.empty((1, 1))
    f, i, b = 0.0, 0, False
    return {
        # every scoring process: the metric suite and the fixations' pixel indices
        "suite": [
            ("bucket_counts_into", (f8, i8, b, f, f, i, f8, i4, i8, u1, i8, i, f, f, b)),
            ("density_pass", (f8, f8, b, b, f, f, f, b, f, f, f, f, b, f, f)),
            ("stats", (f8,)),
            ("stats", (f8r,)),
            ("kth_largest_bracketed_shifted", (f8, f, f, i, f8, b, f)),
            ("minmax_preimages", (f, f, f8)),
            ("scaled_pixel_indices", (f4, f4, i, i, f, f, f, f, f, i, i, i8)),
            ("unique_minmax_counts", (f8, i8, u1, i, f, f, f8, f8)),
            ("pixel_indices", (f8, f8, i, i, i8)),
            ("shifted_sum", (f8r, f)),
            ("kld_sum", (f8, f, f, f, f8, f)),
            ("counts_at_or_above", (f8, i8, f8, f8)),
            ("gathered_counts", (f8, i8, f8, f8)),
        ],
        # the human ceiling's leave-one-out maps
        "ceiling": [
            ("leave_one_out_weighted", (f82, f8, f82)),
            ("scale_stats", (f8, f)),
        ],
    }


def warm(*tiers: str) -> None:
    """Compile or load the kernels of ``tiers`` (``"suite"``, ``"ceiling"``) in this process,
    sharing the compilation with any other process doing the same (module docstring). Once per
    tier and process; a no-op where numba's JIT is disabled."""
    with _LOCK:  # threads of one process (model copies) wait for one warm-up
        todo = [t for t in tiers if t not in _DONE]
        if not todo:
            return
        from numba.core.dispatcher import Dispatcher

        from . import kernels

        examples = _examples()
        pending = []
        for tier in todo:
            for name, args in examples[tier]:
                disp = getattr(kernels, name)
                if isinstance(disp, Dispatcher):
                    pending.append((disp, _signature(args)))
        while pending:
            left = []
            for disp, sig in pending:
                with _kernel_lock(disp, wait=False) as held:
                    if held:
                        _compile(disp, sig)  # loads it from the cache where another process put it
                    else:
                        left.append((disp, sig))
            if len(left) == len(pending):  # all being compiled elsewhere: wait for the first
                disp, sig = left.pop(0)
                with _kernel_lock(disp, wait=True):
                    _compile(disp, sig)
            pending = left
        _DONE.update(todo)


def _compile(disp: Any, sig: tuple[Any, ...]) -> None:
    try:
        disp.compile(sig)
    except Exception:  # a signature the kernel no longer takes: its first call compiles what it needs
        pass


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    from numba import typeof

    return tuple(typeof(a) for a in args)


@contextlib.contextmanager
def _kernel_lock(disp: Any, wait: bool) -> Iterator[bool]:
    """The harness' usual file lock (``filelock``) on ``<numba's cache folder>/<kernel>.compile.lock``,
    kept as every lock file of the harness; yields whether it is held. Where there can be no such
    lock (a kernel numba does not cache, a cache folder that cannot be written), yields True: the
    kernel compiles as it would have at its first call."""
    from filelock import FileLock, Timeout

    try:
        path = os.path.join(disp._cache._cache_path, f"{disp.py_func.__qualname__}.compile.lock")
    except AttributeError:
        yield True
        return
    lock = FileLock(path, blocking=wait, preserve_lock_file=True)
    try:
        lock.acquire()
    except Timeout:  # another process holds it
        yield False
        return
    except OSError:
        yield True
        return
    try:
        yield True
    finally:
        lock.release()
