"""Resolution helpers of the calibration: block downsampling, bilinear upsampling, Gaussian blurs as
matrices.

The calibration works on maps downsampled by an integer ``factor`` (OSIE's 800x600 at factor 8:
100x75 blocks). Block ``(I, J)`` holds the stimulus pixels ``[I*f, (I+1)*f) x [J*f, (J+1)*f)``
(the last row/column of blocks is partial when the size is not a multiple of ``f``); its value is
the mean (maps) or the sum (densities) over those pixels. Going back up, a block's value sits at its
centre, full-resolution pixel ``(I + 0.5) * f - 0.5``, and pixels in between are interpolated
bilinearly (clamped at the borders); :func:`bilinear_weights` gives the two neighbours and weights
per pixel, so a map is upsampled by two gathers and the same weights give the value at any fixation.

Blurs are products with banded matrices: ``G_rows @ M @ G_cols.T`` is exactly
``scipy.ndimage.gaussian_filter(M, sigma, mode=mode, truncate=4.0)`` (the kernel normalised to sum
1 and cut at ``int(4 * sigma + 0.5)``, as scipy does), and a stack of maps is blurred in one call.
``mode="nearest"`` (edge values repeated) for the calibration's own blur; ``mode="constant"``
(zero padding) for the metric-specific maps of CC and KLD, as the MIT/Tuebingen benchmark
(``BluringSaliencyMapModel(..., mode='constant')``) and the harness's human density use.
"""

from __future__ import annotations

import functools
import math

import numpy as np

TRUNCATE = 4.0


def low_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """The block grid's shape for a stimulus of ``shape`` (rows, columns)."""
    return -(-int(shape[0]) // int(factor)), -(-int(shape[1]) // int(factor))


def block_sum(a: np.ndarray, factor: int) -> np.ndarray:
    """Sums over ``factor`` x ``factor`` blocks (partial blocks at the bottom/right edge)."""
    a = np.asarray(a, dtype=np.float64)
    f = int(factor)
    if f == 1:
        return a.copy()
    h, w = a.shape[-2:]
    if h % f == 0 and w % f == 0:
        return a.reshape(*a.shape[:-2], h // f, f, w // f, f).sum(axis=(-3, -1))
    rows = np.add.reduceat(a, np.arange(0, h, f), axis=-2)
    return np.add.reduceat(rows, np.arange(0, w, f), axis=-1)


@functools.lru_cache(maxsize=32)
def block_area(shape: tuple[int, int], factor: int) -> np.ndarray:
    """Pixels per block, shape :func:`low_shape` (read-only)."""
    h, w = int(shape[0]), int(shape[1])
    f = int(factor)
    rows = np.diff(np.minimum(np.arange(0, h + f, f), h))[: low_shape(shape, f)[0]]
    cols = np.diff(np.minimum(np.arange(0, w + f, f), w))[: low_shape(shape, f)[1]]
    area = np.outer(rows, cols).astype(np.float64)
    area.setflags(write=False)
    return area


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Means over ``factor`` x ``factor`` blocks (the downsampled map)."""
    a = np.asarray(a, dtype=np.float64)
    if int(factor) == 1:
        return a.copy()
    return block_sum(a, factor) / block_area(a.shape[-2:], factor)


@functools.lru_cache(maxsize=64)
def bilinear_weights(n: int, m: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``n`` output positions, the two neighbouring input positions (of ``m``) and the
    weight of the second: output ``i`` sits at input coordinate ``(i + 0.5) / scale - 0.5``,
    clamped to ``[0, m - 1]``."""
    u = np.clip((np.arange(n, dtype=np.float64) + 0.5) / float(scale) - 0.5, 0.0, m - 1.0)
    i0 = np.minimum(np.floor(u).astype(np.intp), m - 1)
    i1 = np.minimum(i0 + 1, m - 1)
    wt = u - i0
    for arr in (i0, i1, wt):
        arr.setflags(write=False)
    return i0, i1, wt


def upsample(low: np.ndarray, shape: tuple[int, int], scale_y: float, scale_x: float | None = None) -> np.ndarray:
    """Bilinear upsampling of ``low`` (m_rows, m_cols) to ``shape``; ``scale`` = output pixels per
    input pixel (the factor ``f`` for a block grid; ``n / m`` to stretch a map to any size)."""
    low = np.asarray(low, dtype=np.float64)
    h, w = int(shape[0]), int(shape[1])
    sx = scale_y if scale_x is None else scale_x
    r0, r1, rw = bilinear_weights(h, low.shape[0], float(scale_y))
    c0, c1, cw = bilinear_weights(w, low.shape[1], float(sx))
    rows = low[r0] * (1.0 - rw)[:, None] + low[r1] * rw[:, None]  # (h, m_cols)
    return rows[:, c0] * (1.0 - cw)[None, :] + rows[:, c1] * cw[None, :]


def resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resampling of ``a`` to ``shape`` by pixel-centre alignment (any ratio)."""
    a = np.asarray(a, dtype=np.float64)
    if a.shape == tuple(shape):
        return a.copy()
    return upsample(a, shape, shape[0] / a.shape[0], shape[1] / a.shape[1])


def sample_bilinear(low: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                    factor: int) -> np.ndarray:
    """``upsample(low, shape, factor)[rows, cols]`` without forming the full map."""
    r0, r1, rw = bilinear_weights(int(shape[0]), low.shape[-2], float(factor))
    c0, c1, cw = bilinear_weights(int(shape[1]), low.shape[-1], float(factor))
    a, b, wy = r0[rows], r1[rows], rw[rows]
    c, d, wx = c0[cols], c1[cols], cw[cols]
    top = low[..., a, c] * (1.0 - wx) + low[..., a, d] * wx
    bottom = low[..., b, c] * (1.0 - wx) + low[..., b, d] * wx
    return top * (1.0 - wy) + bottom * wy


def gaussian_kernel(sigma: float, truncate: float = TRUNCATE) -> np.ndarray:
    """scipy's 1-D Gaussian kernel: radius ``int(truncate * sigma + 0.5)``, normalised to sum 1."""
    radius = int(truncate * float(sigma) + 0.5)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (k / float(sigma)) ** 2)
    return g / g.sum()


@functools.lru_cache(maxsize=64)
def blur_matrix(n: int, sigma: float, mode: str = "nearest", truncate: float = TRUNCATE) -> np.ndarray:
    """(n, n) matrix ``G`` with ``G @ v == scipy.ndimage.gaussian_filter1d(v, sigma, mode=mode,
    truncate=truncate)`` for ``mode`` ``"nearest"`` or ``"constant"`` (zero padding); the identity
    for ``sigma == 0`` (read-only)."""
    if mode not in ("nearest", "constant"):
        raise ValueError(f"blur mode must be 'nearest' or 'constant', got {mode!r}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"blur sigma must be finite and non-negative, got {sigma}")
    if sigma == 0:
        g = np.eye(n)
    else:
        kernel = gaussian_kernel(sigma, truncate)
        radius = kernel.size // 2
        g = np.zeros((n, n))
        rows = np.arange(n)
        for k, wk in zip(range(-radius, radius + 1), kernel):
            src = rows + k
            if mode == "nearest":
                np.add.at(g, (rows, np.clip(src, 0, n - 1)), wk)
            else:
                ok = (src >= 0) & (src < n)
                g[rows[ok], src[ok]] += wk
    g.setflags(write=False)
    return g


def blur(a: np.ndarray, sigma_rows: float, sigma_cols: float | None = None, mode: str = "nearest") -> np.ndarray:
    """Gaussian blur of the last two axes of ``a`` (one map or a stack): per axis, a matrix product
    with :func:`blur_matrix` (a stack as one product, not one per map), or scipy's
    ``gaussian_filter1d`` when the kernel is short against the axis (same numbers up to round-off)."""
    a = np.asarray(a, dtype=np.float64)
    sc = sigma_rows if sigma_cols is None else sigma_cols
    out = a
    for axis, sigma in ((-1, float(sc)), (-2, float(sigma_rows))):
        if sigma == 0:
            continue
        n = out.shape[axis]
        if 2 * int(TRUNCATE * sigma + 0.5) + 1 <= n // 4:
            from scipy.ndimage import gaussian_filter1d

            out = gaussian_filter1d(out, sigma, axis=axis, mode=mode, truncate=TRUNCATE)
            continue
        g = blur_matrix(n, sigma, mode)
        if axis == -1:
            out = out @ g.T
        elif out.ndim == 2:
            out = g @ out
        else:
            lead = out.shape[:-2]
            h, w = out.shape[-2:]
            stack = out.reshape(-1, h, w)
            m = stack.shape[0]
            out = (g @ stack.transpose(1, 0, 2).reshape(h, m * w)).reshape(h, m, w).transpose(1, 0, 2)
            out = np.ascontiguousarray(out).reshape(*lead, h, w)
    return out.copy() if out is a else out
