"""SALICON in its COCO-style layout: annotations/fixations_<split>2014.json + images/<split>/*.jpg.

Points are [row, column], 1-based (salicon-api buildFixMap). The images are wider than tall, so a
row/column swap pushes points out of the image, and the expected 0-based values catch a missing -1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from harness.data import load_gaze_dataset
from harness.errors import DataError

W, H = 64, 48


def write_salicon(root: Path) -> None:
    train = {
        "info": {"description": "fixture"}, "type": "fixations", "licenses": [],
        "images": [
            {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": W, "height": H},
            {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "width": W, "height": H},  # no annotations
        ],
        "annotations": [
            # [row, col]: corners, an interior point, and three points outside the image
            {"id": 1, "image_id": 9, "worker_id": 307, "fixations": [[1, 1], [48, 64], [10, 60], [0, 5], [49, 3], [5, 65]]},
            {"id": 2, "image_id": 9, "worker_id": 444, "fixations": [[24.5, 12.0]]},
        ],
    }
    val = {
        "info": {}, "type": "fixations", "licenses": [],
        "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg", "width": W, "height": H},
                   {"id": 43, "file_name": "COCO_val2014_000000000043.jpg", "width": W, "height": H}],  # file missing
        "annotations": [{"id": 1, "image_id": 42, "worker_id": 5, "fixations": [[3, 40]]},
                        {"id": 2, "image_id": 43, "worker_id": 5, "fixations": [[3, 40]]}],
    }
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "fixations_train2014.json").write_text(json.dumps(train))
    (root / "annotations" / "fixations_val2014.json").write_text(json.dumps(val))
    for split, names in {"train": ["COCO_train2014_000000000009.jpg", "COCO_train2014_000000000025.jpg"],
                         "val": ["COCO_val2014_000000000042.jpg"]}.items():
        (root / "images" / split).mkdir(parents=True)
        for name in names:
            Image.new("RGB", (W, H), (10, 200, 30)).save(root / "images" / split / name)


def test_salicon_row_col_one_based(tmp_path):
    root = tmp_path / "salicon"
    write_salicon(root)
    obj, ds = load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert set(recs) == {"COCO_train2014_000000000009", "COCO_val2014_000000000042"}

    nine = recs["COCO_train2014_000000000009"]
    assert (nine["width"], nine["height"]) == (W, H)
    got = sorted((f["subject"], f["x"], f["y"]) for f in nine["fixations"])
    assert got == [("307", 0.0, 0.0), ("307", 59.0, 9.0), ("307", 63.0, 47.0), ("444", 11.0, 23.5)]
    assert all(f["start_ms"] != f["start_ms"] and f["duration_ms"] != f["duration_ms"] for f in nine["fixations"])

    val = recs["COCO_val2014_000000000042"]
    assert [(f["x"], f["y"]) for f in val["fixations"]] == [(39.0, 2.0)]
    assert all(r["label"] is None and r["objects"] is None for r in recs.values())

    assert obj.stats["dropped_out_of_bounds"] == 3
    assert obj.stats["skipped_no_fixations"] == 1
    assert obj.stats["skipped_missing_image"] == 1
    assert obj.stats["source_row_range"] == [0.0, 49.0] and obj.stats["source_col_range"] == [1.0, 65.0]

    # the image decodes from the cache and has the stored size
    assert ds[0]["image"].size == (W, H)


def test_salicon_declared_size_must_match(tmp_path):
    root = tmp_path / "salicon"
    write_salicon(root)
    Image.new("RGB", (W + 1, H), 0).save(root / "images" / "val" / "COCO_val2014_000000000042.jpg")
    obj, ds = load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
    assert "COCO_val2014_000000000042" not in set(ds["stimulus_id"])
    assert obj.stats["skipped_size_mismatch"] == 1


def test_salicon_broken_json_names_the_file(tmp_path):
    root = tmp_path / "salicon"
    write_salicon(root)
    (root / "annotations" / "fixations_val2014.json").write_text('{"images": [')
    with pytest.raises(DataError, match="fixations_val2014.json"):
        load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")


def _edit_train(root: Path, edit) -> None:
    path = root / "annotations" / "fixations_train2014.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, message", [
    # [row, col, t] rows used to be re-paired: (10, 20), (300, 30), (40, 200)
    (lambda d: d["annotations"][1].update(fixations=[[10, 20, 300], [30, 40, 200]]),
     r"annotation 2 of image 9: fixations are not \[row, col\] pairs \(rows of 3 values\)"),
    # one id twice: its annotations went to both images
    (lambda d: d["images"][1].update(id=9), r"image id 9 or file name .* is listed twice"),
    # one file twice: the second entry's annotations were dropped without a count
    (lambda d: d["images"].append(dict(d["images"][0], id=77)), r"is listed twice"),
    # strings and booleans were read as numbers: "10" as 10.0, true as 1 (found by QA)
    (lambda d: d["annotations"][1].update(fixations=[["10", "20"]]),
     r"annotation 2 of image 9: fixations are not \[row, col\] pairs \('10' is not a number\)"),
    (lambda d: d["annotations"][1].update(fixations=[[True, 5]]), r"\(True is not a number\)"),
    (lambda d: d["annotations"][1].update(worker_id={"a": [1]}),
     r"annotation 2 of image 9: worker_id must be a name or a number, got \{'a': \[1\]\}"),
    (lambda d: d.update(images=None), r"fixations_train2014.json: 'images' is a NoneType, not a list"),
    (lambda d: d.update(annotations={"a": 1}), r"fixations_train2014.json: 'annotations' is a dict, not a list"),
])
def test_salicon_malformed_entries_name_the_file(tmp_path, edit, message):
    root = tmp_path / "salicon"
    write_salicon(root)
    _edit_train(root, edit)
    with pytest.raises(DataError, match=message):
        load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")


def test_salicon_annotations_of_an_unlisted_image_are_a_named_skip(tmp_path):
    # two annotations name image 31, which the file's 'images' do not list: they were dropped
    # without a count (no image to score them on); now each such id is a listed skip
    root = tmp_path / "salicon"
    write_salicon(root)
    _edit_train(root, lambda d: d["annotations"].extend([
        {"id": 3, "image_id": 31, "worker_id": 1, "fixations": [[3, 4]]},
        {"id": 4, "image_id": 31, "worker_id": 2, "fixations": [[5, 6], [7, 8]]}]))
    obj, ds = load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
    assert obj.stats["skipped_unknown_image"] == 1
    assert any("fixations_train2014.json: image id 31: 2 annotations name it" in s for s in obj.skipped)
    assert set(ds["stimulus_id"]) == {"COCO_train2014_000000000009", "COCO_val2014_000000000042"}


def test_salicon_annotation_name_that_is_a_folder_is_refused(tmp_path):
    # a folder with an annotation file's name made its split vanish without a word
    root = tmp_path / "salicon"
    write_salicon(root)
    (root / "annotations" / "fixations_val2014.json").unlink()
    (root / "annotations" / "fixations_val2014.json").mkdir()
    with pytest.raises(DataError, match=r"fixations_val2014.json is not a file"):
        load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")


def test_salicon_a_worker_id_of_null_is_unknown_as_a_missing_one(tmp_path):
    root = tmp_path / "salicon"
    write_salicon(root)
    _edit_train(root, lambda d: (d["annotations"][0].update(worker_id=None), d["annotations"][1].pop("worker_id")))
    obj, ds = load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
    (nine,) = [r for r in ds.remove_columns("image").to_list() if r["stimulus_id"].endswith("009")]
    assert {f["subject"] for f in nine["fixations"]} == {"unknown"}


def test_salicon_an_image_in_two_annotation_files(tmp_path):
    """The API saves the same data as fixations_<split>2014.json and ..2015r1.json: the same image in
    both is read once. Annotated differently, the later file's annotations were dropped without a
    word (found by QA): refused, naming both files."""
    root = tmp_path / "salicon"
    write_salicon(root)
    train = root / "annotations" / "fixations_train2014.json"
    again = root / "annotations" / "fixations_train2015r1.json"
    data = json.loads(train.read_text())
    data["annotations"].reverse()  # the same annotations in another order, written otherwise
    for ann in data["annotations"]:
        ann["fixations"] = [[float(v) for v in p] for p in ann["fixations"]]  # 12 as 12.0
        ann["worker_id"] = str(ann["worker_id"])  # 7 as "7": the subject's name either way
    again.write_text(json.dumps(data))
    obj, ds = load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
    assert sorted(ds["stimulus_id"]) == ["COCO_train2014_000000000009", "COCO_val2014_000000000042"]
    data["annotations"].append({"id": 3, "image_id": 9, "worker_id": 9, "fixations": [[30, 30]]})
    again.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"image COCO_train2014_000000000009.jpg is annotated differently in "
                                        r".*fixations_train2014.json and .*fixations_train2015r1.json: keep one"):
        load_gaze_dataset("salicon", data_dir=root, cache_dir=tmp_path / "cache")
