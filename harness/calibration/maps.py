"""Metric-specific saliency maps of a fixation density (Kuemmerer, Wallis & Bethge, ECCV 2018).

"Saliency Benchmarking Made Easy: Separating Models, Maps and Metrics": a model is a fixation
density ``p``; each metric is scored on the map that maximises that metric's *expected* value when
fixations are drawn from ``p``. The maps, as the MIT/Tuebingen benchmark computes them
(github.com/matthias-k/saliency-benchmarking, ``saliency_map_provider.py``):

========  ==================================================================  ======================
metric    map                                                                 pysaliency
========  ==================================================================  ======================
AUC       ``p`` (any increasing function of it; the benchmark equalises it)   ``DensitySaliencyMapModel``
sAUC      ``log p - log p_shuffled``: ``p_shuffled`` the model's mean density  ``ShuffledAUCSaliencyMapModel``
          over *other* stimuli, the distribution of the shuffled negatives    ``(model, ShuffledBaselineModel)``
NSS       ``p`` (NSS is linear in the map)                                    ``DensitySaliencyMapModel``
IG, LL    ``p`` itself                                                        the model
CC, KLD   ``G_sigma * p`` with the empirical map's Gaussian (zero padding):   ``BluringSaliencyMapModel(...,
          the expected empirical saliency map                                  mode='constant')``
SIM       no closed form; maximise the expected SIM (below)                   ``SIMSaliencyMapModel`` (SGD)
========  ==================================================================  ======================

Equalisation (``equalize``): AUC and sAUC maps are replaced by their empirical distribution
function (:func:`equalized`), as the benchmark's ``EqualizedSaliencyMapModel`` does. The exact ROC
metrics (pysaliency profile, AUC-Judd in both profiles) do not change under it, so AUC-Judd is
computed on ``p`` itself; the MIT profile's AUC-Borji and sAUC threshold the min-max rescaled map at
steps of 0.1, which are then (nearly exact) quantiles of the map.
IoU-top-20 % (not in the paper) gets the CC/KLD map: the expected empirical map's top region.

SIM: ``E_F[sum_x min(s(x), g_F(x))]`` over empirical maps ``g_F`` (``n_fixations`` fixations drawn
from ``p``, blurred, normalised) and distributions ``s``. For ``J`` sampled maps the sample average
is concave and separable per pixel with slope ``#{j : g_j(x) > s(x)} / J``; its maximum under
``sum s = 1`` (KKT, one multiplier) is the same order statistic of the ``J`` samples at every pixel,
``s(x) = g_(k)(x)``, with ``k`` chosen so the map sums to 1 (interpolated between two consecutive
order statistics). That is exact for the sampled problem, with no step size or iterations (the
benchmark's pysaliency SGD solves the same problem approximately); the samples are drawn on the
block grid of ``factor`` and the result upsampled bilinearly.
"""

from __future__ import annotations

import numpy as np

from . import grid

#: which map each harness metric is scored on
METRIC_MAP = {"auc_judd": "nss", "auc_borji": "auc", "sauc": "sauc", "nss": "nss", "cc": "cc",
              "kld": "kld", "sim": "sim", "iou_top20": "cc", "ig": "density"}


def equalized(m: np.ndarray, levels: int = 8192) -> np.ndarray:
    """Histogram equalisation of ``m``: its empirical distribution function, values in [0, 1].

    The function is read off the sorted values of a strided sample of about ``levels`` pixels
    (plus the map's minimum and maximum), with mid-ranks for tied values, and interpolated
    linearly in between: a strictly increasing function of the value (equal values stay equal,
    so the exact ROC areas do not change) whose histogram is uniform up to ~1/levels, in one
    ``np.interp`` pass (a full sort of 480,000 OSIE pixels would take ~5x as long)."""
    m = np.asarray(m, dtype=np.float64)
    flat = m.ravel()
    step = max(1, flat.size // int(levels))
    sample = np.sort(np.concatenate((flat[::step], [flat.min(), flat.max()])))
    values, first, counts = np.unique(sample, return_index=True, return_counts=True)
    if values.size == 1:
        return np.full(m.shape, 0.5)
    cdf = (first + (counts - 1) / 2.0) / (sample.size - 1)
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return np.interp(flat, values, cdf).reshape(m.shape)


def blurred_density(density: np.ndarray, sigma_px: float) -> np.ndarray:
    """The CC/KLD map: ``density`` blurred by the empirical map's Gaussian, zero padding, truncated
    at 4 sigma (what ``scipy.ndimage.gaussian_filter(density, sigma_px, mode="constant")`` and
    pysaliency's ``BluringSaliencyMapModel`` give)."""
    return grid.blur(density, float(sigma_px), mode="constant")


def sim_map(density: np.ndarray, n_fixations: int, sigma_px: float, *, factor: int = 8, n_samples: int = 256,
            seed: int | np.random.Generator = 0) -> np.ndarray:
    """The map maximising the expected SIM against empirical maps of ``n_fixations`` fixations
    drawn from ``density`` and blurred by ``sigma_px`` (zero padding, normalised, as
    :func:`harness.data.density.fixation_density`); see the module doc. Float64, sums to 1."""
    density = np.asarray(density, dtype=np.float64)
    shape = density.shape
    f = int(factor)
    mass = grid.block_sum(density, f)
    mass = np.maximum(mass, 0.0)
    mass /= mass.sum()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    J, n = int(n_samples), int(n_fixations)
    cells = mass.size
    cdf = np.cumsum(mass.ravel())
    draws = np.minimum(np.searchsorted(cdf, rng.random(J * n) * cdf[-1], side="right"), cells - 1)
    if sigma_px > 0:  # each sampled map as a sum of n outer products of the blur's columns
        gy = grid.blur_matrix(mass.shape[0], sigma_px / f, "constant")
        gx = grid.blur_matrix(mass.shape[1], sigma_px / f, "constant")
        r, c = np.divmod(draws.reshape(J, n), mass.shape[1])
        samples = np.matmul(gy[:, r].transpose(1, 0, 2), gx[:, c].transpose(1, 2, 0))
    else:
        draws += np.repeat(np.arange(J) * cells, n)
        samples = np.bincount(draws, minlength=J * cells).astype(np.float64).reshape(J, *mass.shape)
    samples /= samples.sum(axis=(1, 2), keepdims=True)
    per_cell = np.ascontiguousarray(samples.reshape(J, cells).T)  # (cells, J): sort along rows
    per_cell.sort(axis=1)
    totals = per_cell.sum(axis=0)  # sum over pixels of each order statistic, increasing
    k = int(np.searchsorted(totals, 1.0, side="right")) - 1
    k = min(max(k, 0), J - 2)
    a = (1.0 - totals[k]) / (totals[k + 1] - totals[k]) if totals[k + 1] > totals[k] else 0.0
    a = min(max(a, 0.0), 1.0)
    s = ((1.0 - a) * per_cell[:, k] + a * per_cell[:, k + 1]).reshape(mass.shape)
    s = s / grid.block_area(shape, f)  # per-pixel values, then up to the stimulus grid
    s = np.maximum(grid.upsample(s, shape, f) if f > 1 else s, 0.0)
    return s / s.sum()


def expected_sim(smap: np.ndarray, density: np.ndarray, n_fixations: int, sigma_px: float, *,
                 n_samples: int = 64, seed: int = 1) -> tuple[float, float]:
    """Monte-Carlo estimate of ``E[SIM(smap, g_F)]`` (pysaliency's definition: both maps divided by
    their sums) with fixations drawn from ``density`` at stimulus resolution: (mean, standard error)."""
    from ..data.density import fixation_density

    density = np.asarray(density, dtype=np.float64)
    h, w = density.shape
    rng = np.random.default_rng(seed)
    s = np.asarray(smap, dtype=np.float64)
    s = s / s.sum()
    vals = []
    for _ in range(int(n_samples)):
        flat = rng.choice(h * w, size=int(n_fixations), p=density.ravel() / density.sum())
        r, c = np.divmod(flat, w)
        g = fixation_density(c.astype(float), r.astype(float), (h, w), sigma_px)
        vals.append(float(np.minimum(s, g).sum()))
    vals = np.asarray(vals)
    return float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(vals.size))


def metric_maps(density: np.ndarray, *, sigma_px: float, shuffled: np.ndarray | None = None,
                sim_fixations: int | None = None, factor: int = 8, equalize: bool = True,
                sim_samples: int = 256, seed: int = 0, which: set[str] | None = None) -> dict[str, np.ndarray]:
    """The metric-specific maps of ``density`` (see the module doc): keys ``density``, ``auc``,
    ``sauc`` (needs ``shuffled``, a density of the same shape), ``nss``, ``cc``, ``kld``, ``sim``
    (needs ``sim_fixations``). ``which``: only these keys (default: all that can be made)."""
    p = np.asarray(density, dtype=np.float64)
    want = (lambda k: which is None or k in which)
    out: dict[str, np.ndarray] = {"density": p}
    if want("auc"):
        out["auc"] = equalized(p) if equalize else p
    if want("nss"):
        out["nss"] = p
    if shuffled is not None and want("sauc"):
        ratio = np.log(p) - np.log(np.asarray(shuffled, dtype=np.float64))
        if np.ptp(ratio) <= 1e-9:  # the same density (a stimulus-independent model): round-off only
            ratio = np.zeros_like(ratio)
        out["sauc"] = equalized(ratio) if equalize else ratio
    if want("cc") or want("kld"):
        blurred = blurred_density(p, sigma_px)
        out["cc"] = out["kld"] = blurred
    if sim_fixations is not None and want("sim"):
        out["sim"] = sim_map(p, sim_fixations, sigma_px, factor=factor, n_samples=sim_samples, seed=seed)
    return out
