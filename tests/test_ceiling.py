"""The human ceiling's fast path (harness.evaluation.ceiling) against the plain computation it
replaces: one leave-one-subject-out density, one own density and one ``score`` call per subject,
then the mean over subjects. Equal to the bit, on real OSIE stimuli and on a hand-made case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.data.density import LeaveOneOut, fixation_density, loso_densities, sigma_px
from harness.evaluation.ceiling import ceiling_per_subject, ceiling_scores
from harness.evaluation.context import DatasetContext
from harness.metrics import kernels


def assert_same(got: dict | None, want: dict | None) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None and list(got) == list(want)
    for k in want:  # to the bit (NaN equals NaN)
        assert got[k] == want[k] or (math.isnan(got[k]) and math.isnan(want[k])), (k, got[k], want[k])


def masked_others(ctx, i: int) -> tuple[np.ndarray, np.ndarray]:
    """``DatasetContext.others`` as it was first written: a pool of every stimulus' fixations as
    fractions of its image (pixel centres, shifted back by half a pixel, when the images differ in
    size), built from each stimulus' float64 Fixations, and a mask over the whole pool."""
    c = 0.5 if ctx.centred else 0.0
    fix = list(ctx.fixations)
    pool_x = np.concatenate([(f.x + c) / w for f, (w, h) in zip(fix, ctx.sizes)])
    pool_y = np.concatenate([(f.y + c) / h for f, (w, h) in zip(fix, ctx.sizes)])
    mask = np.repeat(np.arange(len(ctx)), [len(f) for f in fix]) != i
    w, h = ctx.sizes[i]
    return pool_x[mask] * w - c, pool_y[mask] * h - c


@pytest.fixture(scope="module")
def osie_ctx(osie, osie_dataset):
    return DatasetContext(osie, osie_dataset, None, sigma_px(osie))


@pytest.mark.parametrize("profile", ["mit", "pysaliency"])
def test_equals_the_per_subject_computation_on_osie(osie_ctx, profile):
    for i in (0, 1, 233, 699):
        assert_same(ceiling_scores(osie_ctx, i, profile, seed=0), ceiling_per_subject(osie_ctx, i, profile, seed=0))
    assert_same(ceiling_scores(osie_ctx, 5, profile, seed=17), ceiling_per_subject(osie_ctx, 5, profile, seed=17))


def test_others_equal_the_masked_pool(osie_ctx):
    n = len(osie_ctx)
    for i in (0, n // 2, n - 1):
        got, want = osie_ctx.others(i), masked_others(osie_ctx, i)
        for g, wnt in zip(got, want):
            assert g.dtype == wnt.dtype and np.array_equal(g, wnt)
        assert got[0].size == osie_ctx.fixations.total - len(osie_ctx.fixations[i])


def test_own_densities_and_leave_one_out_maps_on_osie(osie_ctx):
    """Each subject's own density is fixation_density of its fixations, to the bit; the
    leave-one-out maps are those of loso_densities, to the bit, whatever buffer holds them; the
    statistics the sweep and the normalisation find on the way are kernels.stats' numbers."""
    i = 42
    fix, (w, h) = osie_ctx.fixations[i], osie_ctx.sizes[i]
    loo = LeaveOneOut(fix, (h, w), osie_ctx.sigma_px, buffer=np.full(40 * h * w, np.nan), lazy=True)
    reference = loso_densities(fix, (h, w), osie_ctx.sigma_px)
    assert [int(s) for s in loo.subjects] == [s for s, _ in reference]
    for k, (s, m) in enumerate(reference):
        held = fix.subset(fix.subject == s)
        assert np.array_equal(loo.map(k), m)
        own = fixation_density(held.x, held.y, (h, w), osie_ctx.sigma_px)
        assert np.array_equal(loo.own(k), own)
        for got, array in ((loo.map_stats(k), m), (loo.own_stats(k), own)):
            assert got == kernels.stats(array.reshape(-1))[:4]


# --- a hand-made stimulus set: three subjects with known fixations ---------------------------------


def hand_made_context() -> DatasetContext:
    import datasets

    def fixations(points):
        return [{"x": x, "y": y, "subject": s, "duration_ms": 200.0} for s, x, y in points]

    records = [
        # stimulus 0: three subjects; "c" looked where nobody else did (the far right)
        {"stimulus_id": "three", "width": 60, "height": 40, "image": None,
         "fixations": fixations([("a", 10.0, 10.0), ("a", 12.2, 11.7), ("b", 10.4, 9.6), ("b", 30.0, 20.0),
                                 ("b", 30.0, 20.0), ("c", 58.0, 35.0), ("c", 29.5, 19.5)])},
        # stimulus 1: a single subject, no ceiling
        {"stimulus_id": "one", "width": 50, "height": 30, "image": None,
         "fixations": fixations([("a", 5.0, 5.0), ("a", 40.0, 20.0)])},
        # stimulus 2: other-image fixations for the shuffled AUC, in another size
        {"stimulus_id": "other", "width": 80, "height": 50, "image": None,
         "fixations": fixations([("a", 7.0, 8.0), ("b", 70.0, 40.0), ("b", 20.5, 33.3), ("c", 40.0, 25.0)])},
    ]
    return DatasetContext(None, datasets.Dataset.from_list(records), None, 3.0)


def test_hand_made_leave_one_out_maps_are_the_other_subjects_densities():
    ctx = hand_made_context()
    fix = ctx.fixations[0]
    loo = LeaveOneOut(fix, (40, 60), 3.0)
    assert list(loo.subjects) == [0, 1, 2]
    for k in range(3):
        others = fix.subject != k
        direct = fixation_density(fix.x[others], fix.y[others], (40, 60), 3.0)
        # summed in another order than the direct density: equal to round-off, tails included
        np.testing.assert_allclose(loo.maps[k], direct, rtol=1e-12, atol=0)
        assert loo.maps[k].sum() == pytest.approx(1.0, abs=1e-12)
        mine = fix.subject == k
        assert np.array_equal(loo.own(k), fixation_density(fix.x[mine], fix.y[mine], (40, 60), 3.0))
    # far right, where only subject 2 looked: the leave-2-out map is a tiny tail, not 0 or noise
    assert 0 < loo.maps[2][35, 58] < 1e-20


@pytest.mark.parametrize("profile", ["mit", "pysaliency"])
def test_hand_made_ceiling_equals_the_per_subject_computation(profile):
    ctx = hand_made_context()
    got = ceiling_scores(ctx, 0, profile, seed=3)
    assert_same(got, ceiling_per_subject(ctx, 0, profile, seed=3))
    assert set(got) >= {"auc_judd", "sauc", "nss", "cc", "sim", "kld", "ig", "iou_top20"}
    assert ceiling_scores(ctx, 1, profile, seed=3) is None and ceiling_per_subject(ctx, 1, profile, seed=3) is None
    assert_same(ceiling_scores(ctx, 2, profile, seed=3), ceiling_per_subject(ctx, 2, profile, seed=3))


def test_plugin_metrics_get_the_same_arguments():
    ctx = hand_made_context()
    calls = []

    def spread(smap, fix_x, fix_y, *, density, baseline, other_x, other_y, profile, seed):
        calls.append(seed)
        return float(np.std(smap) + density.max() + baseline.mean() + other_x.sum() + other_y.sum() + fix_x.sum())

    ctx.extra_metrics = [("spread", spread)]
    got = ceiling_scores(ctx, 0, "mit", seed=5)
    assert calls == [5, 5, 5]
    assert_same(got, ceiling_per_subject(ctx, 0, "mit", seed=5))
    assert "spread" in got

    # a plugin metric that raises for one subject is NaN for the stimulus (not the mean of the
    # others), with one line naming the subject; the other metrics keep their values
    seen = []

    def broken(smap, fix_x, fix_y, **kwargs):
        seen.append(1)
        if len(seen) == 2:
            raise ZeroDivisionError("nope")
        return 1.0

    ctx.extra_metrics = [("spread", spread), ("broken", broken)]
    notes = []
    got_broken = ceiling_scores(ctx, 0, "mit", seed=5, notes=notes)
    assert np.isnan(got_broken.pop("broken")) and got_broken == got
    subject = np.unique(ctx.fixations[0].subject)[1]
    assert notes == [f"metric 'broken' failed: ZeroDivisionError: nope (subject {subject}; recorded as NaN)"]


def test_others_equal_the_masked_pool_hand_made():
    ctx = hand_made_context()
    for i in range(3):
        for g, w in zip(ctx.others(i), masked_others(ctx, i)):
            assert np.array_equal(g, w)


def test_bad_fixations_fail_as_before():
    """A fixation outside the image is an error in both computations, one subject or several."""
    ctx = hand_made_context()
    for i in (0, 1):
        ctx.fixations.x = ctx.fixations.x.copy()  # read-only: a view of the Arrow column
        ctx.fixations.x[ctx.offsets[i]] = 500.0  # the first fixation of stimulus i
        with pytest.raises(ValueError, match="outside"):
            ceiling_per_subject(ctx, i, "mit", seed=0)
        with pytest.raises(ValueError, match="outside"):
            ceiling_scores(ctx, i, "mit", seed=0)


def test_a_metric_nan_for_every_subject_is_nan_without_a_warning(osie, osie_dataset):
    """One stimulus has no other stimuli: the shuffled AUC has no negatives, NaN for every subject;
    numpy's "Mean of empty slice" warning leaked onto the command's stderr."""
    import warnings

    ctx = DatasetContext(osie, osie_dataset, 1, sigma_px(osie))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = ceiling_scores(ctx, 0, "mit", 0)
    assert math.isnan(scores["sauc"]) and 0.5 < scores["auc_judd"] < 1
    reference = ceiling_per_subject(ctx, 0, "mit", 0)
    assert {k: v for k, v in scores.items() if k != "sauc"} == {k: v for k, v in reference.items() if k != "sauc"}
