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
    hist, low, below, equal = kernels.bucket_counts(a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS, q)
    want_below, want_equal = ref_counts(a, q)
    assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)
    assert hist.sum() + low == a.size
    idx = rng.integers(0, a.size, 3000)  # values at indices (with repeats): sAUC's negatives
    _, low, below, equal = kernels.bucket_counts(a, idx, True, a.min(), scale_of(a), kernels.N_BUCKETS, q)
    want_below, want_equal = ref_counts(a[idx], q)
    assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)
    # queries in the upper part only, and the minimum (AUC-Borji's threshold 0): most values lie
    # below every other query's bucket and are counted apart, not in the histogram
    high = np.unique(np.concatenate([[a.min()], np.quantile(a, [0.6, 0.9]), members[members > np.quantile(a, 0.6)]]))
    for ix, use in ((NO_INDEX, False), (idx, True)):
        hist, low, below, equal = kernels.bucket_counts(a, ix, use, a.min(), scale_of(a), kernels.N_BUCKETS, high)
        values = a[ix] if use else a
        want_below, want_equal = ref_counts(values, high)
        assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)
        assert hist.sum() + low == values.size
        if not use and np.mean(a < high[1]) >= 0.5:  # then some block has a quarter or more below
            assert low > 0


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


@pytest.mark.parametrize("n_top", [0, 10, 5000])
def test_kth_largest_of_a_constant_block_needs_no_sort(n_top):
    # a constant map (the uniform baseline), or one whose answer sits in a constant block: the sampled
    # bracket is a single value, and everything inside it is the answer (was a sort of every pixel)
    a = np.full(1 << 16, 0.25)
    a[:n_top] = 1.0
    for k in (1, 11, 4000, 6000, 1 << 16):
        assert kth_largest_counts(a, k) == ref_kth(a, k)
    found, v, greater, equal = kernels.kth_largest_bracketed(a, 0.25, 0.25, n_top + 1, np.empty(a.size))
    assert found and (v, greater, equal) == (0.25, n_top, a.size - n_top) == ref_kth(a, n_top + 1)


def test_kth_largest_bracket_miss_is_reported():
    a = smooth_map(3)
    found, *_ = kernels.kth_largest_bracketed(a, 2.0, 3.0, 10, np.empty(a.size))  # nothing inside
    assert not found
    lo, hi = np.sort(a)[a.size - 30], np.sort(a)[a.size - 5]
    found, v, greater, equal = kernels.kth_largest_bracketed(a, lo, hi, 10, np.empty(a.size))
    assert found and (v, greater, equal) == ref_kth(a, 10)


@pytest.mark.parametrize("kind", ["random", "few distinct", "constant", "descending", "ascending", "one"])
def test_rank_from_top_selects_what_a_sort_gives(kind):
    # the selection that replaced sorting the kth-largest bucket: every rank, ties included
    rng = np.random.default_rng(len(kind))
    for n in (1, 2, 3, 7, 64, 257):
        a = {"random": rng.random(n), "few distinct": rng.integers(0, 4, n).astype(float),
             "constant": np.full(n, 0.25), "descending": np.arange(n, 0, -1.0),
             "ascending": np.arange(n, dtype=float), "one": np.where(np.arange(n) == n // 2, 1.0, 0.0)}[kind]
        for r in sorted({1, 2, n // 2 + 1, n}):
            if not 1 <= r <= n:
                continue
            v = np.sort(a)[n - r]
            got = kernels._rank_from_top(a.copy(), r)
            assert got == (v, int((a > v).sum()), int((a == v).sum())), (kind, n, r, got)


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
    assert kernels.kld_sum(s, 0.1, 2.0, 1e-12, d, 2e-16) == pytest.approx(
        (d * np.log(d / ((s - 0.1) * 2.0 + 1e-12) + 2e-16)).sum(), **close)


@pytest.mark.parametrize("parts", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_density_pass_matches_numpy(parts):
    """CC's inner product, SIM's sum and KLD's sum from the fused pass, each part only if asked,
    each the number of its own kernel to the bit."""
    do_dot, do_sim, do_kld = parts
    s, d = smooth_map(12) + 0.1, smooth_map(13)
    ts, td = np.quantile(s, 0.8), np.quantile(d, 0.7)
    dt, sm, kl, both = kernels.density_pass(s, d, do_dot, do_sim, 0.05, d.min(), 2.5, do_kld, 0.1, 3.0, 1e-13, 2e-16,
                                            not do_dot, ts, td)
    assert both == (0 if do_dot else np.count_nonzero((s >= ts) & (d >= td)))
    assert both == (0 if do_dot else kernels.count_both_ge(s, ts, d, td))
    close = {"rel": 1e-12, "abs": 0}
    assert dt == (kernels.dot(s, d) if do_dot else 0.0)
    assert sm == (kernels.sim_sum(s, 0.05, d, d.min(), 2.5) if do_sim else 0.0)
    assert kl == (kernels.kld_sum(s, 0.1, 3.0, 1e-13, d, 2e-16) if do_kld else 0.0)
    if do_dot:
        assert dt == pytest.approx((s * d).sum(), **close)
    if do_sim:
        assert sm == pytest.approx(np.minimum(s - 0.05, (d - d.min()) * 2.5).sum(), **close)
    if do_kld:
        assert kl == pytest.approx((d * np.log(d / ((s - 0.1) * 3.0 + 1e-13) + 2e-16)).sum(), **close)


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def test_log_is_within_one_ulp_of_libm():
    """fdlibm's logarithm (KLD's): within one ulp of numpy's (glibc's correctly rounded) ``log``
    over every binade of float64, near 1 (where ``log`` is smallest) and at the powers of two,
    and numpy's own result for what lies outside its fast path."""
    rng = np.random.default_rng(40)
    a = np.concatenate([
        np.exp2(rng.uniform(-1021.9, 1023.9, 400_000)),  # every normal binade
        1.0 + rng.uniform(-1e-3, 1e-3, 100_000), 1.0 + rng.uniform(-1e-12, 1e-12, 10_000),
        rng.uniform(0.5, 2.0, 100_000), np.exp2(np.arange(-1022.0, 1024.0)),
        np.nextafter(np.exp2(np.arange(-1021.0, 1024.0)), 0.0), [1.0, np.e, np.sqrt(0.5), np.sqrt(2.0)],
        [np.finfo(np.float64).tiny, np.finfo(np.float64).max, 2.220446049250313e-16],
    ])
    out = np.empty_like(a)
    kernels.log_into(a, out)
    want = np.log(a)
    nonzero = want != 0
    assert _ulps(out[nonzero], want[nonzero]).max() <= 1.0
    assert (out[~nonzero] == 0).all()
    assert np.mean(out == want) > 0.95  # mostly the correctly rounded value itself (98.7%)
    special = np.array([0.0, -0.0, 5e-324, 1e-310, np.finfo(np.float64).tiny / 2, -1.0, -np.inf, np.inf, np.nan])
    got = np.empty_like(special)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernels.log_into(special, got)
        np.testing.assert_array_equal(got, np.log(special))


def test_kld_sum_outside_the_fast_path():
    """A denominator that underflows (a density summing to 1e-300: its ``eps * sum`` is
    subnormal) sends the ratio out of the fast logarithm's range: libm's ``log`` takes over for
    that block, and the sum is still numpy's."""
    s, d = smooth_map(41), smooth_map(42) * 1e-300
    s[5000:5100] = 0.0
    add = 2.220446049250313e-16 * d.sum()  # subnormal
    with np.errstate(all="ignore"):
        want = (d * np.log(d / ((s - 0.0) * (d.sum() / s.sum()) + add) + 2.220446049250313e-16)).sum()
    assert kernels.kld_sum(s, 0.0, d.sum() / s.sum(), add, d, 2.220446049250313e-16) == pytest.approx(want, rel=1e-12)


# --- wide value ranges, the kth-largest in the counting pass, shared inputs ------------------------


def tail_map(shape=(150, 250)) -> np.ndarray:
    """A leave-one-out-like density: a few narrow Gaussians, so most pixels are far tails (values
    from ~1e-3 down to ~1e-200) that a linear bucketing would pile into its lowest bucket."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    m = np.zeros(shape)
    for r, c in ((20, 30), (100, 150), (140, 10)):
        m += np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 3.0**2))
    return (m / m.sum()).reshape(-1)


@pytest.mark.parametrize("a", [tail_map(), -tail_map(), np.concatenate([[0.0], tail_map()[1:]]), tail_map() - 1e-3])
def test_bucket_counts_over_many_orders_of_magnitude(a):
    rng = np.random.default_rng(11)
    members = rng.choice(a, 80)
    q = np.unique(np.concatenate([members, np.nextafter(members, np.inf), np.nextafter(members, -np.inf),
                                  [a.min(), a.max(), a.min() - 1, 0.0, 1e-150, -1e-150]]))
    hist, low, below, equal = kernels.bucket_counts(a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS, q)
    want_below, want_equal = ref_counts(a, q)
    assert np.array_equal(below, want_below) and np.array_equal(equal, want_equal)
    assert hist.sum() + low == a.size
    if a.min() >= 0:  # the lowest linear bucket is split: no bucket holds a large share of the pixels
        # (a query just above the minimum, in its bucket: every value is in the histogram)
        hist, low, _, _ = kernels.bucket_counts(a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS,
                                                np.array([np.nextafter(a.min(), np.inf)]))
        assert low == 0 and hist.sum() == a.size and hist.max() < a.size / 20


@pytest.mark.parametrize("i", range(len(maps()) + 1))
@pytest.mark.parametrize("frac", [0.001, 0.2, 0.9])
def test_counting_pass_finds_the_kth_largest(i, frac):
    """bucket_counts_into with a kth: the same counts, and the kth-largest value with its counts,
    as a sort gives them; the marks are left all zero for the next call."""
    from harness.metrics.inputs import _kth_bracket

    a = np.tile(maps()[i], 40) if i < len(maps()) else tail_map()
    k = max(1, int(frac * a.size))
    q = np.unique(np.random.default_rng(i).choice(a, 30))
    nbt = kernels.SUB_BUCKETS + kernels.N_BUCKETS - 1
    mark = np.zeros(nbt, np.uint8)
    klo, khi = _kth_bracket(a, k)
    below, equal, found, v, greater, eq, shifted, _ = kernels.bucket_counts_into(
        a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS, q, np.empty(nbt, np.int32),
        np.empty(nbt + 1, np.int64), mark, np.empty(a.size + 1, np.int64), k, klo, khi, i % 2 == 0)
    assert np.array_equal(below, ref_counts(a, q)[0]) and np.array_equal(equal, ref_counts(a, q)[1])
    assert found and (v, greater, eq) == ref_kth(a, k)
    assert not mark.any()
    # sum(a - min) from the same pass: shifted_sum's number to the bit
    assert shifted == (kernels.shifted_sum(a, a.min()) if i % 2 == 0 else 0.0)
    # a bracket that misses is reported, not guessed (also when the values below the queries'
    # buckets are counted apart: the largest value as the only query)
    for qs in (q, np.array([a.max()])):
        below, equal, found, *_ = kernels.bucket_counts_into(
            a, NO_INDEX, False, a.min(), scale_of(a), kernels.N_BUCKETS, qs, np.empty(nbt, np.int32),
            np.empty(nbt + 1, np.int64), mark, np.empty(a.size + 1, np.int64), k, a.max(), a.max(), False)
        assert np.array_equal(below, ref_counts(a, qs)[0]) and np.array_equal(equal, ref_counts(a, qs)[1])
        assert (not found or k <= np.count_nonzero(a == a.max())) and not mark.any()


@pytest.mark.parametrize("n", [1, 7, 2047, 2048, 2049, 6000, 480_000, 480_001])
def test_fused_shifted_sums_equal_their_own_pass_to_the_bit(n):
    """sum(a - off) found inside the counting pass and inside the kth-largest pass is
    shifted_sum's number exactly (the same blocks added in the same order), so fusing the passes
    changes no metric's value."""
    rng = np.random.default_rng(n)
    a = np.exp(rng.normal(size=n) * 3.0)  # values spanning many orders of magnitude: rounding shows
    off = float(a.min())
    want = kernels.shifted_sum(a, off)
    nbt = kernels.SUB_BUCKETS + kernels.N_BUCKETS - 1
    q = np.unique(rng.choice(a, min(n, 20)))
    *_, shifted, _ = kernels.bucket_counts_into(
        a, NO_INDEX, False, off, scale_of(a), kernels.N_BUCKETS, q, np.empty(nbt, np.int32),
        np.empty(nbt + 1, np.int64), np.zeros(nbt, np.uint8), np.empty(n + 1, np.int64), 0, 0.0, 0.0, True)
    assert shifted == want
    k = max(1, n // 5)
    srt = np.sort(a)
    found, v, greater, equal, shifted = kernels.kth_largest_bracketed_shifted(
        a, srt[max(0, n - k - 3)], srt[min(n - 1, n - k + 3)], k, np.empty(n), True, off)
    assert shifted == want and found and (v, greater, equal) == ref_kth(a, k)
    # a missed bracket still gives the sum
    found, *_, shifted = kernels.kth_largest_bracketed_shifted(a, 2 * srt[-1] + 1, 3 * srt[-1] + 2, k, np.empty(n),
                                                               True, off)
    assert not found and shifted == want


def test_counts_at_indices_by_comparison():
    a = tail_map()
    rng = np.random.default_rng(12)
    idx = rng.integers(0, a.size, 5000)
    q = np.unique(np.concatenate([rng.choice(a, 10), [a.min(), a.max()]]))
    below, equal = kernels.gathered_counts(a, idx, q, np.empty(idx.size))
    assert np.array_equal(below, ref_counts(a[idx], q)[0]) and np.array_equal(equal, ref_counts(a[idx], q)[1])
    xs = np.sort(rng.choice(a, 11))
    got = kernels.counts_at_or_above(a, idx, xs, np.empty(idx.size))
    assert np.array_equal(got, [np.count_nonzero(a[idx] >= x) for x in xs])


def test_leave_one_out_weighted_sums_are_numpy_additions_to_the_bit():
    rng = np.random.default_rng(13)
    n = 5001  # two full blocks and a part
    owns = rng.random((7, n)) * 10.0 ** rng.integers(-80, 0, (7, n))
    z = rng.uniform(1.0, 500.0, 7)
    per = [z[k] * owns[k] for k in range(7)]
    prefix, want = [np.zeros(n)], [None] * 7
    for m in per[:-1]:
        prefix.append(prefix[-1] + m)
    suffix = np.zeros(n)
    for k in range(6, -1, -1):
        want[k] = prefix[k] + suffix
        suffix += per[k]
    out = np.full((7, n), np.nan)
    totals, own_stats, finite = kernels.leave_one_out_weighted(owns, z, out)
    assert np.array_equal(out, np.array(want)) and finite.all()
    for k in range(7):  # found on the way: what stats() finds reading the arrays again
        assert tuple(own_stats[k]) == kernels.stats(owns[k])[:4]
        assert totals[k] == kernels.stats(out[k])[2]


def test_scale_stats_scales_as_numpy_and_finds_the_stats_of_the_result():
    rng = np.random.default_rng(14)
    a = rng.random(9000) * 10.0 ** rng.integers(-80, 3, 9000)
    want = a * (1.0 / 7.3)
    got = a.copy()
    stats = kernels.scale_stats(got, 1.0 / 7.3)
    assert np.array_equal(got, want) and stats == kernels.stats(want)
    bad = a.copy()
    bad[4500] = np.inf
    assert kernels.scale_stats(bad, 0.5)[4] is False


def _suite_inputs(seed: int):
    rng = np.random.default_rng(seed)
    shape = (120, 160)
    density_ = smooth_map(seed + 1, shape).reshape(shape)
    baseline = smooth_map(seed + 2, shape).reshape(shape) + 0.1
    ox, oy = rng.uniform(-0.5, 159.5, 3000), rng.uniform(-0.5, 119.5, 3000)
    maps_ = [smooth_map(seed, shape).reshape(shape), smooth_map(seed, shape).reshape(shape) - 0.5,
             np.full(shape, 2.0), tail_map(shape).reshape(shape),
             np.round(smooth_map(seed + 3, shape) * 20).reshape(shape)]
    fixations = [(rng.uniform(0, 159, n), rng.uniform(0, 119, n)) for n in (1, 7, 30, 12, 5)]
    return shape, density_, baseline, ox, oy, maps_, fixations


@pytest.mark.parametrize("profile", ["mit", "pysaliency"])
def test_shared_inputs_change_no_number(profile):
    """compute_suite with the baseline and other-image fixations in SharedInputs (prepared once,
    sorted and de-duplicated), and compute_suite_many, equal compute_suite given the arrays, to
    the bit."""
    from harness.metrics import SharedInputs, compute_suite_many

    shape, density_, baseline, ox, oy, maps_, fixations = _suite_inputs(21)
    plain = [compute_suite(m, x, y, density=density_, baseline=baseline, other_x=ox, other_y=oy,
                           profile=profile, seed=4) for m, (x, y) in zip(maps_, fixations)]
    shared = SharedInputs(shape, baseline=baseline, other_x=ox, other_y=oy, reused=True)
    with_shared = [compute_suite(m, x, y, density=density_, profile=profile, seed=4, shared=shared)
                   for m, (x, y) in zip(maps_, fixations)]
    many = compute_suite_many(((m, x, y, density_) for m, (x, y) in zip(maps_, fixations)), baseline=baseline,
                              other_x=ox, other_y=oy, profile=profile, seed=4)
    # the evaluation's way: one baseline per image size, each stimulus' negatives added to it
    base = SharedInputs(shape, baseline=baseline)
    per_stimulus = [compute_suite(m, x, y, density=density_, profile=profile, seed=4,
                                  shared=base.with_negatives(other_x=ox, other_y=oy))
                    for m, (x, y) in zip(maps_, fixations)]
    for a, b, c, d in zip(plain, with_shared, many, per_stimulus):
        assert list(a) == list(b) == list(c) == list(d)
        for k in a:
            assert a[k] == b[k] == c[k] == d[k] or all(np.isnan(v[k]) for v in (a, b, c, d)), k
    # the baseline's validation and sums were done once, on the shared base, for every stimulus
    assert "_b_stats" in base.__dict__ and ("b_shifted_sum" in base.__dict__) == (profile == "mit")


def test_shared_inputs_are_checked():
    from harness.metrics import MetricInputError, SharedInputs

    shape, density_, baseline, ox, oy, maps_, _ = _suite_inputs(22)
    shared = SharedInputs(shape, baseline=baseline, other_x=ox, other_y=oy)
    with pytest.raises(MetricInputError, match="not both"):
        compute_suite(maps_[0], [1.0], [1.0], baseline=baseline, shared=shared)
    with pytest.raises(MetricInputError, match="shared inputs are for shape"):
        compute_suite(maps_[0][:, :100], [1.0], [1.0], shared=shared)
    with pytest.raises(MetricInputError, match="other_x and other_y"):
        SharedInputs(shape, other_x=ox)
    with pytest.raises(MetricInputError, match="outside"):
        SharedInputs(shape, other_x=ox + 1000, other_y=oy)


# --- one-pass statistics, chunked density pass, blocked pixel indices -----------------------------


@pytest.mark.parametrize("a", [smooth_map(20) - 0.5, np.array([-0.0, 0.0, 1.0]), np.array([1e308, -1e308, 5e-324]),
                               np.full(5000, -7.5), np.arange(4097, dtype=np.float64)])
def test_stats_match_numpy(a):
    lo, hi, total, squares, finite = kernels.stats(a)
    assert finite and lo == a.min() and hi == a.max()
    assert (total, squares) == kernels.sums(a)  # the same blocks, the same bits


@pytest.mark.parametrize("bad", [np.nan, -np.nan, np.inf, -np.inf])
def test_stats_flags_non_finite(bad):
    a = smooth_map(21)
    a[3001] = bad
    assert not kernels.stats(a)[4]


def test_pixel_indices_blocks():
    """Many points (several blocks): the first point outside is found in any block."""
    h, w = 60, 80
    rng = np.random.default_rng(24)
    x, y = rng.uniform(-0.5, w - 0.5, 10000), rng.uniform(-0.5, h - 0.5, 10000)
    want = np.minimum(np.floor(y + 0.5), h - 1).astype(int) * w + np.minimum(np.floor(x + 0.5), w - 1).astype(int)
    out = np.empty(x.size, dtype=np.intp)
    assert kernels.pixel_indices(x, y, h, w, out) == -1 and np.array_equal(out, want)
    for i in (0, 2047, 2048, 9999):
        for v in (np.nan, -0.51, w - 0.49, 1e300, -np.inf):
            x2 = x.copy()
            x2[i] = v
            x2[min(i + 5, x.size - 1) if i < 9999 else i] = np.nan
            assert kernels.pixel_indices(x2, y, h, w, out) == i
