"""CUB-GHA in its original layout: Fixation.txt (1920x1080 display coordinates), data_5runs/ (one
file per run, original-image coordinates) + CUB_200_2011/.

Each Fixation.txt line carries the image's original size, its displayed size and the display
position of its top-left pixel; display points map to stored-image pixel centres as
``(x_display - start_x + 0.5) * o_x / image_x - 0.5``. The fixture uses different x and y scales
and a large offset, so a swap, a missing offset or a missing scale fails. The run files
(``img_id, width, height`` then ``x, y, duration``) are read in preference, one subject per run.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from harness.data import load_gaze_dataset
from harness.errors import DataError

# id, o_x, o_y, image_x, image_y, start_x, start_y, then x, y, duration triplets (display pixels)
LINES = [
    # image 1: 50x40 shown as 100x60 at (910, 500): sx = 0.5, sy = 2/3
    "1,50,40,100,60,910,500,"
    "1000,540,250,"   # -> x = 90.5*0.5-0.5 = 44.75, y = 40.5*2/3-0.5 = 26.5
    "930,503,400,"    # -> x = 9.75, y = 3.5*2/3-0.5 = 11/6
    "900,520,120,"    # -> x = -5.25: on the grey border, dropped
    "1009,559,610,"   # -> x = 49.25 > 49: dropped
    "950,530,300",    # last triplet: left out like the authors' reader does
    # image 2: its file is 30x20 but the line says 31x20 -> skipped
    "2,31,20,62,40,0,0,10,10,100,20,20,100",
    # image 3: 20x30 shown 1:1 at (0, 0): the display pixel is the image pixel
    "3,20,30,20,30,0,0,19,29,200,0,0,150,5,5,999",
]


def write_cub(root: Path) -> None:
    cub = root / "CUB_200_2011"
    files = {"1": "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg",
             "2": "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg",
             "3": "200.Common_Yellowthroat/Common_Yellowthroat_0003_190521.jpg"}
    sizes = {"1": (50, 40), "2": (30, 20), "3": (20, 30)}
    for i, rel in files.items():
        (cub / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", sizes[i], (200, 180, 20)).save(cub / "images" / rel)
    (cub / "images.txt").write_text("".join(f"{i} {rel}\n" for i, rel in files.items()))
    (cub / "image_class_labels.txt").write_text("1 1\n2 1\n3 200\n")
    (cub / "classes.txt").write_text("1 001.Black_footed_Albatross\n200 200.Common_Yellowthroat\n")
    (root / "Fixation.txt").write_text("\n".join(LINES) + "\n")


def test_cub_gha_display_to_image(tmp_path):
    root = tmp_path / "cub-gha"
    write_cub(root)
    obj, ds = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert set(recs) == {"Black_Footed_Albatross_0001_796111", "Common_Yellowthroat_0003_190521"}

    one = recs["Black_Footed_Albatross_0001_796111"]
    assert (one["width"], one["height"], one["label"]) == (50, 40, "Black_footed_Albatross")
    got = [(f["x"], f["y"], f["duration_ms"]) for f in one["fixations"]]
    assert got == [pytest.approx((44.75, 26.5, 250.0)), pytest.approx((9.75, 11 / 6, 400.0), rel=1e-6)]
    assert {f["subject"] for f in one["fixations"]} == {"pooled"}

    three = recs["Common_Yellowthroat_0003_190521"]
    assert three["label"] == "Common_Yellowthroat"
    assert [(f["x"], f["y"]) for f in three["fixations"]] == [(19.0, 29.0), (0.0, 0.0)]

    s = obj.stats
    assert s["dropped_out_of_bounds"] == 2
    assert s["dropped_last_triplet"] == 2
    assert s["skipped_size_mismatch"] == 1
    # what was read, and the display scale of each image (display pixels per image pixel)
    assert s["gaze_files"] == "Fixation.txt" and s["subjects_from"].startswith("pooled")
    assert one["display_scale"] == pytest.approx(math.sqrt(2.0 * 1.5))  # 100/50 and 60/40
    assert three["display_scale"] == 1.0
    assert math.isnan(one["pixels_per_degree"])  # the viewing distance is not published


# one file per run: img_id, width, height, then x, y, duration in original-image pixels (0-based)
RUNS = {
    1: ["1,50,40,10,20,300,49,39,200",
        "3,20,30,5,5,150,20,5,100",       # (20, 5): x > 19, dropped
        "",
        "1,50,40,30,10,250"],             # image 1 again in run 1: pooled after the first line
    2: ["1,50,40,25,25,400",
        "2,30,20,5,5,100"],               # image 2 is 30x20 (Fixation.txt's 31x20 is not used here)
    3: ["2,31,20,1,1,100",                # says 31x20: image 2 is skipped
        "1,50,40,-1,5,100,0,0,120"],      # (-1, 5) dropped
}


def write_runs(root: Path, runs=RUNS) -> None:
    (root / "data_5runs").mkdir(parents=True, exist_ok=True)
    for k, lines in runs.items():
        (root / "data_5runs" / f"Fixation_run{k}.txt").write_text("\n".join(lines) + "\n")


def test_cub_gha_runs_are_subjects(tmp_path):
    root = tmp_path / "cub-gha"
    write_cub(root)
    write_runs(root)
    obj, ds = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
    recs = ds.remove_columns("image").to_list()
    assert [r["stimulus_id"] for r in recs] == ["Black_Footed_Albatross_0001_796111", "Common_Yellowthroat_0003_190521"]
    one, three = recs

    got = [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in one["fixations"]]
    assert got == [("run1", 10, 20, 300), ("run1", 49, 39, 200), ("run1", 30, 10, 250),  # lines in order
                   ("run2", 25, 25, 400), ("run3", 0, 0, 120)]
    assert [(f["subject"], f["x"], f["y"]) for f in three["fixations"]] == [("run1", 5, 5)]
    assert one["label"] == "Black_footed_Albatross"
    assert all(math.isnan(f["start_ms"]) for f in one["fixations"])

    s = obj.stats
    assert s["dropped_out_of_bounds"] == 2 and "dropped_last_triplet" not in s
    assert s["skipped_size_mismatch"] == 1
    assert any("Fixation_run3.txt line 1 says 31x20" in item for item in obj.skipped)
    assert s["gaze_files"] == ", ".join(f"data_5runs/Fixation_run{k}.txt" for k in (1, 2, 3))
    assert s["subjects_from"].startswith("one subject per run")
    # Fixation.txt is there: it gives each image's display scale
    assert s["display_scale_from"] == "Fixation.txt"
    assert one["display_scale"] == pytest.approx(math.sqrt(3.0)) and three["display_scale"] == 1.0

    info = obj.info()
    assert info["subjects"] == 3 and info["notes"]["gaze_files"] == s["gaze_files"]


def test_cub_gha_runs_without_fixation_txt(tmp_path):
    root = tmp_path / "cub-gha"
    write_cub(root)
    (root / "Fixation.txt").unlink()
    write_runs(root)
    obj, ds = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
    assert len(ds) == 2 and all(math.isnan(v) for v in ds["display_scale"])  # not known
    assert obj.stats["display_scale_from"].startswith("not known")


@pytest.mark.parametrize("line, message", [
    ("1,50,40,10,20", r"data_5runs/Fixation_run2.txt: line 2 has 5 fields, expected img_id, width, height \+ 3k"),
    ("1,50,40,a,20,100", r"data_5runs/Fixation_run2.txt: line 2 has a non-numeric field"),
    ("77,50,40,1,1,100", r"data_5runs/Fixation_run2.txt: line 2: image id 77 is not in images.txt"),
])
def test_cub_gha_bad_run_line_names_file_and_line(tmp_path, line, message):
    root = tmp_path / "cub-gha"
    write_cub(root)
    write_runs(root, {1: RUNS[1], 2: [RUNS[2][0], line]})
    with pytest.raises(DataError, match=message) as err:
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
    assert "\n" not in str(err.value)


def test_cub_gha_without_any_gaze_file(tmp_path):
    root = tmp_path / "cub-gha"
    write_cub(root)
    (root / "Fixation.txt").unlink()
    with pytest.raises(DataError, match=r"no gaze file .*data_5runs/Fixation_run<k>.txt nor Fixation.txt"):
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")


def test_cub_gha_malformed_line_names_file_and_line(tmp_path):
    root = tmp_path / "cub-gha"
    write_cub(root)
    (root / "Fixation.txt").write_text(LINES[0] + "\n3,20,30,20,30,0,0,19,29\n")
    with pytest.raises(DataError, match=r"Fixation.txt: line 2 has 9 fields"):
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")


def test_cub_gha_index_that_is_not_text_names_the_file(tmp_path):
    """A non-UTF-8 images.txt was reported as the plugin's bug ("source_files() failed")."""
    root = tmp_path / "cub-gha"
    write_cub(root)
    (root / "CUB_200_2011" / "images.txt").write_bytes(b"1 \xff\xfe.jpg\n")
    with pytest.raises(DataError, match=r"images.txt is not UTF-8 text"):
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("line, field", [("1,5_0,40,10,20,100", "5_0"), ("1,50,40,1_0,20,100", "1_0")])
def test_cub_gha_digit_separators_are_not_numbers(tmp_path, line, field):
    """int() and float() accept Python's '1_00' as 100: a damaged run line was read as another size or
    position (found by the converter QA, round 2)."""
    root = tmp_path / "cub-gha"
    write_cub(root)
    write_runs(root, {1: RUNS[1], 2: [RUNS[2][0], line]})
    with pytest.raises(DataError, match=rf"data_5runs/Fixation_run2.txt: line 2 has a non-numeric field \('{field}'"):
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
    write_runs(root)
    (root / "Fixation.txt").write_text(LINES[0].replace("1,50,40,", "1,5_0,40,", 1) + "\n")
    with pytest.raises(DataError, match=r"Fixation.txt: line 1 has a non-integer field \('5_0'"):
        load_gaze_dataset("cub-gha", data_dir=root, cache_dir=tmp_path / "cache")
