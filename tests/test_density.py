"""Fixation density maps, checked against scipy's Gaussian filter and the closed-form Gaussian."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from harness.data import density
from harness.data.density import fixation_density, loso_densities, record_density, sigma_px
from harness.errors import DataError
from harness.metrics import kernels
from harness.schema import Fixations
from plugins.datasets.osie import OSIE


def _reference(x, y, shape, sigma):
    """Histogram of half-up rounded fixations, blurred by scipy with zero padding, normalised."""
    hist = np.zeros(shape)
    np.add.at(hist, (np.floor(np.asarray(y) + 0.5).astype(int), np.floor(np.asarray(x) + 0.5).astype(int)), 1)
    out = gaussian_filter(hist, sigma, mode="constant", cval=0.0, truncate=12) if sigma else hist
    return out / out.sum()


@pytest.mark.parametrize("sigma", [0.0, 1.5, 7.0, 24.0])
def test_matches_scipy_gaussian_filter_with_zero_padding(sigma):
    rng = np.random.default_rng(1)
    shape = (60, 90)
    x = np.r_[rng.uniform(0, 89, 40), 0.0, 89.0, 3.5]  # includes both borders and a half-pixel
    y = np.r_[rng.uniform(0, 59, 40), 59.0, 0.0, 2.5]
    d = fixation_density(x, y, shape, sigma)
    assert d.shape == shape and d.dtype == np.float64
    assert d.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(d, _reference(x, y, shape, sigma), rtol=0, atol=1e-15)


def test_single_fixation_is_the_closed_form_gaussian():
    shape, sigma = (101, 121), 6.0
    d = fixation_density([60.0], [50.0], shape, sigma)
    rows, cols = np.mgrid[0:101, 0:121]
    g = np.exp(-((cols - 60) ** 2 + (rows - 50) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(d, g / g.sum(), rtol=1e-12, atol=0)
    # its spread along x is sigma (the image is wide enough for the truncation to be negligible)
    px = d.sum(axis=0)
    mean = (px * np.arange(121)).sum()
    assert mean == pytest.approx(60.0)
    assert np.sqrt((px * (np.arange(121) - mean) ** 2).sum()) == pytest.approx(sigma, rel=1e-6)


@pytest.mark.parametrize("length,sigma", [(1, 3.0), (7, 0.4), (600, 24.0), (800, 24.3), (333, 1e-3)])
def test_axis_factors_are_the_exponential_of_each_offset_to_the_bit(length, sigma):
    """The rows are windows of one kernel (not exponentiated per fixated pixel): the same numbers
    as the Gaussian written per row, for pixels at both borders and inside."""
    idx = np.unique(np.r_[0, length - 1, np.random.default_rng(length).integers(0, length, 40)])
    t = np.arange(length, dtype=np.float64)
    direct = np.exp((-0.5 / (sigma * sigma)) * (t[None, :] - idx[:, None]) ** 2)
    got = density._axis_factors(idx, length, sigma)
    assert got.shape == (idx.size, length) and got.flags.c_contiguous and got.flags.writeable
    assert np.array_equal(got, direct)
    got[:] = 0.0  # a caller's copy: the shared kernel is not touched
    assert np.array_equal(density._axis_factors(idx, length, sigma), direct)


def test_border_mass_is_discarded_not_reflected():
    sigma = 5.0
    d = fixation_density([0.0], [0.0], (50, 50), sigma)
    # zero padding: the visible quarter of a Gaussian centred on the corner pixel, renormalised
    g1 = np.exp(-np.arange(50) ** 2 / (2 * sigma**2))
    expect = np.outer(g1, g1)
    np.testing.assert_allclose(d, expect / expect.sum(), rtol=1e-12)
    # and it is not what reflecting the mass back would give
    hist = np.zeros((50, 50))
    hist[0, 0] = 1
    reflected = gaussian_filter(hist, sigma, mode="reflect", truncate=12)
    assert np.abs(d - reflected / reflected.sum()).max() > 1e-3


def test_rounding_is_to_the_nearest_pixel_half_up():
    d = fixation_density([2.5, 0.49, 7.2], [1.5, 3.5, 0.0], (5, 10), 0.0)
    expect = np.zeros((5, 10))
    expect[2, 3] = expect[4, 0] = expect[0, 7] = 1 / 3
    np.testing.assert_array_equal(d, expect)
    # within half a pixel outside the grid rounds onto the border pixel; farther is an error
    assert fixation_density([-0.5, 9.4], [0.0, 4.5], (5, 10), 0)[[0, 4], [0, 9]].tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="outside"):
        fixation_density([10.0], [0.0], (5, 10), 1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="no fixations"):
        fixation_density([], [], (5, 5), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        fixation_density([np.nan], [1.0], (5, 5), 1.0)
    with pytest.raises(ValueError, match="sigma"):
        fixation_density([1.0], [1.0], (5, 5), -1.0)


def test_filter_fallback_agrees_with_the_matrix_product(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 199, 300), rng.uniform(0, 149, 300)
    exact = fixation_density(x, y, (150, 200), 9.0)
    monkeypatch.setattr(density, "MATMUL_MAX_POINTS", 10)
    filtered = fixation_density(x, y, (150, 200), 9.0)
    np.testing.assert_allclose(filtered, exact, rtol=1e-9, atol=1e-18)


def _fixations(x, y, subject):
    x = np.asarray(x, float)
    return Fixations(x=x, y=np.asarray(y, float), subject=np.asarray(subject), duration_ms=np.full(x.size, np.nan))


@pytest.mark.parametrize("max_points", [density.MATMUL_MAX_POINTS, 5])  # product, then filter path
def test_loso_equals_the_density_of_the_other_subjects(max_points, monkeypatch):
    monkeypatch.setattr(density, "MATMUL_MAX_POINTS", max_points)
    rng = np.random.default_rng(3)
    n = 60
    fx = _fixations(rng.uniform(0, 79, n), rng.uniform(0, 59, n), rng.integers(0, 5, n))
    out = loso_densities(fx, (60, 80), 4.0)
    assert [s for s, _ in out] == [0, 1, 2, 3, 4]
    for s, d in out:
        keep = fx.subject != s
        np.testing.assert_allclose(d, fixation_density(fx.x[keep], fx.y[keep], (60, 80), 4.0), rtol=1e-9, atol=1e-300)
        assert d.sum() == pytest.approx(1.0)


def test_loso_edge_cases():
    assert loso_densities(_fixations([1.0, 2.0], [1.0, 2.0], [0, 0]), (5, 5), 1.0) == []
    out = loso_densities(_fixations([1.0, 3.0, 4.0], [1.0, 3.0, 4.0], [0, 1, 1]), (5, 5), 0.0)
    assert [s for s, _ in out] == [0, 1]
    assert out[0][1][3, 3] == 0.5 and out[1][1][1, 1] == 1.0


def test_loso_keeps_precision_where_only_the_left_out_subject_looked():
    """Far from everyone else, the leave-one-out map is a tiny Gaussian tail; it must not be
    swamped by the left-out subject's own mass (it would be if computed as total - own)."""
    sigma = 3.0
    fx = _fixations([2.0, 2.0, 97.0], [2.0, 2.0, 2.0], [0, 1, 2])
    without_2 = dict(loso_densities(fx, (5, 100), sigma))[2]
    direct = fixation_density([2.0, 2.0], [2.0, 2.0], (5, 100), sigma)
    assert direct[2, 97] > 0
    np.testing.assert_allclose(without_2[2, 90:], direct[2, 90:], rtol=1e-12)


def test_sigma_from_visual_angle():
    assert sigma_px(OSIE) == 24.0
    assert sigma_px(OSIE(), degrees=2.0) == 48.0

    class NoGeometry:
        name = "nogeometry"
        pixels_per_degree = float("nan")

    with pytest.raises(DataError, match="nogeometry"):
        sigma_px(NoGeometry())


def test_osie_record_density_and_human_ceiling_inputs(osie_dataset):
    rec = osie_dataset[0]
    fx = Fixations.from_record(rec)
    sigma = sigma_px(OSIE)
    d = record_density(rec, sigma)
    assert d.shape == (600, 800)
    np.testing.assert_allclose(d, _reference(fx.x, fx.y, (600, 800), sigma), rtol=0, atol=1e-15)
    out = loso_densities(fx, (600, 800), sigma)
    assert len(out) == 15
    s, d0 = out[0]
    keep = fx.subject != s
    np.testing.assert_allclose(d0, fixation_density(fx.x[keep], fx.y[keep], (600, 800), sigma), rtol=1e-10, atol=1e-20)


def _loso_numpy(fixations, shape, sigma):
    """loso_densities written with numpy over whole maps: each subject's own density
    (fixation_density of its fixations) times the total it was divided by, prefix and suffix sums
    of those, each divided by its total (kernels.sums': the blocked sum the sweep makes)."""
    height, width = shape
    ids = np.unique(np.asarray(fixations.subject))
    if ids.size < 2:
        return []
    per = []
    for s in ids:
        mine = fixations.subject == s
        rows, cols = density._pixel_indices(fixations.x[mine], fixations.y[mine], shape)
        r, c, inverse = density._positions(rows, cols, width)
        w = np.bincount(inverse, minlength=r.size).astype(np.float64)
        if r.size > density.MATMUL_MAX_POINTS:
            z = density._filtered_raw(w, r, c, shape, sigma).sum()
        else:
            z = density._product_totals(w[None, :], density._axis_factors(r, height, sigma),
                                        density._axis_factors(c, width, sigma))[0]
        own = fixation_density(fixations.x[mine], fixations.y[mine], shape, sigma)
        per.append(z * own)
    prefix = [np.zeros(shape)]
    for m in per[:-1]:
        prefix.append(prefix[-1] + m)
    out, suffix = [], np.zeros(shape)
    for k in range(ids.size - 1, -1, -1):
        others = prefix[k]
        others += suffix
        suffix += per[k]
        others *= 1.0 / kernels.sums(others.reshape(-1))[0]
        out.append((int(ids[k]), others))
    return out[::-1]


@pytest.mark.parametrize("shape, max_points", [((60, 80), None), ((37, 53), None), ((1, 40), None), ((60, 80), 5)])
def test_loso_is_the_numpy_sum_of_whole_maps_to_the_bit(shape, max_points, monkeypatch):
    """The compiled prefix/suffix sweep and the lazy normalisation give exactly the maps that
    adding whole per-subject maps with numpy gives (the matrix product, then the filter path), and
    the statistics found on the way are kernels.stats' numbers."""
    if max_points is not None:
        monkeypatch.setattr(density, "MATMUL_MAX_POINTS", max_points)
    rng = np.random.default_rng(sum(shape))
    n = 70
    h, w = shape
    # subject 3 fixates one pixel only (a one-column product), subject 4 twice the same pixel
    fx = _fixations(np.r_[rng.uniform(0, w - 1, n), 5.0, 7.0, 7.0], np.r_[rng.uniform(0, h - 1, n), 0.0, 0.0, 0.0],
                    np.r_[rng.integers(0, 3, n), 3, 4, 4])
    want = _loso_numpy(fx, shape, 3.0)
    got = loso_densities(fx, shape, 3.0)
    assert [s for s, _ in got] == [s for s, _ in want] == [0, 1, 2, 3, 4]
    for (_, g), (_, wnt) in zip(got, want):
        assert g.shape == shape and np.array_equal(g, wnt)
    lazy = density.LeaveOneOut(fx, shape, 3.0, buffer=np.full(density.LeaveOneOut.buffer_size(6, shape), np.nan),
                               lazy=True)
    for k, (_, wnt) in enumerate(want):
        assert np.array_equal(lazy.map(k), wnt) and np.array_equal(lazy.maps[k], wnt)
        mine = fx.subject == lazy.subjects[k]
        assert np.array_equal(lazy.own(k), fixation_density(fx.x[mine], fx.y[mine], shape, 3.0))
        assert lazy.map_stats(k) == kernels.stats(wnt.reshape(-1))[:4]
        assert lazy.own_stats(k) == kernels.stats(lazy.own(k).reshape(-1))[:4]


def test_loso_on_osie_is_the_numpy_sum_of_whole_maps_to_the_bit(osie_dataset):
    for i in (3, 400):
        rec = osie_dataset[i]
        fx = Fixations.from_record(rec)
        shape = (int(rec["height"]), int(rec["width"]))
        for (s, g), (t, wnt) in zip(loso_densities(fx, shape, 24.0), _loso_numpy(fx, shape, 24.0)):
            assert s == t and np.array_equal(g, wnt)


def test_leave_one_out_needs_two_subjects():
    loo = density.LeaveOneOut(_fixations([1.0, 2.0], [1.0, 2.0], [0, 0]), (5, 5), 1.0)
    assert loo.maps is None and list(loo.subjects) == [0]
    with pytest.raises(ValueError, match="two subjects"):
        loo.own(0)
