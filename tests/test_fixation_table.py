"""FixationTable: the columnar fixations of a run equal, stimulus by stimulus, what
Fixations.from_record reads from each row (the definition), on real OSIE and on edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from harness.data.fixation_table import FixationTable
from harness.schema import FEATURES, Fixations, empty_task_fields


def assert_equal_to_rows(table: FixationTable, ds) -> None:
    rows = [Fixations.from_record(r) for r in ds]
    assert len(table) == len(rows)
    for i, want in enumerate(rows):
        got = table[i]
        for field in ("x", "y", "subject", "duration_ms"):
            g, w = getattr(got, field), getattr(want, field)
            assert g.dtype == w.dtype and np.array_equal(g, w, equal_nan=True), (i, field, g, w)


def test_osie_whole_and_selected(osie_dataset):
    meta = osie_dataset.remove_columns(["image"])
    table = FixationTable.from_dataset(meta)
    assert_equal_to_rows(table, meta)
    assert table.total == sum(len(f) for f in meta["fixations"])
    assert table.nbytes < 17 * table.total  # 16 bytes a fixation, and the offsets
    for sub in (meta.select(range(7, 90)), meta.select([650, 3, 3, 12])):  # an indices mapping is applied
        assert_equal_to_rows(FixationTable.from_dataset(sub), sub)


def _record(i: int, fixations) -> dict:
    return {"stimulus_id": f"s{i}", "image": None, "width": 40, "height": 30, "fixations": fixations,
            **empty_task_fields()}


def test_subject_numbering_empty_and_missing_lists(tmp_path):
    """Subjects are numbered within each stimulus in Python's order of their names (not Arrow's
    dictionary order, not first appearance); an empty or a null fixation list is no fixations."""
    def fix(subject, x, y, d=100.0):
        return {"subject": subject, "x": x, "y": y, "start_ms": 0.0, "duration_ms": d}

    records = [
        _record(0, [fix("s9", 1.5, 2.25), fix("s10", 3.0, 4.0), fix("s9", 5.0, 6.0, float("nan")), fix("Zoe", 0, 0)]),
        _record(1, []),
        _record(2, None),
        _record(3, [fix("é", 39.0, 29.0), fix("a", 0.1, 0.2), fix("s10", 7.0, 8.0)]),
    ]
    features = FEATURES.copy()
    features.pop("image")
    ds = Dataset.from_list([{k: v for k, v in r.items() if k != "image"} for r in records], features=features)
    table = FixationTable.from_dataset(ds)
    assert_equal_to_rows(table, ds)
    assert table[0].subject.tolist() == [2, 1, 2, 0]  # Zoe < s10 < s9
    assert table[3].subject.tolist() == [2, 0, 1]  # a < s10 < é
    assert len(table[1]) == len(table[2]) == 0
    assert [len(f) for f in table[1:3]] == [0, 0] and len(list(table)) == 4
    with pytest.raises(IndexError):
        table[4]


def test_wider_floats_are_kept_not_rounded():
    """A table written with float64 coordinates (not the canonical float32) is read without
    rounding: the same numbers as from_record."""
    from datasets import Features, List, Value

    features = FEATURES.copy()
    features.pop("image")
    features["fixations"] = List({"subject": Value("string"), "x": Value("float64"), "y": Value("float64"),
                                  "start_ms": Value("float32"), "duration_ms": Value("float64")})
    fix = [{"subject": "a", "x": 1.0 + 2 ** -40, "y": 0.1, "start_ms": 0.0, "duration_ms": 1 / 3}]
    ds = Dataset.from_list([{k: v for k, v in _record(0, fix).items() if k != "image"}], features=Features(features))
    table = FixationTable.from_dataset(ds)
    assert table.x.dtype == np.float64 and table[0].x[0] == 1.0 + 2 ** -40
    assert_equal_to_rows(table, ds)


def test_empty_dataset():
    features = FEATURES.copy()
    features.pop("image")
    table = FixationTable.from_dataset(Dataset.from_dict({k: [] for k in features}, features=features))
    assert len(table) == 0 and table.total == 0 and list(table) == []


def test_a_pickled_context_reads_its_fixations_again(osie, osie_dataset):
    """A scoring process gets the context by pickle: without the fixations (it reads them again
    from the memory-mapped dataset), and with the same fixations and negatives."""
    import pickle

    from harness.data.density import sigma_px
    from harness.evaluation.context import DatasetContext

    ctx = DatasetContext(osie, osie_dataset, 300, sigma_px(osie))
    data = pickle.dumps(ctx)
    assert len(data) < ctx.fixations.nbytes / 10  # the fixations are not in it
    back = pickle.loads(data)
    assert back.ds is None and back.ids == ctx.ids and back.sizes == ctx.sizes
    for name in ("x", "y", "subject", "duration_ms", "offsets"):
        assert np.array_equal(getattr(back.fixations, name), getattr(ctx.fixations, name))
    for i in (0, 299):
        for got, want in zip(back.others(i), ctx.others(i)):
            assert np.array_equal(got, want)


def test_other_pixels_are_the_pixel_indices_of_others(osie, osie_dataset):
    """The negatives as pixel indices straight from the table equal pixel_indices of others(i),
    to the bit, on OSIE (one image size) and on images of three sizes (the centred pool)."""
    from datasets import Dataset

    from harness.data.density import sigma_px
    from harness.evaluation.context import DatasetContext
    from harness.metrics import MetricInputError, pixel_indices
    from harness.schema import FEATURES

    ctx = DatasetContext(osie, osie_dataset, None, sigma_px(osie))
    for i in (0, 1, 350, 699):
        w, h = ctx.sizes[i]
        want = pixel_indices(*ctx.others(i), (h, w))
        got = ctx.other_pixels(i)
        assert got.dtype == want.dtype and np.array_equal(got, want)

    def rec(sid, w, h, points):
        return {"stimulus_id": sid, "image": None, "width": w, "height": h, **empty_task_fields(),
                "fixations": [{"subject": s, "x": x, "y": y, "start_ms": 0.0, "duration_ms": 0.0} for s, x, y in points]}

    rng = np.random.default_rng(3)
    records = [rec(f"s{k}", w, h, [(f"p{j % 3}", float(rng.uniform(-0.5, w - 0.5)), float(rng.uniform(-0.5, h - 0.5)))
                                   for j in range(40)] + [("p0", w - 1.0, h - 1.0), ("p1", -0.5, 0.0)])
               for k, (w, h) in enumerate([(50, 40), (20, 30), (33, 17), (50, 40)])]
    mixed = DatasetContext(None, Dataset.from_list(records, features=FEATURES), None, 2.0)
    assert mixed.centred
    for i in range(4):
        w, h = mixed.sizes[i]
        assert np.array_equal(mixed.other_pixels(i), pixel_indices(*mixed.others(i), (h, w)))

    # a point outside the map is named as pixel_indices names it
    mixed.pool_x = mixed.pool_x.copy()
    mixed.pool_x[5] = 3.0  # three image widths to the right
    for i in (1, 2):
        w, h = mixed.sizes[i]
        with pytest.raises(MetricInputError) as want:
            pixel_indices(*mixed.others(i), (h, w), "other-image fixation")
        with pytest.raises(MetricInputError) as got:
            mixed.other_pixels(i)
        assert str(got.value) == str(want.value)
