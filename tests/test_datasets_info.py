"""`harness datasets info|prune NAME` without the dataset's source files but with its converted
table in the cache: info describes what is cached (exit 0); prune removes nothing it cannot check."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from harness.cli import main
from plugins.datasets.osie import OSIE


@pytest.fixture
def no_source(osie, monkeypatch):
    """OSIE converted in the session cache, HARNESS_DATA_DIR unset, and no download possible."""
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)

    def no_download(self, dest):
        raise AssertionError("must not download")

    monkeypatch.setattr(OSIE, "download", no_download)
    return osie


def test_info_describes_the_cache_without_the_source(no_source, osie_cache, osie_dir):
    current = no_source.cache_path()
    r = CliRunner().invoke(main, ["datasets", "info", "osie", "--cache-dir", str(osie_cache)])
    assert r.exit_code == 0, r.output
    text = r.output
    assert ("  source data:         not found (looked in $HARNESS_DATA_DIR (not set), "
            f"{osie_cache / 'data' / 'osie'} (cache)), so the current fingerprint cannot be checked") in text
    assert f"    - {current}\n" in text
    assert f"fingerprint:       {no_source.fingerprint()}" in text
    assert f"converted from:    {osie_dir} (still there: pass it with --data-dir)" in text

    r = CliRunner().invoke(main, ["datasets", "info", "osie", "--cache-dir", str(osie_cache), "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["source_found"] is False and info["name"] == "osie"
    (table,) = [t for t in info["cached_tables"] if t["path"] == str(current)]
    assert table["fingerprint"] == no_source.fingerprint() and table["current_converter"] is True
    assert table["size_bytes"] == sum(f.stat().st_size for f in current.rglob("*") if f.is_file()) > 10 * 2**20


def test_prune_refuses_what_it_cannot_check(no_source, osie_cache, osie_dir):
    current = no_source.cache_path()
    stale = current.parent / ("0" * 16)  # an older conversion: stale, but only the data can tell
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "table.arrow").write_bytes(b"x" * 1024)
    (stale / "meta.json").write_text(json.dumps({"name": "osie", "fingerprint": "0" * 64, "converter_version": "0"}))
    try:
        for extra in ([], ["--dry-run"]):
            r = CliRunner().invoke(main, ["datasets", "prune", "osie", "--cache-dir", str(osie_cache), *extra])
            assert r.exit_code == 1
            (line,) = r.output.strip().splitlines()
            assert line.startswith("osie: source data not found (looked in $HARNESS_DATA_DIR (not set), ")
            assert line.endswith("so which cached tables are stale cannot be checked; nothing removed "
                                 "(pass --data-dir or set $HARNESS_DATA_DIR)")
            assert stale.is_dir() and current.is_dir()

        # info lists both tables; the older converter's is said to be stale
        r = CliRunner().invoke(main, ["datasets", "info", "osie", "--cache-dir", str(osie_cache)])
        assert r.exit_code == 0 and f"    - {stale}\n" in r.output and f"    - {current}\n" in r.output
        assert "converter version: 0 (not the current converter" in r.output

        # with the data it can tell: the stale table would go, the current one stays (a dry run: the
        # session cache may hold other tests' tables too)
        r = CliRunner().invoke(main, ["datasets", "prune", "osie", "--cache-dir", str(osie_cache),
                                      "--data-dir", str(osie_dir), "--dry-run"])
        assert r.exit_code == 0, r.output
        assert f"would remove {stale} (0.0 MiB)" in r.output and str(current) not in r.output
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def test_harness_data_dir_may_name_the_dataset_folder_itself(osie_dir, osie_cache, monkeypatch):
    """HARNESS_DATA_DIR=…/osie (the folder, not its parent) looked in …/osie/osie and then tried a
    download; a folder named for the dataset is now the dataset's, and only that dataset's."""
    from harness.data import get_gaze_dataset
    from harness.data.paths import candidate_data_dirs

    assert osie_dir.name == "osie"
    monkeypatch.setenv("HARNESS_DATA_DIR", str(osie_dir))
    monkeypatch.setattr(OSIE, "download", lambda self, dest: pytest.fail("must not download"))
    assert get_gaze_dataset("osie", cache_dir=osie_cache).root() == osie_dir
    assert osie_dir not in [folder for folder, _ in candidate_data_dirs("mit1003", osie_cache)]


def test_a_label_longer_than_the_column_keeps_a_space():
    """poet's note printed as 'observers_without_fixations:1' (found by the converter QA, round 2)."""
    from harness.commands.datasets_info import _format

    info = {"name": "poet", "tasks": ["detection"], "images": 1, "subjects": 1, "fixations": 1,
            "fixations_per_image": {"mean": 1.0, "min": 1, "max": 1}, "pixels_per_degree": "nan",
            "dropped": {}, "skipped": {}, "notes": {"observers_without_fixations": 1, "fields fixL": "pos"},
            "data_dir": "d", "cache_dir": "c", "source_url": "u", "converter_version": "1", "fingerprint": "f"}
    lines = _format(info).splitlines()
    assert "  observers_without_fixations: 1" in lines
    assert "  fields fixL:         pos" in lines  # a short label: aligned with the others as before
    assert "  data:                d" in lines
