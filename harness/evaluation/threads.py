"""How many threads and processes each stage gets, set deliberately.

On a small machine torch, OpenBLAS and numba each start a thread per core and then fight (measured:
the human ceiling 2.4x slower on 2 busy cores). Each process here gets its share of the cores
(``cores / processes on this machine``) and splits it between the model (torch intra-op threads,
one by default on CPU) and the scoring workers (one thread each: numba and BLAS limited to 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

#: below this many stimuli a scoring pool costs more to start (about a second a worker) than it saves
POOL_MIN_STIMULI = 48


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Plan:
    model_threads: int  # torch intra-op threads for the model (CPU) / feeding the GPU
    score_workers: int  # scoring processes; 0: score in this process
    loader_workers: int  # DataLoader processes decoding images
    model_copies: int = 1  # CPU: model instances running batches side by side, each on model_threads

    def describe(self) -> str:
        return (f"model threads {self.model_threads} x {self.model_copies} copies, scoring processes "
                f"{self.score_workers or 'none (inline)'}, decoding processes {self.loader_workers or 'none (inline)'}")


def plan(*, local_processes: int = 1, device: str = "cpu", n_stimuli: int = 0, score_workers: int | None = None,
         loader_workers: int | None = None, model_threads: int | None = None, model: bool = True,
         model_copies: int | None = None, copies_ok: bool = True) -> Plan:
    """Share this process' cores. On CPU the model runs on ``model_threads`` threads (default 1: a CPU
    model's arithmetic depends on its thread count, so one thread per process makes results the
    same for any number of processes and any machine size), in ``model_copies`` instances that run
    batches side by side (default: one per core for three quarters of this process' cores, up to
    :data:`COPIES_MAX`, when there are enough stimuli; each batch is computed whole by one
    instance, so the numbers do not depend on the count either; ``copies_ok`` False, a model not
    known to run safely as several instances: one unless ``model_copies`` says otherwise), and the
    scorers get the cores left. On a GPU the model needs one core to feed it. References (no model)
    score on every core."""
    mine = max(1, cores() // max(1, local_processes))
    threads = max(1, model_threads or 1)
    copies = 1
    if model and device == "cpu":
        if model_copies is not None:
            copies = max(1, model_copies)
        elif copies_ok and n_stimuli >= POOL_MIN_STIMULI:
            # a quarter of the cores (from 4) left to scoring, which costs a model like
            # EfficientNet-Lite0 about a fifth of its own time; on 2 cores both run the model
            # and score inline between its batches (measured: 1.3-1.5x the one-copy command)
            copies = max(1, min(COPIES_MAX, (mine - mine // 4) // threads))
    busy = threads * copies  # the model's cores
    if score_workers is None:
        if mine < 2 or n_stimuli < POOL_MIN_STIMULI:
            score_workers = 0
        elif not model:
            score_workers = mine
        else:
            # one spare core does not pay for a scoring process next to a one-thread model
            # (measured on 2 cores, 700 OSIE stimuli: 33.9 s with it, 32.7 s inline)
            spare = mine - busy
            score_workers = spare if spare >= 2 else 0
    if loader_workers is None:
        loader_workers = 1 if (model and mine - busy >= 2 and n_stimuli >= POOL_MIN_STIMULI) else 0
    return Plan(model_threads=threads if model else 1, score_workers=max(0, score_workers),
                loader_workers=max(0, loader_workers), model_copies=copies)


#: at most this many model instances by default (each holds the model's weights in memory)
COPIES_MAX = 8


def check_not_starting_worker() -> None:
    """Stop a scoring or decoding process that is re-running the caller's script.

    Python starts worker processes with ``spawn`` (here, and everywhere on macOS and Windows): the
    new process imports the parent's main script again before it becomes a worker. A script that
    calls ``harness.evaluate`` at its top level then evaluates again inside the worker, which waits
    for the parent's run-folder lock while the parent waits for the worker: a silent hang (the
    README's Python example, saved as a script, did this). Such a process exits here with one line
    that says how to fix the script."""
    import multiprocessing

    # multiprocessing sets this private flag while a new process imports the parent's main module
    # (spawn and forkserver); its own "bootstrapping phase" check reads the same flag
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise SystemExit("harness: this script started again inside one of the evaluation's worker processes "
                         "(Python re-imports the main script there); put the code that calls harness under "
                         "`if __name__ == \"__main__\":`")


def limit_this_process(threads: int) -> Callable[[], None]:
    """torch, BLAS/OpenMP and numba use at most ``threads`` threads in this process. Returns a
    function that puts the previous counts back (``harness.evaluate`` in a notebook must not leave
    the user's torch on one thread)."""
    undo: list[Callable[[], None]] = []
    try:
        from threadpoolctl import threadpool_limits

        undo.append(threadpool_limits(threads).restore_original_limits)
    except ImportError:  # pragma: no cover - a declared dependency
        pass
    try:
        import numba

        before = numba.get_num_threads()
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
        undo.append(lambda: numba.set_num_threads(before))
    except Exception:  # numba's threading layer may refuse after its first parallel call
        pass
    import sys

    if "torch" in sys.modules:
        import torch

        torch_before = torch.get_num_threads()
        torch.set_num_threads(threads)
        undo.append(lambda: torch.set_num_threads(torch_before))

    def restore() -> None:
        for step in reversed(undo):
            try:
                step()
            except Exception:  # best effort: a pool that refuses keeps the evaluation's count
                pass

    return restore


#: glibc mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: maps of up to this many bytes come from the reused heap (a 1920x1080 float64 map is 16.6 MB)
HEAP_MAPS = 64 << 20


def keep_heap() -> bool:
    """Keep freed map-sized arrays in this process' heap instead of returning them to the system.

    Every stimulus allocates a few maps of several MB (the map, the human density, work arrays).
    glibc serves such sizes with a fresh ``mmap`` (or trims the heap after they are freed), so each
    one is paid again in page faults: measured 10 ms of system time per stimulus in a scoring
    process on OSIE. With the thresholds raised the pages are reused. Arithmetic is untouched.
    Linux with glibc only; elsewhere a no-op (returns False)."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, HEAP_MAPS)) and bool(mallopt(_M_TRIM_THRESHOLD, 4 * HEAP_MAPS))
