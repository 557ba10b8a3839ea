"""Bad input: missing folders, truncated .mat, corrupt JPEG, stimuli without fixations, failed
downloads, interrupted conversions. Each is a one-line DataError naming the file, or a counted skip,
and never leaves a half-written cache or data folder behind. Broken inputs are built in tmp_path
from copies of the real OSIE files."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.data import GazeDataset
from harness.data.download import fetch, tree_digest
from harness.errors import DataError
from plugins.datasets.osie import OSIE


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------- missing data
def test_explicit_missing_folder_names_it(tmp_path):
    missing = tmp_path / "no-such-osie"
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=missing, cache_dir=tmp_path / "cache").load()
    assert str(missing) in _one_line(exc)
    assert not (tmp_path / "cache" / "data").exists()


def test_missing_mat_file_names_it(small_osie, tmp_path):
    root = small_osie(n=2)
    (root / "eye" / "fixations.mat").unlink()
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=tmp_path / "cache").load()
    assert str(root / "eye" / "fixations.mat") in _one_line(exc)


def test_not_found_anywhere_without_download_lists_the_folders(tmp_path, monkeypatch):
    class NoDownload(GazeDataset):
        name = "nodownload"
        source_url = "https://example.org/data"

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError) as exc:
        NoDownload(cache_dir=tmp_path / "cache").root()
    msg = _one_line(exc)
    assert str(tmp_path / "data" / "nodownload") in msg
    assert str(tmp_path / "cache" / "data" / "nodownload") in msg
    assert "https://example.org/data" in msg


def test_resolution_order(osie_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(osie_dir.parent))
    assert OSIE(cache_dir=tmp_path).root() == osie_dir
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "cache" / "data" / "osie").mkdir(parents=True)
    assert OSIE(cache_dir=tmp_path / "cache").root() == tmp_path / "cache" / "data" / "osie"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    assert OSIE().root() == tmp_path / "cache" / "data" / "osie"
    assert OSIE(data_dir=osie_dir).root() == osie_dir  # explicit wins over everything


# ----------------------------------------------------------------------------- damaged files
def test_truncated_mat_is_a_one_line_error_and_leaves_no_cache(small_osie, tmp_path):
    root = small_osie(n=3)
    mat = root / "eye" / "fixations.mat"
    data = mat.read_bytes()
    mat.write_bytes(data[: len(data) // 2])
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=cache).load()
    assert str(mat) in _one_line(exc)
    assert _leftovers(cache / "arrow" / "osie") == []


def test_corrupt_jpeg_is_a_counted_skip(small_osie, tmp_path):
    root = small_osie(n=5)
    truncated = root / "stimuli" / "1002.jpg"
    truncated.write_bytes(truncated.read_bytes()[:5000])
    garbage = root / "stimuli" / "1004.jpg"
    garbage.write_bytes(b"this is not a jpeg" * 100)
    obj = OSIE(data_dir=root, cache_dir=tmp_path / "cache")
    ds = obj.load()
    assert ds["stimulus_id"] == ["1001", "1003", "1005"]
    info = obj.info()
    assert info["skipped"] == {"skipped_corrupt_image": 2}
    assert info["images"] == 3
    assert any(str(truncated) in item for item in info["skipped_items"])
    assert any(str(garbage) in item for item in info["skipped_items"])
    # the counters survive the cache
    assert OSIE(data_dir=root, cache_dir=tmp_path / "cache").info()["skipped"] == {"skipped_corrupt_image": 2}
    # a copy of the folder elsewhere reuses the table (same content); its skipped files are named in
    # the copy (they named the folder that converted first)
    import shutil

    copy = tmp_path / "elsewhere" / "osie"
    shutil.copytree(root, copy)
    again = OSIE(data_dir=copy, cache_dir=tmp_path / "cache")
    items = again.info()["skipped_items"]
    assert again.cache_path() == obj.cache_path() and len(items) == 2
    assert all(item.startswith(str(copy / "stimuli")) and str(root) + "/" not in item for item in items), items


def test_an_image_with_an_exif_orientation_is_stored_as_the_observers_saw_it(small_osie, tmp_path):
    """datasets turns an image by its EXIF orientation when it decodes it; the observers saw the
    stored pixels (MATLAB, Psychtoolbox, PsychoPy and pysaliency ignore the tag). A rotated image
    failed its stimulus ("attention map has shape (800, 600)"), a mirrored one was scored against
    fixations on its mirror image (found by QA)."""
    from PIL import Image

    root = small_osie(n=4)
    raw = {}
    for name, orientation in (("1001", 6), ("1002", 2)):  # rotated 90 degrees; mirrored (same size)
        path = root / "stimuli" / f"{name}.jpg"
        with Image.open(path) as im:
            exif = im.getexif()
            exif[0x0112] = orientation
            im.save(path, exif=exif.tobytes(), quality=95)
        with Image.open(path) as im:
            assert im.getexif()[0x0112] == orientation
            raw[name] = np.asarray(im.convert("RGB"))
    png = root / "stimuli" / "1003.jpg"  # a PNG (named .jpg) with an orientation: cannot be taken off
    with Image.open(png) as im:
        exif = im.getexif()
        exif[0x0112] = 3
        im.save(png, format="PNG", exif=exif.tobytes())
    obj = OSIE(data_dir=root, cache_dir=tmp_path / "cache")
    ds = obj.load()
    assert ds["stimulus_id"] == ["1001", "1002", "1004"], obj.info()["skipped_items"]
    for i, name in enumerate(("1001", "1002")):
        image = ds[i]["image"]
        assert image.size == (800, 600) and np.array_equal(np.asarray(image.convert("RGB")), raw[name]), name
    info = obj.info()
    assert info["skipped"] == {"skipped_exif_orientation": 1}
    assert any("1003" in item and "EXIF orientation 3 on a PNG image" in item for item in info["skipped_items"])


def test_a_table_converted_before_images_were_stored_as_shown_is_looked_at_once(small_osie, tmp_path, monkeypatch):
    """Tables converted before the EXIF rule keep their turned images, and their fingerprint (of the
    source files) is a new table's: one holding an image with an orientation is refused with what
    to remove; one without is marked in meta.json and used."""
    import json

    import harness.data.base as base

    root = small_osie(n=3)
    path = root / "stimuli" / "1002.jpg"
    with Image.open(path) as im:
        exif = im.getexif()
        exif[0x0112] = 2  # mirrored: the same size, scored against fixations on the mirror image
        im.save(path, exif=exif.tobytes(), quality=95)
    cache = tmp_path / "cache"
    with monkeypatch.context() as m:  # the converter as it was: images kept with their tags
        m.setattr(base, "_as_shown", lambda image: image)
        obj = OSIE(data_dir=root, cache_dir=cache)
        obj.load()
    meta_file = obj.cache_path() / base.META_FILE
    meta = json.loads(meta_file.read_text())
    assert meta.pop(base.AS_STORED) is True  # new tables are marked
    meta_file.write_text(json.dumps(meta))  # as an old table was
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=cache).load()
    assert _one_line(exc) == (f"osie: the converted table {obj.cache_path()} predates images stored as shown: 1 of its "
                              "images (1002) carry an EXIF orientation and decode turned; remove it (rm -r "
                              f"{obj.cache_path()}) and the run folders scored on it, then run again")
    shutil.rmtree(obj.cache_path())
    assert OSIE(data_dir=root, cache_dir=cache).load()["stimulus_id"] == ["1001", "1002", "1003"]  # stored as shown

    # an old table without such an image is used, and marked so that it is looked at once
    meta = json.loads(meta_file.read_text())
    del meta[base.AS_STORED]
    meta_file.write_text(json.dumps(meta))
    assert len(OSIE(data_dir=root, cache_dir=cache).load()) == 3
    assert json.loads(meta_file.read_text())[base.AS_STORED] is True


def test_missing_and_wrong_size_images_are_counted_skips(small_osie, tmp_path):
    root = small_osie(n=4)
    (root / "stimuli" / "1001.jpg").unlink()
    small = root / "stimuli" / "1003.jpg"
    with Image.open(small) as im:
        im.resize((400, 300)).save(small)
    obj = OSIE(data_dir=root, cache_dir=tmp_path / "cache")
    assert obj.load()["stimulus_id"] == ["1002", "1004"]
    assert obj.stats["skipped_missing_image"] == 1
    assert obj.stats["skipped_unexpected_size"] == 1


def test_stimulus_without_fixations_is_a_counted_skip(small_osie, tmp_path):
    def edit(cell):
        # 1002: every subject's fixations emptied; 1003: subject 1 moved outside the image
        for s in cell[1, 0][0, 0]["subjects"][:, 0]:
            for field in ("fix_x", "fix_y", "fix_duration"):
                s[0, 0][field] = np.zeros((1, 0))
        s1 = cell[2, 0][0, 0]["subjects"][0, 0][0, 0]
        s1["fix_x"] = s1["fix_x"] + 900.0

    root = small_osie(n=3, edit=edit)
    import scipy.io

    moved = scipy.io.loadmat(str(root / "eye" / "fixations.mat"))["fixations"][2, 0][0, 0]["subjects"][0, 0][0, 0]
    obj = OSIE(data_dir=root, cache_dir=tmp_path / "cache")
    ds = obj.load()
    assert ds["stimulus_id"] == ["1001", "1003"]
    info = obj.info()
    assert info["skipped"] == {"skipped_no_fixations": 1}
    assert info["dropped"]["dropped_out_of_bounds"] == moved["fix_x"].size
    assert any("1002.jpg" in item for item in info["skipped_items"])
    assert {f["subject"] for f in ds[1]["fixations"]} == {f"s{i:02d}" for i in range(2, 16)}


def test_small_copy_converts_like_the_full_data(small_osie, osie_dataset, tmp_path):
    """The re-saved subset reads exactly like the original (so the broken-input tests above test
    the real format)."""
    ds = OSIE(data_dir=small_osie(n=3), cache_dir=tmp_path / "cache").load()
    def comparable(fixations):  # NaN onsets compare unequal; check them separately
        assert all(np.isnan(f["start_ms"]) for f in fixations)
        return [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in fixations]

    for i in range(3):
        assert comparable(ds[i]["fixations"]) == comparable(osie_dataset[i]["fixations"])


# ----------------------------------------------------------------------------- unsafe stimulus ids
class _RenamesSecond(OSIE):
    """OSIE whose converter gives its second record the id ``new_id`` (ids name files later)."""
    new_id = "../../x"

    def convert(self, root):
        for i, rec in enumerate(super().convert(root)):
            yield {**rec, "stimulus_id": self.new_id} if i == 1 else rec


@pytest.mark.parametrize("bad, reason", [
    ("../../x", "'..' path segment"), ("/tmp/x", "starts with '/'"), ("../../etc/passwd", "'..' path segment"),
    ("a//b", "empty"), ("a\nb", "control character"), ("a\\b", "backslash"), (" 1002", "whitespace"),
])
def test_unsafe_stimulus_id_is_a_one_line_error_naming_the_record(small_osie, tmp_path, monkeypatch, bad, reason):
    root = small_osie(n=3)
    cache = tmp_path / "cache"
    monkeypatch.setattr(_RenamesSecond, "new_id", bad)
    with pytest.raises(DataError) as exc:
        _RenamesSecond(data_dir=root, cache_dir=cache).load()
    msg = _one_line(exc)
    assert msg.startswith(f"osie: record {bad!r}: invalid stimulus_id: ") and reason in msg
    assert _leftovers(cache / "arrow" / "osie") == []


def _replace_cached_id(obj: GazeDataset, index: int, sid: str) -> None:
    """Edit a converted table in place, as a cache written before ids were checked would hold it."""
    import datasets

    data = obj.cache_path() / "data"
    ds = datasets.load_from_disk(str(data))
    ds = ds.map(lambda old, i: {"stimulus_id": sid if i == index else old}, input_columns="stimulus_id",
                with_indices=True)
    ds.save_to_disk(str(data.with_name("edited")))
    del ds
    shutil.rmtree(data)
    os.rename(data.with_name("edited"), data)


def test_a_cache_holding_an_unsafe_id_is_rebuilt_not_trusted(small_osie, tmp_path, monkeypatch):
    root = small_osie(n=3)
    cache = tmp_path / "cache"
    obj = OSIE(data_dir=root, cache_dir=cache)
    obj.load()
    _replace_cached_id(obj, 1, "../../x")
    again = OSIE(data_dir=root, cache_dir=cache)
    assert again.cache_path() == obj.cache_path()  # same fingerprint: only the check can tell
    assert again.load()["stimulus_id"] == ["1001", "1002", "1003"]
    # a cache made by a converter that really yields the id: rebuilding it names the record
    _replace_cached_id(obj, 1, "../../x")
    with pytest.raises(DataError) as exc:
        _RenamesSecond(data_dir=root, cache_dir=cache).load()
    assert _one_line(exc).startswith("osie: record '../../x': invalid stimulus_id: ")
    # the failed conversion leaves nothing of its own; OSIE's table stays (a third-party converter's
    # code is part of its fingerprint, so _RenamesSecond's table has another folder), and OSIE checks
    # and rebuilds it when it reads it, as above
    assert _leftovers(cache / "arrow" / "osie") == [obj.cache_path().name]
    assert OSIE(data_dir=root, cache_dir=cache).load()["stimulus_id"] == ["1001", "1002", "1003"]


# ----------------------------------------------------------------------------- a converter's records
class _EditsSecond(OSIE):
    """OSIE whose second record is edited by ``edit`` (a plugin author's mistake, made on purpose)."""
    edit = staticmethod(lambda rec: rec)

    def convert(self, root):
        for i, rec in enumerate(super().convert(root)):
            yield self.edit(dict(rec)) if i == 1 else rec


def _fix0(rec, **change):
    return {**rec, "fixations": [{**rec["fixations"][0], **change}, *rec["fixations"][1:]]}


@pytest.mark.parametrize("edit, expected", [
    (lambda r: {**r, "width": r["width"] + 10}, "osie: record '1002': width x height 810x600, but its image is 800x600"),
    (lambda r: {k: v for k, v in r.items() if k != "width"}, "osie: record '1002' lacks width"),
    (lambda r: {k: v for k, v in r.items() if k not in ("fixations", "image")}, "osie: record '1002' lacks image, fixations"),
    (lambda r: {**r, "height": "600"}, "osie: record '1002': height must be a positive integer, got '600'"),
    (lambda r: {**r, "height": 0}, "osie: record '1002': height must be a positive integer, got 0"),
    (lambda r: {**r, "image": r["image"] + ".gone"}, "osie: record '1002': image "),
    (lambda r: {**r, "fixations": {"x": [1.0]}}, "osie: record '1002': fixations must be a list of dicts, got dict"),
    (lambda r: _fix0(r, x="12"), "osie: record '1002': fixation x and y must be numbers, got ('12', "),
    (lambda r: {**r, "fixations": [{"x": 1.0, "y": 2.0}]}, "osie: record '1002': a fixation must be a dict with subject, x and y"),
    (lambda r: _fix0(r, x=float("nan")), "osie: record '1002': fixation (nan, "),
    (lambda r: [r], "osie: convert() yielded list, not a record (dict)"),
    (lambda r: {**r, "objects": [{"bbox": [float("nan"), -5, 1e9, -3], "category": "cup"}]},
     "osie: record '1002': an object must be {bbox: [x, y, w, h] finite, w and h >= 0, category: a name}"),
])
def test_a_malformed_record_is_a_one_line_error_naming_it(small_osie, tmp_path, monkeypatch, edit, expected):
    root = small_osie(n=3)
    cache = tmp_path / "cache"
    monkeypatch.setattr(_EditsSecond, "edit", staticmethod(edit))
    with pytest.raises(DataError) as exc:
        _EditsSecond(data_dir=root, cache_dir=cache).load()
    assert _one_line(exc).startswith(expected)
    assert _leftovers(cache / "arrow" / "osie") == []


def _first_subject(field, make):
    def edit(cell):
        subject = cell[1, 0]["subjects"][0, 0][0, 0]
        subject[field][0, 0] = make(subject[field][0, 0])
    return edit


@pytest.mark.parametrize("edit, expected", [
    # the error named neither the file nor the image, and arrays the dataset does not have (found by QA)
    (_first_subject("fix_x", lambda a: a[:, :3] if a.shape[0] == 1 else a[:3]),
     "{mat}: entry 1002.jpg (1002.jpg): subject s01: x, y, duration arrays differ in length (3, "),
    # complex coordinates lost their imaginary part with numpy's warning
    (_first_subject("fix_x", lambda a: a.astype(complex) + 1j),
     "osie: {mat}: entry 1002.jpg, subject 1: bad record (fix_x holds complex128 values, not real numbers)"),
])
def test_osie_fields_that_do_not_fit_are_one_line_naming_file_and_image(small_osie, tmp_path, edit, expected):
    root = small_osie(n=3, edit=edit)
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=tmp_path / "cache").load()
    assert expected.format(mat=root / "eye" / "fixations.mat") in _one_line(exc), _one_line(exc)


def test_a_record_without_fixations_is_skipped_by_the_base_class(small_osie, tmp_path, monkeypatch):
    """A converter that forgets to skip a stimulus whose fixations all fell outside the image (so
    fixation_list returned []) does not get an empty stimulus into the table (the density of no
    fixations is undefined: every run would fail on it): the base class skips and counts it."""
    root = small_osie(n=3)
    monkeypatch.setattr(_EditsSecond, "edit", staticmethod(lambda r: {**r, "fixations": []}))
    obj = _EditsSecond(data_dir=root, cache_dir=tmp_path / "cache")
    assert obj.load()["stimulus_id"] == ["1001", "1003"]
    info = obj.info()
    assert info["skipped"] == {"skipped_no_fixations": 1}
    assert info["skipped_items"] == ["1002: no fixations"]


def test_a_cache_holding_a_stimulus_without_fixations_is_rebuilt(small_osie, tmp_path):
    import datasets

    root = small_osie(n=3)
    cache = tmp_path / "cache"
    obj = OSIE(data_dir=root, cache_dir=cache)
    obj.load()
    data = obj.cache_path() / "data"
    ds = datasets.load_from_disk(str(data))
    ds = ds.map(lambda f, i: {"fixations": [] if i == 1 else f}, input_columns="fixations", with_indices=True)
    ds.save_to_disk(str(data.with_name("edited")))
    del ds
    shutil.rmtree(data)
    os.rename(data.with_name("edited"), data)
    assert min(len(f) for f in datasets.load_from_disk(str(data))["fixations"]) == 0
    again = OSIE(data_dir=root, cache_dir=cache).load()
    assert min(len(f) for f in again["fixations"]) > 0 and len(again) == 3


# ----------------------------------------------------------------------------- interrupted conversion
class _FailsMidway(OSIE):
    exc: BaseException = RuntimeError("simulated crash")

    def convert(self, root):
        for i, rec in enumerate(super().convert(root)):
            if i == 2:
                raise self.exc
            yield rec


@pytest.mark.parametrize("exc", [RuntimeError("simulated crash"), KeyboardInterrupt()])
def test_failure_mid_conversion_leaves_no_cache_and_next_load_works(small_osie, tmp_path, exc):
    root = small_osie(n=4)
    cache = tmp_path / "cache"
    _FailsMidway.exc = exc
    expected = DataError if isinstance(exc, Exception) else KeyboardInterrupt
    with pytest.raises(expected) as info:
        _FailsMidway(data_dir=root, cache_dir=cache).load()
    if expected is DataError:
        assert "simulated crash" in _one_line(info) and str(root) in str(info.value)
    assert _leftovers(cache / "arrow" / "osie") == []
    ds = OSIE(data_dir=root, cache_dir=cache).load()
    assert len(ds) == 4
    assert len(_leftovers(cache / "arrow" / "osie")) == 1


def test_unreadable_cache_is_rebuilt(small_osie, tmp_path):
    root = small_osie(n=2)
    obj = OSIE(data_dir=root, cache_dir=tmp_path / "cache")
    obj.load()
    for arrow in (obj.cache_path() / "data").glob("*.arrow"):
        arrow.write_bytes(b"broken")
    assert len(OSIE(data_dir=root, cache_dir=tmp_path / "cache").load()) == 2


# ----------------------------------------------------------------------------- download
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve(tmp_path):
    """Serve a folder over real HTTP on localhost; returns its base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _mirror(osie_dir: Path, dest: Path) -> Path:
    """A folder laid out like the source's data/, made of links to the real files."""
    for rel in OSIE.data_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(osie_dir / rel, dest / rel)
    return dest


@pytest.mark.slow
def test_download_installs_the_verified_data(osie_dir, tmp_path, serve, monkeypatch):
    base = serve(_mirror(osie_dir, tmp_path / "mirror"))
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(OSIE, "download_base_url", base)
    cache = tmp_path / "cache"
    obj = OSIE(cache_dir=cache)
    root = obj.root()
    assert root == cache / "data" / "osie"
    assert _leftovers(cache / "data") == ["osie"]
    assert tree_digest(root, OSIE.data_files()) == OSIE.data_sha256
    # content-based fingerprint: the downloaded copy shares the cache of the original
    assert obj.fingerprint() == OSIE(data_dir=osie_dir, cache_dir=cache).fingerprint()
    assert OSIE(cache_dir=cache).root() == root  # found in the cache next time, no download


@pytest.mark.slow
def test_processes_missing_the_data_at_once_download_it_once(osie_dir, tmp_path, monkeypatch):
    # every rank of a launcher finds the data missing at the same moment: one downloads, the others
    # wait and use its folder (each used to download everything, then all but one threw it away)
    requests = []

    class Counting(_Quiet):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Counting, directory=str(_mirror(osie_dir, tmp_path / "mirror"))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
        monkeypatch.setattr(OSIE, "download_base_url", f"http://127.0.0.1:{server.server_address[1]}/")
        roots = []
        threads = [threading.Thread(target=lambda: roots.append(OSIE(cache_dir=tmp_path / "cache").root()))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
        server.server_close()
    assert roots == [tmp_path / "cache" / "data" / "osie"] * 3
    assert sorted(requests) == sorted(set(requests)) and len(requests) == len(OSIE.data_files())
    assert _leftovers(tmp_path / "cache" / "data") == ["osie"]


@pytest.mark.slow
def test_a_download_killed_midway_is_cleared_by_the_next(osie_dir, tmp_path, serve, monkeypatch):
    from test_integrity import killed_at_rename

    base = serve(_mirror(osie_dir, tmp_path / "mirror"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    # killed with every file fetched, at the rename into place: the temporary folder stays
    killed_at_rename("from plugins.datasets.osie import OSIE\n"
                     f"OSIE.download_base_url = {base!r}\nOSIE(cache_dir={str(cache)!r}).root()", match=".download-")
    (left,) = _leftovers(cache / "data")
    assert left.startswith(".osie.download-")
    monkeypatch.setattr(OSIE, "download_base_url", base)
    assert OSIE(cache_dir=cache).root() == cache / "data" / "osie"
    assert _leftovers(cache / "data") == ["osie"]


def test_download_checksum_mismatch_installs_nothing(osie_dir, tmp_path, serve, monkeypatch):
    mirror = _mirror(osie_dir, tmp_path / "mirror")
    tampered = mirror / "stimuli" / "1500.jpg"
    tampered.unlink()
    shutil.copyfile(osie_dir / "stimuli" / "1501.jpg", tampered)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(OSIE, "download_base_url", serve(mirror))
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        OSIE(cache_dir=cache).root()
    msg = _one_line(exc)
    assert "sha256" in msg and "does not match" in msg
    assert str(tmp_path / "empty" / "osie") in msg and str(cache / "data" / "osie") in msg
    assert _leftovers(cache / "data") == []


def test_download_from_unreachable_host_fails_fast(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(OSIE, "download_base_url", f"http://127.0.0.1:{port}/")
    with pytest.raises(DataError) as exc:
        OSIE(cache_dir=tmp_path / "cache").load()
    msg = _one_line(exc)
    assert "download failed" in msg and f"127.0.0.1:{port}" in msg
    assert _leftovers(tmp_path / "cache" / "data") == []


def test_fetch_checks_sha256_and_missing_files(tmp_path, serve):
    (tmp_path / "srv").mkdir()
    (tmp_path / "srv" / "a.bin").write_bytes(b"hello")
    base = serve(tmp_path / "srv")
    good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    assert fetch(base + "a.bin", tmp_path / "out" / "a.bin", sha256=good).read_bytes() == b"hello"
    with pytest.raises(DataError, match="does not match"):
        fetch(base + "a.bin", tmp_path / "out" / "b.bin", sha256="0" * 64)
    with pytest.raises(DataError, match="404"):
        fetch(base + "missing.bin", tmp_path / "out" / "c.bin")
    assert _leftovers(tmp_path / "out") == ["a.bin"]  # no .part files, nothing unverified


def test_a_dataset_plugin_without_its_methods_is_one_line_naming_it(tmp_path):
    from harness.errors import PluginError

    class Unfinished(GazeDataset):
        name = "unfinished"

    class Raising(GazeDataset):
        name = "raising"

        def source_files(self, root):
            return [root / name for name in None]  # a plugin's bug

    (tmp_path / "data").mkdir()
    with pytest.raises(PluginError) as exc:
        Unfinished(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache").load()
    assert _one_line(exc) == "dataset 'unfinished' (Unfinished) must implement source_files(root) (docs/plugins.md)"
    with pytest.raises(PluginError) as exc:
        Raising(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache").load()
    assert _one_line(exc) == ("dataset 'raising' (Raising): source_files() failed: TypeError: 'NoneType' object "
                              "is not iterable")


@pytest.mark.parametrize("name", ["../outside/secret.jpg", "{abs}"])
def test_an_image_named_outside_the_data_folder_is_refused(small_osie, tmp_path, monkeypatch, name):
    """OSIE's annotation names each image (``img``): ``../../secret.jpg`` or an absolute path read a
    file from outside the data folder into the cache, as a stimulus, outside the fingerprint."""
    root = small_osie(n=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (800, 600), "red").save(outside / "secret.jpg")
    target = str(outside / "secret.jpg") if name == "{abs}" else str(root / "stimuli" / ".." / ".." / name)
    monkeypatch.setattr(_EditsSecond, "edit", staticmethod(lambda r: {**r, "image": target}))
    with pytest.raises(DataError) as exc:
        _EditsSecond(data_dir=root, cache_dir=tmp_path / "cache").load()
    assert _one_line(exc).startswith(f"osie: record '1002': its image {target} lies outside the data folder {root}")
    assert _leftovers(tmp_path / "cache" / "arrow" / "osie") == []


def test_an_image_the_annotations_name_outside_the_data_folder_is_not_opened(small_osie, tmp_path, monkeypatch):
    """The converter's image_size() opened and decoded a file an annotation named anywhere (an absolute
    path, /etc/passwd in a QA check) before the record check refused it: refused before opening now."""
    import scipy.io

    root = small_osie(n=3)
    mat = root / "eye" / "fixations.mat"
    cell = scipy.io.loadmat(str(mat))["fixations"]
    cell[1, 0]["img"][0, 0] = np.array(["../../elsewhere.jpg"])
    scipy.io.savemat(str(mat), {"fixations": cell})
    Image.new("RGB", (800, 600), "red").save(root / "stimuli" / ".." / ".." / "elsewhere.jpg")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: (opened.append(str(fp)), real_open(fp, *a, **k))[1])
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=tmp_path / "cache").load()
    assert "lies outside the data folder" in _one_line(exc) and "elsewhere.jpg" in _one_line(exc), _one_line(exc)
    assert not any("elsewhere" in p for p in opened)


def test_an_image_outside_the_fingerprinted_files_is_refused(small_osie, tmp_path):
    """fixations.mat naming 'sub/1002.jpg': OSIE's fingerprint lists stimuli/*.jpg, so a new image there
    kept serving the old converted table, without a word (found by QA). Every image a record names
    by path must be among the files the fingerprint covers."""
    def nest(cell):
        cell[1, 0][0, 0]["img"] = np.array(["sub/" + str(cell[1, 0][0, 0]["img"][0])])

    import scipy.io

    root = small_osie(n=3)
    cell = scipy.io.loadmat(str(root / "eye" / "fixations.mat"))["fixations"]
    name = str(cell[1, 0][0, 0]["img"][0])
    nest(cell)
    scipy.io.savemat(str(root / "eye" / "fixations.mat"), {"fixations": cell})
    (root / "stimuli" / "sub").mkdir()
    (root / "stimuli" / name).rename(root / "stimuli" / "sub" / name)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=cache).load()
    assert _one_line(exc) == (f"osie: record '1002': its image stimuli/sub/{name} is not among the files the "
                              "dataset's fingerprint covers (source_files()), so a change to it would not rebuild "
                              "the converted table")
    assert _leftovers(cache / "arrow" / "osie") == []


def test_a_negative_or_infinite_duration_is_not_known(tmp_path):
    """A duration of -5 ms was stored as it was (found by QA): NaN, as a missing one, and counted."""
    obj = OSIE(data_dir=tmp_path, cache_dir=tmp_path / "cache")
    fix = obj.fixation_list("s1", [1, 2, 3, 4, 900], [1, 2, 3, 4, 5], width=10, height=10,
                            duration_ms=[-5, np.inf, 100, np.nan, -1])
    got = [f["duration_ms"] for f in fix]
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == 100 and np.isnan(got[3]) and len(got) == 4
    assert obj.stats["invalid_durations"] == 2 and obj.stats["dropped_out_of_bounds"] == 1


def test_no_usable_stimuli_says_why_they_were_skipped(small_osie, tmp_path):
    """Every stimulus skipped gave 'no usable stimuli in <dir>' alone: no table was written, so
    `datasets info` could not list the reasons either (found by QA)."""
    root = small_osie(n=2)
    for image in (root / "stimuli").glob("*.jpg"):
        Image.new("RGB", (640, 480)).save(image)
    with pytest.raises(DataError) as exc:
        OSIE(data_dir=root, cache_dir=tmp_path / "cache").load()
    msg = _one_line(exc)
    assert msg.startswith(f"osie: no usable stimuli in {root} (skipped: 2 ") and "; the first: " in msg, msg
