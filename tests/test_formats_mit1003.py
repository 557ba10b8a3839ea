"""MIT1003 in its original layout (ALLSTIMULI/*.jpeg + DATA/<user>/<image>.mat raw 240 Hz traces).

The fixture traces hold still at known positions between 5-sample saccades, so the authors'
fixation detector must return those positions exactly; an x/y swap, a -1 or a screen offset moves
or drops them. The port of checkFixations.m is pinned to the MATLAB original by golden outputs
produced with GNU Octave 7.3 running the authors' file on the traces of :func:`judd_trace`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from harness.data import load_gaze_dataset
from harness.errors import DataError
from plugins.datasets._judd_fixations import check_fixations
from plugins.datasets.mit1003 import MIT1003


# ----------------------------------------------------------------------------- port vs MATLAB
def judd_trace(kind: int) -> np.ndarray:
    """Deterministic 240 Hz test traces (no RNG, so the golden values never drift)."""
    i = np.arange(720, dtype=np.float64)
    if kind == 0:  # steady fixations joined by 5-sample saccades, small jitter
        targets = [(512, 384), (130, 610), (890, 95), (400, 420), (760, 700), (60, 40), (520, 300)]
        dwell = [70, 95, 60, 130, 85, 110, 170]
        pts = []
        for k, ((tx, ty), d) in enumerate(zip(targets, dwell)):
            if k:
                px, py = targets[k - 1]
                pts += [(px + (tx - px) * s / 5, py + (ty - py) * s / 5) for s in range(1, 5)]
            pts += [(tx, ty)] * d
        xy = np.array(pts[:720], dtype=np.float64)
        n = len(xy)
        xy[:, 0] += 0.6 * np.sin(0.9 * i[:n])
        xy[:, 1] += 0.6 * np.cos(1.7 * i[:n])
        return xy
    if kind == 1:  # as 0 with a NaN gap and a blink (negative values)
        xy = judd_trace(0)
        xy[200:206] = np.nan
        xy[400:410] = [-1.0, -1.0]
        return xy
    # kind 2: smooth drift with jumps every 97 samples
    x = 300 + 80 * np.sin(i / 37) + 3 * np.sin(2.1 * i) + 150 * np.floor(i / 97) % 450
    y = 200 + 60 * np.cos(i / 53) + 3 * np.cos(1.3 * i) + 90 * (np.floor(i / 97) % 4)
    return np.column_stack([x, y])


# [Fix.start, Fix.end, Fix.duration, Fix.medianXY] from checkFixations.m under Octave 7.3
GOLDEN = {
    0: [
        [1, 65, 270.83333333333331, 512.05038467341501, 384.01221050599901],
        [79, 164, 358.33333333333331, 130.10798347277236, 610.00823084224567],
        [178, 228, 212.5, 889.98247124717125, 95.028115527697068],
        [242, 362, 504.16666666666669, 399.90431814410618, 419.98834036572941],
        [376, 451, 316.66666666666669, 760.06018102848293, 699.98779349674328],
        [465, 565, 420.83333333333331, 60.058291142507933, 40.005356000317867],
        [579, 720, 591.66666666666663, 519.91322938142378, 299.9821601111953],
    ],
    1: [
        [1, 65, 270.83333333333331, 512.05038467341501, 384.01221050599901],
        [79, 164, 358.33333333333331, 130.10798347277236, 610.00823084224567],
        [178, 228, 212.5, 889.98247124717125, 95.028115527697068],
        [242, 362, 504.16666666666669, 399.90431814410618, 419.98834036572941],
        [376, 395, 83.333333333333329, 760.01992490237194, 699.92270211505001],
        [415, 451, 154.16666666666666, 760.09519145886202, 700.01331221810085],
        [465, 565, 420.83333333333331, 60.058291142507933, 40.005356000317867],
        [579, 720, 591.66666666666663, 519.91322938142378, 299.9821601111953],
    ],
    2: [
        [1, 92, 383.33333333333331, 365.5877997472773, 239.14089185690901],
        [102, 189, 366.66666666666669, 394.3773740921169, 235.8838512872033],
        [199, 286, 366.66666666666669, 618.7098535894927, 371.18773294011794],
        [296, 383, 366.66666666666669, 322.46401357035006, 524.574348327645],
        [393, 480, 366.66666666666669, 392.81117019961493, 178.87238902454476],
        [490, 577, 366.66666666666669, 666.13205744188338, 241.46956695452633],
        [587, 674, 366.66666666666669, 233.82873333759275, 426.3681228903514],
        [684, 720, 154.16666666666666, 457.71083786089406, 516.79334804778966],
    ],
}


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_check_fixations_port_matches_matlab(kind):
    fix = check_fixations(judd_trace(kind))
    got = np.column_stack([fix.start, fix.end, fix.duration_ms, fix.x, fix.y])
    np.testing.assert_allclose(got, np.asarray(GOLDEN[kind]), rtol=1e-12, atol=1e-9)


def test_check_fixations_without_saccades_is_one_fixation():
    trace = np.column_stack([np.full(100, 12.0), np.full(100, 7.5)])
    trace[10] = np.nan
    fix = check_fixations(trace)
    assert (fix.start.tolist(), fix.end.tolist()) == ([1], [100])
    assert fix.duration_ms.tolist() == [pytest.approx(1000 * 100 / 240)]
    assert (fix.x.tolist(), fix.y.tolist()) == ([12.0], [7.5])


def test_check_fixations_huge_and_missing_samples_compute_silently_as_matlab_does():
    """A sample of 1e300 squares to Inf and Inf - Inf is NaN, as in MATLAB: the port keeps those
    semantics without a numpy RuntimeWarning per trace; an all-NaN trace is one fixation at NaN, which the converter drops
    as outside the image."""
    import warnings

    trace = judd_trace(sorted(GOLDEN)[0]).copy()
    glitch = trace.copy()
    glitch[100:104] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fix = check_fixations(glitch)
        empty = check_fixations(np.full((50, 2), np.nan))
    assert len(fix) > 0 and np.isfinite(fix.start).all()
    assert np.isnan(empty.x).all() and np.isnan(empty.y).all() and len(empty) == 1


# ----------------------------------------------------------------------------- original layout
def hold_trace(points, first=70, dwell=90, total=720):
    """Still at each point (the first for ``first`` samples, then ``dwell``), 5-sample saccades."""
    out: list[tuple[float, float]] = [points[0]] * first
    for (px, py), (tx, ty) in zip(points, points[1:]):
        out += [(px + (tx - px) * s / 5, py + (ty - py) * s / 5) for s in range(1, 5)]
        out += [(tx, ty)] * dwell
    out += [points[-1]] * max(0, total - len(out))
    return np.asarray(out[:total], dtype=np.float64)


# user -> image -> positions (the first one is the central cross-hair fixation)
TRACES = {
    "CNG": {
        "iA": [(40, 30), (10.25, 20.75), (70.5, 5.25), (-30, 10), (20, 50)],  # (-30, 10): left of the image
        "i" + "long_name_" * 7: [(30, 40), (55.5, 75.25), (5, 70)],  # portrait 60x80
    },
    "ajs": {
        "iA": [(40, 30), (79, 59), (80.4, 30), (3, 3)],  # (79, 59) last pixel centre; x=80.4 > 79 is out
    },
}
SIZES = {"iA": (80, 60), "i" + "long_name_" * 7: (60, 80)}


def write_mit1003(root: Path) -> None:
    (root / "ALLSTIMULI").mkdir(parents=True)
    for stem, size in SIZES.items():
        Image.new("RGB", size, (90, 120, 150)).save(root / "ALLSTIMULI" / f"{stem}.jpeg")
    for user, traces in TRACES.items():
        (root / "DATA" / user).mkdir(parents=True)
        for stem, points in traces.items():
            var = stem[:63]  # MATLAB truncates variable names to 63 characters
            struct = {"subName": user, "imgName": f"{stem}.jpeg", "Nreps": 1,
                      "DATA": {"block": 1, "trial": 1, "eyeData": hold_trace(points)}}
            scipy.io.savemat(root / "DATA" / user / f"{stem}.mat", {var: struct})
    # calibration files sit directly under DATA/ and are not user folders
    scipy.io.savemat(root / "DATA" / "CNG_CalibrationData.mat", {"CalData": np.zeros(3)})


def rows(ds) -> dict[str, dict]:
    return {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}


def test_mit1003_original_layout(tmp_path):
    root = tmp_path / "mit1003"
    write_mit1003(root)
    obj, ds = load_gaze_dataset("mit1003", data_dir=root, cache_dir=tmp_path / "cache")
    recs = rows(ds)
    assert set(recs) == {"iA", "i" + "long_name_" * 7}

    a = recs["iA"]
    assert (a["width"], a["height"]) == (80, 60)
    got = sorted((f["subject"], f["x"], f["y"]) for f in a["fixations"])
    assert got == sorted([("CNG", 10.25, 20.75), ("CNG", 70.5, 5.25), ("CNG", 20.0, 50.0),
                          ("ajs", 79.0, 59.0), ("ajs", 3.0, 3.0)])
    # onsets and durations are the detector's, in ms from stimulus onset
    fix = check_fixations(hold_trace(TRACES["CNG"]["iA"]))
    cng = [f for f in a["fixations"] if f["subject"] == "CNG"]
    keep = [1, 2, 4]  # fixation 0 is the cross-hair, 3 lies outside the image
    assert [f["start_ms"] for f in cng] == pytest.approx(((fix.start[keep] - 1) * 1000 / 240).tolist())
    assert [f["duration_ms"] for f in cng] == pytest.approx(fix.duration_ms[keep].tolist())
    assert cng[0]["start_ms"] == pytest.approx((70 + 4 + 1 - 1) * 1000 / 240, abs=1000 / 240 * 3)

    b = recs["i" + "long_name_" * 7]
    assert (b["width"], b["height"]) == (60, 80)
    assert sorted((f["x"], f["y"]) for f in b["fixations"]) == [(5.0, 70.0), (55.5, 75.25)]

    assert obj.stats["dropped_initial_fixation"] == 3
    assert obj.stats["dropped_out_of_bounds"] == 2
    assert obj.stats["missing_recordings"] == 1  # ajs never saw the portrait image
    info = obj.info()
    assert info["pixels_per_degree"] == 34.0 and info["subjects"] == 2


def test_mit1003_recordings_without_their_image_are_a_counted_skip(tmp_path):
    """Recordings whose image is missing from ALLSTIMULI were ignored: "skipped stimuli: none"."""
    root = tmp_path / "mit1003"
    write_mit1003(root)
    (root / "ALLSTIMULI" / "iA.jpeg").unlink()
    obj, ds = load_gaze_dataset("mit1003", data_dir=root, cache_dir=tmp_path / "cache")
    assert set(rows(ds)) == {"i" + "long_name_" * 7}
    info = obj.info()
    assert info["skipped"] == {"skipped_missing_image": 1}
    assert info["skipped_items"] == ["iA: recordings without their image in ALLSTIMULI"]


def test_mit1003_bad_mat_names_the_file(tmp_path):
    root = tmp_path / "mit1003"
    write_mit1003(root)
    bad = root / "DATA" / "ajs" / "iA.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(DataError, match="ajs/iA.mat"):
        load_gaze_dataset("mit1003", data_dir=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("eye", [np.array([10.0, 20, 30, 40, 50]), np.arange(2 * 300, dtype=float).reshape(2, 300)])
def test_mit1003_trace_that_is_not_one_row_per_sample_is_refused(tmp_path, eye):
    """A flattened (saved as 1 x 5) or transposed (2 x 300) eyeData was read as one or two samples of
    many columns: that subject's recording gave no fixation, and nothing said so (found by QA)."""
    root = tmp_path / "mit1003"
    write_mit1003(root)
    struct = {"subName": "ajs", "imgName": "iA.jpeg", "Nreps": 1, "DATA": {"block": 1, "trial": 1, "eyeData": eye}}
    scipy.io.savemat(root / "DATA" / "ajs" / "iA.mat", {"iA": struct})
    with pytest.raises(DataError, match=r"ajs/iA.mat: eyeData has shape \((1, 5|2, 300)\), expected one row per sample"):
        load_gaze_dataset("mit1003", data_dir=root, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- download
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def file_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _zip_folder(src: Path, top: str, dest: Path) -> str:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted((src / top).rglob("*")):
            zf.write(p, p.relative_to(src).as_posix())
        zf.writestr("__MACOSX/._junk", b"resource fork")
    return hashlib.md5(dest.read_bytes()).hexdigest()


def test_mit1003_download_from_archives(tmp_path, file_server, monkeypatch):
    served, url = file_server
    original = tmp_path / "original"
    write_mit1003(original)
    md5_stim = _zip_folder(original, "ALLSTIMULI", served / "ALLSTIMULI.zip")
    md5_data = _zip_folder(original, "DATA", served / "DATA.zip")

    class Local(MIT1003):
        archives = ((url + "ALLSTIMULI.zip", md5_stim), (url + "DATA.zip", md5_data))

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    obj = Local(cache_dir=tmp_path / "cache")
    ds = obj.load()
    assert sorted(rows(ds)) == sorted(SIZES)
    installed = obj.root()
    assert installed == tmp_path / "cache" / "data" / "mit1003"
    assert not (installed / "__MACOSX").exists() and not list(installed.glob("*.zip"))

    class Corrupt(MIT1003):
        archives = ((url + "ALLSTIMULI.zip", "0" * 32),)

    broken = Corrupt(cache_dir=tmp_path / "cache2")
    with pytest.raises(DataError, match="md5"):
        broken.load()
    assert not (tmp_path / "cache2" / "data" / "mit1003").exists()


def cell(*items) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


@pytest.mark.parametrize("eye, shown", [
    (np.array([["10", "20"], ["30", "40"]]), "text ('10')"),
    (cell(np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]])), "a MATLAB cell array"),
])
def test_mit1003_trace_that_is_not_numbers_names_the_file(tmp_path, eye, shown):
    """eyeData of text ended as "converting ... failed: ValueError: could not convert string to float",
    naming no file (found by the converter QA, round 2); the text '10' would have been read as 10."""
    root = tmp_path / "mit1003"
    write_mit1003(root)
    struct = {"subName": "ajs", "imgName": "iA.jpeg", "Nreps": 1, "DATA": {"block": 1, "trial": 1, "eyeData": eye}}
    path = root / "DATA" / "ajs" / "iA.mat"
    scipy.io.savemat(path, {"iA": struct})
    with pytest.raises(DataError) as exc:
        load_gaze_dataset("mit1003", data_dir=root, cache_dir=tmp_path / "cache")
    assert str(exc.value).startswith(f"mit1003: {path}: iA.DATA(1).eyeData holds {shown}, not numbers")
