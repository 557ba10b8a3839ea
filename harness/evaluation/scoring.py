"""The scoring stage: is a map scorable, and its gaze metrics against the stimulus' fixations."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import HarnessError

#: Negative values down to this fraction of the map's largest magnitude are float round-off
#: (float32 resampling, FFT blurs) and are set to 0; anything below is a real negative value.
ROUNDOFF = 1e-6


@functools.lru_cache(maxsize=8)
def _baseline_map(h: int, w: int) -> np.ndarray:
    """The information-gain baseline: the centre-bias prior (one per stimulus size, computed once)."""
    from plugins.models.baselines import center_bias_map

    m = center_bias_map(h, w)
    m.setflags(write=False)
    return m


@functools.lru_cache(maxsize=8)
def _baseline_inputs(h: int, w: int):
    """The baseline as the metrics share it (:class:`harness.metrics.SharedInputs`), one per stimulus
    size: validated and summed for the first stimulus of that size, not again for every one."""
    from ..metrics import SharedInputs

    return SharedInputs((h, w), baseline=_baseline_map(h, w))


def plugin_metrics() -> list[tuple[str, Callable[..., float]]]:
    """Registered metrics that the built-in suite does not compute (third-party plugins)."""
    from ..metrics import METRICS
    from ..plugins import get_registry

    return [(s.name, s.resolve()) for s in get_registry().in_order("metric") if s.name not in METRICS]


def as_array(smap: Any) -> tuple[np.ndarray | None, str | None]:
    """A model's attention map as a numpy array, or None and why it is not one. A plugin may hand
    back a torch tensor (on any device, still attached to its graph, in bfloat16) or nested lists:
    converted here, in the evaluating process, before the map travels to a scoring process. A
    string, an object or complex numbers are the plugin's mistake, recorded as that stimulus'
    failure with this reason (numpy would have dropped the imaginary part without a word)."""
    if smap is None:
        return None, "model returned no attention map"
    try:
        if hasattr(smap, "detach") and hasattr(smap, "cpu"):  # a torch tensor
            import torch

            smap = smap.detach().cpu()
            if smap.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
                smap = smap.float()
            smap = smap.numpy()
        arr = np.asarray(smap)
    except Exception as exc:
        return None, f"attention map is a {type(smap).__name__}, not an array ({type(exc).__name__}: {exc})"
    if arr.dtype.kind not in "biuf":
        return None, f"attention map has dtype {arr.dtype}, not real numbers"
    return arr, None


def check_map(smap: Any, h: int, w: int, *, constant_expected: bool = False) -> tuple[str, str | None, np.ndarray | None]:
    """``(status, reason, map)`` for a model's attention map.

    ``failed``: nothing to score (no map, wrong shape, NaN/inf, real negative values: attention is a
    non-negative weight of where the model looks; a method with signed output must rectify or shift
    it itself, since the choice changes SIM, KLD and IG). ``degenerate``: a constant map (all zeros is
    the usual sign of a broken method), scored as the uniform prediction it is and counted; not for
    a reference that is constant by design (``constant_expected``: the ``uniform`` baseline).
    ``ok``: scorable; negative round-off is set to 0."""
    smap, why = as_array(smap)
    if smap is None:
        return "failed", why, None
    arr = np.asarray(smap, dtype=np.float64)
    if arr.shape != (h, w):
        return "failed", f"attention map has shape {tuple(arr.shape)}, expected {(h, w)}", None
    if not np.all(np.isfinite(arr)):
        return "failed", "attention map contains NaN or infinite values", None
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:
        if lo < -ROUNDOFF * max(abs(hi), abs(lo)):
            return "failed", (f"attention map has negative values (min {lo:.4g}, max {hi:.4g}); attention maps "
                              "must be non-negative"), None
        arr = np.maximum(arr, 0.0)
        lo = 0.0
    if lo == hi and not constant_expected:
        return "degenerate", f"constant attention map (every pixel {hi:.4g})", arr
    return "ok", None, arr


def score(smap, fix, ctx, i: int, profile: str, seed: int, density=None,
          notes: list[str] | None = None) -> dict[str, float]:
    """Every registered gaze metric of ``smap`` for stimulus ``i`` (``notes``: see :func:`plugin_scores`)."""
    from ..metrics import compute_suite

    w, h = ctx.sizes[i]
    density = ctx.density(i) if density is None else density
    negatives = ctx.negatives(i)
    shared = _baseline_inputs(h, w).with_negatives(**negatives)
    scores = compute_suite(smap, fix.x, fix.y, seed=seed + i, density=density, profile=profile, shared=shared)
    if ctx.extra_metrics:
        context = dict(density=density, baseline=_baseline_map(h, w), profile=profile, **negatives)
        scores.update(plugin_scores(ctx.extra_metrics, smap, fix, seed + i, context, notes))
    return scores


def plugin_scores(metrics, smap, fix, seed: int, context: dict, notes: list[str] | None = None,
                  failures: dict[str, str] | None = None) -> dict[str, float]:
    """Third-party metrics of one map. One that raises (or returns no number) is NaN for this map,
    and why is appended to ``notes`` in one line (and to ``failures``, metric -> exception, if
    given): the built-in metrics and the other plugins' keep their values, so installing a broken
    plugin changes no other number of a run (the NaN is counted in the summary's ``nonfinite``,
    the reason is the row's ``error``)."""
    out = {}
    # read-only views: a metric that writes into its map (or the density, the fixations) would change
    # the numbers of the metrics after it and the maps the run saves
    smap, x, y = _read_only(smap), _read_only(fix.x), _read_only(fix.y)
    context = {k: _read_only(v) for k, v in context.items()}
    for name, fn in metrics:
        try:
            out[name] = _number(fn(smap, x, y, seed=seed, **context))
        except Exception as exc:
            out[name] = math.nan
            why = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever the message holds
            if notes is not None:
                notes.append(metric_failure(name, why))
            if failures is not None:
                failures[name] = why
    return out


def _read_only(a: Any) -> Any:
    if not isinstance(a, np.ndarray) or not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def _number(value: Any) -> float:
    """A metric's value as a float; a string ("0.7"), a bool, an array of more than one value or
    anything else that is not a real number raises (the caller records NaN and why)."""
    from numbers import Real

    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.integer, np.floating)):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise TypeError(f"returned {type(value).__name__} {shown}, not a real number")
    return float(value)


def contested_metrics() -> frozenset[str]:
    """Metric names two plugins register (a built-in's among them): usable by neither, so the
    built-in suite's value of such a name is left out of a run's rows too (docs/plugins.md), as
    the summary leaves it out."""
    from ..plugins import get_registry

    return frozenset(c.name for c in get_registry(warn=False).conflicts("metric"))


def metric_failure(name: str, why: str, where: str = "") -> str:
    """The one line a row's ``error`` says about a plugin metric that raised (``where``: e.g. the
    subjects of a human ceiling's stimulus it raised for)."""
    return f"metric {name!r} failed: {why} ({where}recorded as NaN)"


def join_notes(error: str | None, notes: list[str]) -> str | None:
    """A row's ``error``: its own reason (a degenerate map's) and the notes, each once, in order."""
    parts = ([error] if error else []) + list(dict.fromkeys(notes))
    return "; ".join(parts) if parts else None


# --- the scoring stage: one stimulus' row, in this process or in a pool of worker processes ------


@dataclass
class Job:
    """One stimulus to score: its index in the run's stimuli, and what the model said (nothing for
    the human ceiling)."""

    i: int
    attention: Any = None
    output: dict | None = None
    error: str | None = None  # no map to score: the batch failed (model crash, wrong number of
    # predictions), or this stimulus' map is not an array of real numbers (scoring.as_array)
    infer_s: float = 0.0
    # calibrated scoring (evaluation.calibrated): the map's block means, whether it was constant, and
    # the stimulus' row of the raw run (its status, task scores and output are carried over)
    blocks: Any = None
    constant: bool = False
    raw: dict | None = None


@dataclass(frozen=True)
class RunSpec:
    """What a run's scoring needs besides the stimulus: small, sent with each batch of jobs."""

    kind: str  # "model", "proxy" (human data standing in for gaze, e.g. mouse tracking), "baseline" or "ceiling"
    profile: str
    seed: int
    task: Any = None  # a task object scoring each stimulus' output, or None
    save_maps: int = 0  # keep the maps of stimuli with an index below this (for the page)
    example_side: int = 0  # > 0: a small 8-bit copy of every scored map, for the page's examples (results.examples)
    blocks_factor: int = 0  # > 0: keep each scored map's block means (for a calibrated run)
    calibrated: bool = False  # score jobs' block means as calibrated densities (ctx.calibration)


@dataclass
class Kept:
    """What a scored stimulus leaves for the leaderboard page besides its row."""

    full: np.ndarray | None = None  # the map at stimulus resolution (the first ``save_maps`` stimuli)
    small: np.ndarray | None = None  # the map shrunk to 8 bits (harness.results.examples.small_map)
    blocks: np.ndarray | None = None  # the map's block means (RunSpec.blocks_factor)
    constant: bool = False


def score_job(ctx, spec: RunSpec, job: Job) -> tuple[dict, Kept | None]:
    """The per-image row of ``job`` and what to keep of its map for the page (or None)."""
    import time

    from ..metrics.warm import warm
    from .record import row

    # a process' first job: its kernels compiled or loaded, the work shared with other processes
    # starting at the same time (the model's and the references' on a fresh machine)
    warm("suite", *(("ceiling",) if spec.kind == "ceiling" else ()))
    t0 = time.perf_counter()
    i = job.i
    sid, fix = ctx.ids[i], ctx.fixations[i]
    w, h = ctx.sizes[i]
    if spec.calibrated:
        return _calibrated_row(ctx, spec, job, t0), None
    if spec.kind == "ceiling":
        from .ceiling import ceiling_scores

        notes: list[str] = []
        scores = ceiling_scores(ctx, i, spec.profile, spec.seed, notes)
        if scores is None:
            return row(sid, "failed", "fewer than two subjects", {}, {}, {}, time.perf_counter() - t0, len(fix)), None
        return row(sid, "ok", join_notes(None, notes), _usable(ctx, scores), {}, {}, time.perf_counter() - t0,
                   len(fix)), None
    if job.error is not None:
        status, error, smap = "failed", job.error, None
    else:
        status, error, smap = check_map(job.attention, h, w, constant_expected=spec.kind == "baseline")
    scores, task_scores, output = {}, {}, {}
    keep = None
    if smap is not None:
        output = job.output or {}
        notes: list[str] = []
        try:
            scores = score(smap, fix, ctx, i, spec.profile, spec.seed, notes=notes)
            error = join_notes(error, notes)
            if spec.task is not None:
                task_scores = _task_scores(spec.task, output, ctx.meta[i])
        except _UnscorableOutput as exc:  # kept out of the run's dataset-level task metrics too
            status, error, scores, task_scores, output = "failed", str(exc), {}, {}, {}
        except HarnessError as exc:
            status, error, scores, task_scores = "failed", str(exc), {}, {}
        if status != "failed" and (i < spec.save_maps or spec.example_side > 0 or spec.blocks_factor > 0):
            from ..calibration.grid import block_mean
            from ..results.examples import small_map

            keep = Kept(full=smap if i < spec.save_maps else None,
                        small=small_map(smap, spec.example_side) if spec.example_side > 0 else None,
                        blocks=block_mean(smap, spec.blocks_factor) if spec.blocks_factor > 0 else None,
                        constant=bool(smap.max() == smap.min()))
    return row(sid, status, error, _usable(ctx, scores), task_scores, output, job.infer_s + time.perf_counter() - t0,
               len(fix)), keep


def _usable(ctx, scores: dict[str, float]) -> dict[str, float]:
    """``scores`` without the contested metric names (:func:`contested_metrics`)."""
    contested = getattr(ctx, "contested_metrics", frozenset())
    return {k: v for k, v in scores.items() if k not in contested} if contested else scores


class _UnscorableOutput(HarnessError):
    """A model's task output that its task cannot score (a plugin's malformed output)."""


def _task_scores(task, output: Any, record: dict) -> dict[str, float]:
    """The task's per-stimulus scores of a model's output; an output the task cannot read (not a
    dict, a box of three numbers...) fails that stimulus with the reason, not the run."""
    try:
        if not isinstance(output, dict):
            raise TypeError(f"the output is a {type(output).__name__}, not a dict")
        return task.score_image(output, record)
    except HarnessError:
        raise
    except Exception as exc:
        name = getattr(task, "name", type(task).__name__)
        raise _UnscorableOutput(f"the model's output cannot be scored for task {name!r}: "
                                f"{type(exc).__name__}: {exc}") from exc


def _calibrated_row(ctx, spec: RunSpec, job: Job, t0: float) -> dict:
    """A calibrated run's row: the raw run's status, task scores and output, the calibrated scores."""
    import json
    import time

    from . import calibrated
    from .record import row

    i = job.i
    sid, fix = ctx.ids[i], ctx.fixations[i]
    raw = job.raw or {}
    output = json.loads(raw["output"]) if isinstance(raw.get("output"), str) else {}
    task_scores = {k[5:]: v for k, v in raw.items() if k.startswith("task:") and v is not None}
    status, error = raw.get("status", "failed"), raw.get("error")
    scores: dict = {}
    try:
        if spec.kind == "ceiling":
            got = calibrated.ceiling_scores(ctx, i, spec.profile, spec.seed)
            status, error, scores = ("ok", None, got) if got is not None else ("failed", "fewer than two subjects", {})
        elif status != "failed":
            if job.blocks is None:
                status, error = "failed", "no block means kept for this stimulus"
            else:
                notes: list[str] = []
                scores = calibrated.model_scores(ctx, i, job.blocks, job.constant, spec.profile, spec.seed, notes)
                error = join_notes(error, notes)
    except HarnessError as exc:
        status, error, scores = "failed", str(exc), {}
    if status == "failed":
        task_scores, output = {}, {}
    seconds = time.perf_counter() - t0 + float(raw.get("seconds") or 0.0) * (spec.kind != "ceiling")
    return row(sid, status, error, _usable(ctx, scores), task_scores, output, seconds, len(fix))


_WORKER_CTX = None


def _init_worker(ctx, parent: int | None = None) -> None:
    from .threads import keep_heap, limit_this_process

    global _WORKER_CTX
    _WORKER_CTX = ctx
    if parent is not None:
        _exit_with(parent)
    limit_this_process(1)  # one core per scoring process: numba and BLAS must not spawn more
    keep_heap()  # maps of every stimulus reuse the same pages


def _exit_with(parent: int, every_s: float = 0.5) -> None:
    """End this scoring process once ``parent`` is gone. A process pool's workers wait for work on
    a pipe they hold both ends of, so they never see their parent die: after ``kill`` or SIGKILL of
    the evaluation they stayed, idle, holding its stdout and stderr open (a job scheduler or a
    pipe reading them waited forever). A sleeping thread that checks the parent's pid costs nothing."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)  # nothing to hand results to; a pool's own shutdown is not waited for

    threading.Thread(target=watch, name="harness-parent-watch", daemon=True).start()


def _score_batch(spec: RunSpec, jobs: list[Job]) -> list[tuple[dict, Kept | None]]:
    return [score_job(_WORKER_CTX, spec, job) for job in jobs]


class Gate:
    """How many of a scorer's processes may be busy at once (``None``: all of them). The references
    scored beside a model run use the cores the model leaves idle, then every core once it is done;
    the evaluation thread changes ``lanes`` while the scoring thread reads it."""

    def __init__(self, lanes: int | None = None):
        self.lanes = lanes


class Scorer:
    """Scores batches of jobs, inline or in ``workers`` processes; :meth:`submit` returns a handle
    whose :meth:`result` gives the rows in job order. Rows do not depend on where they were
    computed (every random choice is seeded by stimulus). ``gate``: at most ``gate.lanes`` of the
    processes busy (a batch is split into that many parts, and only one batch is in flight)."""

    def __init__(self, ctx, workers: int = 0, gate: Gate | None = None):
        self.ctx = ctx
        self.workers = workers
        self.gate = gate
        self._closed = False
        self._pool = None
        if workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            import os

            # spawn, not fork: the parent has torch's and OpenBLAS' thread pools running; each
            # process is told its parent, so as to end with it (_exit_with)
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(ctx, os.getpid()))

    def _lanes(self) -> int:
        lanes = None if self.gate is None else self.gate.lanes
        return self.workers if lanes is None else max(1, min(self.workers, lanes))

    @property
    def backlog(self) -> int:
        """Batches the caller may leave in flight while it prepares the next one: enough to keep
        every process busy, none while the gate holds some processes back."""
        if self._pool is None or self._lanes() >= self.workers:
            return max(1, self.workers)
        return 0

    def submit(self, spec: RunSpec, jobs: list[Job]):
        if self._closed:
            raise HarnessError("the scoring processes were stopped")
        if self._pool is None:
            return _Done([score_job(self.ctx, spec, job) for job in jobs])
        # split across the workers so one batch keeps every core busy; order is restored on collection
        from concurrent.futures.process import BrokenProcessPool

        n = self._lanes()
        parts = [jobs[k::n] for k in range(n) if jobs[k::n]]
        try:
            return _Pending(len(jobs), n, [self._pool.submit(_score_batch, spec, p) for p in parts])
        except BrokenProcessPool as exc:  # a process died (killed, out of memory) since the last batch
            raise _died(exc) from exc

    def stop(self) -> None:
        """Stop from another thread: queued batches are dropped, a caller waiting for one gets an
        error (the finished shards stay; the same command resumes)."""
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Scorer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _died(exc: BaseException) -> HarnessError:
    return HarnessError(f"a scoring process died ({exc}); finished batches are kept, run again to resume "
                        "(the process' own message, if it left one, is above)")


class _Done:
    def __init__(self, rows):
        self.rows = rows

    def done(self) -> bool:
        return True

    def result(self):
        return self.rows


class _Pending:
    def __init__(self, n: int, stride: int, futures):
        self.n, self.stride, self.futures = n, stride, futures

    def done(self) -> bool:
        return all(f.done() for f in self.futures)

    def result(self):
        from concurrent.futures import CancelledError
        from concurrent.futures.process import BrokenProcessPool

        out: list = [None] * self.n
        for k, f in enumerate(self.futures):
            try:
                part = f.result()
            except CancelledError as exc:
                raise HarnessError("the scoring processes were stopped") from exc
            except BrokenProcessPool as exc:
                raise _died(exc) from exc
            out[k::self.stride] = part
        return out

