"""The calibrated density of one map: the parameterisation and its evaluation.

A raw attention map ``s`` (stimulus resolution, non-negative, any scale) becomes the fixation density

    m  = blur_sigma(block_mean_f(s))                 downsample by f, Gaussian blur (edges repeated)
    b  = (m - min m) / (max m - min m)               rescaled to [0, 1] per map (a constant map: 0)
    b' = bilinear upsampling of b to the stimulus grid
    q  = exp(g(b')) / sum(exp(g(b')))                g: monotone piecewise-linear log-density
    p  = (1 - w) q + w c                             mixture with the centre-bias prior c

``g`` is linear between knots ``t_0 = 0 < t_1 < ... < t_{K-1} = 1`` with ``g(t_0) = 0`` and
increments ``g(t_{k+1}) - g(t_k) = delta_k >= 0`` (so g never decreases: the calibration may not
reorder the map's pixels, only change their contrast curve). The parameters are
``(delta_0..delta_{K-2}, sigma, w)``: with the default 8 knots, 9 numbers, fitted per fold by
maximum likelihood (:mod:`harness.calibration.fit`). ``c`` is the harness's centre-bias prior
(``plugins.models.baselines.center_bias_map``, Clarke & Tatler 2014) unless another is given.

This is the conversion of Kuemmerer, Wallis & Bethge (PNAS 2015, "Information-theoretic model
comparison unifies saliency metrics") and pysaliency's ``optimize_for_information_gain``
(nonlinearity + blur + centre bias), with the centre bias as an additive mixture: every calibrated
density is strictly positive wherever the prior is (no fixation has probability 0, so no ``-inf``),
the prior itself is the special case ``w = 1``, and a constant map calibrates to
``(1 - w) uniform + w c``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import grid

#: a blurred map whose range is below this fraction of its magnitude is constant (round-off only)
CONSTANT_RTOL = 1e-9


@dataclass(frozen=True)
class CalibrationParams:
    """One fitted calibration (see the module doc): knots and increments of the log-density
    nonlinearity, the blur ``sigma_px`` in stimulus pixels, the prior weight ``prior_weight`` and the
    downsampling ``factor`` the blur runs at."""

    knots: tuple[float, ...]
    increments: tuple[float, ...]
    sigma_px: float
    prior_weight: float
    factor: int

    def __post_init__(self):
        k, d = np.asarray(self.knots, float), np.asarray(self.increments, float)
        if k.size < 2 or d.size != k.size - 1:
            raise ValueError(f"need K >= 2 knots and K - 1 increments, got {k.size} and {d.size}")
        if not (k[0] == 0.0 and k[-1] == 1.0 and np.all(np.diff(k) > 0)):
            raise ValueError(f"knots must increase strictly from 0 to 1, got {tuple(k)}")
        if not (np.all(np.isfinite(d)) and np.all(d >= 0)):
            raise ValueError(f"increments must be finite and non-negative, got {tuple(d)}")
        if not (math.isfinite(self.sigma_px) and self.sigma_px >= 0):
            raise ValueError(f"sigma_px must be finite and non-negative, got {self.sigma_px}")
        if not 0.0 <= self.prior_weight <= 1.0:
            raise ValueError(f"prior_weight must lie in [0, 1], got {self.prior_weight}")
        if int(self.factor) != self.factor or self.factor < 1:
            raise ValueError(f"factor must be a positive integer, got {self.factor}")

    @property
    def values(self) -> np.ndarray:
        """``g`` at the knots: ``[0, delta_0, delta_0 + delta_1, ...]``."""
        return np.concatenate(([0.0], np.cumsum(self.increments)))

    def nonlinearity(self, b: np.ndarray) -> np.ndarray:
        """``g(b)`` for values in [0, 1] (linear interpolation between the knots)."""
        return np.interp(b, self.knots, self.values)

    def to_json(self) -> dict[str, Any]:
        return {"knots": [float(v) for v in self.knots], "increments": [float(v) for v in self.increments],
                "sigma_px": float(self.sigma_px), "prior_weight": float(self.prior_weight),
                "factor": int(self.factor)}

    @classmethod
    def from_json(cls, doc: dict) -> "CalibrationParams":
        return cls(tuple(map(float, doc["knots"])), tuple(map(float, doc["increments"])),
                   float(doc["sigma_px"]), float(doc["prior_weight"]), int(doc["factor"]))


def rescaled(m: np.ndarray) -> np.ndarray:
    """Each map of ``m`` (last two axes) rescaled to [0, 1]; constant maps (range below
    :data:`CONSTANT_RTOL` of their magnitude: blur round-off) become 0."""
    m = np.asarray(m, dtype=np.float64)
    lo = m.min(axis=(-2, -1), keepdims=True)
    hi = m.max(axis=(-2, -1), keepdims=True)
    span = hi - lo
    flat = span <= CONSTANT_RTOL * np.maximum(np.abs(hi), np.abs(lo))
    out = (m - lo) / np.where(flat, 1.0, span)
    out[np.broadcast_to(flat, out.shape)] = 0.0
    return np.clip(out, 0.0, 1.0, out=out)


def low_map(smap: np.ndarray, factor: int, sigma_px: float, *, blocks: np.ndarray | None = None) -> np.ndarray:
    """Steps 1-2 of the module doc: ``b`` on the block grid (from ``blocks``, the map's block means,
    when given: then ``smap`` is not read)."""
    low = grid.block_mean(smap, factor) if blocks is None else np.asarray(blocks, dtype=np.float64)
    if sigma_px > 0:
        low = grid.blur(low, sigma_px / factor, mode="nearest")
    return rescaled(low)


def _prior(prior, shape: tuple[int, int]) -> np.ndarray:
    if prior is None:
        from plugins.models.baselines import center_bias_map

        return center_bias_map(*shape)
    if callable(prior):
        prior = prior(*shape)
    prior = np.asarray(prior, dtype=np.float64)
    if prior.shape != tuple(shape):
        raise ValueError(f"prior has shape {prior.shape}, the map {tuple(shape)}")
    return prior / prior.sum()


def calibrated_log_density(smap: np.ndarray, params: CalibrationParams, prior=None) -> np.ndarray:
    """Natural-log density (sums to 1 over the stimulus' pixels in probability) of ``smap`` under
    ``params``; ``prior``: the centre-bias density of the stimulus (array of the map's shape, or a
    function ``(height, width) -> array``; ``None``: the harness's centre bias)."""
    smap = np.asarray(smap, dtype=np.float64)
    if smap.ndim != 2 or not np.all(np.isfinite(smap)):
        raise ValueError("the map must be a finite 2-D array")
    constant = bool(smap.max() == smap.min())
    return calibrated_log_density_from_blocks(grid.block_mean(smap, params.factor), smap.shape, params, prior,
                                              constant=constant)


def calibrated_log_density_from_blocks(blocks: np.ndarray, shape: tuple[int, int], params: CalibrationParams,
                                       prior=None, *, constant: bool | None = None) -> np.ndarray:
    """:func:`calibrated_log_density` from the map's block means (``grid.block_mean(smap,
    params.factor)``, what :func:`harness.calibration.fit.prepare` keeps: 100x75 values for an
    OSIE map) and the stimulus ``shape``: the same array, without the full-resolution map (so a
    two-pass evaluation can keep the small block maps between inference and scoring).
    ``constant``: the raw map was constant (default: the block means are)."""
    shape = (int(shape[0]), int(shape[1]))
    blocks = np.asarray(blocks, dtype=np.float64)
    if blocks.shape != grid.low_shape(shape, params.factor):
        raise ValueError(f"block map of shape {blocks.shape} for a {shape} stimulus at factor {params.factor}")
    c = _prior(prior, shape)
    if constant is None:
        constant = bool(blocks.max() == blocks.min())
    b = np.zeros(blocks.shape) if constant else low_map(None, params.factor, params.sigma_px, blocks=blocks)
    b = grid.upsample(b, shape, params.factor)
    u = params.nonlinearity(b)
    u -= u.max()
    q = np.exp(u, out=u)
    w = params.prior_weight
    q *= (1.0 - w) / q.sum()
    if w > 0.0:
        q += w * c  # p = (1 - w) q + w c
    return np.log(q, out=q)


def calibrated_density(smap: np.ndarray, params: CalibrationParams, prior=None) -> np.ndarray:
    """The calibrated fixation density of ``smap`` (float64, sums to 1, shape of ``smap``): see the
    module doc and :func:`calibrated_log_density`."""
    p = np.exp(calibrated_log_density(smap, params, prior))
    return p / p.sum()


def calibrated_density_from_blocks(blocks: np.ndarray, shape: tuple[int, int], params: CalibrationParams,
                                   prior=None, *, constant: bool | None = None) -> np.ndarray:
    """:func:`calibrated_density` from the block means (see :func:`calibrated_log_density_from_blocks`)."""
    p = np.exp(calibrated_log_density_from_blocks(blocks, shape, params, prior, constant=constant))
    return p / p.sum()


@dataclass
class FoldFit:
    """What one fold's fit produced and from what: the parameters, the stimuli they were fitted on
    (never the fold's own), and the fit's record."""

    fold: int
    params: CalibrationParams
    fit_ids: tuple[str, ...]
    n_fit_maps: int
    n_fit_fixations: int
    train_ll_bits: float  # mean log2-likelihood per fit fixation, relative to uniform (block quadrature)
    seconds: float
    n_evaluations: int
    #: the model's mean calibrated density over (up to 64 of) the fit stimuli, per stimulus size
    #: (the sAUC baseline of :func:`harness.calibration.maps.metric_maps`; :func:`shuffled_density`)
    shuffled: dict | None = field(default=None, repr=False)
    #: mean fixations per fit map (the fixation count of the SIM map's sampled empirical maps)
    fixations_per_map: float = float("nan")

    def to_json(self, with_ids: bool = True) -> dict[str, Any]:
        import hashlib

        doc = {"fold": self.fold, "params": self.params.to_json(), "n_fit_stimuli": len(self.fit_ids),
               "fit_ids_sha256": hashlib.sha256("\n".join(sorted(self.fit_ids)).encode()).hexdigest(),
               "n_fit_maps": self.n_fit_maps, "n_fit_fixations": self.n_fit_fixations,
               "train_ll_bits": self.train_ll_bits, "seconds": round(self.seconds, 3),
               "n_evaluations": self.n_evaluations, "fixations_per_map": self.fixations_per_map}
        if self.shuffled is not None:  # the sAUC baseline: arrays, identified by their bytes
            h = hashlib.sha256()
            for shape in sorted(self.shuffled):
                h.update(repr(shape).encode())
                h.update(np.ascontiguousarray(self.shuffled[shape], dtype=np.float64).tobytes())
            doc["shuffled_shapes"] = [list(shape) for shape in sorted(self.shuffled)]
            doc["shuffled_sha256"] = h.hexdigest()
        if with_ids:
            doc["fit_ids"] = list(self.fit_ids)
        return doc


def shuffled_density(fold: FoldFit, shape: tuple[int, int]) -> np.ndarray | None:
    """The fold's sAUC baseline for a stimulus of ``shape`` (sums to 1): the mean calibrated density
    of fit stimuli of that size, else the largest size's, resampled; None without one."""
    if not fold.shuffled:
        return None
    shape = (int(shape[0]), int(shape[1]))
    if shape in fold.shuffled:
        return fold.shuffled[shape]
    ref = max(fold.shuffled, key=lambda s: s[0] * s[1])
    m = np.maximum(grid.resize(fold.shuffled[ref], shape), 0.0)
    return m / m.sum()
