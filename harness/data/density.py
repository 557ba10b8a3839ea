"""Human fixation density maps: fixations blurred by a Gaussian of ``degrees x pixels_per_degree``.

Definition (what every metric and the human ceiling use)
--------------------------------------------------------
Each fixation ``(x, y)`` (0-indexed: x column, y row) is rounded to the nearest pixel, half up
(``floor(v + 0.5)``, like MATLAB's ``round`` for the non-negative coordinates of the sources), giving
a histogram ``H`` of the image's shape. The density is ``G_sigma * H`` (2-D isotropic Gaussian,
standard deviation ``sigma_px`` pixels) **with zero padding**: mass that the blur spreads outside the
image is discarded, then the map is renormalised to sum to 1. This equals
``scipy.ndimage.gaussian_filter(H, sigma, mode="constant")`` normalised, with an untruncated
kernel. Zero padding (rather than reflecting) is the convention of the MIT benchmark and of the
OSIE authors' own code (``imfilter(map, gaussian, 0)``) and does not pile mass up along the borders.

How it is computed (why it is fast)
-----------------------------------
A 2-D Gaussian is separable, so the blurred histogram is a sum of outer products:
``D[r, c] = sum_i w_i g(r - r_i) g(c - c_i) = (Gy^T W Gx)[r, c]`` where ``Gy`` is ``(k, height)``,
``Gx`` is ``(k, width)`` and ``k`` counts distinct fixated pixels (``w_i`` fixations on each). That is
one BLAS matrix product, exact (no kernel truncation), ~2.5 ms for an 800x600 OSIE map with ~140
fixations instead of ~50-90 ms for ``gaussian_filter`` (``benchmarks/density.py``, 2026-12-03; 3.4
ms before the factors' rows were copied from one kernel instead of exponentiated per pixel). The
map's total is known from the factors (``sum_i w_i sum(g_y,i) sum(g_x,i)``), so the normalisation
is folded into ``W`` and each map is written exactly once. Above :data:`MATMUL_MAX_POINTS`
distinct pixels the product costs more than filtering, so the histogram is filtered with
``gaussian_filter`` (truncated at 8 sigma: relative error ~1e-14). All arithmetic is float64:
leave-one-subject-out maps reach values ~1e-80 far from the other observers (below float32's
range) and metrics take logs. ``benchmarks/density.py`` prints the timings.

Blur per stimulus
-----------------
``sigma_px`` is one number per map. A dataset whose images were scaled to the screen each by its own
factor has a different pixels-per-degree for every stimulus: :func:`stimulus_ppd` and
:func:`stimulus_sigma_px` give one stimulus' value from its record's optional ``pixels_per_degree``
and ``display_scale`` (:mod:`harness.schema`) and the dataset's ``display_pixels_per_degree`` /
``pixels_per_degree``, in that order of precedence; ``--sigma-px`` counts display pixels on such a
dataset. The evaluation resolves every stimulus' blur once
(:func:`harness.evaluation.config.stimulus_blurs`).

Leave-one-subject-out (human ceiling)
-------------------------------------
:func:`loso_densities` (and :class:`LeaveOneOut`, which the human ceiling uses) builds each
subject's own density from that subject's pixels only (the products together cost one full map)
and forms "everyone but s" as ``sum over j != s of Z_j * own_j`` (``Z_j`` the total subject j's
blurred fixations were divided by) from prefix and suffix sums: only non-negative maps are added,
never subtracted, so tails far from the other observers keep full precision (a ``total - own``
subtraction would round them to 0). The sums run in one compiled sweep over blocks of pixels of
all maps, which also finds what validating each own density and normalising each sum needs; the
maps are those of adding whole maps with numpy, to the bit (``tests/test_density.py``).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

#: default blur: one degree of visual angle (the MIT saliency benchmark convention)
DEFAULT_SIGMA_DEGREES = 1.0
#: above this many distinct fixated pixels the histogram is filtered instead of using the product
MATMUL_MAX_POINTS = 4000
_FILTER_TRUNCATE = 8.0


def sigma_px(dataset: Any, degrees: float = DEFAULT_SIGMA_DEGREES) -> float:
    """Blur width in pixels: ``degrees`` of visual angle times the dataset's ``pixels_per_degree``
    (a :class:`harness.data.GazeDataset` instance or class, or anything with that attribute).
    The dataset-wide value; a dataset with per-stimulus geometry needs :func:`stimulus_sigma_px`."""
    ppd = getattr(dataset, "pixels_per_degree", None)
    name = getattr(dataset, "name", type(dataset).__name__)
    try:
        ppd = float(ppd)
    except (TypeError, ValueError):
        ppd = math.nan
    if not (math.isfinite(ppd) and ppd > 0):
        raise DataError(f"dataset {name!r} has no valid pixels_per_degree ({ppd}); cannot convert degrees to pixels")
    if not (math.isfinite(degrees) and degrees >= 0):
        raise ValueError(f"degrees must be a finite non-negative number, got {degrees}")
    return float(degrees) * ppd


def _finite_positive(value: Any) -> float:
    """``value`` as a float when it is a positive finite number, else NaN."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) and v > 0 else math.nan


def stimulus_ppd(record: dict, dataset: Any) -> tuple[float, str]:
    """Pixels of the stored image per degree for one stimulus, and where the number comes from.

    First that is known wins:

    1. ``"record"``: the record's own ``pixels_per_degree``;
    2. ``"display"``: the dataset's ``display_pixels_per_degree`` divided by the record's
       ``display_scale`` (display pixels per image pixel: an image enlarged 2x on the screen has
       half as many of its own pixels per degree as the screen);
    3. ``"dataset"``: the dataset's ``pixels_per_degree`` (one value for every stimulus);

    else ``(nan, "none")``. ``record``: a canonical record (or any mapping with those keys; absent
    columns count as not known); ``dataset``: a :class:`harness.data.GazeDataset` instance or class."""
    from ..schema import record_geometry

    ppd, scale = record_geometry(record)
    ppd, scale = _finite_positive(ppd), _finite_positive(scale)
    if math.isfinite(ppd):
        return ppd, "record"
    display = _finite_positive(getattr(dataset, "display_pixels_per_degree", math.nan))
    if math.isfinite(display) and math.isfinite(scale):
        return display / scale, "display"
    ppd = _finite_positive(getattr(dataset, "pixels_per_degree", math.nan))
    if math.isfinite(ppd):
        return ppd, "dataset"
    return math.nan, "none"


def stimulus_sigma_px(record: dict, dataset: Any, *, degrees: float = DEFAULT_SIGMA_DEGREES,
                      sigma_px: float | None = None) -> tuple[float, str]:
    """The density blur of one stimulus in pixels of its stored image, and its source.

    ``sigma_px`` given (``--sigma-px``): a blur chosen in pixels. When the record has a
    ``display_scale`` it is **display** pixels, converted to this image as ``sigma_px /
    display_scale`` (source ``"display-px"``): every image was seen on the same screen, so a blur
    that is one size on the screen is one visual angle on every image, whatever its stored size,
    and no viewing distance is needed. Without a display scale it is image pixels as given
    (``"image-px"``). It takes precedence over every pixels-per-degree value.

    Otherwise ``degrees`` (``--sigma-deg``) times :func:`stimulus_ppd` (source ``"record"``,
    ``"display"`` or ``"dataset"``); a :class:`DataError` when no pixels per degree is known."""
    from ..schema import record_geometry

    if sigma_px is not None:
        sigma = float(sigma_px)
        scale = _finite_positive(record_geometry(record)[1])
        if math.isfinite(scale):
            return sigma / scale, "display-px"
        return sigma, "image-px"
    if not (math.isfinite(degrees) and degrees >= 0):
        raise ValueError(f"degrees must be a finite non-negative number, got {degrees}")
    ppd, source = stimulus_ppd(record, dataset)
    if source == "none":
        name = getattr(dataset, "name", type(dataset).__name__)
        raise DataError(f"dataset {name!r} has no valid pixels_per_degree for stimulus "
                        f"{record.get('stimulus_id')!r}; cannot convert degrees to pixels")
    return float(degrees) * ppd, source


def _pixel_indices(x, y, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rounded (row, col) indices; points within half a pixel outside the grid are clamped to the
    border pixel (they round onto it), anything farther is an error."""
    height, width = int(shape[0]), int(shape[1])
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be positive (height, width), got {tuple(shape)}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("fixation coordinates contain NaN or infinity")
    bad = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} fixation(s) outside the {width}x{height} grid, e.g. ({x[i]}, {y[i]})"
        )
    cols = np.clip(np.floor(x + 0.5), 0, width - 1).astype(np.int64)
    rows = np.clip(np.floor(y + 0.5), 0, height - 1).astype(np.int64)
    return rows, cols


def _axis_factors(idx: np.ndarray, length: int, sigma: float) -> np.ndarray:
    """``(k, length)`` rows ``g(t - idx_i)`` of the unnormalised 1-D Gaussian (one-hot for sigma 0).

    The pixel indices are integers, so every row is a window of one kernel over the offsets
    ``-(length - 1) .. length - 1`` (:func:`_axis_kernel`): rows are copied, not exponentiated again
    (the same numbers: each offset's value is the same expression of the same float; both axes of
    an 800x600 map for 230 fixated pixels: 0.1 ms instead of 4.7; OSIE's densities 27% faster)."""
    if sigma == 0:
        t = np.arange(length, dtype=np.float64)
        return (t[None, :] == idx[:, None]).astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(_axis_kernel(int(length), float(sigma)), length)
    # window j starts at offset j - (length - 1): pixel i's row is window length - 1 - idx_i
    return windows[(length - 1) - np.asarray(idx, dtype=np.int64)]


@functools.lru_cache(maxsize=16)
def _axis_kernel(length: int, sigma: float) -> np.ndarray:
    """``g(d)`` for the offsets ``d = -(length - 1) .. length - 1`` (read-only: it is shared)."""
    d = np.arange(-(length - 1), length, dtype=np.float64)
    g = np.exp((-0.5 / (sigma * sigma)) * d ** 2)
    g.flags.writeable = False
    return g


def _positions(rows: np.ndarray, cols: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct fixated pixels (row, col) and, per fixation, the index of its pixel."""
    uniq, inverse = np.unique(rows * width + cols, return_inverse=True)
    r, c = np.divmod(uniq, width)
    return r, c, inverse.ravel()


def _filtered_raw(weights: np.ndarray, r: np.ndarray, c: np.ndarray, shape: Sequence[int], sigma: float) -> np.ndarray:
    """Unnormalised blurred weighted histogram by filtering (used for many distinct pixels)."""
    from scipy.ndimage import gaussian_filter

    height, width = int(shape[0]), int(shape[1])
    hist = np.zeros((height, width), dtype=np.float64)
    hist[r, c] = weights
    return gaussian_filter(hist, sigma, mode="constant", cval=0.0, truncate=_FILTER_TRUNCATE) if sigma else hist


def _densities(weights: np.ndarray, r: np.ndarray, c: np.ndarray, shape: Sequence[int], sigma: float,
               out: np.ndarray | None = None) -> np.ndarray:
    """Normalised densities for each row of ``weights`` (m, k) over the k pixels (r, c): array (m, h, w)
    (into ``out``, C-contiguous, if given).

    ``D_j = Gy^T diag(w_j / Z_j) Gx``; the normaliser ``Z_j = sum_i w_ji * sum(gy_i) * sum(gx_i)`` is
    the map's total computed from the factors, so each map is written exactly once, already
    normalised, and all m maps come from one stacked matrix product ``(m*h, k) @ (k, w)``."""
    height, width = int(shape[0]), int(shape[1])
    if r.size > MATMUL_MAX_POINTS:
        maps = [_normalise(_filtered_raw(w, r, c, shape, sigma)) for w in weights]
        if out is None:
            return np.stack(maps)
        out[...] = maps
        return out
    return _product_density(weights, _axis_factors(r, height, sigma), _axis_factors(c, width, sigma), out)


def _product_totals(weights: np.ndarray, gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """Each map's total ``Z_j`` (m,) from the axis factors (see :func:`_densities`), checked."""
    totals = weights @ (gy.sum(axis=1) * gx.sum(axis=1))  # (m,)
    if not np.all((totals > 0) & np.isfinite(totals)):
        raise ValueError("density is empty: the blur left no mass inside the image")
    return totals


def _product_density(weights: np.ndarray, gy: np.ndarray, gx: np.ndarray, out: np.ndarray | None = None,
                     totals: np.ndarray | None = None) -> np.ndarray:
    """:func:`_densities` from the axis factors ``gy`` (k, h) and ``gx`` (k, w) (``totals``: their
    :func:`_product_totals`, if known)."""
    m, k = weights.shape
    height, width = gy.shape[1], gx.shape[1]
    if totals is None:
        totals = _product_totals(weights, gy, gx)
    scaled = weights / totals[:, None]  # (m, k)
    left = (scaled[:, None, :] * gy.T[None, :, :]).reshape(m * height, k)  # (m*h, k)
    if out is None:
        return (left @ gx).reshape(m, height, width)
    np.matmul(left, gx, out=out.reshape(m * height, width))  # the same product, written in place
    return out


def _own_density(w: np.ndarray, r: np.ndarray, c: np.ndarray, shape: Sequence[int], sigma: float,
                 out: np.ndarray, gy: np.ndarray | None = None, gx: np.ndarray | None = None) -> float:
    """The density of ``w`` fixations on the pixels (r, c) into ``out`` (h, w), exactly as
    :func:`fixation_density` computes it (the same path, the same operations; ``gy``/``gx``: these
    pixels' axis factors, if built), and the unnormalised total it was divided by."""
    if r.size > MATMUL_MAX_POINTS:
        raw = _filtered_raw(w, r, c, shape, sigma)
        total = raw.sum()
        if not (total > 0 and math.isfinite(total)):
            raise ValueError("density is empty: the blur left no mass inside the image")
        np.multiply(raw, 1.0 / total, out=out)  # _normalise's ``m *= 1.0 / total``
        return float(total)
    if gy is None:
        gy, gx = _axis_factors(r, int(shape[0]), sigma), _axis_factors(c, int(shape[1]), sigma)
    totals = _product_totals(w[None, :], gy, gx)
    _product_density(w[None, :], gy, gx, out.reshape(1, *out.shape), totals)
    return float(totals[0])


def _normalise(m: np.ndarray) -> np.ndarray:
    total = m.sum()
    if not (total > 0 and math.isfinite(total)):
        raise ValueError("density is empty: the blur left no mass inside the image")
    m *= 1.0 / total
    return m


def _check_sigma(sigma: float) -> float:
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma_px must be a finite non-negative number, got {sigma}")
    return sigma


def fixation_density(x, y, shape: Sequence[int], sigma_px: float) -> np.ndarray:
    """Fixation density of shape ``(height, width)`` (float64, sums to 1); see the module doc.

    ``x`` are columns and ``y`` rows, 0-indexed pixel coordinates; ``sigma_px`` 0 gives the plain
    normalised histogram."""
    sigma = _check_sigma(sigma_px)
    rows, cols = _pixel_indices(x, y, shape)
    if rows.size == 0:
        raise ValueError("no fixations: a density needs at least one")
    r, c, inverse = _positions(rows, cols, int(shape[1]))
    counts = np.bincount(inverse, minlength=r.size).astype(np.float64)
    return _densities(counts[None, :], r, c, shape, sigma)[0]


class LeaveOneOut:
    """The densities the human ceiling needs for one stimulus, from one blur per subject.

    ``subjects``: the subject indices present, increasing. :meth:`own` ``(k)``: subject
    ``subjects[k]``'s own density, exactly what :func:`fixation_density` gives for that subject's
    fixations. ``maps[k]`` (when there are at least two subjects, else ``None``): the density of
    everyone's fixations but ``subjects[k]``'s, exactly the array :func:`loso_densities` gives.

    How: each subject's own density comes from one product over that subject's pixels only (the
    products together cost one full map); with ``Z_j`` the unnormalised total it was divided by,
    "everyone but k" is ``sum over j != k of Z_j * own_j`` (the other subjects' blurred fixations),
    formed as a prefix sum plus a suffix sum in one compiled sweep over blocks of pixels of all
    maps (:func:`harness.metrics.kernels.leave_one_out_weighted`), then divided by its total.
    Only non-negative terms are added, never subtracted: subtracting a subject from the total would
    be cheaper to write but would cancel (far from the other observers the left-out subject's own
    mass swamps the 1e-80 tail the metrics take logarithms of). The same sweep reads every own
    density once, so it also finds what validating it costs a pass for (:meth:`own_stats`), and
    each leave-one-out map's total; normalising a map finds its statistics in the same pass
    (:meth:`map_stats`). The metric suite then reads each map only for the metrics themselves.

    ``buffer``: a float64 array of at least :meth:`buffer_size` elements to hold the maps (reused
    from one stimulus to the next: a fresh 4 MB array costs ~1000 page faults, ~2 ms on a virtual
    machine).

    ``lazy``: normalise map k only when :meth:`map` ``(k)`` asks for it (``maps[k]`` holds the
    unnormalised sum until then), so that a caller scoring one map at a time reads each map from
    memory once: the normalising pass brings it into the cache where its metrics find it."""

    def __init__(self, fixations, shape: Sequence[int], sigma_px: float, buffer: np.ndarray | None = None,
                 lazy: bool = False):
        self.sigma = sigma = _check_sigma(sigma_px)
        self.shape = height, width = int(shape[0]), int(shape[1])
        rows, cols = _pixel_indices(fixations.x, fixations.y, shape)
        ids, subject_index = np.unique(np.asarray(fixations.subject), return_inverse=True)
        self.subjects = ids
        self.maps: np.ndarray | None = None
        if ids.size < 2:
            return
        r, c, inverse = _positions(rows, cols, width)
        counts = np.zeros((ids.size, r.size), dtype=np.float64)  # fixation counts per subject and pixel
        np.add.at(counts, (subject_index.ravel(), inverse), 1.0)
        n, m = height * width, ids.size
        if buffer is None or buffer.size < self.buffer_size(m, shape):
            buffer = np.empty(self.buffer_size(m, shape))
        buffer = buffer.reshape(-1)
        owns = buffer[: m * n].reshape(m, height, width)
        maps = buffer[m * n : 2 * m * n].reshape(m, height, width)
        from ..metrics import kernels

        gy = gx = None
        if r.size <= MATMUL_MAX_POINTS:  # factors for every pixel once; each subject takes its rows
            gy, gx = _axis_factors(r, height, sigma), _axis_factors(c, width, sigma)
        z = np.empty(m)
        for k, w in enumerate(counts):  # each subject's density from its own pixels only
            idx = np.flatnonzero(w)
            z[k] = _own_density(w[idx], r[idx], c[idx], shape, sigma, owns[k],
                                None if gy is None else gy[idx], None if gx is None else gx[idx])
        self._totals, self._own_stats, finite = kernels.leave_one_out_weighted(
            owns.reshape(m, n), z, maps.reshape(m, n))
        if not finite.all():
            raise ValueError("density is not finite: the blur overflowed")
        self.owns = owns
        self.maps = maps
        self._stats: list[tuple[float, float, float, float] | None] = [None] * m
        if not lazy:
            for k in range(ids.size):
                self.map(k)

    @staticmethod
    def buffer_size(n_subjects: int, shape: Sequence[int]) -> int:
        """How many float64 values a ``buffer`` for ``n_subjects`` subjects needs (their own
        densities and their leave-one-out maps)."""
        return 2 * n_subjects * int(shape[0]) * int(shape[1])

    def _check(self) -> None:
        if self.maps is None:
            raise ValueError("fewer than two subjects: no leave-one-out maps")

    def map(self, k: int) -> np.ndarray:
        """The density of everyone but ``subjects[k]`` (normalised now if it was not yet)."""
        self._check()
        if self._stats[k] is None:
            from ..metrics import kernels

            total = self._totals[k]
            if not (total > 0 and math.isfinite(total)):
                raise ValueError("density is empty: the blur left no mass inside the image")
            lo, hi, s, ss, finite = kernels.scale_stats(self.maps[k].reshape(-1), 1.0 / total)
            if not finite:
                raise ValueError("density is not finite: the blur overflowed")
            self._stats[k] = (float(lo), float(hi), float(s), float(ss))
        return self.maps[k]

    def map_stats(self, k: int) -> tuple[float, float, float, float]:
        """``(min, max, sum, sum of squares)`` of :meth:`map` ``(k)``, the numbers
        :func:`harness.metrics.kernels.stats` gives for it."""
        self.map(k)
        return self._stats[k]

    def own(self, k: int) -> np.ndarray:
        """Subject ``subjects[k]``'s own density."""
        self._check()
        return self.owns[k]

    def own_stats(self, k: int) -> tuple[float, float, float, float]:
        """``(min, max, sum, sum of squares)`` of :meth:`own` ``(k)``, the numbers
        :func:`harness.metrics.kernels.stats` gives for it."""
        self._check()
        return tuple(float(v) for v in self._own_stats[k])


def loso_densities(fixations, shape: Sequence[int], sigma_px: float) -> list[tuple[int, np.ndarray]]:
    """For each subject ``s`` of ``fixations`` (a :class:`harness.schema.Fixations`), the density of
    everyone else's fixations: ``[(s, density_without_s), ...]`` in increasing subject index.

    Used for the human ceiling (how well the other observers predict one observer). Subjects whose
    removal leaves no fixation (the only observer) are omitted."""
    loo = LeaveOneOut(fixations, shape, sigma_px)
    if loo.maps is None:
        return []
    return [(int(s), m) for s, m in zip(loo.subjects, loo.maps)]


def record_density(record: dict, sigma_px: float) -> np.ndarray:
    """The fixation density of one canonical record (all subjects), at the record's size, blurred by
    ``sigma_px`` pixels of the record's image (for a dataset with per-stimulus geometry, take it from
    :func:`stimulus_sigma_px`)."""
    from ..schema import Fixations

    fix = Fixations.from_record(record)
    return fixation_density(fix.x, fix.y, (int(record["height"]), int(record["width"])), sigma_px)
