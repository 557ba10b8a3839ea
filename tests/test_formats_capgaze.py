"""capgaze1 in its original layout: per-participant pickled gaze dicts + transcription JSON files.

The authors' demo reads ``np.load(f, encoding='latin1').item()``, takes the dominant eye's list
(``0`` left, ``1`` right), every 4th sample from index 10 (``int(N/4) - 3`` of them) and keeps
points strictly inside (0, 1), as fractions of width (x) and height (y). The fixture is written the
way the release was (a Python-2-era pickle, protocol 2, of a dict of lists of tuples) and puts
different valid points in the other eye and between the authors' samples, on a non-square image,
so reading the wrong eye, the wrong samples or swapping x and y fails.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.data import load_gaze_dataset
from harness.errors import DataError

W, H = 40, 30


def gaze_dict(n: int, dominant: int, picked: dict[int, object], noise=(0.9, 0.1)) -> dict:
    """A gaze file's dict: ``n`` samples 25 ms apart; the dominant eye holds ``picked[i]`` at index
    ``i`` and ``noise`` elsewhere; the other eye holds ``noise`` everywhere."""
    dominant_eye = [picked.get(i, noise) for i in range(n)]
    other_eye = [noise] * n
    left, right = (dominant_eye, other_eye) if dominant == 0 else (other_eye, dominant_eye)
    return {"right_eye": right, "dominant_eye": dominant, "duration": np.array(n * 0.025),
            "left_eye": left, "time_stamp": [i * 0.025 for i in range(n)]}


def save_gaze(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # an .npy of a 0-d object array whose payload is a protocol-2 pickle, as numpy under Python 2 wrote it
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(np.array(data, dtype=object), f, protocol=2)


def write_capgaze(root: Path, images: dict[str, tuple[tuple[int, int], dict[str, dict], dict[str, str]]]) -> None:
    """``images``: image id -> ((width, height), {participant: gaze dict}, {participant: text})."""
    for image_id, (size, gaze, texts) in images.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (90, 120, 30)).save(root / "images" / f"{image_id}.jpg")
        for who, data in gaze.items():
            save_gaze(root / "gaze_converted_2" / who / "gaze" / f"{image_id}.npy", data)
        for who, text in texts.items():
            path = root / "transcribed_text" / who / f"{image_id}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"text": text}))


def fixture_images() -> dict:
    return {
        "2008_000885": ((W, H), {
            # right eye dominant; 24 samples -> the authors read indices 10, 14, 18
            "1": gaze_dict(24, 1, {10: (0.25, 0.5), 14: None, 18: (1.0, 0.5)}),
            # left eye dominant; 20 samples -> indices 10, 14
            "2": gaze_dict(20, 0, {10: (0.01, 0.99), 14: (0.5, 0.2)}),
        }, {"1": "a dog on a sofa", "2": "  there is a brown dog lying on a sofa \n", "3": ""}),
        # only missing or out-of-range samples: skipped
        "2008_000032": ((W, H), {"1": gaze_dict(20, 0, {10: (), 14: (-0.1, 0.5)}, noise=(0.0, 0.0))}, {}),
    }


def test_capgaze_samples_eyes_and_captions(tmp_path):
    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    (root / "gaze_converted_2" / "3" / "gaze").mkdir(parents=True)  # a participant without this image
    obj, ds = load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert list(recs) == ["2008_000885"]
    rec = recs["2008_000885"]
    assert (rec["width"], rec["height"]) == (W, H)
    assert rec["captions"] == ["a dog on a sofa", "there is a brown dog lying on a sofa"]
    got = [(f["subject"], f["x"], f["y"], f["start_ms"]) for f in rec["fixations"]]
    assert got == [
        ("1", pytest.approx(0.25 * W - 0.5), pytest.approx(0.5 * H - 0.5), pytest.approx(250.0)),
        # 0.01 * 40 - 0.5 < 0 and 0.99 * 30 - 0.5 > 29: held to the image's edge pixels
        ("2", 0.0, float(H - 1), pytest.approx(250.0)),
        ("2", pytest.approx(0.5 * W - 0.5), pytest.approx(0.2 * H - 0.5), pytest.approx(350.0)),
    ]
    assert all(np.isnan(f["duration_ms"]) for f in rec["fixations"])
    # None at 14 (participant 1) and () (the skipped image) are missing; x = 1.0 and x < 0 outside
    assert obj.stats["dropped_missing_sample"] == 2 and obj.stats["dropped_outside_sample"] == 2
    assert obj.stats["skipped_no_fixations"] == 1


def test_capgaze_bad_files_are_one_line_errors(tmp_path):
    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    bad = root / "gaze_converted_2" / "2" / "gaze" / "2008_000885.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match=r"2008_000885\.npy is not a readable gaze file"):
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    save_gaze(bad, {"left_eye": [], "time_stamp": []})
    r = CliRunner().invoke(main, ["datasets", "info", "capgaze", "--data-dir", str(root),
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "2008_000885.npy lacks key(s) dominant_eye, right_eye" in r.output
    save_gaze(bad, gaze_dict(20, 2, {}))
    with pytest.raises(DataError, match="dominant_eye is 2"):
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    save_gaze(bad, gaze_dict(20, 0, {14: (0.5, 0.5, 1.0)}))  # a third value: some other layout
    with pytest.raises(DataError, match=r"2008_000885\.npy: sample 14 of the dominant eye is \(0\.5, 0\.5, 1\.0\), not an"):
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    # rows of a numpy array instead of tuples read the same
    arrays = gaze_dict(20, 0, {10: (0.01, 0.99), 14: (0.5, 0.2)})
    arrays["left_eye"] = np.asarray(arrays["left_eye"])
    save_gaze(bad, arrays)
    _, ds = load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert len([f for f in ds[0]["fixations"] if f["subject"] == "2"]) == 2


def test_capgaze_missing_layout_names_the_folder(tmp_path):
    (tmp_path / "capgaze" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="gaze_converted_2 does not exist"):
        load_gaze_dataset("capgaze", data_dir=tmp_path / "capgaze", cache_dir=tmp_path / "cache")
