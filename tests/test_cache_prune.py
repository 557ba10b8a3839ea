"""`harness datasets prune`: cached tables the current data no longer produces are removed, the
current one is kept and still loads without converting again."""

from __future__ import annotations

from click.testing import CliRunner

from harness.cli import main
from harness.data import load_gaze_dataset
from plugins.datasets.cub_gha import CUBGHA
from test_formats_cub_gha import write_cub


def test_prune_removes_only_stale_tables(tmp_path, monkeypatch):
    root, cache = tmp_path / "cub-gha", tmp_path / "cache"
    write_cub(root)
    load_gaze_dataset("cub-gha", data_dir=root, cache_dir=cache)
    (old,) = (cache / "arrow" / "cub-gha").iterdir()
    # a new converter version invalidates the first table: a second one is written beside it
    monkeypatch.setattr(CUBGHA, "converter_version", "2-test")
    obj, _ = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=cache)
    current = obj.cache_path()
    assert sorted((cache / "arrow" / "cub-gha").iterdir()) == sorted([old, current])

    args = ["datasets", "prune", "cub-gha", "--data-dir", str(root), "--cache-dir", str(cache)]
    r = CliRunner().invoke(main, [*args, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert f"would remove {old}" in r.output and old.is_dir()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert f"removed {old}" in r.output and str(current) not in r.output
    assert list((cache / "arrow" / "cub-gha").iterdir()) == [current]

    def no_conversion(self, root):
        raise AssertionError("the kept table must load without converting")

    monkeypatch.setattr(CUBGHA, "convert", no_conversion)
    _, ds = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=cache)
    assert ds.num_rows == 2
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "cub-gha: nothing to prune" in r.output


def test_prune_unknown_dataset_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["datasets", "prune", "osei", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown dataset 'osei'")
    assert len(r.output.strip().splitlines()) == 1


def test_prune_removes_a_killed_conversions_folder_unless_it_is_being_converted(tmp_path):
    import subprocess
    import sys

    root, cache = tmp_path / "cub-gha", tmp_path / "cache"
    write_cub(root)
    obj, _ = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=cache)
    current = obj.cache_path()
    leftover = current.with_name(f".{current.name}.tmp-abc123")  # as a conversion killed mid-way leaves it
    (leftover / "data").mkdir(parents=True)
    (leftover / "data" / "part.arrow").write_bytes(b"x" * 1000)
    args = ["datasets", "prune", "cub-gha", "--data-dir", str(root), "--cache-dir", str(cache)]
    # another process converting that table holds its lock: the folder is its work, kept
    lock = obj._lock_path(f"convert-cub-gha-{current.name}")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom filelock import FileLock\n"
                               f"held = FileLock({str(lock)!r})\nheld.acquire()\nprint('held', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
        assert f"kept {leftover}: another process is converting it" in r.output and leftover.is_dir()
    finally:
        holder.kill()
        holder.wait()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert f"removed {leftover}" in r.output and not leftover.exists()
    assert list(current.parent.iterdir()) == [current]


def test_prune_keeps_another_data_folders_table_and_never_follows_a_link(tmp_path):
    """Two folders of one dataset (another copy, an edited one) share the cache: pruning from one
    removed the other's current table; a link in the cache stopped it with a traceback."""
    import shutil

    first, second, cache = tmp_path / "cub-gha", tmp_path / "cub-gha-edited", tmp_path / "cache"
    write_cub(first)
    shutil.copytree(first, second)
    from PIL import Image

    image = second / "CUB_200_2011" / "images" / "001.Black_footed_Albatross" / "Black_Footed_Albatross_0001_796111.jpg"
    Image.new("RGB", (50, 40), (10, 10, 10)).save(image)  # another image: another table
    obj_first, _ = load_gaze_dataset("cub-gha", data_dir=first, cache_dir=cache)
    obj_second, _ = load_gaze_dataset("cub-gha", data_dir=second, cache_dir=cache)
    assert obj_first.cache_path() != obj_second.cache_path()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (cache / "arrow" / "cub-gha" / "a-link").symlink_to(outside)
    args = ["datasets", "prune", "cub-gha", "--data-dir", str(first), "--cache-dir", str(cache)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (f"kept {obj_second.cache_path()}: the current table of {second}, another data folder of "
            "cub-gha") in r.output
    assert obj_second.cache_path().is_dir() and obj_first.cache_path().is_dir() and outside.is_dir()
    assert "cub-gha: nothing to prune" in r.output
    # the other folder gone: its table is stale now
    shutil.rmtree(second)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and f"removed {obj_second.cache_path()}" in r.output


def test_prune_never_removes_what_a_conversion_did_not_make_nor_through_a_linked_folder(tmp_path):
    """A cache whose arrow/cub-gha was a link to a user's folder: prune removed every folder in it;
    and any folder in arrow/<name>, whatever its name, counted as a stale table (found by the
    security QA)."""
    import os

    root, cache = tmp_path / "cub-gha", tmp_path / "cache"
    write_cub(root)
    obj, _ = load_gaze_dataset("cub-gha", data_dir=root, cache_dir=cache)
    tables = cache / "arrow" / "cub-gha"
    (tables / "photos").mkdir()
    (tables / "photos" / "holiday.jpg").write_text("x")
    args = ["datasets", "prune", "cub-gha", "--data-dir", str(root), "--cache-dir", str(cache)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "cub-gha: nothing to prune" in r.output, r.output
    assert "freed" not in r.output  # not 'freed 0.0 MiB' after 'nothing to prune'
    assert (tables / "photos" / "holiday.jpg").is_file()

    outside = tmp_path / "outside"
    (outside / "0123456789abcdef").mkdir(parents=True)  # named like a table, and not ours
    (outside / "0123456789abcdef" / "work.txt").write_text("keep me")
    other = tmp_path / "cache2"
    (other / "arrow").mkdir(parents=True)
    (other / "arrow" / "cub-gha").symlink_to(outside, target_is_directory=True)
    r = CliRunner().invoke(main, ["datasets", "prune", "cub-gha", "--data-dir", str(root), "--cache-dir", str(other)])
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1] == (
        f"cub-gha: {other / 'arrow' / 'cub-gha'} is a link (to {os.readlink(other / 'arrow' / 'cub-gha')}); nothing "
        "removed through it (prune where it leads, with --cache-dir)")
    assert (outside / "0123456789abcdef" / "work.txt").read_text() == "keep me"
