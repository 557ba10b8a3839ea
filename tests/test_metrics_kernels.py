"""The compiled kernels of harness.metrics.kernels against plain-numpy references of the same
quantities: exact (integer) agreement for the counting kernels, ties and awkward value ranges
included; ~1e-12 relative for the reassociated sums."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from harness.metrics import compute_suite, kernels
from harness.metrics.inputs import (
    MetricInputs,
    Workspace,
    kth_largest_counts,
    pixel_indices,
)
from harness.metrics.roc import step_thresholds

NO_INDEX = np.empty(0, dtype=np.intp)


def smooth_map(seed: int, shape=(120, 160)) -> np.ndarray:
    """Spatially smooth values (neighbours close), like a saliency map or a fixation density."""
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.random(shape), 4.0).reshape(-1)


def maps() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    smooth = smooth_map(1)
    outlier = smooth.copy()
    outlier[5] = 1e6  # everything else falls into the lowest bucket
    return [
        smooth,
        np.round(smooth * 50) / 50,  # many ties
        rng.integers(0, 4, 5000).astype(np.float64),  # few distinct values
        outlier,
        smooth - 0.7,  # negative values
        np.concatenate([[0.0], np.full(999, 1e-300)]),  # a span whose reciprocal overflows
    ]


# --- references ---------------------------------------------------------------------------------


def ref_counts(values: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    srt = np.sort(values)
    below = np.searchsorted(srt, q, side="left")
    return below, np.searchsorted(srt, q, side="right") - below


def ref_kth(a: np.ndarray, k: int) -> tuple[float, int, int]:
    v = np.sort(a)[a.size - k]
    return float(v), int(np.count_nonzero(a > v)), int(np.count_nonzero(a == v))


def scale_of(a: np.ndarray) -> float:
    s = kernels.N_BUCKETS / (a.max() - a.min())
    return s if np.isfinite(s) else 0.0


# --- counting kernels ---------------------------------------------------------------------------


@pytest.mark.parametrize("i", range(len(maps())))
def test_bucket_counts_matches_a_sort(i):
    a = maps()[i]
    rng = np.random.default_rng(i)
    members = rng.choice(a, 60)
    q = np.unique(np.concatenate([members, np.nextafter(members, np.inf), np.nextafter(members, -np.inf),
                                  [a.min() - 1, a.max() + 1, a.min(), a.max()]]))
    hist, below, equal = kernels.bucket_counts(a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS, q)
    want_below, want_equal = ref_counts(a, q)
    assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)
    assert hist.sum() == a.size
    idx = rng.integers(0, a.size, 3000)  # values at indices (with repeats): sAUC's negatives
    _, below, equal = kernels.bucket_counts(a, idx, True, a.min(), scale_of(a), kernels.N_BUCKETS, q)
    want_below, want_equal = ref_counts(a[idx], q)
    assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)


def test_counts_of_primed_and_unprimed_agree():
    a = maps()[1].reshape(120, 160)
    inp = MetricInputs(a, [3.0, 50.2, 50.2, 100.0], [4.0, 60.0, 60.0, 7.0])
    q = inp.s[inp.fix]
    cold = inp.counts_of(q)
    inp.prime_counts(np.concatenate([q, [0.3, 0.4]]))
    assert inp._primed is not None
    for got, want in zip(inp.counts_of(q), cold):
        assert np.array_equal(got, want)
    for got, want in zip(cold, ref_counts(inp.s, q)):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("i", range(len(maps())))
@pytest.mark.parametrize("frac", [0.001, 0.2, 0.5, 1.0])
def test_kth_largest_matches_a_sort(i, frac):
    a = np.tile(maps()[i], 40)  # > 2**15 values: the sampled bracket path
    k = max(1, int(frac * a.size))
    assert kth_largest_counts(a, k) == ref_kth(a, k)
    assert kth_largest_counts(a, k, np.empty(a.size)) == ref_kth(a, k)


def test_kth_largest_bracket_miss_is_reported():
    a = smooth_map(3)
    found, *_ = kernels.kth_largest_bracketed(a, 2.0, 3.0, 10, np.empty(a.size))  # nothing inside
    assert not found
    lo, hi = np.sort(a)[a.size - 30], np.sort(a)[a.size - 5]
    found, v, greater, equal = kernels.kth_largest_bracketed(a, lo, hi, 10, np.empty(a.size))
    assert found and (v, greater, equal) == ref_kth(a, 10)


@pytest.mark.parametrize("lo, hi", [(0.0, 1.0), (-3.25, 7.1), (1e-3, 1e-3 + 1e-9), (5.0, 5.0 + 2**-40), (-1e-300, 0.0)])
def test_minmax_preimages_are_exact(lo, hi):
    thresholds = np.concatenate([step_thresholds(0.1), [0.0, 0.33, 1.0, 1.5, -0.5]])
    x = kernels.minmax_preimages(lo, hi, thresholds)
    span = hi - lo
    for t, xt in zip(thresholds, x):
        if np.isinf(xt):
            assert (hi - lo) / span < t
            continue
        assert lo <= xt <= hi
        assert (xt - lo) / span >= t
        if xt > lo:  # the next value down is rescaled below t
            assert (np.nextafter(xt, -np.inf) - lo) / span < t


@pytest.mark.parametrize("i", [0, 1, 2, 4])
def test_minmax_count_at_or_above_matches_numpy(i):
    a = maps()[i]
    img = a.reshape(-1, 100) if a.size % 100 == 0 else a.reshape(1, -1)
    inp = MetricInputs(img, [0.0], [0.0])
    t = step_thresholds(0.1)
    rescaled = (inp.s - inp.smin) / (inp.smax - inp.smin)
    want = np.array([np.count_nonzero(rescaled >= x) for x in t])
    assert np.array_equal(inp.minmax_count_at_or_above(t), want)


def test_unique_minmax_counts_matches_numpy_across_epochs():
    a = smooth_map(4)
    lo, span = a.min(), a.max() - a.min()
    t = step_thresholds(0.1)
    seen = np.zeros(a.size, np.uint8)
    rng = np.random.default_rng(4)
    for epoch in range(1, 6):  # the same marker map, a fresh number each time, never cleared
        idx = rng.integers(0, a.size, 4000)
        counts, n = kernels.unique_minmax_counts(a, idx, seen, epoch, lo, span, t, np.empty(idx.size))
        u = np.unique(idx)
        rescaled = (a[u] - lo) / span
        assert n == u.size
        assert np.array_equal(counts, [np.count_nonzero(rescaled >= x) for x in t])


def test_workspace_marker_wraps_around():
    """Past 255 images the uint8 marker map is cleared and numbering restarts; sAUC is unchanged."""
    m = smooth_map(5, (30, 40)).reshape(30, 40)
    rng = np.random.default_rng(5)
    ox, oy = rng.uniform(0, 39, 300), rng.uniform(0, 29, 300)
    want = compute_suite(m, [3.0, 20.0], [4.0, 10.0], other_x=ox, other_y=oy, metrics=["sauc"])
    ws = Workspace()
    for _ in range(260):
        inp = MetricInputs(m, [3.0, 20.0], [4.0, 10.0], other_x=ox, other_y=oy, workspace=ws)
        counts, n = inp.other_minmax_counts(step_thresholds(0.1))
    u = np.unique(inp.other)
    rescaled = (inp.s[u] - inp.smin) / (inp.smax - inp.smin)
    assert n == u.size
    assert np.array_equal(counts, [np.count_nonzero(rescaled >= x) for x in step_thresholds(0.1)])
    assert compute_suite(m, [3.0, 20.0], [4.0, 10.0], other_x=ox, other_y=oy, metrics=["sauc"]) == want


def test_pixel_indices_kernel():
    h, w = 6, 9
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-0.5, w - 0.5, 200), [-0.5, w - 0.5, 0.49999, 0.5]])
    y = np.concatenate([rng.uniform(-0.5, h - 0.5, 200), [h - 0.5, -0.5, 0.5, 2.5]])
    want = np.minimum(np.floor(y + 0.5), h - 1).astype(int) * w + np.minimum(np.floor(x + 0.5), w - 1).astype(int)
    assert np.array_equal(pixel_indices(x, y, (h, w)), want)
    out = np.empty(3, dtype=np.intp)
    assert kernels.pixel_indices(np.array([1.0, np.nan, 2.0]), np.zeros(3), h, w, out) == 1
    assert kernels.pixel_indices(np.array([1.0, 2.0, w - 0.4]), np.zeros(3), h, w, out) == 2


def test_count_both_ge():
    s, d = smooth_map(8), smooth_map(9)
    ts, td = np.quantile(s, 0.8), np.quantile(d, 0.7)
    assert kernels.count_both_ge(s, ts, d, td) == np.count_nonzero((s >= ts) & (d >= td))


# --- reassociated sums ----------------------------------------------------------------------------


def test_sums_match_numpy():
    s, d = smooth_map(10) + 0.2, smooth_map(11)
    close = {"rel": 1e-12, "abs": 0}
    total, squares = kernels.sums(s)
    assert total == pytest.approx(s.sum(), **close) and squares == pytest.approx((s * s).sum(), **close)
    assert kernels.dot(s, d) == pytest.approx((s * d).sum(), **close)
    assert kernels.shifted_sum(s, s.min()) == pytest.approx((s - s.min()).sum(), **close)
    assert kernels.sim_sum(s, 0.1, d, d.min(), 3.0) == pytest.approx(
        np.minimum(s - 0.1, (d - d.min()) * 3.0).sum(), **close)
    out = np.empty_like(s)
    kernels.kld_ratio(s, 0.1, 2.0, 1e-12, d, 2e-16, out)
    np.testing.assert_allclose(out, d / ((s - 0.1) * 2.0 + 1e-12) + 2e-16, rtol=1e-15, atol=0)


@pytest.mark.parametrize("parts", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_density_pass_matches_numpy(parts):
    """CC's inner product, SIM's sum and KLD's ratio from the fused pass, each part only if asked."""
    do_dot, do_sim, do_kld = parts
    s, d = smooth_map(12) + 0.1, smooth_map(13)
    out = np.full_like(s, -1.0)
    dt, sm = kernels.density_pass(s, d, do_dot, do_sim, 0.05, d.min(), 2.5, do_kld, 0.1, 3.0, 1e-13, 2e-16, out)
    close = {"rel": 1e-12, "abs": 0}
    if do_dot:
        assert dt == pytest.approx((s * d).sum(), **close)
    if do_sim:
        assert sm == pytest.approx(np.minimum(s - 0.05, (d - d.min()) * 2.5).sum(), **close)
    if do_kld:
        np.testing.assert_allclose(out, d / ((s - 0.1) * 3.0 + 1e-13) + 2e-16, rtol=1e-15, atol=0)
    else:
        assert (out == -1.0).all()
