"""COCO-FreeView in its original layout: COCOFreeView_fixations_trainval.json + the COCO-Search18
image folders (images/<category>/, coco_search18_images_TA/<category>/), 1680x1050.

The same picture under two category folders is one stimulus; the first fixation of each scanpath
(the centre fixation) is removed; X/Y are image pixels unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from harness.data import load_gaze_dataset

SIZE = (1680, 1050)


def scanpath(name, subject, xs, ys, ts, split="train"):
    return {"name": name, "subject": subject, "X": xs, "Y": ys, "T": ts, "length": len(xs), "split": split}


def write_freeview(root: Path) -> None:
    data = [
        scanpath("000000000001.jpg", 1, [840, 12.5, 1679.0], [525, 1049.0, 33.25], [250, 300, 120]),
        scanpath("000000000001.jpg", 7, [840, 1700, 5], [525, 5, 1050], [250, 300, 120], split="valid"),  # both out
        scanpath("000000000002.jpg", 3, [840, 600.5], [525, 700.75], [100, 200]),
        scanpath("000000000002.jpg", 3, [840, 600.5], [525, 700.75], [100, 200]),  # repeated trial
        scanpath("000000000009.jpg", 2, [840, 1], [525, 1], [1, 1]),  # no image
    ]
    root.mkdir(parents=True)
    (root / "COCOFreeView_fixations_trainval.json").write_text(json.dumps(data))
    for rel in ("images/bottle/000000000001.jpg", "images/cup/000000000001.jpg",
                "coco_search18_images_TA/tv/000000000002.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", SIZE, (60, 10, 10)).save(root / rel)


def test_coco_freeview_layout(tmp_path):
    root = tmp_path / "coco-freeview"
    write_freeview(root)
    obj, ds = load_gaze_dataset("coco-freeview", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert set(recs) == {"000000000001", "000000000002"}
    one = recs["000000000001"]
    assert (one["width"], one["height"]) == SIZE
    assert [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in one["fixations"]] == [
        ("s1", 12.5, 1049.0, 300.0), ("s1", 1679.0, 33.25, 120.0)]
    assert [(f["x"], f["y"]) for f in recs["000000000002"]["fixations"]] == [(600.5, 700.75)]
    assert all(r["search_target"] is None and r["objects"] is None for r in recs.values())
    s = obj.stats
    assert s["dropped_initial_fixation"] == 3
    assert s["dropped_out_of_bounds"] == 2
    assert s["duplicate_trials"] == 1
    assert s["skipped_missing_image"] == 1
