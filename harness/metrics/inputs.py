"""Validated metric inputs, and the work several metrics share, computed once and only when asked.

:class:`MetricInputs` checks a saliency map, its fixations and the optional context (human density,
baseline map, fixations of other images) and exposes derived quantities as cached properties: the
flat float64 map, its minimum/maximum, exact counts of pixels below and at given values (by
buckets, :mod:`.kernels`), its min-max and sum normalisations, the fixated pixel indices. Every
metric function builds one; :func:`harness.metrics.compute_suite` builds one per image and hands it
to every metric, so e.g. one counting pass over the map serves AUC-Judd and AUC-Borji.

Pixel convention (:mod:`harness.schema`): ``x`` is the column and ``y`` the row, 0-indexed, the
centre of the top-left pixel at (0, 0). A fixation falls on the pixel whose centre is nearest:
``column = floor(x + 0.5)``, ``row = floor(y + 0.5)``. Coordinates on the image's outer edge
(``x == width - 0.5``) go to the last pixel; coordinates farther out are an error.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from functools import cached_property

import numpy as np

from ..errors import HarnessError
from .profiles import Profile, get_profile


class _LazyKernels:
    """:mod:`.kernels`, imported on first use: importing the metrics stays cheap (numpy only), and
    numba loads (or compiles, the first time) only when a metric is computed."""

    def __getattr__(self, name: str):
        from . import kernels as module

        value = getattr(module, name)
        setattr(self, name, value)  # later lookups are plain attributes
        return value


kernels = _LazyKernels()


class MetricInputError(HarnessError, ValueError):
    """Bad input to a metric (NaN map, fixation outside the map, shapes that differ)."""


#: negative density values down to this fraction of the density's maximum are float round-off
DENSITY_ROUNDOFF = 1e-9


def _map(name: str, array: object, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, float, float]:
    """A 2-D finite float64 copy-or-view of ``array``, flattened (C order), with its min and max."""
    return _map_stats(name, array, shape)[:3]


def _map_stats(name: str, array: object,
               shape: tuple[int, int] | None = None) -> tuple[np.ndarray, float, float, float, float]:
    """:func:`_map` with ``sum(a)`` and ``sum(a * a)`` (:func:`.kernels.sums`'s numbers): one
    compiled pass (:func:`.kernels.stats`) validates the map and finds all four, where numpy's
    ``min``, ``max`` and the sums read the 4 MB map three times."""
    a = np.asarray(array)
    if a.ndim != 2:
        raise MetricInputError(f"{name} must be a 2-D (height, width) array, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.iscomplexobj(a):
        raise MetricInputError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    if shape is not None and a.shape != shape:
        raise MetricInputError(
            f"{name} has shape {a.shape} but the saliency map has shape {shape}; resize to the stimulus first"
        )
    if a.size < 2:
        raise MetricInputError(f"{name} must have at least 2 pixels, got shape {a.shape}")
    flat = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
    lo, hi, total, squares, finite = kernels.stats(flat)
    if not finite:
        raise MetricInputError(f"{name} contains NaN or infinite values")
    return flat, float(lo), float(hi), float(total), float(squares)


def pixel_indices(
    xs: object, ys: object, shape: tuple[int, int], what: str = "fixation", ws: Workspace | None = None
) -> np.ndarray:
    """Flat (row-major) pixel indices of points ``(x, y)`` in a map of ``shape``, rounded to the
    nearest pixel centre (see the module doc). With ``ws``, the result lives in one of its buffers."""
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise MetricInputError(f"{what} x and y differ in length ({x.size} != {y.size})")
    h, w = shape
    flat = np.empty(x.size, dtype=np.intp) if ws is None else ws.part(what, x.size, np.intp)
    i = int(kernels.pixel_indices(x, y, h, w, flat))  # one compiled pass, bounds checked
    if i >= 0:
        raise outside_error(what, i, x[i], y[i], shape)
    return flat


def outside_error(what: str, i: int, x: float, y: float, shape: tuple[int, int]) -> MetricInputError:
    """The error for point ``i`` of ``what``, at ``(x, y)``, outside a map of ``shape``."""
    h, w = shape
    return MetricInputError(f"{what} {i} at (x={x:g}, y={y:g}) lies outside the {w}x{h} map "
                            "(0-indexed pixel coordinates expected)")


def kth_largest(a: np.ndarray, k: int) -> float:
    """The k-th largest value of the 1-D array ``a`` (1 <= k <= a.size), exactly."""
    return kth_largest_counts(a, k)[0]


def _kth_bracket(a: np.ndarray, k: int) -> tuple[float, float] | None:
    """Values ``lo <= hi`` that likely bracket the kth-largest value of ``a``, from a strided sample
    (None for arrays of at most 2**15 values: sorting them is cheap)."""
    n = a.size
    if n <= 1 << 15:
        return None
    sample = np.sort(a[:: n >> 12])
    m = sample.size
    j = m - k * m / n  # where the answer sits in the sample
    margin = 0.02 * m + 16
    return float(sample[max(0, int(j - margin))]), float(sample[min(m - 1, int(j + margin) + 1)])


def kth_largest_counts(a: np.ndarray, k: int, work: np.ndarray | None = None) -> tuple[float, int, int]:
    """The k-th largest value ``v`` of the 1-D array ``a`` (1 <= k <= a.size), exactly, with how
    many values are greater than ``v`` and how many equal it.

    ``np.partition`` can take 50 ns per element on a smooth map (introselect picks bad pivots from
    spatially ordered values: 23 ms on an OSIE density), and a full sort costs ~2.5 ms. Instead, a
    strided sample brackets the answer, one compiled pass counts what lies above the bracket and
    collects what lies inside (into ``work``, a float64 array of a's size, if given), and only the
    few of those near the answer are sorted (:func:`.kernels.kth_largest_bracketed`). The sample
    only decides the speed; when the bracket misses, the function falls back to sorting everything.
    """
    return _kth_largest_counts(a, k, work)[0]


def _kth_largest_counts(a: np.ndarray, k: int, work: np.ndarray | None = None,
                        shift_off: float | None = None) -> tuple[tuple[float, int, int], float | None]:
    """:func:`kth_largest_counts`, and with ``shift_off`` also ``sum(a - shift_off)`` as
    :func:`.kernels.shifted_sum` adds it up, from the same pass over ``a`` where there is one."""
    n = a.size
    bracket = _kth_bracket(a, k)
    shifted = None
    if bracket is not None:
        lo, hi = bracket
        if work is None or work.size < n:
            work = np.empty(n)
        found, v, greater, equal, total = kernels.kth_largest_bracketed_shifted(
            a, lo, hi, k, work, shift_off is not None, 0.0 if shift_off is None else shift_off)
        if shift_off is not None:
            shifted = float(total)
        if found:
            return (float(v), int(greater), int(equal)), shifted
    if shift_off is not None and shifted is None:
        shifted = float(kernels.shifted_sum(a, shift_off))
    return _kth_by_sorting(a, k), shifted


def _kth_by_sorting(a: np.ndarray, k: int) -> tuple[float, int, int]:
    """:func:`kth_largest_counts` by sorting all of ``a`` (small arrays, or a missed bracket)."""
    ordered = np.sort(a)
    v = ordered[ordered.size - k]
    left = int(np.searchsorted(ordered, v, side="left"))
    right = int(np.searchsorted(ordered, v, side="right"))
    return float(v), ordered.size - right, right - left


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product of two 1-D float64 arrays without BLAS: OpenBLAS's threaded ``dot`` spin-waits
    for its threads and takes milliseconds instead of ~0.1 ms when the other cores are busy (as they
    are while a model runs beside the metrics)."""
    return float(kernels.dot(a, b))


def sum_sq_dev(a: np.ndarray, mean: float, raw: float | None = None) -> tuple[float, bool]:
    """``sum((a - mean) ** 2)`` as ``sum(a * a) - n * mean ** 2`` (one pass, no copy), unless that
    cancels more than 6 of the 16 digits (a map whose spread is tiny next to its mean); then the
    centred copy is made. Either way the relative error stays below ~1e-9. The flag says whether
    the shortcut held (so a covariance may take it too). ``raw``: ``sum(a * a)`` if known."""
    if raw is None:
        raw = float(kernels.sums(a)[1])
    ss = raw - a.size * mean * mean
    if ss > 1e-6 * raw:
        return ss, True
    c = a - mean
    return dot(c, c), False


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2's hash-based ``unique`` is ~20x slower on 100k pixel indices."""
    return dedupe_sorted(np.sort(a))


def dedupe_sorted(s: np.ndarray) -> np.ndarray:
    """The distinct values of an already sorted array, in order."""
    if s.size < 2:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


class Workspace:
    """Work arrays reused from one image to the next. A fresh 4 MB numpy array costs ~1000 page
    faults (about a millisecond) each time glibc hands the memory back to the system; reusing the
    same buffers removes that. One workspace serves one :class:`MetricInputs` at a time."""

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, int, str], np.ndarray] = {}
        self._markers: dict[int, np.ndarray] = {}
        self._epochs: dict[int, int] = {}

    def get(self, name: str, n: int, dtype: type) -> np.ndarray:
        key = (name, n, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 16:  # maps of another size: drop the old ones
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(n, dtype=dtype)
        return buf

    def zeros(self, name: str, n: int, dtype: type) -> np.ndarray:
        """Like :meth:`get`, zero-filled when first made; its users leave it all zero again."""
        key = (name, n, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 16:
                self._buffers.clear()
            buf = self._buffers[key] = np.zeros(n, dtype=dtype)
        return buf

    def marker(self, n: int) -> tuple[np.ndarray, int]:
        """A uint8 marker map of ``n`` pixels and a number that no earlier user of this map wrote
        into it: marking a pixel with that number needs no clearing between images (only every
        255th time; a small map stays in cache where a larger type would not)."""
        seen = self._markers.get(n)
        epoch = self._epochs.get(n, 0) + 1
        if seen is None or epoch == 256:
            seen = self._markers[n] = np.zeros(n, np.uint8)
            epoch = 1
            if len(self._markers) > 4:
                self._markers = {n: seen}
                self._epochs = {}
        self._epochs[n] = epoch
        return seen, epoch

    def part(self, name: str, n: int, dtype: type) -> np.ndarray:
        """The first ``n`` elements of a buffer that grows as needed: for arrays whose length
        changes from image to image (the other images' fixations)."""
        key = (name, -1, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None or buf.size < n:
            buf = self._buffers[key] = np.empty(max(n, 1024) * 5 // 4, dtype=dtype)
        return buf[:n]


_FREE = threading.local()
#: up to this many query values, counting values at indices compares each value with each query
#: (vectorised) instead of bucketing them
_FEW_QUERIES = 24
_NO_INDEX = np.empty(0, dtype=np.intp)


@contextmanager
def workspace():
    """A :class:`Workspace` for the duration of a ``with`` block, from a per-thread pool (so
    nested or concurrent users never share one)."""
    free = getattr(_FREE, "list", None)
    if free is None:
        free = _FREE.list = []
    ws = free.pop() if free else Workspace()
    try:
        yield ws
    finally:
        free.append(ws)


def rng_for(seed: int | np.random.Generator | None, stream: int) -> np.random.Generator:
    """A generator for one randomised metric. An integer seed gives each metric its own stream, so a
    metric computed alone and inside :func:`compute_suite` draws the same numbers."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if int(seed) < 0:
        raise MetricInputError(f"seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([int(seed), stream])


class SharedInputs:
    """What every metric call on one stimulus shares, validated and derived once: the map shape,
    the baseline map (flat, min, max, sums) and the other images' fixations (pixel indices, and
    for ``reused`` inputs also sorted and de-duplicated; given as coordinates ``other_x``/``other_y``
    or as the pixel indices :func:`pixel_indices` makes of them, ``other_index``). :func:`harness.metrics.compute_suite_many`
    builds one for many maps of a stimulus (the human ceiling: one leave-one-out map per subject);
    a :class:`MetricInputs` without one builds its own. Nothing here depends on the saliency map,
    so sharing it changes no number."""

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        baseline: np.ndarray | None = None,
        other_x: np.ndarray | None = None,
        other_y: np.ndarray | None = None,
        workspace: Workspace | None = None,
        reused: bool = False,
        other_index: np.ndarray | None = None,
    ) -> None:
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self._baseline = baseline
        if (other_x is None) != (other_y is None):
            raise MetricInputError("give both other_x and other_y (fixations on other images) or neither")
        if other_index is not None and other_x is not None:
            raise MetricInputError("give the other-image fixations as other_x/other_y or as other_index, not both")
        #: flat pixel indices of the other images' fixations; ``other_index`` gives them already
        #: computed and checked (as :func:`pixel_indices` computes them, e.g. by
        #: ``harness.evaluation.context.DatasetContext.other_pixels``)
        self.other: np.ndarray | None = (
            np.asarray(other_index) if other_index is not None else
            None if other_x is None else pixel_indices(other_x, other_y, self.shape, "other-image fixation", workspace)
        )
        # reused by many maps: sorting the other fixations once pays (in-order reads, distinct
        # locations without the marker map); for one map it would not
        self.reused = reused
        self._base: SharedInputs | None = None  # whose baseline work this one shares (with_negatives)

    def with_negatives(self, *, other_x: np.ndarray | None = None, other_y: np.ndarray | None = None,
                       other_index: np.ndarray | None = None, reused: bool = False,
                       workspace: Workspace | None = None) -> "SharedInputs":
        """Inputs with this one's baseline and the given other-image fixations: the baseline's
        validation and sums are done once, by whichever of them asks first, for every stimulus of
        this size (the evaluation keeps one per size; its baseline array must not change)."""
        new = SharedInputs(self.shape, baseline=self._baseline, other_x=other_x, other_y=other_y,
                           workspace=workspace, reused=reused, other_index=other_index)
        new._base = self if self._base is None else self._base
        return new

    @cached_property
    def _b_stats(self) -> tuple[np.ndarray, float, float, float, float] | None:
        if self._base is not None:
            return self._base._b_stats
        return None if self._baseline is None else _map_stats("baseline", self._baseline, self.shape)

    @cached_property
    def b(self) -> tuple[np.ndarray, float, float] | None:
        """The baseline map (flat) with its min and max, or None (uniform)."""
        return None if self._b_stats is None else self._b_stats[:3]

    @cached_property
    def b_shifted_sum(self) -> float:
        """``sum(baseline - min)``."""
        if self._base is not None:
            return self._base.b_shifted_sum
        b, bmin, _ = self.b
        return float(kernels.shifted_sum(b, bmin))

    @cached_property
    def b_sum(self) -> float:
        return self._b_stats[3]  # found with the min and max

    @cached_property
    def other_sorted(self) -> np.ndarray:
        """The other images' fixated pixels in increasing order (duplicates kept)."""
        return np.sort(self.other)

    @cached_property
    def other_unique(self) -> np.ndarray:
        """The distinct other-image fixated pixels, increasing."""
        return dedupe_sorted(self.other_sorted)


class MetricInputs:
    """One image's inputs, validated, with the shared intermediate results as cached properties."""

    def __init__(
        self,
        saliency_map: np.ndarray,
        fix_x: np.ndarray,
        fix_y: np.ndarray,
        *,
        density: np.ndarray | None = None,
        baseline: np.ndarray | None = None,
        other_x: np.ndarray | None = None,
        other_y: np.ndarray | None = None,
        profile: str | Profile = "mit",
        seed: int | np.random.Generator | None = 0,
        workspace: Workspace | None = None,
        shared: SharedInputs | None = None,
        known: tuple[tuple[float, float, float, float], tuple[float, float, float, float] | None] | None = None,
    ) -> None:
        """``known``: the ``(min, max, sum, sum of squares)`` of the map and of the density (or
        None) that :func:`.kernels.stats` gives for them, found by the caller in a pass it made
        anyway (the human ceiling's): the arrays are then trusted to be C-contiguous, finite
        float64 maps of one shape and are not read to validate them. Internal; the numbers are
        the same as without it."""
        self._ws = workspace
        self._primed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._kth: dict[int, tuple[float, int, int]] = {}  # kth-largest values found by prime_counts
        self._d_kth: dict[int, tuple[float, int, int]] = {}  # the density's, by d_kth_largest_counts
        # density metrics that compute_suite will ask for: the first one computes the others' sums
        # in the same pass (see saliency._density_pass)
        self.fuse: set[str] = set()
        #: the region size of a top-k IoU whose overlap the density pass counts too (0: none), and
        #: the counts it found, by region size
        self.fuse_iou = 0
        self.iou_counts: dict[int, int] = {}
        self.profile = get_profile(profile)
        self.seed = seed
        a = np.asarray(saliency_map)
        self._known_d = None
        if known is None:
            self.s, self.smin, self.smax, *sums = _map_stats("saliency map", a)
        else:
            (self.smin, self.smax, *sums), self._known_d = known
            self.s = a.reshape(-1)
        self._s_sums: tuple[float, float] = tuple(sums)  # sum and sum of squares, from the same pass
        self.shape: tuple[int, int] = a.shape
        self.n = self.s.size
        self.fix = pixel_indices(fix_x, fix_y, self.shape)
        self._density = density
        if shared is None:
            shared = SharedInputs(self.shape, baseline=baseline, other_x=other_x, other_y=other_y, workspace=workspace)
        else:
            if baseline is not None or other_x is not None or other_y is not None:
                raise MetricInputError(
                    "give the baseline and other-image fixations either directly or in shared=, not both"
                )
            if shared.shape != self.shape:
                raise MetricInputError(
                    f"saliency map has shape {self.shape} but the shared inputs are for shape {shared.shape}"
                )
        self.shared = shared

    # --- the saliency map -------------------------------------------------------------------------
    @property
    def constant(self) -> bool:
        """A constant map carries no information; every metric treats it as the uniform map."""
        return self.smax == self.smin

    def buffer(self, name: str, dtype: type = np.float64) -> np.ndarray:
        """A work array of n elements: from the workspace if there is one, else fresh."""
        if self._ws is None:
            return np.empty(self.n, dtype=dtype)
        return self._ws.get(name, self.n, dtype)

    @cached_property
    def _scale(self) -> float:
        """Buckets per unit of the map for :mod:`.kernels` (0: one bucket, for a span so small that
        its reciprocal overflows)."""
        scale = kernels.N_BUCKETS / (self.smax - self.smin) if self.smax > self.smin else 0.0
        return scale if math.isfinite(scale) else 0.0

    def counts_of(self, q: np.ndarray, idx: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exactly how many pixels (or, with ``idx``, how many of the values ``s[idx]``) are below
        and how many equal each value of ``q``: one bucket-counting pass (:func:`.kernels.bucket_counts`),
        the same integers a sort and a binary search give."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if idx is None and self._primed is not None:  # answered by the pass of prime_counts?
            vals, below, equal = self._primed
            j = np.minimum(np.searchsorted(vals, q), vals.size - 1)
            if np.array_equal(vals[j], q):
                return below[j], equal[j]
        values, inverse = np.unique(q, return_inverse=True)
        below, equal = self._bucket_counts(idx, values)
        return below[inverse], equal[inverse]

    def _bucket_counts(self, idx: np.ndarray | None, values: np.ndarray,
                       kth: int = 0, shift: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """:func:`.kernels.bucket_counts` of the map (or of ``s[idx]``), in the workspace's arrays;
        for a few queries over ``s[idx]``, :func:`.kernels.gathered_counts` (the same integers).
        ``kth``: also find the map's kth-largest value in the same pass (kept for
        :meth:`s_kth_largest_counts`); ``shift`` (the map, not ``s[idx]``): also
        :attr:`s_shifted_sum`, the same number as its own pass gives."""
        use = idx is not None
        if use and values.size <= _FEW_QUERIES:
            work = np.empty(idx.size) if self._ws is None else self._ws.part("other_values", idx.size, np.float64)
            return kernels.gathered_counts(self.s, idx, values, work)
        idx = idx if use else _NO_INDEX
        nb = kernels.N_BUCKETS
        nbt = kernels.SUB_BUCKETS + nb - 1
        m = idx.size if use else self.n
        klo = khi = 0.0
        if kth and not use:
            bracket = _kth_bracket(self.s, kth)
            if bracket is None:
                kth = 0
            else:
                klo, khi = bracket
        else:
            kth = 0
        if self._ws is None:
            work = (np.empty(nbt, np.int32), np.empty(nbt + 1, np.int64), np.zeros(nbt, np.uint8),
                    np.empty(m + 1, np.int64))
        else:
            work = (self._ws.get("hist", nbt, np.int32), self._ws.get("starts", nbt + 1, np.int64),
                    self._ws.zeros("marks", nbt, np.uint8), self._ws.part("candidates", m + 1, np.int64))
        shift = shift and not use and "s_shifted_sum" not in self.__dict__
        below, equal, found, v, greater, equal_v, shifted, _ = kernels.bucket_counts_into(
            self.s, idx, use, self.smin, self._scale, nb, values, *work, kth, klo, khi, shift
        )
        if found:
            self._kth[kth] = (float(v), int(greater), int(equal_v))
        if shift:
            self.__dict__["s_shifted_sum"] = float(shifted)  # the cached property, from this pass
        return below, equal

    def prime_counts(self, q: np.ndarray, kth: int = 0, shift: bool = False) -> None:
        """Count the pixels at all of ``q`` in one pass now, so that later :meth:`counts_of` calls
        for any of these values (AUC-Judd's fixated values, AUC-Borji's thresholds) cost no pass;
        with ``kth``, find the kth-largest value (IoU's threshold) in the same pass; with
        ``shift``, :attr:`s_shifted_sum` too."""
        values = np.unique(np.asarray(q, dtype=np.float64))
        below, equal = self._bucket_counts(None, values, kth, shift)
        self._primed = (values, below, equal)

    def s_counts(self, q: np.ndarray, members: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Exactly how many pixels are below and how many equal each value of ``q`` (``members``:
        every q is a map value; kept for callers, the counts are exact either way)."""
        return self.counts_of(q)

    def s_kth_largest_counts(self, k: int) -> tuple[float, int, int]:
        """:func:`kth_largest_counts` of the map (found by :meth:`prime_counts` if it was asked)."""
        found = self._kth.get(k)
        if found is None:
            found = self._kth[k] = kth_largest_counts(self.s, k, self.buffer("kth"))
        return found

    @property
    def s_sum(self) -> float:
        return self._s_sums[0]

    @property
    def s_mean(self) -> float:
        return self.s_sum / self.n

    @cached_property
    def s_sumsq(self) -> tuple[float, bool]:
        """Sum of squared deviations from the mean and whether it took the one-pass shortcut
        (see :func:`sum_sq_dev`)."""
        return sum_sq_dev(self.s, self.s_mean, self._s_sums[1])

    @cached_property
    def scratch(self) -> np.ndarray:
        """One work array for the distribution metrics, which fill it in turn (SIM, then KLD):
        fewer fresh 4 MB allocations, each of which costs page faults."""
        return self.buffer("scratch")

    @cached_property
    def s_shifted_sum(self) -> float:
        """``sum(map - min)``: the denominator of the MIT distribution, and of pysaliency's density
        for a map with negative values (per-pixel differences, no shifted copy)."""
        return float(kernels.shifted_sum(self.s, self.smin))

    def minmax_at(self, idx: np.ndarray) -> np.ndarray:
        """The map rescaled to [0, 1] (MATLAB ``(m - min) / (max - min)``) at ``idx``; a constant
        map is all ones."""
        if self.constant:
            return np.ones(idx.shape)
        return (self.s[idx] - self.smin) / (self.smax - self.smin)

    def minmax_queries(self, thresholds: np.ndarray) -> np.ndarray:
        """The map values :meth:`minmax_count_at_or_above` counts at: for each threshold t, the
        smallest value whose rescaling (as :meth:`minmax_at` computes it) is >= t."""
        return kernels.minmax_preimages(self.smin, self.smax, np.asarray(thresholds, dtype=np.float64))

    def minmax_count_at_or_above(self, thresholds: np.ndarray) -> np.ndarray:
        """How many pixels have a rescaled value ``minmax`` >= each threshold, agreeing with
        :meth:`minmax_at` to the bit: the rescaling is monotone, so these are the pixels at or above
        the threshold's exact preimage (:meth:`minmax_queries`), an exact count."""
        n = self.n
        if self.constant:
            return np.where(thresholds <= 1.0, n, 0)
        below, _ = self.counts_of(self.minmax_queries(thresholds))
        return n - below

    def mit_prob_at(self, idx: np.ndarray) -> np.ndarray:
        """MIT distribution (similarity.m, InfoGain.m) at ``idx``: rescaled to [0, 1], divided by
        its sum. The range cancels: ``(m - min) / sum(m - min)``; a constant map is uniform."""
        if self.constant:
            return np.full(idx.shape, 1.0 / self.n)
        return (self.s[idx] - self.smin) / self.s_shifted_sum

    @cached_property
    def prob_offset(self) -> tuple[float, float] | None:
        """pysaliency's distribution (``convert_saliency_map_to_density``) as ``(offset, sum)``, the
        distribution being ``(map - offset) / sum``: subtract the minimum only if it is negative.
        ``None`` for a constant map, which is uniform (pysaliency also makes a map summing to zero
        uniform)."""
        if self.constant:
            return None
        if self.smin < 0:
            return self.smin, self.s_shifted_sum
        return 0.0, self.s_sum

    # --- fixations ------------------------------------------------------------------------------
    @cached_property
    def fix_unique(self) -> np.ndarray:
        return unique_sorted(self.fix)

    @property
    def pos(self) -> np.ndarray:
        """The fixated pixels a metric scores: unique (MIT binary fixation map) or every fixation."""
        return self.fix_unique if self.profile.unique_fixations else self.fix

    # --- context ----------------------------------------------------------------------------------
    def require(self, what: str, metric: str) -> None:
        missing = {
            "density": self._density is None,
            "other": self.shared.other is None,
        }[what]
        if missing:
            arg = {"density": "density=", "other": "other_x=/other_y="}[what]
            raise MetricInputError(f"metric {metric!r} needs {arg} (see docs/metrics.md)")

    @property
    def has_density(self) -> bool:
        return self._density is not None

    @property
    def has_other(self) -> bool:
        return self.shared.other is not None

    @cached_property
    def d(self) -> np.ndarray:
        """The human density, validated on first use; sets ``dmin``, ``dmax``, ``dsum``."""
        if self._known_d is not None:
            self.dmin, self.dmax, self.dsum, self._dsumsq = self._known_d
            d = np.asarray(self._density).reshape(-1)
        else:
            d, self.dmin, self.dmax, self.dsum, self._dsumsq = _map_stats("density", self._density, self.shape)
        if self.dmin < 0:
            # an FFT or separable blur leaves float noise around zero (-1e-18): that is round-off,
            # not a negative density, and is set to 0; anything larger is refused
            if self.dmin < -DENSITY_ROUNDOFF * max(self.dmax, 0.0):
                raise MetricInputError(f"density has negative values (min {self.dmin:.3g}, max {self.dmax:.3g}); "
                                       "expected a fixation density")
            d = np.maximum(d, 0.0)
            self.dmin = 0.0
            self.dsum, self._dsumsq = (float(x) for x in kernels.sums(d))
        return d

    @cached_property
    def d_empty(self) -> bool:
        """No human data: a density that sums to zero makes every density metric NaN."""
        _ = self.d
        return not self.dsum > 0

    @cached_property
    def d_sumsq(self) -> tuple[float, bool]:
        return sum_sq_dev(self.d, self.dsum / self.n, self._dsumsq)

    @cached_property
    def d_shifted_sum(self) -> float:
        """``sum(density - min)`` (SIM's MIT normalisation; asked by the fused density pass and by
        SIM itself: computed once, or found by :meth:`d_kth_largest_counts`'s pass)."""
        return float(kernels.shifted_sum(self.d, self.dmin))

    def d_kth_largest(self, k: int) -> float:
        return kth_largest(self.d, k)

    def d_kth_largest_counts(self, k: int, shift: bool = False) -> tuple[float, int, int]:
        """:func:`kth_largest_counts` of the density (kept per k); ``shift``: find
        :attr:`d_shifted_sum` in the same pass if it is not known yet."""
        found = self._d_kth.get(k)
        if found is None:
            shift = shift and "d_shifted_sum" not in self.__dict__
            found, shifted = _kth_largest_counts(self.d, k, self.buffer("kth"), self.dmin if shift else None)
            self._d_kth[k] = found
            if shifted is not None:
                self.__dict__["d_shifted_sum"] = shifted
        return found

    @property
    def other(self) -> np.ndarray:
        """The other images' fixated pixels (for shared inputs reused by many maps: sorted, so
        that the map is read in order; counts do not depend on the order)."""
        return self.shared.other_sorted if self.shared.reused else self.shared.other

    def other_minmax_counts(self, thresholds: np.ndarray) -> tuple[np.ndarray, int]:
        """Over the distinct other-image fixation locations (each location once, as in the binary
        map of AUC_shuffled.m): how many have a rescaled value (:meth:`minmax_at`) >= each
        ascending threshold, and how many locations there are. One compiled pass; the marker map
        is reused from image to image (see :func:`.kernels.unique_minmax_counts`)."""
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if self.shared.reused:  # the distinct locations, found once for every map of the stimulus
            u = self.shared.other_unique
            if self.constant:
                return np.where(thresholds <= 1.0, u.size, 0), int(u.size)
            # a rescaled value reaches t exactly when the value reaches t's preimage: no division
            work = np.empty(u.size) if self._ws is None else self._ws.part("other_values", u.size, np.float64)
            return kernels.counts_at_or_above(self.s, u, self.minmax_queries(thresholds), work), int(u.size)
        if self._ws is None:
            seen, epoch = np.zeros(self.n, np.uint8), 1
        else:
            seen, epoch = self._ws.marker(self.n)
        other = self.shared.other
        m = other.size
        work = np.empty(m) if self._ws is None else self._ws.part("other_values", m, np.float64)
        if self.constant:  # every rescaled value is 1
            _, count = kernels.unique_minmax_counts(self.s, other, seen, epoch, 0.0, 1.0, thresholds, work)
            return np.where(thresholds <= 1.0, count, 0), int(count)
        counts, count = kernels.unique_minmax_counts(
            self.s, other, seen, epoch, self.smin, self.smax - self.smin, thresholds, work
        )
        return counts, int(count)

    @property
    def b(self) -> tuple[np.ndarray, float, float] | None:
        """The baseline map (flat) with its min and max, or None (uniform)."""
        return self.shared.b
