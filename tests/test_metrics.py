"""Gaze-alignment metrics: hand-computed cases, invariances, degenerate input, and agreement with a
line-by-line numpy transcription of the MIT benchmark's MATLAB code (``mit_*`` below, also used by
tests/test_metrics_pysaliency.py on real OSIE data)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from harness.errors import HarnessError
from harness.metrics import (
    METRICS,
    MetricInputError,
    auc_borji,
    auc_judd,
    cc,
    compute_suite,
    ig,
    iou_top20,
    iou_topk,
    kld,
    nss,
    pixel_indices,
    sauc,
    sim,
)
from harness.metrics import roc

EPS = np.finfo(np.float64).eps  # MATLAB eps
PROFILES = ("mit", "pysaliency")


# --- the MATLAB code, transcribed (code_forMetrics/*.m of github.com/cvzoya/saliency) ------------


def _mit_minmax(m):
    m = np.asarray(m, dtype=float)
    return (m - m.min()) / (m.max() - m.min())


def mit_auc_judd(saliency_map, fixation_map, noise=None):
    """AUC_Judd.m with ``jitter`` given as the noise array (None: jitter = 0)."""
    s = np.asarray(saliency_map, dtype=float)
    if noise is not None:
        s = s + noise
    s = _mit_minmax(s).ravel()
    f = np.asarray(fixation_map).ravel()
    sth = s[f > 0]
    nfix, npix = sth.size, s.size
    allthreshes = np.sort(sth)[::-1]
    tp = np.zeros(nfix + 2)
    fp = np.zeros(nfix + 2)
    tp[-1] = fp[-1] = 1
    for i in range(1, nfix + 1):
        thresh = allthreshes[i - 1]
        aboveth = np.sum(s >= thresh)
        tp[i] = i / nfix
        fp[i] = (aboveth - i) / (npix - nfix)
    return float(np.trapezoid(tp, fp))


def _mit_colon(step, stop):
    """MATLAB ``0:step:stop``."""
    return step * np.arange(int(np.floor(stop / step + 1e-9)) + 1)


def _mit_split_auc(sth, curfix, step, n_pos, n_neg):
    allthreshes = _mit_colon(step, max(sth.max(), curfix.max()))[::-1]
    tp = np.zeros(allthreshes.size + 2)
    fp = np.zeros(allthreshes.size + 2)
    tp[-1] = fp[-1] = 1
    for i, thresh in enumerate(allthreshes):
        tp[i + 1] = np.sum(sth >= thresh) / n_pos
        fp[i + 1] = np.sum(curfix >= thresh) / n_neg
    return float(np.trapezoid(tp, fp))


def mit_auc_borji(saliency_map, fixation_map, r, step=0.1):
    """AUC_Borji.m with the random pixel indices ``r`` (Nfixations x Nsplits) given."""
    s = _mit_minmax(saliency_map).ravel()
    sth = s[np.asarray(fixation_map).ravel() > 0]
    randfix = s[r]
    return float(np.mean([_mit_split_auc(sth, randfix[:, k], step, sth.size, sth.size) for k in range(r.shape[1])]))


def mit_auc_shuffled(saliency_map, fixation_map, other_map, perms, step=0.1):
    """AUC_shuffled.m with the random permutations (one per split) of the other locations given."""
    s = _mit_minmax(saliency_map).ravel()
    sth = s[np.asarray(fixation_map).ravel() > 0]
    ind = np.flatnonzero(np.asarray(other_map).ravel() > 0)
    n_oth = min(sth.size, ind.size)
    aucs = [_mit_split_auc(sth, s[ind[p][:n_oth]], step, sth.size, n_oth) for p in perms]
    return float(np.mean(aucs))


def mit_nss(saliency_map, fixation_map):
    m = np.asarray(saliency_map, dtype=float)
    m = (m - m.mean()) / m.std(ddof=1)
    return float(m[np.asarray(fixation_map).astype(bool)].mean())


def mit_cc(saliency_map, density):
    a = np.asarray(saliency_map, dtype=float)
    b = np.asarray(density, dtype=float)
    a = (a - a.mean()) / a.std(ddof=1)
    b = (b - b.mean()) / b.std(ddof=1)
    a, b = a - a.mean(), b - b.mean()  # corr2
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def mit_similarity(saliency_map, density):
    m1 = np.asarray(saliency_map, dtype=float)
    m2 = np.asarray(density, dtype=float)
    if m1.any():
        m1 = _mit_minmax(m1)
        m1 = m1 / m1.sum()
    if m2.any():
        m2 = _mit_minmax(m2)
        m2 = m2 / m2.sum()
    return float(np.minimum(m1, m2).sum())


def mit_kldiv(saliency_map, density):
    m1 = np.asarray(saliency_map, dtype=float)
    m2 = np.asarray(density, dtype=float)
    if m1.any():
        m1 = m1 / m1.sum()
    if m2.any():
        m2 = m2 / m2.sum()
    return float((m2 * np.log(EPS + m2 / (m1 + EPS))).sum())


def mit_info_gain(saliency_map, fixation_map, baseline_map):
    m1 = _mit_minmax(saliency_map).ravel()
    mb = _mit_minmax(baseline_map).ravel()
    m1 = m1 / m1.sum()
    mb = mb / mb.sum()
    locs = np.asarray(fixation_map).ravel().astype(bool)
    return float(np.mean(np.log2(EPS + m1[locs]) - np.log2(EPS + mb[locs])))


def fixation_map(shape, xs, ys):
    """The MIT binary fixation map (rounding as harness.metrics does)."""
    fm = np.zeros(shape)
    fm.flat[pixel_indices(xs, ys, shape)] = 1
    return fm


# --- fixtures ---------------------------------------------------------------------------------


def _blur(a, sigma):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(a, sigma)


@pytest.fixture(scope="module")
def scene():
    """A 60x80 synthetic scene: a smooth map with negative values, a density, a centre bias, 40
    fixations (a few on the same pixel), 150 fixations "from other images"."""
    rng = np.random.default_rng(7)
    h, w = 60, 80
    yy, xx = np.mgrid[:h, :w]
    centre = np.exp(-((xx - w / 2) ** 2 / (2 * 15.0**2) + (yy - h / 2) ** 2 / (2 * 12.0**2)))
    smap = _blur(rng.normal(size=(h, w)), 3) + 0.5 * centre
    fx = np.clip(rng.normal(w / 2, 12, 40), 0, w - 1)
    fy = np.clip(rng.normal(h / 2, 9, 40), 0, h - 1)
    fx[:3], fy[:3] = 10.2, 20.4  # three fixations on one pixel
    density = np.zeros((h, w))
    np.add.at(density, (np.floor(fy + 0.5).astype(int), np.floor(fx + 0.5).astype(int)), 1)
    density = _blur(density, 4)
    density /= density.sum()
    ox = rng.uniform(0, w - 1, 150)
    oy = rng.uniform(0, h - 1, 150)
    return dict(smap=smap, fx=fx, fy=fy, density=density, baseline=centre, ox=ox, oy=oy)


def _kw(sc):
    return dict(density=sc["density"], baseline=sc["baseline"], other_x=sc["ox"], other_y=sc["oy"])


# --- hand-computed values -----------------------------------------------------------------------

NINE = np.arange(1.0, 10.0).reshape(3, 3)  # values 1..9, row-major
# fixations on the pixels holding 9 (x=2, y=2) and 5 (x=1, y=1)
FX, FY = np.array([2.0, 1.0]), np.array([2.0, 1.0])


def test_auc_judd_by_hand():
    # MIT: thresholds 9, 5 -> points (0, 0), (0, 1/2), (3/7, 1), (1, 1): area 3/7*3/4 + 4/7 = 25/28
    assert auc_judd(NINE, FX, FY, profile="mit") == pytest.approx(25 / 28, abs=1e-12)
    assert auc_judd(NINE, FX, FY, profile="mit", jitter=False) == pytest.approx(25 / 28, abs=1e-12)
    # pysaliency: all 9 pixels are negatives, ties half: (8.5 + 4.5) / (2 * 9)
    assert auc_judd(NINE, FX, FY, profile="pysaliency") == pytest.approx(13 / 18, abs=1e-12)


def test_auc_judd_ties_by_hand():
    m = np.zeros((3, 3))
    m[1, 1] = 1.0
    fx, fy = np.array([1.0, 0.0]), np.array([1.0, 0.0])  # the peak, and one of eight zeros
    # no jitter: the zero threshold takes every pixel: points (0, 1/2), (1, 1): area 3/4
    assert auc_judd(m, fx, fy, profile="mit", jitter=False) == pytest.approx(0.75, abs=1e-12)
    assert auc_judd(m, fx, fy, profile="mit", jitter=False) == pytest.approx(mit_auc_judd(m, fixation_map(m.shape, fx, fy)), abs=1e-12)
    # random tie-breaking: the fixated zero gets rank r of 8 -> 1 - (r - 1) / 28, mean 1 - 3.5 / 28
    values = [auc_judd(m, fx, fy, profile="mit", seed=s) for s in range(400)]
    assert set(np.round(values, 12)) <= {round(1 - j / 28, 12) for j in range(8)}
    assert np.mean(values) == pytest.approx(1 - 3.5 / 28, abs=0.01)
    # pysaliency: (8.5 + 8 * 0.5) / 18
    assert auc_judd(m, fx, fy, profile="pysaliency") == pytest.approx(12.5 / 18, abs=1e-12)


def test_auc_borji_by_hand():
    # rescaled values (i - 1) / 8; positives 1.0 and 0.5; exact expectation over all pixels:
    # fp at thresholds 1.0 .. 0 = [1,1,2,3,4,5,5,6,7,8,9] / 9, tp = [1,1,1,1,1,2,...] / 2 -> 26/36
    assert auc_borji(NINE, FX, FY, n_splits=None) == pytest.approx(26 / 36, abs=1e-12)


def test_sauc_by_hand():
    ox, oy = np.array([0.0, 1.0, 2.0, 0.0]), np.array([0.0, 0.0, 2.0, 0.0])  # values 1, 2, 9, 1
    # MIT: unique other locations {1, 2, 9}; rescaled 0, 1/8, 1; exact expectation: 9/12
    assert sauc(NINE, FX, FY, other_x=ox, other_y=oy, n_splits=None) == pytest.approx(0.75, abs=1e-12)
    # AUC_shuffled.m draws 2 of the 3: {1, 2} -> 1, {1, 9} -> 5/8, {2, 9} -> 5/8; their mean is 3/4
    fm, om = fixation_map((3, 3), FX, FY), fixation_map((3, 3), ox, oy)
    for perm, want in (([0, 1, 2], 1.0), ([0, 2, 1], 0.625), ([1, 2, 0], 0.625)):
        assert mit_auc_shuffled(NINE, fm, om, [np.array(perm)]) == pytest.approx(want, abs=1e-12)
    # pysaliency: negatives 1, 2, 9, 1 (duplicates kept): (3.5 + 3) / 8
    assert sauc(NINE, FX, FY, other_x=ox, other_y=oy, profile="pysaliency") == pytest.approx(6.5 / 8, abs=1e-12)


def test_nss_by_hand():
    # mean 5, sum of squares 60: std sqrt(60/8) (MATLAB) or sqrt(60/9) (numpy); values 9 and 5
    assert nss(NINE, FX, FY, profile="mit") == pytest.approx(4 / math.sqrt(7.5) / 2, abs=1e-12)
    assert nss(NINE, FX, FY, profile="pysaliency") == pytest.approx(4 / math.sqrt(60 / 9) / 2, abs=1e-12)
    # a repeated fixation counts once in MIT (binary map), twice in pysaliency
    fx, fy = np.array([2.0, 2.0, 1.0]), np.array([2.0, 2.0, 1.0])
    assert nss(NINE, fx, fy, profile="mit") == pytest.approx(4 / math.sqrt(7.5) / 2, abs=1e-12)
    assert nss(NINE, fx, fy, profile="pysaliency") == pytest.approx(2 * 4 / math.sqrt(60 / 9) / 3, abs=1e-12)


S4 = np.array([[1.0, 2.0], [3.0, 4.0]])
D4 = np.array([[1.0, 1.0], [1.0, 3.0]])


def test_cc_by_hand():
    d = np.array([[1.0, 1.0], [2.0, 4.0]])
    # deviations (-1.5, -.5, .5, 1.5) and (-1, -1, 0, 2): 5 / sqrt(5 * 6)
    for profile in PROFILES:
        assert cc(S4, [0.0], [0.0], density=d, profile=profile) == pytest.approx(5 / math.sqrt(30), abs=1e-12)


def test_sim_by_hand():
    # MIT: min-max then sum: p = (0, 1/6, 1/3, 1/2), g = (0, 0, 0, 1) -> 1/2
    assert sim(S4, [0.0], [0.0], density=D4, profile="mit") == pytest.approx(0.5, abs=1e-12)
    # pysaliency: p = (.1, .2, .3, .4), g = (1, 1, 1, 3) / 6 -> .1 + 1/6 + 1/6 + .4
    assert sim(S4, [0.0], [0.0], density=D4, profile="pysaliency") == pytest.approx(0.1 + 1 / 3 + 0.4, abs=1e-12)


def test_kld_by_hand():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    g = np.array([1, 1, 1, 3]) / 6
    want = float((g * np.log(g / p)).sum())  # 0.0683...; eps changes it by ~1e-15
    for profile in PROFILES:
        assert kld(S4, [0.0], [0.0], density=D4, profile=profile) == pytest.approx(want, abs=1e-12)


def test_ig_by_hand():
    # MIT: p = (0, 1/6, 1/3, 1/2), uniform baseline 1/4
    assert ig(S4, [1.0], [1.0], profile="mit") == pytest.approx(1.0, abs=1e-12)  # log2(.5 / .25)
    assert ig(S4, [0.0], [0.0], profile="mit") == pytest.approx(math.log2(EPS) + 2, abs=1e-9)  # p = 0
    # pysaliency: p = s / sum = .4 at the 4
    assert ig(S4, [1.0], [1.0], profile="pysaliency") == pytest.approx(math.log2(1.6), abs=1e-12)
    # against a baseline: (b - min) / sum for MIT; b / sum for pysaliency
    b = np.array([[1.0, 1.0], [1.0, 2.0]])
    assert ig(S4, [1.0], [1.0], baseline=b, profile="mit") == pytest.approx(math.log2(0.5 / 1.0), abs=1e-12)
    assert ig(S4, [1.0], [1.0], baseline=b, profile="pysaliency") == pytest.approx(math.log2(0.4 / 0.4), abs=1e-12)
    # a zero-probability fixation is -inf in pysaliency (as there)
    z = np.array([[0.0, 1.0], [1.0, 1.0]])
    assert ig(z, [0.0], [0.0], profile="pysaliency") == -math.inf


def test_iou_by_hand():
    m = np.arange(10.0).reshape(2, 5)  # top 20 % = 2 pixels: flat 8 and 9
    d = np.zeros((2, 5))
    d.flat[0], d.flat[9] = 5.0, 4.0  # human top 2: flat 0 and 9
    assert iou_top20(m, [0.0], [0.0], density=d) == pytest.approx(1 / 3, abs=1e-12)
    assert iou_topk(m, [0.0], [0.0], density=d, k=10) == 0.0  # {9} against {0}
    # top 30 %: model {7, 8, 9}; human {0, 9} and 1/8 of each of the 8 tied zeros (flat 1..8):
    # intersection 1 (flat 9) + 1/8 (flat 8) + 1/8 (flat 7) = 5/4, union 3 + 3 - 5/4
    assert iou_topk(m, [0.0], [0.0], density=d, k=30) == pytest.approx(1.25 / 4.75, abs=1e-12)
    # a constant map holds 2/10 of every pixel: intersection 2 * 0.2, union 4 - 0.4 -> 1/9
    assert iou_top20(np.ones((2, 5)), [0.0], [0.0], density=d) == pytest.approx(1 / 9, abs=1e-12)
    assert compute_suite(m, [0.0], [0.0], density=d, metrics=["iou_top10", "iou_top20"]) == {
        "iou_top10": 0.0, "iou_top20": pytest.approx(1 / 3)}


def test_pixel_rounding():
    shape = (4, 5)
    xs = np.array([-0.5, 0.49, 0.5, 4.5, 2.0])
    ys = np.array([0.0, 0.0, 0.0, 3.5, 1.49])
    assert pixel_indices(xs, ys, shape).tolist() == [0, 0, 1, 3 * 5 + 4, 1 * 5 + 2]
    with pytest.raises(MetricInputError, match=r"fixation 0 at \(x=4.6"):
        pixel_indices([4.6], [0.0], shape)
    with pytest.raises(MetricInputError, match="outside"):
        pixel_indices([np.nan], [0.0], shape)


# --- agreement with the MATLAB transcription ---------------------------------------------------


def test_mit_profile_matches_matlab_transcription(scene):
    sc = scene
    m = sc["smap"] - sc["smap"].min() + 0.1  # KLdiv.m assumes a non-negative map
    fm = fixation_map(m.shape, sc["fx"], sc["fy"])
    args = (m, sc["fx"], sc["fy"])
    assert auc_judd(*args, profile="mit", jitter=False) == pytest.approx(mit_auc_judd(m, fm), abs=1e-12)
    assert nss(*args, profile="mit") == pytest.approx(mit_nss(m, fm), abs=1e-12)
    assert cc(*args, density=sc["density"]) == pytest.approx(mit_cc(m, sc["density"]), abs=1e-12)
    assert sim(*args, density=sc["density"]) == pytest.approx(mit_similarity(m, sc["density"]), abs=1e-12)
    assert kld(*args, density=sc["density"]) == pytest.approx(mit_kldiv(m, sc["density"]), abs=1e-12)
    assert ig(*args, baseline=sc["baseline"]) == pytest.approx(mit_info_gain(m, fm, sc["baseline"]), abs=1e-12)
    # the maps with negative values too, except KLD (see test_negative_maps)
    m = sc["smap"]
    assert nss(m, sc["fx"], sc["fy"]) == pytest.approx(mit_nss(m, fm), abs=1e-12)
    assert sim(m, sc["fx"], sc["fy"], density=sc["density"]) == pytest.approx(mit_similarity(m, sc["density"]), abs=1e-12)
    assert ig(m, sc["fx"], sc["fy"], baseline=sc["baseline"]) == pytest.approx(mit_info_gain(m, fm, sc["baseline"]), abs=1e-12)


def test_judd_tie_breaking_is_the_matlab_jitter(scene):
    """On a map full of ties, the mean of our random tie-breaking equals the mean of AUC_Judd.m with
    its rand/1e7 jitter (both are random; compare means over many draws)."""
    m = np.round(scene["smap"] * 3) / 3  # ~12 distinct levels
    fm = fixation_map(m.shape, scene["fx"], scene["fy"])
    rng = np.random.default_rng(0)
    matlab = [mit_auc_judd(m, fm, rng.random(m.shape) / 1e7) for _ in range(150)]
    ours = [auc_judd(m, scene["fx"], scene["fy"], seed=s) for s in range(150)]
    se = math.hypot(np.std(matlab), np.std(ours)) / math.sqrt(150)
    assert abs(np.mean(ours) - np.mean(matlab)) < 4 * se + 1e-9
    assert np.std(ours) > 0  # ties were really broken at random


def test_borji_mean_of_splits_is_area_of_mean_rate(scene):
    """The identity our Borji/sAUC rest on: the mean of the split AUCs (as AUC_Borji.m computes them,
    with the thresholds stopping at each split's maximum) equals the area of the mean fp rate."""
    m = scene["smap"]
    fm = fixation_map(m.shape, scene["fx"], scene["fy"])
    rng = np.random.default_rng(1)
    p = int(fm.sum())
    r = rng.integers(0, m.size, size=(p, 100))
    want = mit_auc_borji(m, fm, r)
    s = _mit_minmax(m).ravel()
    t = roc.step_thresholds(0.1)
    tp = roc.counts_at_or_above(np.sort(s[fm.ravel() > 0]), t) / p
    fp = np.mean([roc.counts_at_or_above(np.sort(s[r[:, k]]), t) for k in range(100)], axis=0) / p
    assert roc.step_auc(tp, fp) == pytest.approx(want, abs=1e-12)


def test_borji_and_sauc_sampling_matches_matlab(scene):
    """Our count sampling (multinomial / hypergeometric) has the distribution of AUC_Borji.m's and
    AUC_shuffled.m's per-sample draws: same mean, and both converge to the exact expectation."""
    sc = scene
    m, fx, fy = sc["smap"], sc["fx"], sc["fy"]
    fm = fixation_map(m.shape, fx, fy)
    om = fixation_map(m.shape, sc["ox"], sc["oy"])
    p = int(fm.sum())
    rng = np.random.default_rng(2)
    n = 60
    borji_matlab = [mit_auc_borji(m, fm, rng.integers(0, m.size, size=(p, 10))) for _ in range(n)]
    borji_ours = [auc_borji(m, fx, fy, seed=s, n_splits=10) for s in range(n)]
    exact = auc_borji(m, fx, fy, n_splits=None)
    se = math.hypot(np.std(borji_matlab), np.std(borji_ours)) / math.sqrt(n)
    assert abs(np.mean(borji_ours) - np.mean(borji_matlab)) < 4 * se
    assert abs(np.mean(borji_ours) - exact) < 4 * np.std(borji_ours) / math.sqrt(n)
    assert np.std(borji_ours) == pytest.approx(np.std(borji_matlab), rel=0.5)
    k = int(om.sum())
    sauc_matlab = [mit_auc_shuffled(m, fm, om, [rng.permutation(k) for _ in range(10)]) for _ in range(n)]
    sauc_ours = [sauc(m, fx, fy, other_x=sc["ox"], other_y=sc["oy"], seed=s, n_splits=10) for s in range(n)]
    exact = sauc(m, fx, fy, other_x=sc["ox"], other_y=sc["oy"], n_splits=None)
    se = math.hypot(np.std(sauc_matlab), np.std(sauc_ours)) / math.sqrt(n)
    assert abs(np.mean(sauc_ours) - np.mean(sauc_matlab)) < 4 * se
    assert abs(np.mean(sauc_ours) - exact) < 4 * np.std(sauc_ours) / math.sqrt(n)


def test_seeded_metrics_are_reproducible(scene):
    kw = _kw(scene)
    a = compute_suite(scene["smap"], scene["fx"], scene["fy"], seed=3, **kw)
    b = compute_suite(scene["smap"], scene["fx"], scene["fy"], seed=3, **kw)
    c = compute_suite(scene["smap"], scene["fx"], scene["fy"], seed=4, **kw)
    assert a == b
    assert a["auc_borji"] != c["auc_borji"] and a["sauc"] != c["sauc"]


# --- invariances ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_affine_invariance(scene, profile):
    """NSS and CC (and everything that rescales to [0, 1] first) ignore a * map + b, a > 0."""
    kw = _kw(scene)
    m = scene["smap"]
    base = compute_suite(m, scene["fx"], scene["fy"], profile=profile, **kw)
    other = compute_suite(3.7 * m - 12.0, scene["fx"], scene["fy"], profile=profile, **kw)
    names = ["nss", "cc", "auc_judd", "auc_borji", "sauc", "iou_top20"]
    if profile == "mit":
        names += ["sim", "ig"]
    for name in names:
        assert other[name] == pytest.approx(base[name], abs=1e-9), name


@pytest.mark.parametrize("profile", PROFILES)
def test_rank_aucs_invariant_under_monotone_transforms(scene, profile):
    """AUC-Judd (both profiles) and pysaliency's sAUC depend on the ranks only. AUC-Borji and MIT's
    sAUC threshold the [0, 1]-rescaled map at fixed steps, so only affine maps leave them alone."""
    kw = _kw(scene)
    m = scene["smap"]
    names = ["auc_judd", "iou_top20"] + (["sauc"] if profile == "pysaliency" else [])
    base = compute_suite(m, scene["fx"], scene["fy"], profile=profile, metrics=names, **kw)
    for f in (np.exp, lambda a: a**3, lambda a: np.arctan(4 * a)):
        other = compute_suite(f(m), scene["fx"], scene["fy"], profile=profile, metrics=names, **kw)
        for name in names:
            assert other[name] == pytest.approx(base[name], abs=1e-12), name
    borji = auc_borji(np.exp(3 * m), scene["fx"], scene["fy"], n_splits=None)
    assert borji != pytest.approx(auc_borji(m, scene["fx"], scene["fy"], n_splits=None), abs=1e-3)


# --- degenerate input ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.0, 2.5, -1.0])
@pytest.mark.parametrize("profile", PROFILES)
def test_constant_map_is_the_uniform_map(scene, profile, value):
    kw = _kw(scene)
    m = np.full(scene["smap"].shape, value)
    r = compute_suite(m, scene["fx"], scene["fy"], profile=profile, **kw)
    n = m.size
    g = scene["density"] / scene["density"].sum()
    assert r["auc_judd"] == r["auc_borji"] == r["sauc"] == 0.5
    assert r["nss"] == 0.0 and r["cc"] == 0.0
    if profile == "mit":
        gm = _mit_minmax(scene["density"])
        gm /= gm.sum()
        assert r["sim"] == pytest.approx(np.minimum(gm, 1 / n).sum(), abs=1e-12)
    else:
        assert r["sim"] == pytest.approx(np.minimum(g, 1 / n).sum(), abs=1e-12)
    gz = g[g > 0]
    assert r["kld"] == pytest.approx((gz * np.log(gz * n)).sum(), abs=1e-9)
    assert ig(m, scene["fx"], scene["fy"], profile=profile) == pytest.approx(0.0, abs=1e-12)
    assert r["iou_top20"] == pytest.approx(0.2 / 1.8, abs=1e-9)  # chance: k / (200 - k)


@pytest.mark.parametrize("profile", PROFILES)
def test_no_fixations_gives_nan(scene, profile):
    r = compute_suite(scene["smap"], [], [], profile=profile, **_kw(scene))
    for name in ("auc_judd", "auc_borji", "sauc", "nss", "ig"):
        assert math.isnan(r[name]), name
    for name in ("cc", "sim", "kld", "iou_top20"):  # need no fixations
        assert math.isfinite(r[name]), name


@pytest.mark.parametrize("profile", PROFILES)
def test_single_fixation(scene, profile):
    m = scene["smap"]
    i = np.unravel_index(np.argmax(m), m.shape)
    r = compute_suite(m, [float(i[1])], [float(i[0])], profile=profile, **_kw(scene))
    assert r["auc_judd"] == pytest.approx(1.0, abs=1e-3)  # on the maximum
    assert r["nss"] == pytest.approx((m.max() - m.mean()) / m.std(ddof=1 if profile == "mit" else 0))
    assert all(math.isfinite(v) for v in r.values())


@pytest.mark.parametrize("profile", PROFILES)
def test_empty_density_gives_nan(scene, profile):
    r = compute_suite(scene["smap"], scene["fx"], scene["fy"], density=np.zeros(scene["smap"].shape),
                      profile=profile, metrics=["cc", "sim", "kld", "iou_top20"])
    assert all(math.isnan(v) for v in r.values())


def test_negative_maps(scene):
    """KLD reads a map with negative values as the map minus its minimum, in both profiles
    (KLdiv.m would take logs of negative numbers)."""
    m = scene["smap"]
    assert m.min() < 0
    d = scene["density"]
    for profile in PROFILES:
        assert kld(m, [0.0], [0.0], density=d, profile=profile) == pytest.approx(
            kld(m - m.min(), [0.0], [0.0], density=d, profile=profile), abs=1e-12)
    assert kld(m - m.min(), [0.0], [0.0], density=d) == pytest.approx(mit_kldiv(m - m.min(), d), abs=1e-12)
    # AUCs, NSS, CC do not care about the sign
    assert nss(m, scene["fx"], scene["fy"]) == pytest.approx(nss(m + 10, scene["fx"], scene["fy"]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_map_is_an_error(scene, bad):
    m = scene["smap"].copy()
    m[3, 4] = bad
    with pytest.raises(MetricInputError, match="saliency map contains NaN or infinite values"):
        nss(m, scene["fx"], scene["fy"])
    with pytest.raises(HarnessError):
        compute_suite(m, scene["fx"], scene["fy"])
    d = scene["density"].copy()
    d[0, 0] = bad
    with pytest.raises(MetricInputError, match="density contains NaN"):
        cc(scene["smap"], scene["fx"], scene["fy"], density=d)


def test_input_errors(scene):
    m, fx, fy = scene["smap"], scene["fx"], scene["fy"]
    assert issubclass(MetricInputError, HarnessError) and issubclass(MetricInputError, ValueError)
    with pytest.raises(MetricInputError, match="needs density="):
        cc(m, fx, fy)
    with pytest.raises(MetricInputError, match="needs other_x="):
        sauc(m, fx, fy)
    with pytest.raises(MetricInputError, match="needs density="):
        compute_suite(m, fx, fy, metrics=["kld"])
    with pytest.raises(MetricInputError, match="shape"):
        cc(m, fx, fy, density=np.ones((3, 3)))
    with pytest.raises(MetricInputError, match="negative"):
        cc(m, fx, fy, density=-scene["density"])
    with pytest.raises(MetricInputError, match="2-D"):
        nss(m.ravel(), fx, fy)
    with pytest.raises(MetricInputError, match="outside the 80x60 map"):
        nss(m, fx + 100, fy)
    with pytest.raises(MetricInputError, match="differ in length"):
        nss(m, fx, fy[:-1])
    with pytest.raises(MetricInputError, match="both other_x and other_y"):
        sauc(m, fx, fy, other_x=fx)
    with pytest.raises(MetricInputError, match="unknown metric 'auc'"):
        compute_suite(m, fx, fy, metrics=["auc"])
    with pytest.raises(HarnessError, match="unknown metric profile 'matlab'; known: mit, pysaliency"):
        nss(m, fx, fy, profile="matlab")
    with pytest.raises(MetricInputError, match="0 < k <= 100"):
        iou_topk(m, fx, fy, density=scene["density"], k=0)
    with pytest.raises(MetricInputError, match="n_splits"):
        auc_borji(m, fx, fy, n_splits=0)
    with pytest.raises(MetricInputError, match="step_size"):
        sauc(m, fx, fy, other_x=scene["ox"], other_y=scene["oy"], step_size=0)
    with pytest.raises(MetricInputError, match="seed"):
        auc_borji(m, fx, fy, seed=-1)


def test_fixations_on_every_pixel():
    m = np.arange(4.0).reshape(2, 2)
    xs, ys = np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0, 1.0])
    assert math.isnan(auc_judd(m, xs, ys, profile="mit"))  # no unfixated pixel is left
    assert auc_judd(m, xs, ys, profile="pysaliency") == pytest.approx(0.5)


# --- the suite -------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_suite_equals_the_single_functions(scene, profile):
    kw = _kw(scene)
    args = (scene["smap"], scene["fx"], scene["fy"])
    suite = compute_suite(*args, profile=profile, seed=11, **kw)
    assert list(suite) == list(METRICS)
    for name, info in METRICS.items():
        assert suite[name] == info.function(*args, profile=profile, seed=11, **kw), name


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("shift", [0.0, -0.6])
def test_suite_equals_the_single_functions_on_a_large_map(profile, shift):
    """Above 2**15 pixels the suite fuses passes the single functions make apart (sum(map - min)
    in the counting pass, the density's sum(d - min) in its top-k pass, the IoU overlap in the
    CC/SIM/KLD pass): every value must still be the single function's, to the bit; with a map that
    has negative values too (pysaliency then normalises by sum(map - min))."""
    rng = np.random.default_rng(17)
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    smap = _blur(rng.normal(size=(h, w)), 6) + np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (2 * 60.0**2)) + shift
    fx, fy = rng.uniform(0, w - 1, 60), rng.uniform(0, h - 1, 60)
    density = np.zeros((h, w))
    np.add.at(density, (np.floor(fy + 0.5).astype(int), np.floor(fx + 0.5).astype(int)), 1)
    density = _blur(density, 10)
    density /= density.sum()
    kw = dict(density=density, baseline=smap - smap.min() + 0.1, other_x=rng.uniform(0, w - 1, 900),
              other_y=rng.uniform(0, h - 1, 900))
    metrics = list(METRICS) + ["iou_top5"]
    for chosen in (metrics, ["sim", "ig", "iou_top20", "kld"], ["iou_top10", "cc", "auc_borji"]):
        suite = compute_suite(smap, fx, fy, profile=profile, seed=3, metrics=chosen, **kw)
        for name in chosen:
            single = (iou_topk(smap, fx, fy, profile=profile, k=5.0 if name == "iou_top5" else 10.0, **kw)
                      if name in ("iou_top5", "iou_top10") else
                      METRICS[name].function(smap, fx, fy, profile=profile, seed=3, **kw))
            assert suite[name] == single, (chosen, name)


def test_suite_picks_the_metrics_its_inputs_allow(scene):
    args = (scene["smap"], scene["fx"], scene["fy"])
    assert list(compute_suite(*args)) == ["auc_judd", "auc_borji", "nss", "ig"]
    assert list(compute_suite(*args, density=scene["density"])) == [
        "auc_judd", "auc_borji", "nss", "cc", "sim", "kld", "ig", "iou_top20"]
    assert list(compute_suite(*args, metrics=["kld", "nss"], density=scene["density"])) == ["kld", "nss"]


def test_float32_and_integer_maps(scene):
    """Maps that float32 holds exactly are sorted as float32 (faster); the numbers must not move."""
    kw = _kw(scene)
    m32 = scene["smap"].astype(np.float32)
    u8 = np.round(_mit_minmax(scene["smap"]) * 255).astype(np.uint8)  # many ties
    for m in (m32, u8):
        for profile in PROFILES:
            r = compute_suite(m, scene["fx"], scene["fy"], profile=profile, **kw)
            assert r == compute_suite(m.astype(np.float64), scene["fx"], scene["fy"], profile=profile, **kw)
    fm = fixation_map(u8.shape, scene["fx"], scene["fy"])
    assert nss(u8, scene["fx"], scene["fy"]) == pytest.approx(mit_nss(u8, fm), abs=1e-12)
    assert auc_judd(u8, scene["fx"], scene["fy"], jitter=False) == pytest.approx(mit_auc_judd(u8, fm), abs=1e-12)


def test_ill_conditioned_moments(scene):
    """A map whose spread is tiny next to its mean: NSS and CC take the centred path, not the
    one-pass shortcut that would cancel."""
    m = scene["smap"]
    far = m + 1e9  # float64 keeps ~1e-7 of the detail
    for name in ("nss", "cc"):
        got = METRICS[name].function(far, scene["fx"], scene["fy"], density=scene["density"])
        want = METRICS[name].function(m, scene["fx"], scene["fy"], density=scene["density"])
        assert got == pytest.approx(want, abs=1e-5), name


# --- the plugin ------------------------------------------------------------------------------------


def test_plugin_registers_every_metric_lazily():
    code = (
        "import sys; from harness.plugins import get_registry; r = get_registry(); "
        "specs = {s.name: s for s in r.all('metric') if s.plugin == 'saliency-metrics'}; "
        "assert 'harness.metrics' not in sys.modules, 'listing imported the metrics'; "
        "print(sorted(specs)); "
        "print({n: (s['higher_is_better'], tuple(s['needs'])) for n, s in sorted(specs.items())}); "
        "print(specs['kld'].resolve().__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert eval(out[0]) == sorted(METRICS)
    assert eval(out[1]) == {n: (m.higher_is_better, m.needs) for n, m in sorted(METRICS.items())}
    assert out[2] == "harness.metrics.saliency"
