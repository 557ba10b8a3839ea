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

Leave-one-subject-out (human ceiling)
-------------------------------------
:func:`loso_densities` builds each subject's unnormalised map from that subject's pixels only (the
products together cost one full map) and forms "everyone but s" from prefix and suffix sums: only
non-negative maps are added, never subtracted, so tails far from the other observers keep full
precision (a ``total - own`` subtraction would round them to 0).
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
    (a :class:`harness.data.GazeDataset` instance or class, or anything with that attribute)."""
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


def _densities(weights: np.ndarray, r: np.ndarray, c: np.ndarray, shape: Sequence[int], sigma: float) -> np.ndarray:
    """Normalised densities for each row of ``weights`` (m, k) over the k pixels (r, c): array (m, h, w).

    ``D_j = Gy^T diag(w_j / Z_j) Gx``; the normaliser ``Z_j = sum_i w_ji * sum(gy_i) * sum(gx_i)`` is
    the map's total computed from the factors, so each map is written exactly once, already
    normalised, and all m maps come from one stacked matrix product ``(m*h, k) @ (k, w)``."""
    height, width = int(shape[0]), int(shape[1])
    m = weights.shape[0]
    if r.size > MATMUL_MAX_POINTS:
        return np.stack([_normalise(_filtered_raw(w, r, c, shape, sigma)) for w in weights])
    gy = _axis_factors(r, height, sigma)  # (k, h)
    gx = _axis_factors(c, width, sigma)  # (k, w)
    totals = weights @ (gy.sum(axis=1) * gx.sum(axis=1))  # (m,)
    if not np.all((totals > 0) & np.isfinite(totals)):
        raise ValueError("density is empty: the blur left no mass inside the image")
    scaled = weights / totals[:, None]  # (m, k)
    left = (scaled[:, None, :] * gy.T[None, :, :]).reshape(m * height, r.size)  # (m*h, k)
    return (left @ gx).reshape(m, height, width)


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


def loso_densities(fixations, shape: Sequence[int], sigma_px: float) -> list[tuple[int, np.ndarray]]:
    """For each subject ``s`` of ``fixations`` (a :class:`harness.schema.Fixations`), the density of
    everyone else's fixations: ``[(s, density_without_s), ...]`` in increasing subject index.

    Used for the human ceiling (how well the other observers predict one observer). Subjects whose
    removal leaves no fixation (the only observer) are omitted."""
    sigma = _check_sigma(sigma_px)
    height, width = int(shape[0]), int(shape[1])
    rows, cols = _pixel_indices(fixations.x, fixations.y, shape)
    subjects = np.asarray(fixations.subject)
    ids, subject_index = np.unique(subjects, return_inverse=True)
    if ids.size < 2:
        return []
    r, c, inverse = _positions(rows, cols, width)
    own = np.zeros((ids.size, r.size), dtype=np.float64)  # fixation counts per subject and pixel
    np.add.at(own, (subject_index.ravel(), inverse), 1.0)
    if r.size > MATMUL_MAX_POINTS:
        per = [_filtered_raw(w, r, c, shape, sigma) for w in own]
    else:
        gy = _axis_factors(r, height, sigma)
        gx = _axis_factors(c, width, sigma)
        per = []
        for w in own:  # each subject's unnormalised map from its own pixels only
            idx = np.flatnonzero(w)
            per.append((gy[idx].T * w[idx]) @ gx[idx])
    # "all but k" = prefix[k] + suffix with prefix[k] = sum(per[:k]), suffix = sum(per[k+1:]):
    # sums of non-negative maps only, so nothing cancels
    prefix = [np.zeros((height, width), dtype=np.float64)]
    for m in per[:-1]:
        prefix.append(prefix[-1] + m)
    out: list[tuple[int, np.ndarray]] = []
    suffix = np.zeros((height, width), dtype=np.float64)
    for k in range(ids.size - 1, -1, -1):
        others = prefix[k]
        others += suffix
        suffix += per[k]
        per[k] = None  # free as we go
        out.append((int(ids[k]), _normalise(others)))
    out.reverse()
    return out


def record_density(record: dict, sigma_px: float) -> np.ndarray:
    """The fixation density of one canonical record (all subjects), at the record's size."""
    from ..schema import Fixations

    fix = Fixations.from_record(record)
    return fixation_density(fix.x, fix.y, (int(record["height"]), int(record["width"])), sigma_px)
