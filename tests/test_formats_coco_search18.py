"""COCO-Search18 in its original layout: coco_search18_fixations_*.json + images/<category>/ (target
present) and coco_search18_images_TA/<category>/ (target absent), all 1680x1050.

X/Y are pixels of the stored 1680x1050 image and include the initial centre fixation, which is
removed. The expected values would change under any offset, scaling (e.g. to 512x320) or -1.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from harness.data import load_gaze_dataset
from harness.errors import DataError
from plugins.datasets.coco_search18 import COCOSearch18

SIZE = (1680, 1050)


def trial(name, subject, task, condition, xs, ys, ts, bbox=None, split="train"):
    item = {"name": name, "subject": subject, "task": task, "condition": condition, "X": xs, "Y": ys,
            "T": ts, "length": len(xs), "correct": 1, "RT": 1234, "split": split}
    if bbox is not None:
        item["bbox"] = bbox
    return item


def write_search(root: Path) -> None:
    tp_train = [
        # subject 2 first on purpose: records list subjects in order
        trial("000000000001.jpg", 2, "bottle", "present", [840, 1679, 1680], [525, 1049, 10], [300, 250, 200],
              bbox=[1500, 900, 170, 140]),
        trial("000000000001.jpg", 1, "bottle", "present", [841.5, 100.5, 0, -0.2], [524, 200.25, 0, 3], [180, 220, 90, 60],
              bbox=[1500, 900, 170, 140]),
        trial("000000000003.jpg", 1, "car", "present", [840, 10], [525, 10], [100, 100], bbox=[1, 2, 3, 4]),
    ]
    tp_valid = [trial("000000000004.jpg", 3, "bottle", "present", [840, 12], [525, 13], [100, 100],
                      bbox=[1, 2, 3, 4], split="valid")]
    ta = [
        trial("000000000002.jpg", 1, "cup", "absent", [840, 300, 1200.75], [525, 400, 1000.5], [200, 150, 400]),
        trial("000000000001.jpg", 1, "cup", "absent", [840, 10], [525, 20], [200, 150]),  # image not in TA folder
    ]
    root.mkdir(parents=True)
    (root / "coco_search18_fixations_TP_train_split1.json").write_text(json.dumps(tp_train))
    (root / "coco_search18_fixations_TP_validation_split1.json").write_text(json.dumps(tp_valid))
    (root / "coco_search18_fixations_TA_trainval.json").write_text(json.dumps(ta))
    # a later release that repeats one trial: read once
    (root / "coco_search18_fixations_TP_train_split2.json").write_text(json.dumps(tp_train[:1]))
    for folder, size in {"images/bottle/000000000001.jpg": SIZE, "images/car/000000000003.jpg": (640, 480),
                         "coco_search18_images_TA/cup/000000000002.jpg": SIZE}.items():
        (root / folder).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (30, 30, 30)).save(root / folder)


def test_coco_search18_layout(tmp_path):
    root = tmp_path / "coco-search18"
    write_search(root)
    obj, ds = load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert set(recs) == {"TP/bottle/000000000001", "TA/cup/000000000002"}

    tp = recs["TP/bottle/000000000001"]
    assert (tp["width"], tp["height"]) == SIZE
    assert [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in tp["fixations"]] == [
        ("s1", 100.5, 200.25, 220.0), ("s1", 0.0, 0.0, 90.0), ("s2", 1679.0, 1049.0, 250.0)]
    assert tp["search_target"] == "bottle" and tp["target_present"] is True
    assert tp["objects"] == [{"bbox": [1500.0, 900.0, 170.0, 140.0], "category": "bottle"}]
    assert tp["label"] is None and tp["captions"] is None

    ta = recs["TA/cup/000000000002"]
    assert [(f["x"], f["y"]) for f in ta["fixations"]] == [(300.0, 400.0), (1200.75, 1000.5)]
    assert ta["search_target"] == "cup" and ta["target_present"] is False and ta["objects"] == []

    s = obj.stats
    assert s["dropped_initial_fixation"] == 3  # one per scanpath of a converted stimulus
    assert s["dropped_out_of_bounds"] == 2  # (1680, 10) and (-0.2, 3)
    assert s["duplicate_trials"] == 1
    assert s["skipped_unexpected_size"] == 1  # car image is 640x480
    assert s["skipped_missing_image"] == 2  # 000000000004 (TP) and 000000000001 (TA/cup)
    assert any("TA/cup/000000000001.jpg" in item for item in obj.skipped)


def test_coco_search18_inconsistent_trial_names_the_file(tmp_path):
    root = tmp_path / "coco-search18"
    write_search(root)
    bad = [trial("000000000001.jpg", 1, "bottle", "present", [1, 2, 3], [1, 2], [1, 2, 3], bbox=[0, 0, 1, 1])]
    (root / "coco_search18_fixations_TP_validation_split1.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match="TP_validation_split1.json: trial 0: X, Y and T differ"):
        load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")


def _zip(dest: Path, root: Path, members: list[Path]) -> str:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in members:
            zf.write(p, p.relative_to(root).as_posix())
    return hashlib.md5(dest.read_bytes()).hexdigest()


def test_coco_search18_download_from_archives(tmp_path, monkeypatch):
    original = tmp_path / "original"
    write_search(original)
    served = tmp_path / "served"
    served.mkdir()
    md5 = {
        "COCOSearch18-images-TP.zip": _zip(served / "COCOSearch18-images-TP.zip", original,
                                           sorted((original / "images").rglob("*.jpg"))),
        "COCOSearch18-images-TA.zip": _zip(served / "COCOSearch18-images-TA.zip", original,
                                           sorted((original / "coco_search18_images_TA").rglob("*.jpg"))),
        "COCOSearch18-fixations-TP.zip": _zip(served / "COCOSearch18-fixations-TP.zip", original,
                                              sorted(original.glob("coco_search18_fixations_TP_*.json"))),
    }
    ta = "coco_search18_fixations_TA_trainval.json"
    (served / ta).write_bytes((original / ta).read_bytes())
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        class Local(COCOSearch18):
            base_url = f"http://127.0.0.1:{server.server_address[1]}/"
            archives = tuple((name, md5[name]) for name, _ in COCOSearch18.archives)
            files = ((ta, hashlib.md5((served / ta).read_bytes()).hexdigest()),)

        monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
        ds = Local(cache_dir=tmp_path / "cache").load()
        assert sorted(ds["stimulus_id"]) == ["TA/cup/000000000002", "TP/bottle/000000000001"]

        class WrongJson(Local):
            files = ((ta, "f" * 32),)

        with pytest.raises(DataError, match="md5"):
            WrongJson(cache_dir=tmp_path / "cache2").load()
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.mark.parametrize("value, shown", [(None, "None"), ("12.5", "'12.5'"), ([1.0, None], "None"), (True, "True")])
def test_a_coordinate_that_is_not_a_number_is_named(tmp_path, value, shown):
    """JSON null became NaN (then an "X, Y and T differ in length" error or a dropped fixation) and a
    string was read as its digits (found by QA)."""
    from harness.errors import DataError
    from plugins.datasets._formats import scanpath_arrays

    item = {"X": value, "Y": [1.0, 2.0], "T": [100, 200]}
    with pytest.raises(DataError) as exc:
        scanpath_arrays("coco-search18", tmp_path / "trials.json", 3, item)
    assert str(exc.value) == f"coco-search18: {tmp_path / 'trials.json'}: trial 3: X holds {shown}, not a number"


def test_trials_giving_two_target_boxes_are_a_named_skip(tmp_path):
    """Two subjects' trials of one image gave different target boxes: the first subject's was taken
    without a word (found by QA); now the image is a listed skip naming both boxes."""
    root = tmp_path / "coco-search18"
    write_search(root)
    path = root / "coco_search18_fixations_TP_train_split1.json"
    trials = json.loads(path.read_text())
    trials[1]["bbox"] = [10, 20, 30, 40]  # subject 1's; subject 2 keeps [1500, 900, 170, 140]
    path.write_text(json.dumps(trials))
    (root / "coco_search18_fixations_TP_train_split2.json").unlink()
    obj, ds = load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")
    assert set(ds["stimulus_id"]) == {"TA/cup/000000000002"}
    assert obj.stats["skipped_conflicting_target_box"] == 1
    assert any("[10.0, 20.0, 30.0, 40.0] (subject 1) and [1500.0, 900.0, 170.0, 140.0] (subject 2)" in s
               for s in obj.skipped)


def _first_trial_with(tmp_path: Path, **change) -> Path:
    """The fixture's folder with its first trial's fields changed."""
    root = tmp_path / "coco-search18"
    write_search(root)
    path = root / "coco_search18_fixations_TP_train_split1.json"
    trials = json.loads(path.read_text())
    trials[0].update(change)
    path.write_text(json.dumps(trials))
    return root


@pytest.mark.parametrize("bbox", [[1, 2, 3], "1,2,3,4", [1, 2, "x", 4]])
def test_a_target_box_that_is_not_four_numbers_is_named(tmp_path, bbox):
    root = _first_trial_with(tmp_path, bbox=bbox)
    with pytest.raises(DataError, match=r"trial bottle/000000000001.jpg of subject 2: bbox .* is not \[x, y, w, h\]"):
        load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("length", ["two", 2.5, True, None])
def test_a_length_that_is_not_an_integer_names_the_trial(tmp_path, length):
    """"length": "two" ended as "converting ... failed: ValueError: invalid literal for int()" naming
    neither file nor trial, and 2.5 was truncated to 2 (found by the converter QA, round 2)."""
    root = _first_trial_with(tmp_path, length=length)
    if length is None:  # JSON null: no length given, as before
        load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")
        return
    with pytest.raises(DataError) as exc:
        load_gaze_dataset("coco-search18", data_dir=root, cache_dir=tmp_path / "cache")
    path = root / "coco_search18_fixations_TP_train_split1.json"
    assert str(exc.value) == (f"coco-search18: {path}: trial 0 (image 000000000001.jpg, subject 2): "
                              f"length must be an integer, got {length!r}")
