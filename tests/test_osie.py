"""The OSIE plugin against the real data: counts, coordinate convention, caching, CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from harness.cli import main
from harness.data import GazeDataset, load_gaze_dataset
from plugins.datasets.osie import OSIE


@pytest.fixture(scope="module")
def raw_mat(osie_dir):
    """The .mat read independently of the plugin (default loadmat options, no squeezing)."""
    return scipy.io.loadmat(str(osie_dir / "eye" / "fixations.mat"))["fixations"]


def _raw_subjects(raw_mat, i):
    entry = raw_mat[i, 0][0, 0]
    return str(entry["img"][0]), [s[0, 0] for s in entry["subjects"][:, 0]]


def test_counts_match_the_source(osie_dataset, osie, raw_mat):
    assert len(osie_dataset) == 700
    assert raw_mat.shape == (700, 1)
    # every fixation whose 1-based position lies on the 800x600 pixel-centre grid survives
    kept = 0
    for i in range(700):
        _, subjects = _raw_subjects(raw_mat, i)
        for s in subjects:
            x = s["fix_x"].astype(float).ravel()
            y = s["fix_y"].astype(float).ravel()
            kept += int(((x >= 1) & (x <= 800) & (y >= 1) & (y <= 600)).sum())
    info = osie.info()
    assert kept == 98321
    assert info["fixations"] == kept
    assert info["images"] == 700
    assert info["subjects"] == 15
    assert info["dropped"] == {"dropped_invalid": 0, "dropped_out_of_bounds": 0}
    assert info["skipped"] == {}
    assert info["fixations_per_image"] == {"mean": pytest.approx(98321 / 700), "min": 111, "max": 179}


def test_source_is_one_based_and_converted_to_zero_based(osie_dataset, osie):
    """OSIE stores MATLAB 1-based pixel indices: no value below 1 or above the image size, and
    converted coordinates cover the 0-indexed grid [0, w-1] x [0, h-1]."""
    lo_x, hi_x = osie.stats["source_x_range"]
    lo_y, hi_y = osie.stats["source_y_range"]
    assert (lo_x, hi_x, lo_y, hi_y) == pytest.approx((1.2, 799.2, 1.2, 599.2))
    assert 1 <= lo_x and hi_x <= 800 and 1 <= lo_y and hi_y <= 600
    fix = osie_dataset.select_columns(["fixations", "width", "height"]).with_format("arrow")[:]
    assert set(fix.column("width").to_pylist()) == {800}
    assert set(fix.column("height").to_pylist()) == {600}
    import pyarrow.compute as pc

    flat = pc.list_flatten(fix.column("fixations").combine_chunks())
    xs = flat.field("x").to_numpy()
    ys = flat.field("y").to_numpy()
    assert xs.min() >= 0 and xs.max() <= 799 and ys.min() >= 0 and ys.max() <= 599
    assert xs.min() == pytest.approx(lo_x - 1, abs=1e-4)
    assert ys.max() == pytest.approx(hi_y - 1, abs=1e-4)


def test_first_and_scalar_records_equal_the_mat_minus_one(osie_dataset, raw_mat):
    img, subjects = _raw_subjects(raw_mat, 0)
    rec = osie_dataset[0]
    assert rec["stimulus_id"] == img.removesuffix(".jpg") == "1001"
    first = rec["fixations"][0]
    s01 = subjects[0]
    assert first["subject"] == "s01"
    assert first["x"] == np.float32(s01["fix_x"].ravel()[0] - 1)
    assert first["y"] == np.float32(s01["fix_y"].ravel()[0] - 1)
    assert first["duration_ms"] == float(s01["fix_duration"].ravel()[0])
    assert math.isnan(first["start_ms"])
    # all fixations of record 0, in order, subject by subject
    expect = [(f"s{j + 1:02d}", float(x) - 1, float(y) - 1, float(d))
              for j, s in enumerate(subjects)
              for x, y, d in zip(s["fix_x"].ravel(), s["fix_y"].ravel(), s["fix_duration"].ravel())]
    got = [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in rec["fixations"]]
    assert [g[0] for g in got] == [e[0] for e in expect]
    np.testing.assert_allclose([g[1:] for g in got], [e[1:] for e in expect], rtol=0, atol=1e-4)
    # 1311.jpg: subject 4 has a single fixation, stored by MATLAB as scalars
    i = 310
    img, subjects = _raw_subjects(raw_mat, i)
    assert img == "1311.jpg" and subjects[3]["fix_x"].size == 1
    rec = osie_dataset[i]
    s04 = [f for f in rec["fixations"] if f["subject"] == "s04"]
    assert len(s04) == 1
    assert s04[0]["x"] == pytest.approx(float(subjects[3]["fix_x"].ravel()[0]) - 1, abs=1e-4)
    assert s04[0]["duration_ms"] == float(subjects[3]["fix_duration"].ravel()[0])


def test_records_are_canonical(osie_dataset):
    from harness.schema import FEATURES, Fixations

    assert osie_dataset.features == FEATURES
    rec = osie_dataset[699]
    assert rec["stimulus_id"] == "1700"
    assert rec["image"].size == (800, 600)
    assert rec["label"] is None and rec["objects"] is None and rec["captions"] is None
    fx = Fixations.from_record(rec)
    assert fx.n_subjects == 15
    assert sorted({f["subject"] for f in rec["fixations"]}) == [f"s{i:02d}" for i in range(1, 16)]


def test_load_by_name_through_the_registry(osie_dir, osie_cache):
    obj, ds = load_gaze_dataset("osie", data_dir=osie_dir, cache_dir=osie_cache)
    assert isinstance(obj, OSIE) and isinstance(obj, GazeDataset)
    assert len(ds) == 700
    assert obj.pixels_per_degree == 24.0 and obj.tasks == ("free-viewing",)


def test_second_load_reads_the_cache_without_parsing(osie, osie_dir, osie_cache, monkeypatch):
    def tripwire(*args, **kwargs):
        raise AssertionError("the cached load parsed the source again")

    monkeypatch.setattr(scipy.io, "loadmat", tripwire)
    monkeypatch.setattr(OSIE, "convert", tripwire)
    again = OSIE(data_dir=osie_dir, cache_dir=osie_cache)
    ds = again.load()
    assert len(ds) == 700
    assert again.cache_path() == osie.cache_path()
    assert again.stats == osie.stats  # counters come back from the cache's meta.json


class _Counting(OSIE):
    calls = 0

    def convert(self, root):
        _Counting.calls += 1
        yield from super().convert(root)


def test_processes_loading_a_fresh_cache_at_once_convert_once(small_osie, tmp_path):
    # every rank of torchrun loads the dataset at the same moment: one converts, the others wait
    # and read its conversion (each used to convert the whole dataset itself)
    import threading
    import time

    class Slow(_Counting):
        def convert(self, root):
            time.sleep(0.5)  # long enough for every loader to arrive while the first converts
            yield from super().convert(root)

    root = small_osie(n=4)
    _Counting.calls = 0
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(Slow(data_dir=root, cache_dir=tmp_path / "cache").load()))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _Counting.calls == 1 and len(loaded) == 3
    assert all(ds["stimulus_id"] == loaded[0]["stimulus_id"] and len(ds) == 4 for ds in loaded)


def test_cache_is_invalidated_by_source_or_converter_changes(small_osie, tmp_path):
    root = small_osie(n=4)
    cache = tmp_path / "cache"
    _Counting.calls = 0
    first = _Counting(data_dir=root, cache_dir=cache)
    ds = first.load()
    assert len(ds) == 4 and _Counting.calls == 1
    _Counting(data_dir=root, cache_dir=cache).load()
    assert _Counting.calls == 1  # unchanged: served from the cache

    # the converter changed
    class Bumped(_Counting):
        converter_version = "1-test"

    bumped = Bumped(data_dir=root, cache_dir=cache)
    bumped.load()
    assert _Counting.calls == 2 and bumped.fingerprint() != first.fingerprint()

    # a source file changed in place: same name, new content
    cell = scipy.io.loadmat(str(root / "eye" / "fixations.mat"))["fixations"]
    cell[0, 0][0, 0]["subjects"][0, 0][0, 0]["fix_x"][0, 0] = 11.0
    scipy.io.savemat(str(root / "eye" / "fixations.mat"), {"fixations": cell})
    changed = _Counting(data_dir=root, cache_dir=cache)
    ds = changed.load()
    assert _Counting.calls == 3 and changed.fingerprint() != first.fingerprint()
    assert ds[0]["fixations"][0]["x"] == 10.0

    # a stimulus changed (bytes appended: still a valid JPEG, but different content)
    with open(root / "stimuli" / "1002.jpg", "ab") as f:
        f.write(b"\0")
    _Counting(data_dir=root, cache_dir=cache).load()
    assert _Counting.calls == 4


def test_fingerprint_depends_on_content_not_location(small_osie, tmp_path):
    import shutil

    a = small_osie("a", n=3)
    # a copy, not a second savemat: MAT headers carry their creation time, so two saves differ
    b = Path(shutil.copytree(a, tmp_path / "b"))
    assert OSIE(data_dir=a, cache_dir=tmp_path / "c").fingerprint() == OSIE(data_dir=b, cache_dir=tmp_path / "c").fingerprint()


def test_an_edit_that_puts_size_and_mtime_back_still_changes_the_fingerprint(small_osie, tmp_path):
    """The memo of file hashes was keyed by size and mtime alone: rewriting a byte and restoring
    the mtime (os.utime, touch -r) kept serving the old table."""
    root = small_osie(n=3)
    cache = tmp_path / "c"
    before = OSIE(data_dir=root, cache_dir=cache).fingerprint()
    mat = root / "eye" / "fixations.mat"
    st = mat.stat()
    data = bytearray(mat.read_bytes())
    data[-1] ^= 0x01  # the same size
    mat.write_bytes(bytes(data))
    os.utime(mat, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (mat.stat().st_size, mat.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert OSIE(data_dir=root, cache_dir=cache).fingerprint() != before


def test_plugin_module_is_light():
    code = ("import sys, plugins.datasets.osie, harness.data; "
            "heavy = [m for m in ('datasets', 'scipy', 'torch', 'transformers', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())


def test_cli_info(osie_dir, osie_cache, osie):
    runner = CliRunner()
    res = runner.invoke(main, ["datasets", "info", "osie", "--data-dir", str(osie_dir),
                               "--cache-dir", str(osie_cache), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert (info["images"], info["subjects"], info["fixations"]) == (700, 15, 98321)
    assert info["fingerprint"] == osie.fingerprint()
    assert info["data_dir"] == str(osie_dir)
    assert info["cache_dir"].startswith(str(osie_cache))
    res = runner.invoke(main, ["datasets", "info", "osie", "--data-dir", str(osie_dir), "--cache-dir", str(osie_cache)])
    assert res.exit_code == 0, res.output
    assert "images:              700" in res.output
    assert "fixations per image: mean 140.5, min 111, max 179" in res.output
    assert str(osie_dir) in res.output and osie.fingerprint() in res.output


def test_cli_missing_data_dir_is_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    res = CliRunner().invoke(main, ["datasets", "info", "osie", "--data-dir", str(missing)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(missing) in lines[0]
