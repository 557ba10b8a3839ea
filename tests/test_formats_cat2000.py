"""CAT2000 in its original layout: trainSet/Stimuli/<category>/NNN.jpg + trainSet/FIXATIONLOCS/<category>/NNN.mat.

``fixLocs`` is a binary map; a 1 at [row, col] must come out as x = col, y = row. Non-square images
make a row/column swap fail, and the values at the image edges catch any shift.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from harness.data import load_gaze_dataset
from harness.errors import DataError


def write_cat2000(root: Path) -> None:
    base = root / "trainSet"
    for cat in ("Action", "Art", "Sketch"):
        (base / "Stimuli" / cat).mkdir(parents=True)
        (base / "FIXATIONLOCS" / cat).mkdir(parents=True)
    # Action/001: 40 wide, 30 high; fixated pixels at (row 2, col 35), (row 29, col 0), (row 14, col 39)
    Image.new("RGB", (40, 30), (1, 2, 3)).save(base / "Stimuli" / "Action" / "001.jpg")
    locs = np.zeros((30, 40))
    locs[2, 35] = locs[29, 0] = locs[14, 39] = 1
    scipy.io.savemat(base / "FIXATIONLOCS" / "Action" / "001.mat", {"fixLocs": locs})
    # Art/002: portrait 30x40 with a logical map
    Image.new("RGB", (30, 40), (4, 5, 6)).save(base / "Stimuli" / "Art" / "002.jpg")
    locs = np.zeros((40, 30), dtype=bool)
    locs[39, 29] = True
    scipy.io.savemat(base / "FIXATIONLOCS" / "Art" / "002.mat", {"fixLocs": locs})
    # Art/003: map of the wrong size (transposed) -> skipped
    Image.new("RGB", (30, 40), 0).save(base / "Stimuli" / "Art" / "003.jpg")
    scipy.io.savemat(base / "FIXATIONLOCS" / "Art" / "003.mat", {"fixLocs": np.ones((30, 40))})
    # Sketch/004: no fixation map -> skipped
    Image.new("RGB", (40, 30), 0).save(base / "Stimuli" / "Sketch" / "004.jpg")
    # Sketch/005: empty map -> skipped
    Image.new("RGB", (40, 30), 0).save(base / "Stimuli" / "Sketch" / "005.jpg")
    scipy.io.savemat(base / "FIXATIONLOCS" / "Sketch" / "005.mat", {"fixLocs": np.zeros((30, 40))})


def test_cat2000_fixation_maps(tmp_path):
    root = tmp_path / "cat2000"
    write_cat2000(root)
    obj, ds = load_gaze_dataset("cat2000", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert set(recs) == {"Action/001", "Art/002"}
    a = recs["Action/001"]
    assert (a["width"], a["height"]) == (40, 30)
    assert sorted((f["x"], f["y"]) for f in a["fixations"]) == [(0.0, 29.0), (35.0, 2.0), (39.0, 14.0)]
    assert {f["subject"] for f in a["fixations"]} == {"all"}
    assert [(f["x"], f["y"]) for f in recs["Art/002"]["fixations"]] == [(29.0, 39.0)]
    assert obj.stats["skipped_size_mismatch"] == 1
    assert obj.stats["skipped_missing_fixations"] == 1
    assert obj.stats["skipped_no_fixations"] == 1
    assert obj.stats.get("dropped_out_of_bounds", 0) == 0


def test_cat2000_accepts_trainset_folder_itself(tmp_path):
    root = tmp_path / "cat2000"
    write_cat2000(root)
    _, ds = load_gaze_dataset("cat2000", data_dir=root / "trainSet", cache_dir=tmp_path / "cache")
    assert sorted(ds["stimulus_id"]) == ["Action/001", "Art/002"]


def test_cat2000_map_without_fixlocs_names_the_file(tmp_path):
    root = tmp_path / "cat2000"
    write_cat2000(root)
    scipy.io.savemat(root / "trainSet" / "FIXATIONLOCS" / "Action" / "001.mat", {"other": np.ones(2)})
    with pytest.raises(DataError, match="001.mat has no variable 'fixLocs'"):
        load_gaze_dataset("cat2000", data_dir=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("value", [np.nan, 0.5, 255.0, -1.0])
def test_cat2000_map_that_is_not_binary_names_the_file(tmp_path, value):
    """A NaN or density map used to make every nonzero pixel a fixation (1200 of 1200)."""
    root = tmp_path / "cat2000"
    write_cat2000(root)
    locs = np.zeros((30, 40))
    locs[3, 4] = 1
    locs[5, 6] = value
    scipy.io.savemat(root / "trainSet" / "FIXATIONLOCS" / "Action" / "001.mat", {"fixLocs": locs})
    with pytest.raises(DataError, match=r"001.mat: fixLocs holds .*, not a binary fixation map of 0 and 1"):
        load_gaze_dataset("cat2000", data_dir=root, cache_dir=tmp_path / "cache")


def test_cat2000_map_saved_as_a_cell_array_names_the_file(tmp_path):
    """fixLocs saved as a MATLAB cell array (of [1 1] each) ended as "converting ... failed: ValueError:
    The truth value of an array ... is ambiguous", naming no file (found by the converter QA, round 2)."""
    root = tmp_path / "cat2000"
    write_cat2000(root)
    cells = np.empty((30, 40), dtype=object)
    for index in np.ndindex(cells.shape):
        cells[index] = np.array([[1.0, 1.0]])
    path = root / "trainSet" / "FIXATIONLOCS" / "Action" / "001.mat"
    scipy.io.savemat(path, {"fixLocs": cells})
    with pytest.raises(DataError) as exc:
        load_gaze_dataset("cat2000", data_dir=root, cache_dir=tmp_path / "cache")
    assert str(exc.value) == f"cat2000: {path}: fixLocs is a MATLAB cell array, not a binary fixation map of 0 and 1"
