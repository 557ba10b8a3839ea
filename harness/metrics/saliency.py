"""Gaze-alignment metrics: how well a saliency (attention) map predicts human fixations.

One definition per metric, written once and switched by a profile (:mod:`.profiles`):
``profile="mit"`` follows the MIT Saliency Benchmark MATLAB code (``code_forMetrics/*.m``),
``profile="pysaliency"`` follows pysaliency / the MIT-Tuebingen benchmark. ``docs/metrics.md`` lists
every difference, and every place where both deviate from the MATLAB code (degenerate input).

Every metric has the same signature so the evaluation loop can call any of them alike::

    metric(saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
           profile="mit", seed=0) -> float

- ``saliency_map``: (H, W) real array at the stimulus resolution, any scale, may be negative;
- ``fix_x``, ``fix_y``: fixation column/row in 0-indexed pixel coordinates (:mod:`harness.schema`),
  rounded to the nearest pixel;
- ``density``: the human empirical fixation density (H, W), for CC, SIM, KLD and IoU;
- ``baseline``: a baseline map (H, W) for IG, e.g. a centre bias; ``None`` means uniform;
- ``other_x``, ``other_y``: fixations on other images, in this map's pixel space, the sAUC negatives;
- ``seed``: integer (each randomised metric derives its own stream from it) or a
  ``numpy.random.Generator``; only AUC-Judd (jitter, MIT profile), AUC-Borji and sAUC (MIT
  profile) use randomness.

Degenerate input has defined results, identical in both profiles: no fixations -> NaN for the
fixation-based metrics; a density summing to zero -> NaN for the density metrics; a constant map
(all values equal, all-zero included) is the uniform map: AUCs 0.5, NSS 0, CC 0, SIM, KLD, IG of the
uniform distribution, IoU at chance. NaN/inf in a map, a fixation outside it, or mismatched shapes raise
:class:`MetricInputError` (a ``HarnessError`` and a ``ValueError``).

:func:`compute_suite` computes many metrics of one image and shares the work between them (the
evaluation loop calls it once per image).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from . import roc
from .inputs import MetricInputError, MetricInputs, SharedInputs, dot, kernels, rng_for, workspace

# seed streams of the randomised metrics (see inputs.rng_for)
_STREAM_JITTER, _STREAM_BORJI, _STREAM_SAUC = 1, 2, 3
N_SPLITS = 100  # AUC_Borji.m, AUC_shuffled.m default Nsplits
STEP_SIZE = 0.1  # AUC_Borji.m, AUC_shuffled.m default stepSize


# --- kernels: each takes the shared MetricInputs ------------------------------------------------


def _auc_judd(inp: MetricInputs, jitter: bool | None = None) -> float:
    pos = inp.pos
    if pos.size == 0:
        return math.nan
    if inp.constant:
        return 0.5
    counts = lambda q: inp.s_counts(q, members=True)  # noqa: E731 (fixated values are map values)
    if inp.profile.auc_judd == "all":  # pysaliency AUC: negatives = all pixels, ties count half
        return roc.rank_auc_counts(*counts(inp.s[pos]), inp.n)
    if inp.profile.jitter if jitter is None else jitter:
        # AUC_Judd.m adds uniform noise of 1e-7 to break ties; we break the exact ties at random
        return roc.judd_auc(inp.s[pos], inp.n, counts, rng_for(inp.seed, _STREAM_JITTER))
    return roc.judd_auc(inp.s[pos], inp.n, counts)


def _auc_borji(inp: MetricInputs, n_splits: int | None = N_SPLITS, step_size: float = STEP_SIZE) -> float:
    pos = inp.pos
    if pos.size == 0:
        return math.nan
    if inp.constant:
        return 0.5
    thresholds = roc.step_thresholds(step_size)
    tp = roc.counts_at_or_above(np.sort(inp.minmax_at(pos)), thresholds) / pos.size
    pixels_ge = inp.minmax_count_at_or_above(thresholds)
    fp = roc.sampled_fp(pixels_ge, pos.size, n_splits, rng_for(inp.seed, _STREAM_BORJI), replace=True)
    return roc.step_auc(tp, fp)


def _sauc(inp: MetricInputs, n_splits: int | None = N_SPLITS, step_size: float = STEP_SIZE) -> float:
    inp.require("other", "sauc")
    pos = inp.pos
    if pos.size == 0 or inp.other.size == 0:
        return math.nan
    if inp.constant:
        return 0.5
    if inp.profile.sauc == "all":  # pysaliency: every fixation on another image is a negative
        # the negatives' counts below and at each fixated value, by buckets (no gather, no sort)
        below, equal = inp.counts_of(inp.s[pos], idx=inp.other)
        return roc.rank_auc_counts(below, equal, inp.other.size)
    # AUC_shuffled.m: the other images' fixations form a binary map (unique locations); each split
    # takes min(P, K) of them without replacement
    thresholds = roc.step_thresholds(step_size)
    tp = roc.counts_at_or_above(np.sort(inp.minmax_at(pos)), thresholds) / pos.size
    other_ge, n_other = inp.other_minmax_counts(thresholds)  # unique locations, as otherMap is
    n_sample = min(pos.size, n_other)
    fp = roc.sampled_fp(other_ge, n_sample, n_splits, rng_for(inp.seed, _STREAM_SAUC), replace=False)
    return roc.step_auc(tp, fp)


def _nss(inp: MetricInputs) -> float:
    pos = inp.pos
    if pos.size == 0:
        return math.nan
    if inp.constant:
        return 0.0
    std = math.sqrt(inp.s_sumsq[0] / (inp.n - inp.profile.nss_ddof))
    return float(((inp.s[pos] - inp.s_mean) / std).mean())


def _cc(inp: MetricInputs) -> float:
    inp.require("density", "cc")
    if inp.d_empty or inp.dmax == inp.dmin:
        return math.nan  # no human data, or a constant human density: correlation undefined
    if inp.constant:
        return 0.0
    s, d, n = inp.s, inp.d, inp.n
    ms, md = inp.s_mean, inp.dsum / n
    (ss, s_ok), (dd, d_ok) = inp.s_sumsq, inp.d_sumsq
    # one pass; its cancellation error is below ~1e-10 of sqrt(ss * dd) when neither variance cancelled
    if s_ok and d_ok:
        cov = _density_pass(inp, "cc")["cc"] - n * ms * md
    else:
        cov = dot(s - ms, d - md)  # compiled, no BLAS
    return cov / math.sqrt(ss * dd)


def _sim_params(inp: MetricInputs) -> tuple[float, float, float, float] | None:
    """SIM as ``sum(min(s - poff, (d - doff) * sp / sg)) / sp`` (p = P / sp, g = G / sg, so
    sum(min(p, g)) = sum(min(P, G * sp / sg)) / sp): ``(poff, doff, sg, sp)``, or None for a
    constant map or (MIT profile) a constant density."""
    if inp.profile.sim_normalisation == "minmax":  # similarity.m: rescale both to [0, 1] first
        if inp.constant or inp.dmax == inp.dmin:
            return None
        return inp.smin, inp.dmin, inp.d_shifted_sum, inp.s_shifted_sum
    if inp.prob_offset is None:
        return None
    poff, sp = inp.prob_offset
    return poff, 0.0, inp.dsum, sp


def _sim(inp: MetricInputs) -> float:
    inp.require("density", "sim")
    if inp.d_empty:
        return math.nan
    params = _sim_params(inp)
    if params is not None:
        return _density_pass(inp, "sim")["sim"] / params[3]
    n = inp.n
    t = inp.scratch  # the same operations as on fresh arrays, in a reused one (no page faults)
    if inp.profile.sim_normalisation == "minmax":
        if inp.constant:  # uniform map against the rescaled density (all ones if constant)
            if inp.dmax == inp.dmin:
                t.fill(1.0)
            else:
                np.subtract(inp.d, inp.dmin, out=t)
            np.multiply(t, n / float(t.sum()), out=t)
            return float(np.minimum(t, 1.0, out=t).sum()) / n
        # a constant density, rescaled, is all ones: g = 1 / n everywhere
        np.subtract(inp.s, inp.smin, out=t)
        return float(np.minimum(t, inp.s_shifted_sum / n, out=t).sum()) / inp.s_shifted_sum
    # a constant map is uniform: sum(min(1 / n, g))
    np.multiply(inp.d, n / inp.dsum, out=t)
    return float(np.minimum(t, 1.0, out=t).sum()) / n


def _density_pass(inp: MetricInputs, metric: str) -> dict[str, float]:
    """CC's inner product, SIM's sum and KLD's sum from one compiled pass over the map and the
    density (:func:`.kernels.density_pass`): for ``metric`` and for whichever of the three
    :func:`compute_suite` announced in ``inp.fuse``; computed once per image."""
    done = inp.__dict__.setdefault("_density_results", {})
    if metric in done:
        return done
    want = {metric} | (inp.fuse - done.keys())
    # first the IoU's thresholds: the density's pass finds SIM's sum(d - min) too
    iou = _iou_thresholds(inp, inp.fuse_iou, "sim" in want) if inp.fuse_iou else None
    sim = _sim_params(inp) if "sim" in want else None
    kld = inp.prob_offset if "kld" in want else None
    do_dot = "cc" in want
    eps, sd = inp.profile.kld_eps, inp.dsum
    sim_args = (0.0, 0.0, 1.0) if sim is None else (sim[0], sim[1], sim[3] / sim[2])
    kld_args = (0.0, 1.0, 0.0, 0.0) if kld is None else (kld[0], sd / kld[1], eps * sd, eps)
    both_args = (False, 0.0, 0.0) if iou is None else (True, iou[0], iou[1])
    dt, sm, kl, both = kernels.density_pass(inp.s, inp.d, do_dot, sim is not None, *sim_args, kld is not None,
                                            *kld_args, *both_args)
    if kld is not None:
        done["kld"] = float(kl)
    if do_dot:
        done["cc"] = float(dt)
    if sim is not None:
        done["sim"] = float(sm)
    if iou is not None:
        inp.iou_counts[inp.fuse_iou] = int(both)
    return done


def _iou_thresholds(inp: MetricInputs, n_top: int, sim: bool) -> tuple[float, float] | None:
    """The top-``n_top`` thresholds of map and density when both regions are plain (no partial
    ties), so that the density pass can count the pixels in both (:func:`_iou_topk`); else None.
    The density's threshold comes from a pass that also adds up SIM's ``sum(d - min)`` if the MIT
    normalisation will ask for it (``sim``: SIM is computed)."""
    td, above_d, tied_d = inp.d_kth_largest_counts(n_top, shift=sim and inp.profile.sim_normalisation == "minmax")
    ts, above_s, tied_s = inp.s_kth_largest_counts(n_top)
    if (n_top - above_s) != tied_s or (n_top - above_d) != tied_d:
        return None
    return ts, td


def _kld(inp: MetricInputs) -> float:
    inp.require("density", "kld")
    if inp.d_empty:
        return math.nan
    # sum(g * log(eps + g / (p + eps))) with g = d / sd, p = P / sp, folding the 1 / sd into the
    # denominator: g / (p + eps) = d / (sd * (p + eps)); one compiled pass (.kernels.kld_sum)
    eps, sd = inp.profile.kld_eps, inp.dsum
    if inp.prob_offset is not None:  # the ratio in one compiled pass (shared with CC and SIM)
        return _density_pass(inp, "kld")["kld"] / sd
    # a constant map is uniform: the denominator is one number, sd / n + eps * sd (the kernel's
    # (p - poff) * c + add with c = 0)
    return float(kernels.kld_sum(inp.d, 0.0, 0.0, sd / inp.n + eps * sd, inp.d, eps)) / sd


def _ig(inp: MetricInputs) -> float:
    pos = inp.pos
    if pos.size == 0:
        return math.nan
    if inp.b is None or inp.b[1] == inp.b[2]:  # no baseline, or a constant one: uniform
        pb = np.full(pos.shape, 1.0 / inp.n)
    else:
        b, bmin, _ = inp.b
        if inp.profile.ig == "mit" or bmin < 0:  # (b - min) / sum(b - min)
            pb = (b[pos] - bmin) / inp.shared.b_shifted_sum
        else:  # pysaliency: b / sum(b)
            pb = b[pos] / inp.shared.b_sum
    if inp.profile.ig == "mit":  # InfoGain.m: min-max, divide by sum, log2(eps + p)
        eps = np.finfo(np.float64).eps
        p = inp.mit_prob_at(pos)
        return float((np.log2(eps + p) - np.log2(eps + pb)).mean())
    # pysaliency information_gain: log-likelihoods of the densities, in bits, no eps; a zero density
    # at a fixation gives -inf, as it does there
    base = inp.prob_offset
    p = np.full(pos.shape, 1.0 / inp.n) if base is None else (inp.s[pos] - base[0]) / base[1]
    with np.errstate(divide="ignore"):
        return float(((np.log(p) - np.log(pb)) / math.log(2)).mean())


def _iou_topk(inp: MetricInputs, k: float = 20.0) -> float:
    inp.require("density", f"iou_top{k:g}")
    if not 0 < k <= 100:
        raise MetricInputError(f"IoU top-k needs 0 < k <= 100 (percent), got {k}")
    if inp.d_empty:
        return math.nan
    n = inp.n
    n_top = max(1, int(round(k / 100.0 * n)))
    # each region holds exactly n_top pixels: those above the n_top-th largest value, plus the
    # share of the pixels tied with it that is needed to reach n_top (fractional membership)
    # (a constant map: every pixel ties at its value, found without a pass)
    ts, above_s, tied_s = (inp.smax, 0, n) if inp.constant else inp.s_kth_largest_counts(n_top)
    f_s = (n_top - above_s) / tied_s
    td, above_d, tied_d = inp.d_kth_largest_counts(n_top)
    f_d = (n_top - above_d) / tied_d
    if f_s == 1 and f_d == 1:  # no partial ties (the usual case): two plain regions
        inter = inp.iou_counts.get(n_top)  # counted by the density pass?
        if inter is None:
            inter = int(kernels.count_both_ge(inp.s, ts, inp.d, td))
        return inter / (2 * n_top - inter)
    if inp.constant:  # every pixel is tied in the map's region: no pass over the maps needed
        inter = f_d * 0 + f_s * above_d + min(f_s, f_d) * tied_d  # the general case's sum below
        return inter / (2 * n_top - inter)
    d_above, d_tied = inp.d > td, inp.d == td
    s_above, s_tied = inp.s > ts, inp.s == ts

    def both(a, b):
        return int(np.count_nonzero(np.logical_and(a, b)))

    inter = (both(s_above, d_above) + f_d * both(s_above, d_tied) + f_s * both(s_tied, d_above)
             + min(f_s, f_d) * both(s_tied, d_tied))
    return inter / (2 * n_top - inter)


# --- public metric functions ------------------------------------------------------------------


def auc_judd(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0, jitter: bool | None = None,
) -> float:
    """AUC-Judd: area under the ROC curve of the map as a classifier of fixated pixels.

    ``mit`` (AUC_Judd.m): positives are the fixated pixels (each once), negatives the unfixated
    pixels, thresholds at the fixated values only; equal values are ordered at random (``jitter``,
    seeded; the MATLAB code adds noise of 1e-7 for that). ``pysaliency`` (its ``AUC``, the MIT-Tuebingen "AUC"): every
    fixation is a positive, every pixel a negative, every value a threshold, ties count half; no
    jitter needed. Higher is better; 0.5 is chance.
    """
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _auc_judd(inp, jitter=jitter)


def auc_borji(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0, n_splits: int | None = N_SPLITS, step_size: float = STEP_SIZE,
) -> float:
    """AUC-Borji (AUC_Borji.m): the map rescaled to [0, 1], thresholds every ``step_size``;
    negatives are as many pixels as fixations, drawn uniformly (with replacement) from all pixels,
    ``n_splits`` times; the score is the mean area. ``n_splits=None`` gives the exact expectation
    (deterministic). pysaliency has no AUC-Borji: its profile only keeps duplicate fixations.
    """
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _auc_borji(inp, n_splits=n_splits, step_size=step_size)


def sauc(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0, n_splits: int | None = N_SPLITS, step_size: float = STEP_SIZE,
) -> float:
    """Shuffled AUC: negatives are fixations on other images (``other_x``/``other_y``), which
    discounts the centre bias every image shares.

    ``mit`` (AUC_shuffled.m): the other locations as a binary map (each location once); each of
    ``n_splits`` splits draws min(P, K) of them without replacement; thresholds every
    ``step_size`` on the [0, 1]-rescaled map; mean area (``n_splits=None``: exact expectation).
    Which other images form the pool is the caller's choice (Borji used 10).
    ``pysaliency``: every other fixation (duplicates kept) is a negative, every value a threshold.
    """
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _sauc(inp, n_splits=n_splits, step_size=step_size)


def nss(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """Normalized Scanpath Saliency (NSS.m): the mean of the standardised map (zero mean, unit
    standard deviation) at the fixations. ``mit``: each fixated pixel once, std with N-1;
    ``pysaliency``: every fixation, std with N. Higher is better; 0 is chance."""
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _nss(inp)


def cc(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """Pearson correlation (CC.m) between the map and the human ``density``; in [-1, 1], higher
    is better. Same in both profiles (the fixations are not used)."""
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _cc(inp)


def sim(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """Similarity / histogram intersection (similarity.m): both maps made distributions, then the
    sum of the pixel-wise minimum; in [0, 1], higher is better. ``mit`` rescales each map to [0, 1]
    before dividing by its sum; ``pysaliency`` only divides by the sum (after shifting a negative
    minimum to zero)."""
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _sim(inp)


def kld(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """KL divergence (KLdiv.m) of the map from the human density, both divided by their sums:
    ``sum(g * log(eps + g / (p + eps)))`` in nats, g the human distribution. Lower is better.
    ``eps`` is MATLAB's eps (``mit``) or pysaliency's rounded 2.2204e-16."""
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _kld(inp)


def ig(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """Information gain over ``baseline`` (uniform if ``None``), in bits per fixation.

    ``mit`` (InfoGain.m): both maps rescaled to [0, 1] and divided by their sums;
    ``mean(log2(eps + p) - log2(eps + p_baseline))`` over the fixated pixels (each once).
    ``pysaliency`` (``information_gain``): the map divided by its sum is read as a fixation density
    model, no eps: ``mean(log2 p - log2 p_baseline)`` over every fixation; -inf where the model
    gives a fixated pixel zero probability. Higher is better; 0 means no better than the baseline.
    """
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _ig(inp)


def iou_topk(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0, k: float = 20.0,
) -> float:
    """Intersection over union of the top-``k`` % regions of the map and of the human density.

    Each region holds exactly n = round(k/100 * H * W) pixels: every pixel above the n-th largest
    value, and of the pixels tied with that value the fraction needed to reach n (each tied pixel
    belongs with that weight; IoU = sum(min) / sum(max) of the memberships). So ties are neither
    all in nor all out, and a constant map scores chance, k / (200 - k) (1/9 for k = 20). Same in
    both profiles (no reference implementation). In [0, 1], higher is better.
    """
    inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                       other_x=other_x, other_y=other_y, profile=profile, seed=seed)
    return _iou_topk(inp, k=k)


def iou_top20(
    saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
    profile="mit", seed=0,
) -> float:
    """:func:`iou_topk` with k = 20 %."""
    return iou_topk(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                    other_x=other_x, other_y=other_y, profile=profile, seed=seed, k=20.0)


# --- the table and the suite ------------------------------------------------------------------


@dataclass(frozen=True)
class MetricInfo:
    name: str
    function: Callable[..., float]
    kernel: Callable[..., float]
    higher_is_better: bool
    needs: tuple[str, ...]  # context beyond the map and fixations: "density", "other"
    description: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("auc_judd", auc_judd, _auc_judd, True, (), "AUC-Judd (pysaliency profile: AUC, all pixels as negatives)"),
        MetricInfo("auc_borji", auc_borji, _auc_borji, True, (), "AUC-Borji, uniform random negatives"),
        MetricInfo("sauc", sauc, _sauc, True, ("other",), "shuffled AUC, other images' fixations as negatives"),
        MetricInfo("nss", nss, _nss, True, (), "normalized scanpath saliency"),
        MetricInfo("cc", cc, _cc, True, ("density",), "Pearson correlation with the human density"),
        MetricInfo("sim", sim, _sim, True, ("density",), "similarity (histogram intersection) with the human density"),
        MetricInfo("kld", kld, _kld, False, ("density",), "KL divergence of the map from the human density (nats)"),
        MetricInfo("ig", ig, _ig, True, (), "information gain over a baseline (bits per fixation)"),
        MetricInfo("iou_top20", iou_top20, _iou_topk, True, ("density",), "IoU of the top-20% regions of map and human density"),
    )
}

_IOU = re.compile(r"^iou_top(\d+(?:\.\d+)?)$")


def compute_suite(
    saliency_map: np.ndarray,
    fix_x: np.ndarray,
    fix_y: np.ndarray,
    *,
    density: np.ndarray | None = None,
    baseline: np.ndarray | None = None,
    other_x: np.ndarray | None = None,
    other_y: np.ndarray | None = None,
    profile: str = "mit",
    seed: int | np.random.Generator | None = 0,
    metrics: list[str] | tuple[str, ...] | None = None,
    n_splits: int | None = N_SPLITS,
    step_size: float = STEP_SIZE,
    jitter: bool | None = None,
    shared: SharedInputs | None = None,
) -> dict[str, float]:
    """Several metrics of one image at once, sharing the work (validation, min/max, one counting
    pass over the map for AUC-Judd and AUC-Borji, one pass over map and density for CC, SIM and
    KLD, normalisations). Each value equals what the
    metric's own function returns with the same arguments (the randomised ones included, for an
    integer ``seed``).

    ``metrics``: names from :data:`METRICS`, plus ``iou_top<k>`` for any k; ``None`` means every
    metric whose inputs were given (sAUC needs ``other_x``/``other_y``; CC, SIM, KLD, IoU need
    ``density``). Naming a metric whose input is missing raises :class:`MetricInputError`.

    ``shared``: a :class:`SharedInputs` holding the baseline and the other images' fixations
    (instead of ``baseline``/``other_x``/``other_y``), validated once for several maps of one
    stimulus; the numbers are the same as with the arrays given directly.
    """
    with workspace() as ws:
        inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, baseline=baseline,
                           other_x=other_x, other_y=other_y, profile=profile, seed=seed, workspace=ws,
                           shared=shared)
        return _suite(inp, metrics, n_splits, step_size, jitter)


def suite_of_known(saliency_map: np.ndarray, fix_x: np.ndarray, fix_y: np.ndarray, *, density: np.ndarray,
                   known, profile: str, seed: int, shared: SharedInputs) -> dict[str, float]:
    """:func:`compute_suite` of every metric, for a caller that already has the map's and the
    density's statistics (``known``: see :class:`MetricInputs`; the human ceiling's sweep finds
    them): the same numbers, without the two validating passes. Internal: nothing is checked."""
    with workspace() as ws:
        inp = MetricInputs(saliency_map, fix_x, fix_y, density=density, profile=profile, seed=seed, workspace=ws,
                           shared=shared, known=known)
        return _suite(inp, None, N_SPLITS, STEP_SIZE, None)


def compute_suite_many(
    items: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    baseline: np.ndarray | None = None,
    other_x: np.ndarray | None = None,
    other_y: np.ndarray | None = None,
    profile: str = "mit",
    seed: int | np.random.Generator | None = 0,
    metrics: list[str] | tuple[str, ...] | None = None,
    n_splits: int | None = N_SPLITS,
    step_size: float = STEP_SIZE,
    jitter: bool | None = None,
) -> list[dict[str, float]]:
    """:func:`compute_suite` of several maps of one stimulus (the human ceiling's leave-one-out
    maps, one per subject), each with its own fixations and density: ``items`` yields
    ``(saliency_map, fix_x, fix_y, density)`` (it may be a generator that makes each map when
    asked). The baseline and the other images' fixations are validated and prepared once
    (:class:`SharedInputs`). Item j's dict equals ``compute_suite(saliency_map, fix_x, fix_y,
    density=density, baseline=baseline, other_x=other_x, other_y=other_y, profile=profile,
    seed=seed, ...)`` to the bit."""
    out: list[dict[str, float]] = []
    shared: SharedInputs | None = None
    for saliency_map, fix_x, fix_y, density in items:
        if shared is None:  # the first map's shape is checked before the shared inputs are made
            shape = np.shape(saliency_map)
            if len(shape) != 2:
                raise MetricInputError(f"saliency map must be a 2-D (height, width) array, got shape {shape}")
            shared = SharedInputs(shape, baseline=baseline, other_x=other_x, other_y=other_y, reused=True)
        out.append(compute_suite(saliency_map, fix_x, fix_y, density=density, profile=profile, seed=seed,
                                 metrics=metrics, n_splits=n_splits, step_size=step_size, jitter=jitter,
                                 shared=shared))
    return out


def _suite(inp: MetricInputs, metrics, n_splits, step_size, jitter) -> dict[str, float]:
    if metrics is None:
        available = {"density": inp.has_density, "other": inp.has_other}
        metrics = [m.name for m in METRICS.values() if all(available[n] for n in m.needs)]
    # the first top-k IoU's region size, if its k is valid
    iou = next((float(m.group(1)) for m in map(_IOU.match, metrics) if m), None)
    n_top = max(1, int(round(iou / 100.0 * inp.n))) if iou is not None and 0 < iou <= 100 else 0
    if ("auc_judd" in metrics or "auc_borji" in metrics) and inp.pos.size and not inp.constant:
        # one counting pass over the map for both: the fixated values and Borji's thresholds
        q = [inp.s[inp.pos]] if "auc_judd" in metrics else []
        if "auc_borji" in metrics and 0 < step_size <= 1:
            q.append(inp.minmax_queries(roc.step_thresholds(step_size)))
        if q:
            # and in the same pass the threshold of the first top-k IoU, and sum(map - min) where
            # a metric will normalise the map with it
            p = inp.profile
            shift = (("sim" in metrics and p.sim_normalisation == "minmax") or ("ig" in metrics and p.ig == "mit")
                     or (inp.smin < 0 and any(m in metrics for m in ("sim", "kld", "ig"))))
            inp.prime_counts(np.concatenate(q), n_top, shift=shift)
    if inp.has_density:  # CC, SIM, KLD and the first IoU's overlap share one pass over map and density
        inp.fuse = {m for m in ("cc", "sim", "kld") if m in metrics}
        if inp.fuse and n_top:
            inp.fuse_iou = n_top
    out: dict[str, float] = {}
    for name in metrics:
        iou = _IOU.match(name)
        if iou:
            out[name] = _iou_topk(inp, k=float(iou.group(1)))
        elif name == "auc_judd":
            out[name] = _auc_judd(inp, jitter=jitter)
        elif name in ("auc_borji", "sauc"):
            out[name] = METRICS[name].kernel(inp, n_splits=n_splits, step_size=step_size)
        elif name in METRICS:
            out[name] = METRICS[name].kernel(inp)
        else:
            raise MetricInputError(
                f"unknown metric {name!r}; known: {', '.join(METRICS)}, iou_top<k>"
            )
    return out
