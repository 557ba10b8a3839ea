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
one BLAS matrix product, exact (no kernel truncation), ~2-6 ms for an 800x600 OSIE map with ~140
fixations instead of ~50-90 ms for ``gaussian_filter``. The map's total is known from the factors
(``sum_i w_i sum(g_y,i) sum(g_x,i)``), so the normalisation is folded into ``W`` and each map is
written exactly once. Above :data:`MATMUL_MAX_POINTS` distinct pixels the product costs more than
filtering, so the histogram is filtered with ``gaussian_filter`` (truncated at 8 sigma: relative
error ~1e-14). All arithmetic is float64: leave-one-subject-out maps reach values ~1e-80 far from
the other observers (below float32's range) and metrics take logs. ``benchmarks/density.py``
prints the timings.

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
subject's unnormalised map from that subject's pixels only (the products together cost one full
map) and forms "everyone but s" from prefix and suffix sums: only non-negative maps are added,
never subtracted, so tails far from the other observers keep full precision (a ``total - own``
subtraction would round them to 0). The sums run in one compiled sweep over blocks of pixels of
all maps (in place, no temporary maps); every pixel gets the same products and the same additions
in the same order as adding whole maps with numpy did, so the maps are the same to the bit
(``tests/test_density.py``).
"""

from __future__ import annotations

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
    """``(k, length)`` rows ``g(t - idx_i)`` of the unnormalised 1-D Gaussian (one-hot for sigma 0)."""
    t = np.arange(length, dtype=np.float64)
    if sigma == 0:
        return (t[None, :] == idx[:, None]).astype(np.float64)
    return np.exp((-0.5 / (sigma * sigma)) * (t[None, :] - idx[:, None]) ** 2)


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


def _product_density(weights: np.ndarray, gy: np.ndarray, gx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`_densities` from the axis factors ``gy`` (k, h) and ``gx`` (k, w)."""
    m, k = weights.shape
    height, width = gy.shape[1], gx.shape[1]
    totals = weights @ (gy.sum(axis=1) * gx.sum(axis=1))  # (m,)
    if not np.all((totals > 0) & np.isfinite(totals)):
        raise ValueError("density is empty: the blur left no mass inside the image")
    scaled = weights / totals[:, None]  # (m, k)
    left = (scaled[:, None, :] * gy.T[None, :, :]).reshape(m * height, k)  # (m*h, k)
    if out is None:
        return (left @ gx).reshape(m, height, width)
    np.matmul(left, gx, out=out.reshape(m * height, width))  # the same product, written in place
    return out


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

    ``subjects``: the subject indices present, increasing. ``maps[k]`` (when there are at least two
    subjects, else ``None``): the density of everyone's fixations but ``subjects[k]``'s, exactly the
    array :func:`loso_densities` gives. :meth:`own` ``(k)``: subject ``subjects[k]``'s own density,
    exactly what :func:`fixation_density` gives for that subject's fixations.

    How: each subject's unnormalised map comes from one product over that subject's pixels only;
    "everyone but k" is a prefix sum of those maps plus a suffix sum
    (:func:`harness.metrics.kernels.leave_one_out_sums_into`), adding non-negative maps only.
    (Subtracting a subject from the total would be cheaper to write but would cancel: far from the
    other observers the left-out subject's own mass swamps the 1e-80 tail the metrics take
    logarithms of.) The sums are formed in place, one compiled sweep over blocks of pixels of all
    maps. A subject's own density is the same blur normalised, computed as
    :func:`fixation_density` does, on the factors already built.
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
        own = np.zeros((ids.size, r.size), dtype=np.float64)  # fixation counts per subject and pixel
        np.add.at(own, (subject_index.ravel(), inverse), 1.0)
        self._r, self._c, self._own = r, c, own
        n, m = height * width, ids.size
        if buffer is None or buffer.size < self.buffer_size(m, shape):
            buffer = np.empty(self.buffer_size(m, shape))
        buffer = buffer.reshape(-1)
        maps = buffer[: m * n].reshape(m, height, width)
        from ..metrics import kernels

        self._gy = self._gx = None
        if r.size > MATMUL_MAX_POINTS:
            for k, w in enumerate(own):
                maps[k] = _filtered_raw(w, r, c, shape, sigma)
        else:
            self._gy = gy = _axis_factors(r, height, sigma)
            self._gx = gx = _axis_factors(c, width, sigma)
            for k, w in enumerate(own):  # each subject's unnormalised map from its own pixels only
                idx = np.flatnonzero(w)
                # the whole map in one product, as before: BLAS may add up an edge row of a block
                # of rows in another order, so products over blocks of rows would not give the bits
                np.matmul(gy[idx].T * w[idx], gx[idx], out=maps[k])
        kernels.leave_one_out_sums(maps.reshape(m, n))
        self.maps = maps
        self._normalised = np.zeros(ids.size, dtype=bool)
        if not lazy:
            for k in range(ids.size):
                self.map(k)

    @staticmethod
    def buffer_size(n_subjects: int, shape: Sequence[int]) -> int:
        """How many float64 values a ``buffer`` for ``n_subjects`` subjects needs."""
        return n_subjects * int(shape[0]) * int(shape[1])

    def map(self, k: int) -> np.ndarray:
        """The density of everyone but ``subjects[k]`` (normalised now if it was not yet)."""
        if self.maps is None:
            raise ValueError("fewer than two subjects: no leave-one-out maps")
        if not self._normalised[k]:
            _normalise(self.maps[k])
            self._normalised[k] = True
        return self.maps[k]

    def own(self, k: int, out: np.ndarray | None = None) -> np.ndarray:
        """Subject ``subjects[k]``'s own density (into ``out``, a C-contiguous (h, w) float64 array,
        if given)."""
        if self.maps is None:
            raise ValueError("fewer than two subjects: no leave-one-out maps")
        w = self._own[k]
        idx = np.flatnonzero(w)
        r, c = self._r[idx], self._c[idx]
        if out is not None:
            out = out.reshape(1, *self.shape)
        if self._gy is None or r.size > MATMUL_MAX_POINTS:
            return _densities(w[idx][None, :], r, c, self.shape, self.sigma, out)[0]
        return _product_density(w[idx][None, :], self._gy[idx], self._gx[idx], out)[0]


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
