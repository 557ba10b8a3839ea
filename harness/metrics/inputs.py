"""Validated metric inputs, and the work several metrics share, computed once and only when asked.

:class:`MetricInputs` checks a saliency map, its fixations and the optional context (human density,
baseline map, fixations of other images) and exposes derived quantities as cached properties: the
flat float64 map, its minimum/maximum, its sorted values, its min-max and sum normalisations, the
fixated pixel indices. Every metric function builds one; :func:`harness.metrics.compute_suite`
builds one per image and hands it to every metric, so e.g. the map is sorted once for all AUCs.

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


class MetricInputError(HarnessError, ValueError):
    """Bad input to a metric (NaN map, fixation outside the map, shapes that differ)."""


def _map(name: str, array: object, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, float, float]:
    """A 2-D finite float64 copy-or-view of ``array``, flattened (C order), with its min and max."""
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
    lo, hi = float(flat.min()), float(flat.max())  # NaN propagates through both: no isfinite pass
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise MetricInputError(f"{name} contains NaN or infinite values")
    return flat, lo, hi


def pixel_indices(
    xs: object, ys: object, shape: tuple[int, int], what: str = "fixation"
) -> np.ndarray:
    """Flat (row-major) pixel indices of points ``(x, y)`` in a map of ``shape``, rounded to the
    nearest pixel centre (see the module doc)."""
    x = np.asarray(xs, dtype=np.float64).reshape(-1)
    y = np.asarray(ys, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise MetricInputError(f"{what} x and y differ in length ({x.size} != {y.size})")
    h, w = shape
    # four reductions instead of an element-wise mask (NaN fails both comparisons); the mask only
    # to name the first bad point
    if x.size and not (x.min() >= -0.5 and x.max() <= w - 0.5 and y.min() >= -0.5 and y.max() <= h - 0.5):
        bad = ~((x >= -0.5) & (x <= w - 0.5) & (y >= -0.5) & (y <= h - 0.5))
        i = int(np.argmax(bad))
        raise MetricInputError(
            f"{what} {i} at (x={x[i]:g}, y={y[i]:g}) lies outside the {w}x{h} map "
            "(0-indexed pixel coordinates expected)"
        )
    # x + 0.5 >= 0 here, so truncation is the floor; the float -> int32 cast is ~20x faster than
    # the one to int64 in numpy 2.4 (no SIMD loop), and a row or column always fits 32 bits
    col = (x + 0.5).astype(np.int32)
    np.minimum(col, w - 1, out=col)
    row = (y + 0.5).astype(np.int32)
    np.minimum(row, h - 1, out=row)
    flat = row.astype(np.intp)
    flat *= w
    flat += col
    return flat


def kth_largest(a: np.ndarray, k: int) -> float:
    """The k-th largest value of the 1-D array ``a`` (1 <= k <= a.size), exactly."""
    return kth_largest_counts(a, k)[0]


def kth_largest_counts(a: np.ndarray, k: int) -> tuple[float, int, int]:
    """The k-th largest value ``v`` of the 1-D array ``a`` (1 <= k <= a.size), exactly, with how
    many values are greater than ``v`` and how many equal it.

    ``np.partition`` can take 50 ns per element on a smooth map (introselect picks bad pivots from
    spatially ordered values: 23 ms on an OSIE density), and a full sort costs ~2.5 ms. Instead, a
    strided sample brackets the answer, one pass counts what lies above the bracket and collects what
    lies inside, and only those few are sorted. The sample only decides the speed; when the bracket
    misses, the function falls back to sorting everything.
    """
    n = a.size
    if n > 1 << 15:
        sample = np.sort(a[:: n >> 12])
        m = sample.size
        j = m - k * m / n  # where the answer sits in the sample
        margin = 0.02 * m + 16
        lo = sample[max(0, int(j - margin))]
        hi = sample[min(m - 1, int(j + margin) + 1)]
        gt = a > hi
        above = int(np.count_nonzero(gt))
        ge = a >= lo
        np.logical_xor(ge, gt, out=ge)  # lo <= a <= hi, as gt implies ge
        inside = a[ge]
        if above < k <= above + inside.size:
            inside.sort()
        else:
            above, inside = 0, np.sort(a)
    else:
        above, inside = 0, np.sort(a)
    v = inside[inside.size - (k - above)]
    left = int(np.searchsorted(inside, v, side="left"))
    right = int(np.searchsorted(inside, v, side="right"))
    return float(v), above + inside.size - right, right - left


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product of two 1-D arrays without BLAS: OpenBLAS's threaded ``dot`` spin-waits for
    its threads and takes milliseconds instead of ~0.1 ms when the other cores are busy (as they
    are while a model runs beside the metrics)."""
    return float(np.einsum("i,i->", a, b))


def sum_sq_dev(a: np.ndarray, mean: float) -> tuple[float, bool]:
    """``sum((a - mean) ** 2)`` as ``sum(a * a) - n * mean ** 2`` (one pass, no copy), unless that
    cancels more than 6 of the 16 digits (a map whose spread is tiny next to its mean); then the
    centred copy is made. Either way the relative error stays below ~1e-9. The flag says whether
    the shortcut held (so a covariance may take it too)."""
    raw = dot(a, a)
    ss = raw - a.size * mean * mean
    if ss > 1e-6 * raw:
        return ss, True
    c = a - mean
    return dot(c, c), False


def unique_sorted(a: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2's hash-based ``unique`` is ~20x slower on 100k pixel indices."""
    s = np.sort(a)
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

    def get(self, name: str, n: int, dtype: type) -> np.ndarray:
        key = (name, n, np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) > 16:  # maps of another size: drop the old ones
                self._buffers.clear()
            buf = self._buffers[key] = np.empty(n, dtype=dtype)
        return buf


_FREE = threading.local()


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
    ) -> None:
        self._ws = workspace
        self.profile = get_profile(profile)
        self.seed = seed
        a = np.asarray(saliency_map)
        self.s, self.smin, self.smax = _map("saliency map", a)
        self.shape: tuple[int, int] = a.shape
        # a map that float32 holds exactly (float32 attention maps, 8/16-bit images) sorts twice as fast
        self._f32 = a if a.dtype.kind in "fiub" and a.dtype.itemsize <= (4 if a.dtype.kind == "f" else 2) else None
        self.n = self.s.size
        self.fix = pixel_indices(fix_x, fix_y, self.shape)
        self._density = density
        self._baseline = baseline
        if (other_x is None) != (other_y is None):
            raise MetricInputError("give both other_x and other_y (fixations on other images) or neither")
        self._other = None if other_x is None else pixel_indices(other_x, other_y, self.shape, "other-image fixation")

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
    def s_sorted(self) -> np.ndarray:
        """The map sorted, float64: only the fallback of :meth:`s_counts` (many tied values)."""
        return np.sort(self.s)

    @cached_property
    def s32(self) -> np.ndarray:
        """The map rounded to float32 (flat). Rounding is monotone, so ``s32[i] < s32[j]`` implies
        ``s[i] < s[j]``: sorting these halves the cost of the sort the AUCs and the IoU need, and
        the few pixels whose float32 values coincide are resolved exactly (see :meth:`s_counts`)."""
        out = self.buffer("s32", np.float32)
        np.copyto(out, self._f32.reshape(-1) if self._f32 is not None else self.s, casting="unsafe")
        return out

    @cached_property
    def s32_sorted(self) -> np.ndarray:
        out = self.buffer("s32_sorted", np.float32)
        out[:] = self.s32
        out.sort()
        return out

    @property
    def s32_exact(self) -> bool:
        """Whether float32 holds the map exactly (then equal float32 values are equal values)."""
        return self._f32 is not None

    def s_counts(self, q: np.ndarray, members: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Exactly how many pixels are below and how many equal each value of ``q`` (float64),
        from the sorted float32 map. A pixel whose float32 value differs from ``float32(q)`` is on
        the same side of ``q`` as its float32 value; those that share it are counted in float64:
        with ``members`` (every q is a value of the map) a lone one is q itself, otherwise one
        pass over the map per such q (about 1 % of fixated values on OSIE maps)."""
        q = np.asarray(q, dtype=np.float64)
        srt = self.s32_sorted
        f = q.astype(np.float32)
        left = np.searchsorted(srt, f, side="left").astype(np.int64)
        bucket = np.searchsorted(srt, f, side="right") - left
        if self.s32_exact:  # the bucket holds one float64 value, float(f)
            v = f.astype(np.float64)
            return left + np.where(v < q, bucket, 0), np.where(v == q, bucket, 0)
        below, equal = left, np.zeros(q.shape, dtype=np.int64)
        if members:
            equal[bucket == 1] = 1
            unsure = np.flatnonzero(bucket > 1)
        else:
            unsure = np.flatnonzero(bucket > 0)
        if unsure.size == 0:
            return below, equal
        values, inverse = np.unique(q[unsure], return_inverse=True)
        if values.size > 8:  # many ties: one float64 sort answers them all
            srt64 = self.s_sorted
            lo = np.searchsorted(srt64, values, side="left")
            hi = np.searchsorted(srt64, values, side="right")
        else:
            s = self.s
            lo = np.array([np.count_nonzero(s < v) for v in values], dtype=np.int64)
            hi = lo + np.array([np.count_nonzero(s == v) for v in values], dtype=np.int64)
        below[unsure] = lo[inverse]
        equal[unsure] = (hi - lo)[inverse]
        return below, equal

    def s_kth_largest_counts(self, k: int) -> tuple[float, int, int]:
        """:func:`kth_largest_counts` of the map, from the sorted float32 map: the k-th largest
        float32 value, then the exact values of the few pixels that round to it."""
        srt, n = self.s32_sorted, self.n
        fv = srt[n - k]
        right = int(np.searchsorted(srt, fv, side="right"))
        greater = n - right  # float32 above fv: float64 above every candidate
        cand = self.s[self.s32 == fv]
        cand.sort()
        v = cand[cand.size - (k - greater)]
        lo = int(np.searchsorted(cand, v, side="left"))
        hi = int(np.searchsorted(cand, v, side="right"))
        return float(v), greater + cand.size - hi, hi - lo

    @cached_property
    def s_sum(self) -> float:
        return float(self.s.sum())

    @property
    def s_mean(self) -> float:
        return self.s_sum / self.n

    @cached_property
    def s_sumsq(self) -> tuple[float, bool]:
        """Sum of squared deviations from the mean and whether it took the one-pass shortcut
        (see :func:`sum_sq_dev`)."""
        return sum_sq_dev(self.s, self.s_mean)

    @cached_property
    def scratch(self) -> np.ndarray:
        """One work array for the distribution metrics, which fill it in turn (SIM, then KLD):
        fewer fresh 4 MB allocations, each of which costs page faults."""
        return self.buffer("scratch")

    @cached_property
    def s_shifted(self) -> np.ndarray:
        """``map - min``: the numerator of the MATLAB min-max rescaling, and of pysaliency's
        density for a map with negative values."""
        return np.subtract(self.s, self.smin, out=self.buffer("shifted"))

    @cached_property
    def s_shifted_sum(self) -> float:
        return float(self.s_shifted.sum())

    def minmax_at(self, idx: np.ndarray) -> np.ndarray:
        """The map rescaled to [0, 1] (MATLAB ``(m - min) / (max - min)``) at ``idx``; a constant
        map is all ones."""
        if self.constant:
            return np.ones(idx.shape)
        return (self.s[idx] - self.smin) / (self.smax - self.smin)

    def minmax_count_at_or_above(self, thresholds: np.ndarray) -> np.ndarray:
        """How many pixels have a rescaled value ``minmax`` >= each threshold, agreeing with
        :meth:`minmax_at` to the bit: the sorted float32 map settles every pixel farther than
        a rounding margin from the threshold's preimage ``min + t * span``; when pixels lie inside
        that margin, the rescaled map itself is compared."""
        n = self.n
        if self.constant:
            return np.where(thresholds <= 1.0, n, 0)
        lo, hi = self.smin, self.smax
        span = hi - lo
        margin = 1e-12 * (abs(lo) + abs(hi) + span)  # >> the few ulps of rounding in minmax_at
        srt = self.s32_sorted
        out = np.empty(thresholds.shape, dtype=np.int64)
        for j, t in enumerate(thresholds):
            if t <= 0:
                out[j] = n  # minmax >= 0 everywhere
                continue
            q = lo + t * span
            a = np.float32(q - margin)  # float32 below a -> below q - margin
            b = np.float32(q + margin)
            start = int(np.searchsorted(srt, a, side="left"))
            stop = int(np.searchsorted(srt, b, side="right"))
            if start == stop:
                out[j] = n - start
            else:  # rescale the pixels in the margin exactly as minmax_at does
                s32 = self.s32
                near = np.greater_equal(s32, a, out=self.buffer("near", bool))
                near &= s32 <= b
                out[j] = n - stop + int(np.count_nonzero((self.s[near] - lo) / span >= t))
        return out

    def mit_prob_at(self, idx: np.ndarray) -> np.ndarray:
        """MIT distribution (similarity.m, InfoGain.m) at ``idx``: rescaled to [0, 1], divided by
        its sum. The range cancels: ``(m - min) / sum(m - min)``; a constant map is uniform."""
        if self.constant:
            return np.full(idx.shape, 1.0 / self.n)
        return (self.s[idx] - self.smin) / self.s_shifted_sum

    @cached_property
    def prob_base(self) -> tuple[np.ndarray, float] | None:
        """pysaliency's distribution (``convert_saliency_map_to_density``) as ``(numerator, sum)``:
        subtract the minimum only if it is negative, divide by the sum. ``None`` for a constant map,
        which is uniform (pysaliency also makes a map summing to zero uniform)."""
        if self.constant:
            return None
        if self.smin < 0:
            return self.s_shifted, self.s_shifted_sum
        return self.s, self.s_sum

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
            "other": self._other is None,
        }[what]
        if missing:
            arg = {"density": "density=", "other": "other_x=/other_y="}[what]
            raise MetricInputError(f"metric {metric!r} needs {arg} (see docs/metrics.md)")

    @property
    def has_density(self) -> bool:
        return self._density is not None

    @property
    def has_other(self) -> bool:
        return self._other is not None

    @cached_property
    def d(self) -> np.ndarray:
        """The human density, validated on first use; sets ``dmin``, ``dmax``, ``dsum``."""
        d, self.dmin, self.dmax = _map("density", self._density, self.shape)
        if self.dmin < 0:
            raise MetricInputError("density has negative values; expected a fixation density")
        self.dsum = float(d.sum())
        return d

    @cached_property
    def d_empty(self) -> bool:
        """No human data: a density that sums to zero makes every density metric NaN."""
        _ = self.d
        return not self.dsum > 0

    @cached_property
    def d_sumsq(self) -> tuple[float, bool]:
        return sum_sq_dev(self.d, self.dsum / self.n)

    def d_kth_largest(self, k: int) -> float:
        return kth_largest(self.d, k)

    @property
    def other(self) -> np.ndarray:
        return self._other

    @cached_property
    def b(self) -> tuple[np.ndarray, float, float] | None:
        """The baseline map (flat) with its min and max, or None (uniform)."""
        return None if self._baseline is None else _map("baseline", self._baseline, self.shape)
