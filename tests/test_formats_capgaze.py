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
import os
import pickle
import shlex
import subprocess
import sys
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
    for eye in (0.9, 1.5, float("nan"), "1", [0, 1]):  # 0.9 was read as int(0.9): the left eye
        data = gaze_dict(20, 0, {})
        data["dominant_eye"] = eye
        save_gaze(bad, data)
        with pytest.raises(DataError, match=r"2008_000885\.npy: dominant_eye is .*expected 0 \(left\) or 1 \(right\)"):
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


# -- crafted gaze files: the reader must refuse them without running anything ------------------------

REPO = Path(__file__).resolve().parent.parent
GAZE_FILE = ("gaze_converted_2", "2", "gaze", "2008_000885.npy")  # participant 2's file of the fixture
RECONSTRUCT = np.array(0).__reduce__()[0]  # numpy.(_)core.multiarray._reconstruct, as numpy pickles arrays


class Reduce:
    """Pickles as ``func(*args)`` followed by ``__setstate__(state)``, whatever ``func`` is."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def save_crafted(path: Path, payload: object = None, *, raw: bytes | None = None, protocol: int = 2) -> None:
    """An .npy with an object-array header (as the release's files have) and ``payload`` pickled
    (or the pickle bytes ``raw``) as its data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(raw if raw is not None else pickle.dumps(payload, protocol=protocol))


def crafted_root(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    return root, root.joinpath(*GAZE_FILE)


def touch(sentinel: Path) -> str:
    return f"touch {shlex.quote(str(sentinel))}"


SYSTEM = f"{os.system.__module__}.system"  # posix.system


@pytest.mark.parametrize("where", ["whole file", "inside the gaze dict"])
def test_capgaze_code_in_a_gaze_file_is_refused_not_run(tmp_path, where):
    root, bad = crafted_root(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    attack = Reduce(os.system, (touch(sentinel),))
    if where == "whole file":
        save_crafted(bad, attack)
    else:  # a genuine-looking file with the call hidden in one value
        save_crafted(bad, np.array(dict(gaze_dict(20, 0, {10: (0.5, 0.5)}), left_eye=attack), dtype=object))
    with pytest.raises(DataError) as err:
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert not sentinel.exists()
    message = str(err.value)
    assert message == (f"capgaze: {bad}: refused to unpickle '{SYSTEM}' "
                       "(only numpy arrays, dicts, lists, numbers and strings are allowed)")


def test_capgaze_refused_gaze_file_is_a_one_line_cli_error(tmp_path):
    root, bad = crafted_root(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    save_crafted(bad, Reduce(os.system, (touch(sentinel),)))
    r = CliRunner().invoke(main, ["datasets", "info", "capgaze", "--data-dir", str(root),
                                  "--cache-dir", str(tmp_path / "cache")])
    assert not sentinel.exists()
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines() == [
        f"Error: capgaze: {bad}: refused to unpickle '{SYSTEM}' "
        "(only numpy arrays, dicts, lists, numbers and strings are allowed)"]
    assert "Traceback" not in r.output


@pytest.mark.parametrize("protocol", [2, 4])  # GLOBAL and STACK_GLOBAL opcodes
@pytest.mark.parametrize("func, name, args", [
    (eval, "(builtins|__builtin__).eval", lambda s: (f"open({str(s)!r}, 'w').close()",)),
    (exec, "(builtins|__builtin__).exec", lambda s: (f"open({str(s)!r}, 'w').close()",)),
    (subprocess.Popen, "(subprocess|commands).Popen", lambda s: (["touch", str(s)],)),
    (subprocess.check_call, "(subprocess|commands).check_call", lambda s: (["touch", str(s)],)),
], ids=["eval", "exec", "Popen", "check_call"])
def test_capgaze_other_dangerous_globals_are_refused(tmp_path, func, name, args, protocol):
    root, bad = crafted_root(tmp_path)
    sentinel = tmp_path / "SENTINEL"
    # even as the array's reconstruction state, where numpy would call it while rebuilding the array
    save_crafted(bad, np.array({"time_stamp": Reduce(func, args(sentinel))}, dtype=object), protocol=protocol)
    # a protocol-2 pickle names some modules as Python 2 did (__builtin__, commands)
    with pytest.raises(DataError, match=rf"^capgaze: .*2008_000885\.npy: refused to unpickle '{name}' \(only numpy"):
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert not sentinel.exists()


@pytest.mark.parametrize("case", ["reconstruct a non-array", "rewire an admitted global", "bytes via another codec"])
def test_capgaze_admitted_globals_cannot_be_abused(tmp_path, case):
    """The globals numpy's pickles need are admitted only as stand-ins that build data: they cannot
    be called on other classes, rebound through BUILD, or used as general-purpose helpers."""
    root, bad = crafted_root(tmp_path)
    if case == "reconstruct a non-array":  # numpy's _reconstruct builds any ndarray subclass's __new__
        save_crafted(bad, Reduce(RECONSTRUCT, (np.dtype, (0,), b"b")))
        expected = "of 'numpy.dtype' (numpy.ndarray only)"
    elif case == "rewire an admitted global":  # PROTO 2, GLOBAL numpy dtype, BUILD (None, {'build': 1})
        save_crafted(bad, raw=b"\x80\x02cnumpy\ndtype\nN}U\x05buildK\x01s\x86b.")
        expected = "a change to 'numpy.dtype'"
    else:  # PROTO 2, GLOBAL _codecs encode, ('x', 'rot13'), REDUCE
        save_crafted(bad, raw=b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R.")
        expected = "'_codecs.encode' with arguments ('x', 'rot13')"
    with pytest.raises(DataError, match=r"2008_000885\.npy: refused to unpickle ") as err:
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert expected in str(err.value)


def test_capgaze_forged_object_dtype_is_refused_not_dereferenced(tmp_path):
    """numpy's own dtype.__setstate__ trusts the flags in the pickle: a void dtype with an object
    field but no object flag lets raw bytes from the file become object pointers (numpy's unpickler
    then crashes, or worse, when the reader touches a sample). Run in a child process, so a crash
    fails this test instead of ending the test run."""
    root, bad = crafted_root(tmp_path)
    forged = Reduce(np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
    samples = Reduce(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (24,), forged, False, b"A" * 8 * 24))
    save_crafted(bad, np.array(dict(gaze_dict(24, 0, {}), left_eye=samples), dtype=object))
    proc = subprocess.run([sys.executable, "-m", "harness", "datasets", "info", "capgaze", "--data-dir", str(root),
                           "--cache-dir", str(tmp_path / "cache")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines() == [
        f"Error: capgaze: {bad}: refused to unpickle numpy.dtype('V8', False, True) (simple types only) "
        "(only numpy arrays, dicts, lists, numbers and strings are allowed)"]
    # the same forged fields on a dtype named as a simple type are refused by their state
    forged.args = ("O8", False, True)
    save_crafted(bad, np.array(dict(gaze_dict(24, 0, {}), left_eye=samples), dtype=object))
    with pytest.raises(DataError, match=r"refused to unpickle a numpy\.dtype 'O8' with the state \(3, '\|', None, "
                                        r"\('a',\).*\(no fields, subarrays or metadata\)"):
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")


def test_capgaze_fixture_reads_as_numpy_does_without_allow_pickle(tmp_path, monkeypatch):
    """The legitimate files give what np.load(allow_pickle=True, encoding='latin1') gives (same
    types, dtypes and numbers), while np.load is never asked to unpickle."""
    from plugins.datasets.capgaze import CapGaze

    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    paths = sorted((root / "gaze_converted_2").glob("*/gaze/*.npy"))
    assert len(paths) == 3
    expected = {p: np.load(p, allow_pickle=True, encoding="latin1").item() for p in paths}
    real_load = np.load

    def no_pickle_load(*args, **kwargs):
        assert not kwargs.get("allow_pickle"), "np.load(allow_pickle=True) runs code from the file"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(np, "load", no_pickle_load)
    reader = CapGaze()
    for path, want in expected.items():
        got = reader._read_gaze(path)
        assert list(got) == list(want)
        for key in want:
            assert type(got[key]) is type(want[key]), key
            if isinstance(want[key], np.ndarray):
                assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape
                assert got[key].tobytes() == want[key].tobytes()
            else:
                assert got[key] == want[key], key
    # and the whole conversion still gives the numbers of test_capgaze_samples_eyes_and_captions
    _, ds = load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    rec = ds.remove_columns("image").to_list()[0]
    assert [(f["subject"], f["x"], f["y"], f["start_ms"]) for f in rec["fixations"]] == [
        ("1", pytest.approx(0.25 * W - 0.5), pytest.approx(0.5 * H - 0.5), pytest.approx(250.0)),
        ("2", 0.0, float(H - 1), pytest.approx(250.0)),
        ("2", pytest.approx(0.5 * W - 0.5), pytest.approx(0.2 * H - 0.5), pytest.approx(350.0)),
    ]


def test_capgaze_recordings_without_their_image_are_a_counted_skip(tmp_path):
    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    save_gaze(root / "gaze_converted_2" / "2" / "gaze" / "2009_000001.npy", gaze_dict(20, 0, {10: (0.5, 0.5)}))
    obj, ds = load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert len(ds) == 1
    assert obj.stats["skipped_missing_image"] == 1
    assert any(line.startswith("2009_000001: gaze recordings without their image") for line in obj.skipped)


@pytest.mark.parametrize("key, value, message", [
    ("time_stamp", [None] * 20, "time_stamp of sample 10 is None, not a number (seconds)"),
    ("time_stamp", [str(i * 0.025) for i in range(20)], "time_stamp of sample 10 is '0.25', not a number (seconds)"),
    ("left_eye", 5, "left_eye is 5, expected a list with one entry per sample"),
    ("time_stamp", 5, "time_stamp is 5, expected a list with one entry per sample"),
])
def test_capgaze_fields_of_another_type_name_the_file(tmp_path, key, value, message):
    """time_stamp of None ("TypeError: float() argument must be ...") and left_eye = 5 ("object of type
    'int' has no len()") ended as "converting ... failed", naming no file (found by the converter QA,
    round 2); the text '0.25' was read as a time."""
    root = tmp_path / "capgaze"
    write_capgaze(root, fixture_images())
    bad = root / "gaze_converted_2" / "2" / "gaze" / "2008_000885.npy"
    data = gaze_dict(20, 0, {10: (0.01, 0.99), 14: (0.5, 0.2)})
    data[key] = value
    save_gaze(bad, data)
    with pytest.raises(DataError) as exc:
        load_gaze_dataset("capgaze", data_dir=root, cache_dir=tmp_path / "cache")
    assert str(exc.value) == f"capgaze: {bad}: {message}"
