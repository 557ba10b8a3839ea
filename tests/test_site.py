"""`harness leaderboard build`: the static site's files, its embedded data, escaping, example overlays
(real `harness eval` runs on OSIE), and the rule that the page references nothing outside its folder."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.leaderboard import hub_table
from harness.leaderboard.site import build_site, json_for_script, overlay
from harness.results import load_runs
from harness.results.store import id_slug

try:
    from tests.site_helpers import page_data, sample_results, write_run
except ImportError:  # tests/ is not a package: pytest put it on sys.path
    from site_helpers import page_data, sample_results, write_run


@pytest.fixture
def sample(tmp_path):
    results = tmp_path / "runs"
    runs = sample_results(results)
    return results, runs


def test_build_writes_a_self_contained_site(sample, tmp_path):
    results, runs = sample
    index = build_site(results, tmp_path / "site")
    site = index.parent
    assert sorted(p.name for p in site.iterdir() if not p.name.startswith(".")) == ["app.js", "favicon.svg", "index.html", "style.css"]
    html = index.read_text()
    # every src/href is a relative path inside the folder: no CDN, no absolute URL, no protocol-relative URL
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
    assert sorted(refs) == ["app.js", "favicon.svg", "style.css"]
    css = (site / "style.css").read_text()
    js = (site / "app.js").read_text()
    assert "url(" not in css and "@import" not in css
    for needle in ("fetch(", "XMLHttpRequest", "import(", "WebSocket", "sendBeacon", "innerHTML", "outerHTML",
                   "insertAdjacentHTML", "document.write", "eval("):
        assert needle not in js, needle
    # the only URL in the script is the SVG namespace name (an identifier, never requested)
    assert set(re.findall(r"https?://[^\s\"']+", js)) == {"http://www.w3.org/2000/svg"}
    assert "connect-src 'none'" in html and "default-src 'none'" in html


def test_embedded_data_rows_directions_and_latest(sample, tmp_path):
    results, runs = sample
    data = page_data(build_site(results, tmp_path / "site"))
    assert data["primary"] == "nss"
    assert [(m["name"], m["direction"]) for m in data["metrics"]] == [("nss", "higher"), ("auc_judd", "higher"),
                                                                       ("kld", "lower")]
    # each column explained, in the metric registry's own words
    from harness.plugins import get_registry

    for m in data["metrics"]:
        assert m["description"] == get_registry().get("metric", m["name"]).get("description")
    assert [m["name"] for m in data["task_metrics"]] == ["task:top1", "task:top5"]
    assert data["task_metrics"][0]["description"].startswith("top-1 accuracy")
    by_id = {r["run_id"]: r for r in data["rows"]}
    assert len(by_id) == len(runs)
    lite1 = by_id[runs["lite1"].name]
    assert lite1["values"] == {"nss": 1.6, "auc_judd": 0.79, "kld": 1.2, "task:top1": 0.77, "task:top5": 0.93}
    assert lite1["n_failed"] == 1 and lite1["task_primary"] == "top1"
    assert by_id[runs["ceiling"].name]["kind"] == "ceiling"
    assert by_id[runs["center"].name]["kind"] == "baseline"
    # the older run of the same model x attention x dataset x task x profile is superseded
    assert by_id[runs["lite0"].name]["latest"] is True
    assert by_id[runs["lite0_old"].name]["latest"] is False
    assert sum(r["latest"] for r in data["rows"]) == len(runs) - 1
    # provenance for the detail view
    assert lite1["provenance"]["weights_sha256"] == "ab" * 32
    assert lite1["provenance"]["dataset_fingerprint"] == "f0" * 32
    assert lite1["packages"] == {"torch": "2.13.0", "numpy": "2.3.0"}
    assert lite1["settings"]["metric_params"]["sigma_px"] == 24.0
    assert lite1["examples"] == [] and "saved no attention maps" in lite1["examples_note"]


def test_every_string_is_escaped(tmp_path):
    nasty = '</script><script>alert(1)</script><!--'
    write_run(tmp_path / "runs", model=nasty, attention='"><img src=x onerror=alert(2)>', metrics={"nss": 1.0})
    index = build_site(tmp_path / "runs", tmp_path / "site", title="<b>board</b> & co")
    html = index.read_text()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>board" not in html
    assert "<title>&lt;b&gt;board&lt;/b&gt; &amp; co</title>" in html
    assert html.count("</script>") == 2  # the data block and app.js, nothing injected
    row = page_data(index)["rows"][0]
    assert row["model"] == nasty  # the exact text survives the round trip
    assert row["attention"] == '"><img src=x onerror=alert(2)>'


def test_json_for_script_escapes_line_separators():
    text = json_for_script({"a": "x\u2028y\u2029</script>&"})
    assert "\u2028" not in text and "\u2029" not in text and "<" not in text and "&" not in text
    assert json.loads(text) == {"a": "x\u2028y\u2029</script>&"}


def test_nan_metrics_become_missing_not_invalid_json(tmp_path):
    write_run(tmp_path / "runs", model="m", metrics={"nss": float("nan"), "cc": 0.5})
    data = page_data(build_site(tmp_path / "runs", tmp_path / "site"))
    assert data["rows"][0]["values"] == {"cc": 0.5}


def test_rebuild_replaces_an_earlier_build_but_never_a_foreign_folder(sample, tmp_path):
    results, runs = sample
    site = tmp_path / "site"
    build_site(results, site)
    (site / "stale.txt").write_text("old")
    build_site(results, site)
    assert not (site / "stale.txt").exists() and (site / "index.html").is_file()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    result = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(results), "--output", str(foreign)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: ") and "is not empty" in result.output
    assert (foreign / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    assert not (tmp_path / ".mine.lock").exists()  # a refused build writes nothing beside it either


def test_a_build_through_a_link_rebuilds_the_folder_it_names(sample, tmp_path):
    """Built into a symbolic link to the site, the build replaced the link by a folder, left the
    linked folder with the old page and a hidden link beside it for good."""
    results, runs = sample
    real = tmp_path / "real"
    build_site(results, real)
    (real / "stale.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    build_site(results, link)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert (real / "index.html").is_file() and not (real / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) in ([], [".real.lock"])


def test_a_build_killed_midway_leaves_nothing_the_next_one_keeps(sample, tmp_path):
    """A build killed while swapping its folder into place leaves hidden folders beside the site
    (its own, and the old site it moved aside); the next build (under the same lock) removes them
    and says so, and keeps a hidden folder that is not a build's."""
    from test_integrity import killed_at_rename

    results, _ = sample
    site = tmp_path / "site"
    build_site(results, site)
    # where the system cannot exchange two folders in one step (not Linux, an old C library)
    killed_at_rename("import harness.leaderboard.site as s\ns._exchange = lambda a, b: False\n"
                     f"s.build_site({str(results)!r}, {str(site)!r})", match=f"/.{site.name}.")
    # killed between its two renames: the old site moved aside, the new one not yet in place
    left = sorted(p.name for p in tmp_path.glob(".site.*") if p.is_dir())
    assert len(left) == 2 and sum(name.startswith(".site.old-") for name in left) == 1 and not site.exists(), left
    assert all((tmp_path / name / "index.html").is_file() for name in left)
    foreign = tmp_path / ".site.notmine1"  # named like a build's folder, but not holding a site
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(results), "--output", str(site)])
    assert result.exit_code == 0, result.output
    assert "removed 2 folder(s) an interrupted build" in result.output
    assert sorted(p.name for p in tmp_path.glob(".site.*") if p.is_dir()) == [".site.notmine1"]
    assert (site / "index.html").is_file() and (foreign / "notes.txt").read_text() == "keep"


def test_a_build_swaps_the_site_in_one_step_so_a_kill_never_leaves_none(sample, tmp_path):
    """On Linux the new site and the old one exchange names in one call: a build killed right after
    it has the new site in place, and the old one, left in the build's folder, is removed next time."""
    import subprocess
    import sys

    results, _ = sample
    site = tmp_path / "site"
    build_site(results, site)
    (site / "old.txt").write_text("the old site")
    code = ("import os, shutil, signal\n"
            "def die(path, *a, **k):\n"
            f"    if {('/.' + site.name + '.')!r} in str(path):\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "shutil.rmtree = die\n"
            "from harness.leaderboard.site import build_site\n"
            f"build_site({str(results)!r}, {str(site)!r})\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, r.stderr[-3000:]  # killed removing the old site: after the swap
    assert (site / "index.html").is_file() and not (site / "old.txt").exists()
    left = [p for p in tmp_path.glob(".site.*") if p.is_dir()]
    assert len(left) == 1 and (left[0] / "old.txt").read_text() == "the old site" and not left[0].name.startswith(".site.old-")
    result = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(results), "--output", str(site)])
    assert result.exit_code == 0, result.output
    assert "removed 1 folder(s) an interrupted build" in result.output
    assert not [p for p in tmp_path.glob(".site.*") if p.is_dir()] and (site / "index.html").is_file()


def test_build_cli_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(tmp_path / "empty"), "--output", str(tmp_path / "s")])
    assert r.exit_code == 1 and r.output.strip() == f"Error: no finished runs under {tmp_path / 'empty'}"
    write_run(tmp_path / "runs", model="m", metrics={"nss": 1.0})
    r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(tmp_path / "runs"), "--output",
                                  str(tmp_path / "s"), "--primary", "auc"])
    assert r.exit_code == 1 and r.output.strip() == "Error: unknown primary metric 'auc'; known: nss"
    assert not (tmp_path / "s").exists()


def test_overlay_puts_heat_where_the_map_is():
    image = Image.new("RGB", (720, 360), (40, 40, 40))
    heat = np.zeros((360, 720))
    heat[:, 540:] = 1.0  # right quarter hot
    out = np.asarray(overlay(image, heat)).astype(float)
    assert out.shape == (180, 360, 3)  # scaled to EXAMPLE_WIDTH, aspect kept
    assert out[:, 300:].mean() > out[:, :200].mean() + 100
    assert np.allclose(out[:, :200], 40, atol=1)  # zero heat leaves the stimulus untouched


@pytest.mark.slow
def test_example_overlays_are_the_best_median_and_worst_stimuli(tmp_path, osie_dir):
    """Real runs: `harness eval` keeps small maps of the stimuli the page shows (best, median, worst
    by NSS, then evenly spaced ranks) and deletes the other candidates; the site shows the human
    density (recomputed from OSIE with the run's sigma) beside each, with its per-stimulus scores."""
    import harness

    results = tmp_path / "runs"
    harness.evaluate("center-bias", dataset="osie", limit=10, output=results, references=False, example_maps=5,
                     progress=False)
    (run,) = load_runs(results)
    frame = run.per_image()
    order = frame.sort_values(["nss", "stimulus_id"], ascending=[False, True])["stimulus_id"].tolist()
    best, median, worst = order[0], order[(len(order) - 1) // 2], order[-1]
    index = json.loads((run.path / "maps" / "index.json").read_text())
    small = {sid for name, sid in index.items() if name.endswith(".png")}
    assert len(small) == 5 and {best, median, worst} <= small
    assert not (run.path / "maps" / "candidates").exists()  # the other candidates are gone
    for name in (n for n in index if n.endswith(".png")):
        im = Image.open(run.path / "maps" / name)
        assert im.mode == "L" and im.size == (200, 150) and (run.path / "maps" / name).stat().st_size < 30_000
    assert sum(p.stat().st_size for p in (run.path / "maps").glob("*.png")) < 100_000

    site = build_site(results, tmp_path / "site", n_examples=5, warn=pytest.fail)
    row = page_data(site)["rows"][0]
    assert row["model"] == "center-bias" and row["examples_note"] is None
    items = row["examples"]
    assert [e["stimulus_id"] for e in items[:3]] == [best, median, worst]
    assert [e["role"] for e in items[:3]] == ["best", "median", "worst"] and items[3]["role"] is None
    assert [e["rank"] for e in items[:3]] == [1, 5, 10]
    assert [e["rank"] for e in items] == [order.index(e["stimulus_id"]) + 1 for e in items]
    nss = dict(zip(frame["stimulus_id"], frame["nss"]))
    auc = dict(zip(frame["stimulus_id"], frame["auc_judd"]))
    for e in items:
        assert e["of"] == 10
        assert e["scores"]["nss"] == pytest.approx(nss[e["stimulus_id"]])
        assert e["scores"]["auc_judd"] == pytest.approx(auc[e["stimulus_id"]])
        human = Image.open(site.parent / e["human"])
        model = Image.open(site.parent / e["model"])
        assert human.size == model.size == (360, 270)  # OSIE is 800x600
        assert not e["human"].startswith(("/", "http")) and not e["model"].startswith(("/", "http"))
    assert items[0]["scores"]["nss"] > items[1]["scores"]["nss"] > items[2]["scores"]["nss"]
    assert page_data(site)["colour_scale"] == "assets/colour-scale.png"
    scale = np.asarray(Image.open(site.parent / "assets" / "colour-scale.png").convert("RGB")).astype(float)
    assert scale.shape[1] == 256 and scale[:, -1].sum() > scale[:, 0].sum() + 100  # dark/transparent -> bright
    # the centre-bias map is hottest in the middle of the image
    m = np.asarray(Image.open(site.parent / items[0]["model"])).astype(float)
    plain = np.asarray(Image.open(osie_dir / "stimuli" / f"{best}.jpg").convert("RGB").resize((360, 270))).astype(float)
    change = np.abs(m - plain).sum(axis=2)
    assert change[110:160, 155:205].mean() > 3 * change[:30, :30].mean()
    # human and model panels differ (one is fixations, the other the centre bias)
    h = np.asarray(Image.open(site.parent / items[0]["human"])).astype(float)
    assert np.abs(h - m).mean() > 5


def test_example_choice_best_median_worst_then_evenly_spaced():
    from harness.results.examples import example_positions, role_of

    assert example_positions(700, 12) == [0, 349, 699, 70, 140, 210, 280, 350, 419, 489, 559, 629]
    assert example_positions(10, 3) == [0, 4, 9]
    assert example_positions(8, 12) == [0, 3, 7, 1, 2, 4, 5, 6]  # all of them, best/median/worst first
    assert example_positions(2, 12) == [0, 1] and example_positions(1, 12) == [0] and example_positions(0, 12) == []
    assert len(set(example_positions(13, 12))) == 12
    assert [role_of(p, 700) for p in (0, 349, 699, 70)] == ["best", "median", "worst", None]


def test_keep_examples_keeps_the_chosen_candidates_only(tmp_path):
    import pandas as pd

    from harness.ids import stimulus_filename
    from harness.results.examples import keep_examples, save_candidate, small_map_png

    run = tmp_path / "run"
    ids = [f"s{i:02d}" for i in range(10)]
    for i, sid in enumerate(ids):
        save_candidate(run, sid, small_map_png(np.full((60, 80), float(i)) + np.eye(60, 80)))
    frame = pd.DataFrame({"stimulus_id": ids, "status": ["ok"] * 8 + ["failed", "degenerate"],
                          "nss": [0.5, 2.0, 1.0, -1.0, 0.0, 3.0, 1.5, 0.2, None, -2.0]})
    kept = keep_examples(run, frame, 4)
    # ranking: s05 3.0, s01 2.0, s06 1.5, s02 1.0, s00 0.5, s07 0.2, s04 0.0, s03 -1.0, s09 -2.0 (s08 failed)
    assert kept[:3] == ["s05", "s00", "s09"] and len(kept) == 4
    index = json.loads((run / "maps" / "index.json").read_text())
    assert sorted(index.values()) == sorted(kept) and all(n == stimulus_filename(i, ".png") for n, i in index.items())
    assert not (run / "maps" / "candidates").exists()
    assert keep_examples(run, frame, 4) == kept  # finishing again (after a crash) keeps the same maps


def test_candidates_wait_as_arrays_and_the_kept_ones_become_the_same_pngs(tmp_path):
    # encoding every scored map as PNG cost ~1.5 ms a stimulus; now only the kept dozen are encoded,
    # to the same bytes, and PNG candidates left by an earlier session of a resumed run still count
    import pandas as pd

    from harness.ids import stimulus_filename
    from harness.results.examples import keep_examples, save_candidate, small_map, small_map_png

    run = tmp_path / "run"
    ids = [f"s{i:02d}" for i in range(6)]
    maps = {sid: np.add.outer(np.arange(600.0), np.arange(800.0) * (i + 1)) for i, sid in enumerate(ids)}
    for sid in ids[:4]:
        save_candidate(run, sid, small_map(maps[sid]))  # this session: arrays
    for sid in ids[4:]:
        save_candidate(run, sid, small_map_png(maps[sid]))  # an earlier session: PNG bytes
    names = sorted(p.name for p in (run / "maps" / "candidates").iterdir())
    assert names == sorted([stimulus_filename(s, ".npy") for s in ids[:4]]
                           + [stimulus_filename(s, ".png") for s in ids[4:]])
    frame = pd.DataFrame({"stimulus_id": ids, "status": ["ok"] * 6, "nss": [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]})
    kept = keep_examples(run, frame, 6)
    assert sorted(kept) == ids
    for sid in ids:
        assert (run / "maps" / stimulus_filename(sid, ".png")).read_bytes() == small_map_png(maps[sid])
        with Image.open(run / "maps" / stimulus_filename(sid, ".png")) as im:
            assert im.mode == "L" and im.size == (200, 150)
    assert not (run / "maps" / "candidates").exists()


def test_missing_dataset_gives_a_note_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    write_run(tmp_path / "runs", model="m", dataset="no-such-dataset", metrics={"nss": 1.0},
              maps={"1001": np.ones((60, 80))})
    warnings: list[str] = []
    index = build_site(tmp_path / "runs", tmp_path / "site", warn=warnings.append)
    row = page_data(index)["rows"][0]
    assert row["examples_note"] == ("Human fixation density unavailable: no no-such-dataset dataset plugin was "
                                    "installed where this page was built.")
    assert [e["stimulus_id"] for e in row["examples"]] == ["1001"]
    assert "human" not in row["examples"][0]
    assert (index.parent / row["examples"][0]["model"]).is_file()
    assert warnings == ["warning: no-such-dataset: the page shows no human fixation density for 1 run(s): no "
                        "dataset plugin named 'no-such-dataset' is installed (`harness datasets` lists them)"]


def _half_map(side: str) -> np.ndarray:
    heat = np.zeros((60, 80))
    heat[:, :40] = 1.0
    return heat if side == "left" else heat[:, ::-1].copy()


def _hot_half(png) -> str:
    """Which half of a model overlay (drawn on the grey stand-in stimulus) carries the heat."""
    change = np.abs(np.asarray(Image.open(png).convert("RGB")).astype(float) - 128).sum(axis=2)
    half = change.shape[1] // 2
    left, right = change[:, :half].mean(), change[:, half:].mean()
    return "left" if left > right + 50 else "right" if right > left + 50 else "neither"


@pytest.mark.parametrize("legacy_maps", [False, True])
def test_runs_whose_ids_share_a_long_prefix_get_their_own_asset_folders(tmp_path, monkeypatch, legacy_maps):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    stem = "a-very-long-model-name-" * 5
    runs = {side: write_run(tmp_path / "runs", model=stem + side, dataset="no-such-dataset", metrics={"nss": 1.0},
                            maps={"1001": _half_map(side)}, legacy_maps=legacy_maps)
            for side in ("left", "right")}
    assert runs["left"].name[:100] == runs["right"].name[:100] and runs["left"].name != runs["right"].name
    index = build_site(tmp_path / "runs", tmp_path / "site")
    rows = {r["run_id"]: r for r in page_data(index)["rows"]}
    folders = set()
    for side, run in runs.items():
        (item,) = rows[run.name]["examples"]
        assert item["stimulus_id"] == "1001"
        folder = item["model"].rsplit("/", 1)[0]
        assert folder.startswith("assets/runs/") and len(folder.rsplit("/", 1)[1]) <= 80
        folders.add(folder)
        assert _hot_half(index.parent / item["model"]) == side
    assert len(folders) == 2


def test_map_ids_come_from_the_maps_index_and_older_runs_keep_theirs(tmp_path, monkeypatch):
    """Ids with ``/`` (category/name) and ids equal up to case keep their own maps; index entries
    that point out of maps/ or into a sub-folder, files the index does not name and invalid ids are
    ignored (the index is untrusted); a run without index.json is read by file stem as before."""
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    sides = {"cat/1001": "left", "A": "right", "a": "left", "a/b": "right", "a__b": "left"}
    new = write_run(tmp_path / "runs", model="new", dataset="no-such-dataset", metrics={"nss": 1.0},
                    maps={sid: _half_map(side) for sid, side in sides.items()})
    maps = new / "maps"
    index = json.loads((maps / "index.json").read_text())
    assert len(index) == len(sides) and all("/" not in name for name in index)
    np.save(new / "evil.npy", _half_map("left"))
    (maps / "sub").mkdir()
    np.save(maps / "sub" / "x.npy", _half_map("left"))
    np.save(maps / "stray.npy", _half_map("left"))
    np.save(maps / "bad.npy", _half_map("left"))
    index.update({"../evil.npy": "evil", "sub/x.npy": "nested", "missing.npy": "missing", "bad.npy": "../../x",
                  "stray.npy": 7})
    (maps / "index.json").write_text(json.dumps(index))
    old = write_run(tmp_path / "runs", model="old", dataset="no-such-dataset", metrics={"nss": 1.0},
                    maps={"1001": _half_map("right")}, legacy_maps=True)
    assert sorted(p.name for p in (old / "maps").iterdir()) == ["1001.npy"]
    broken = write_run(tmp_path / "runs", model="broken", dataset="no-such-dataset", metrics={"nss": 1.0},
                       maps={"1001": _half_map("left")})
    (broken / "maps" / "index.json").write_text("{not json")

    warnings: list[str] = []
    site = build_site(tmp_path / "runs", tmp_path / "site", n_examples=10, warn=warnings.append)
    # said at build time too, not only on the page (a QA session saw 61 examples become 45 in silence)
    assert f"warning: {broken}: maps/index.json is unreadable; its example maps are left off the page" in warnings
    rows = {r["run_id"]: r for r in page_data(site)["rows"]}
    items = rows[new.name]["examples"]
    assert [e["stimulus_id"] for e in items] == sorted(sides)
    for item in items:
        assert _hot_half(site.parent / item["model"]) == sides[item["stimulus_id"]], item
    assert len({item["model"] for item in items}) == len(sides)
    (item,) = rows[old.name]["examples"]
    assert item["stimulus_id"] == "1001" and _hot_half(site.parent / item["model"]) == "right"
    assert rows[broken.name]["examples"] == [] and "maps/index.json is unreadable" in rows[broken.name]["examples_note"]


def test_rows_match_the_published_schema(sample):
    results, runs = sample
    rows = hub_table.mark_latest(hub_table.rows_from_runs(load_runs(results)))
    table = hub_table.rows_to_table(rows)
    assert table.column_names[:len(hub_table.IDENTITY)] == list(hub_table.IDENTITY)
    assert str(table.schema.field("nss").type) == "double" and str(table.schema.field("latest").type) == "bool"
    assert str(table.schema.field("task:top1").type) == "double"
    back = {r["run_id"]: r for r in hub_table.table_to_rows(table)}
    assert back[runs["uniform"].name]["task:top1"] is None
    assert json.loads(back[runs["lite1"].name]["packages"]) == {"numpy": "2.3.0", "torch": "2.13.0"}


# --- the data behind the human panels: --data-dir, the Arrow cache, never a download, nothing local on the page


def _cli(*args: str, env: dict[str, str]) -> "subprocess.CompletedProcess[str]":
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new user: no $HARNESS_DATA_DIR."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "HARNESS_DATA_DIR"}
    env.update(extra)
    return env


def _assert_nothing_local(site, *forbidden: str) -> None:
    """No local path, machine error text or download host in any file of the built site."""
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".js", ".css", ".md", ".json", ".svg"}:
            text = path.read_text(encoding="utf-8")
            for needle in (*forbidden, "Traceback", "Error", "Errno", "githubusercontent", "Name or service",
                           "/tmp/", "/home/", "/root/"):
                assert needle not in text, (path.name, needle)
        # a run id names its model: a local folder's path must not show as its slug either
        for needle in forbidden:
            assert id_slug(needle) not in str(path.relative_to(site)), path
            if path.is_file() and path.suffix in {".html", ".js", ".json"}:
                assert id_slug(needle) not in path.read_text(encoding="utf-8"), (path.name, id_slug(needle))


def test_data_dir_help_says_the_same_in_every_command():
    import click

    from harness.data.paths import DATA_DIR_HELP

    ctx = click.Context(main)
    commands = {"eval": main.get_command(ctx, "eval"), "align": main.get_command(ctx, "align")}
    for group, names in (("datasets", ("info", "prune")), ("leaderboard", ("build", "publish"))):
        g = main.get_command(ctx, group)
        for name in names:
            commands[f"{group} {name}"] = g.get_command(click.Context(g), name)
    for name, cmd in commands.items():
        (opt,) = [p for p in cmd.params if p.name == "data_dir"]
        assert opt.help.startswith(DATA_DIR_HELP), name
    assert "DIR/NAME is used when it exists, else DIR itself" in DATA_DIR_HELP


def test_data_dir_is_the_dataset_folder_or_the_folder_holding_it(tmp_path):
    from harness.data import get_gaze_dataset
    from harness.data.paths import dataset_folder

    (tmp_path / "data" / "osie").mkdir(parents=True)
    assert dataset_folder("osie", tmp_path / "data") == tmp_path / "data" / "osie"
    assert dataset_folder("osie", tmp_path / "data" / "osie") == tmp_path / "data" / "osie"
    assert dataset_folder("osie", tmp_path / "elsewhere") == tmp_path / "elsewhere"  # a missing folder stays an error
    assert dataset_folder("osie", None) is None
    for given in (tmp_path / "data", tmp_path / "data" / "osie"):
        assert get_gaze_dataset("osie", data_dir=given).data_dir == tmp_path / "data" / "osie"


@pytest.mark.slow
def test_every_command_takes_either_form_of_data_dir(tmp_path, small_osie):
    """eval, datasets info, leaderboard build and publish --space each read a 4-stimulus OSIE copy
    given as its own folder or as the folder holding ``osie/``; build draws the human panels from
    the converted table in the cache when there is one, else from --data-dir, and never downloads."""
    src = small_osie(name="osie", n=4)  # tmp_path/osie
    parent = src.parent
    cache = tmp_path / "cache"
    env = _clean_env(HARNESS_CACHE_DIR=str(cache))
    for given in (parent, src):
        r = _cli("eval", "--model", "center-bias", "--dataset", "osie", "--data-dir", str(given), "--output",
                 str(tmp_path / "runs"), "--no-references", "--no-show", env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        r = _cli("datasets", "info", "osie", "--data-dir", str(given), env=env)
        assert r.returncode == 0, r.stderr
        assert f"data:                {src}" in r.stdout and "images:              4" in r.stdout
    (run,) = load_runs(tmp_path / "runs")  # both forms made the same run (same data, same fingerprint)

    def build(*args: str, cache_dir) -> tuple[dict, str]:
        site = tmp_path / f"site-{len(list(tmp_path.glob('site-*')))}"
        r = _cli("leaderboard", "build", "--results", str(tmp_path / "runs"), "--output", str(site), *args,
                 env=_clean_env(HARNESS_CACHE_DIR=str(cache_dir)))
        assert r.returncode == 0, r.stderr
        _assert_nothing_local(site, str(tmp_path))
        return page_data(site / "index.html")["rows"][0], r.stderr

    # the cache has the table the run scored: no source needed
    row, err = build(cache_dir=cache)
    assert err == "" and row["examples_note"] is None and all("human" in e for e in row["examples"])
    # an empty cache: from --data-dir, either form (converted once into that cache)
    for k, given in enumerate((parent, src)):
        row, err = build("--data-dir", str(given), cache_dir=tmp_path / f"cache{k}")
        assert err == "" and all("human" in e for e in row["examples"]), err
        assert (tmp_path / f"cache{k}" / "arrow" / "osie").is_dir()
    # neither: a loud warning, the page without human panels, exit 0, nothing downloaded
    row, err = build(cache_dir=tmp_path / "empty")
    (line,) = err.strip().splitlines()
    assert line.startswith("warning: osie: the page shows no human fixation density for 1 run(s): the converted "
                           "table these runs scored") and "nothing was downloaded" in line
    assert row["examples_note"] == ("Human fixation density unavailable: the osie data was not available where "
                                    "this page was built.")
    assert row["examples"] and not any("human" in e for e in row["examples"])
    assert not (tmp_path / "empty" / "data").exists()  # no download was started
    # other data than the run scored (another stimulus set): not used for the run, said so
    other = small_osie(name="other/osie", n=3)
    row, err = build("--data-dir", str(other), cache_dir=tmp_path / "cache-other")
    assert "is not the version this run scored" in row["examples_note"] and "fingerprint" in err


def test_build_never_downloads_and_keeps_local_text_off_the_page(tmp_path, monkeypatch):
    """A new user with no data and an empty cache: no download is attempted, one warning per
    dataset, and neither the page nor its data holds a local path or an error message."""
    import harness.data.download as download

    def no_download(*args, **kwargs):
        raise AssertionError("leaderboard build tried to download a dataset")

    monkeypatch.setattr(download, "install_atomically", no_download)
    monkeypatch.setattr(download, "fetch_tree", no_download)
    monkeypatch.delenv("HARNESS_DATA_DIR", raising=False)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    run = write_run(tmp_path / "runs", model=f"hf:{tmp_path}/models/my-vit", metrics={"nss": 1.0},
                    maps={"1001": np.ones((60, 80)), "1002": np.eye(60, 80)})
    write_run(tmp_path / "runs", model="other", metrics={"nss": 0.5}, maps={"1001": np.ones((60, 80))})
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["command"] = [f"{tmp_path}/.venv/bin/harness", "eval", "--output", f"{tmp_path}/runs"]
    manifest["dataset_skipped"] = [f"{tmp_path}/osie/stimuli/1009.jpg: unreadable image (OSError: truncated)"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    warnings: list[str] = []
    index = build_site(tmp_path / "runs", tmp_path / "site", warn=warnings.append)
    assert len(warnings) == 1 and warnings[0].startswith("warning: osie: the page shows no human fixation density "
                                                         "for 2 run(s)")
    assert str(tmp_path / "cache") in warnings[0]  # the terminal says where it looked; the page does not
    _assert_nothing_local(index.parent, str(tmp_path))
    row = next(r for r in page_data(index)["rows"] if r["model"].startswith("hf:"))
    assert re.fullmatch("hf:\u2026/my-vit \\([0-9a-f]{8}\\)", row["model"]), row["model"]
    # its run id is published with its public name, the settings hash kept
    assert row["run_id"].endswith(run.name[-14:]) and row["run_id"].startswith("hf-my-vit-")
    assert row["manifest"]["command"] == ["\u2026/harness", "eval", "--output", "\u2026/runs"]
    assert row["manifest"]["dataset_skipped"] == ["\u2026/1009.jpg: unreadable image"]


def test_public_text_shortens_local_paths_only():
    import hashlib

    from harness.leaderboard.site import public_text

    assert public_text("/work/main/.venv/bin/harness") == "\u2026/harness"
    # a model folder keeps a tag of its whole path: folders that end alike stay apart, one folder is one name
    tag = hashlib.sha256(b"/home/me/models/vit").hexdigest()[:8]
    assert public_text("hf:/home/me/models/vit") == f"hf:\u2026/vit ({tag})"
    assert public_text("hf:/home/you/models/vit") != public_text("hf:/home/me/models/vit")
    assert public_text(public_text("hf:/home/me/models/vit")) == public_text("hf:/home/me/models/vit")
    assert public_text(r"C:\Users\me\runs") == "\u2026/runs"
    assert public_text("see file:///tmp/x/page.html") == "see \u2026/page.html"
    assert public_text("x.jpg: unreadable (OSError: [Errno 5] I/O error)") == "x.jpg: unreadable"
    for kept in ("https://huggingface.co/datasets/org/board", "google/vit-base-patch16-224", "</script>",
                 "<script>alert(1)</script>", "1/2/3", "Linux-6.1-x86_64-with-glibc2.36", "top-1 / top-5"):
        assert public_text(kept) == kept


@pytest.mark.slow
def test_new_user_builds_the_page_from_the_arrow_cache(tmp_path, osie_dataset, osie_cache):
    """The issue's case: `harness eval` ran with the data; later `leaderboard build` runs without
    $HARNESS_DATA_DIR. The stimuli are in the converted table, so every panel is there, no warning."""
    import harness

    harness.evaluate("center-bias", dataset="osie", limit=6, output=tmp_path / "runs", references=False,
                     progress=False)
    r = _cli("leaderboard", "build", "--results", str(tmp_path / "runs"), "--output", str(tmp_path / "site"),
             env=_clean_env(HARNESS_CACHE_DIR=str(osie_cache)))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.strip() == f"wrote {tmp_path / 'site' / 'index.html'}"
    row = page_data(tmp_path / "site" / "index.html")["rows"][0]
    assert row["examples_note"] is None and len(row["examples"]) == 6
    assert all((tmp_path / "site" / e["human"]).is_file() for e in row["examples"])
    _assert_nothing_local(tmp_path / "site", str(tmp_path), str(osie_cache))


def test_the_before_after_section_names_models_as_the_rows_do(tmp_path, monkeypatch):
    """An aligned model and its base named by local hf: folders: the page's before/after section
    showed their whole paths while the rows showed their public names."""
    import harness.alignment.compare as compare
    from harness.leaderboard.site import before_after, public_text

    runs = tmp_path / "runs"
    base = write_run(runs, model="hf:/home/alice/secret/checkpoint-500", metrics={"nss": 1.0})
    aligned = write_run(runs, model="hf:/home/alice/secret/aligned", metrics={"nss": 1.2})
    loaded = {r.path: r for r in load_runs(runs)}
    monkeypatch.setattr(compare, "find_pairs", lambda rs: [(loaded[base], loaded[aligned])])
    (entry,) = before_after(list(loaded.values()))
    assert entry["base"] == public_text("hf:/home/alice/secret/checkpoint-500")
    assert entry["aligned"] == public_text("hf:/home/alice/secret/aligned")
    assert "alice" not in json.dumps(entry) and "secret" not in json.dumps(entry)


def test_a_linked_maps_folder_is_not_read_and_older_runs_show_their_own_stimuli_only(tmp_path, monkeypatch, capsys):
    """A run whose maps/ is a link to another folder had that folder's .npy files published as its
    examples (verify said ok); a run without index.json had every maps/*.npy taken, whatever its
    name (found by the security QA). Now the link is not followed (one warning line naming the run,
    its examples left off) and an older run's maps are only those named for its own stimuli."""
    from harness.results.examples import keep_examples

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    outside = tmp_path / "private"
    donor = write_run(outside, model="donor", dataset="no-such-dataset", metrics={"nss": 1.0},
                      maps={"1001": _half_map("left")})
    linked = write_run(tmp_path / "runs", model="linked", dataset="no-such-dataset", metrics={"nss": 1.0})
    (linked / "maps").symlink_to(donor / "maps", target_is_directory=True)
    index_linked = write_run(tmp_path / "runs", model="index-linked", dataset="no-such-dataset",
                             metrics={"nss": 1.0}, maps={"1001": _half_map("left")})
    (index_linked / "maps" / "index.json").unlink()
    (index_linked / "maps" / "index.json").symlink_to(donor / "maps" / "index.json")
    old = write_run(tmp_path / "runs", model="old", dataset="no-such-dataset", metrics={"nss": 1.0},
                    maps={"1001": _half_map("right")}, legacy_maps=True)
    np.save(old / "maps" / "secret.npy", _half_map("left"))  # no stimulus of the run: not its map

    warnings: list[str] = []
    site = build_site(tmp_path / "runs", tmp_path / "site", n_examples=10, warn=warnings.append)
    rows = {r["run_id"]: r for r in page_data(site)["rows"]}
    # a link in a run folder makes it damaged for every reader (verify's run_problems): left out
    assert linked.name not in rows and index_linked.name not in rows
    shown = [w for w in capsys.readouterr().err.splitlines() if "a link inside the run folder" in w]
    assert len(shown) == 2 and any(str(linked) in w for w in shown) and any(str(index_linked) in w for w in shown)
    # and the page's own guard, for a caller that did not check the run: the link is not followed
    from harness.leaderboard.site import saved_maps

    assert saved_maps(linked, ["1001"]) == ({}, "maps/ is a link to another folder (not followed)")
    assert saved_maps(index_linked, ["1001"]) == ({}, "maps/index.json is a link (not followed)")
    assert [e["stimulus_id"] for e in rows[old.name]["examples"]] == ["1001"]
    assert _hot_half(site.parent / rows[old.name]["examples"][0]["model"]) == "right"
    assert len(list((site.parent / "assets" / "runs").iterdir())) == 1  # the old run's only

    # harness eval finishing a run whose maps/candidates links elsewhere neither moves nor deletes
    # the files there
    import pandas as pd

    run = tmp_path / "eval-run"
    (run / "maps").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    from harness.ids import stimulus_filename
    from harness.results.examples import save_candidate

    save_candidate(tmp_path / "donor-run", "1001", np.zeros((4, 4), np.uint8))
    (elsewhere / stimulus_filename("1001", ".npy")).write_bytes(
        (tmp_path / "donor-run" / "maps" / "candidates" / stimulus_filename("1001", ".npy")).read_bytes())
    (run / "maps" / "candidates").symlink_to(elsewhere, target_is_directory=True)
    frame = pd.DataFrame({"stimulus_id": ["1001"], "status": ["ok"], "nss": [1.0]})
    assert keep_examples(run, frame) == []
    assert [p.name for p in elsewhere.iterdir()] == [stimulus_filename("1001", ".npy")]
    assert not (run / "maps" / stimulus_filename("1001", ".png")).exists()


def _raw_npy(header: str, payload: bytes = b"") -> bytes:
    """An .npy file with the header given (what np.save would never write)."""
    import struct

    h = header.encode("latin1")
    h += b" " * (64 - (10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload


def _raw_png(w: int, h: int) -> bytes:
    """A grey PNG of w x h, all zeros: compresses to almost nothing whatever its size."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(b"\0" * (w + 1)) for _ in range(h)) + rows.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_hostile_example_maps_are_left_off_with_one_warning_each(tmp_path, monkeypatch):
    """Example maps that are not maps a run writes failed the whole build with a traceback (a
    declared 1e6 x 1e6 .npy: "Unable to allocate 3.64 TiB"; object, string, 3-D, empty, scalar
    arrays; a PNG that is not one, named after the site folder) or cost memory (a 20000 x 20000 PNG
    of 389 KB, a PIL DecompressionBombError; 9000 x 9000 took 2 GB) (found by the security QA). Now
    each is refused from its header, one warning line naming the file; the other examples are shown."""
    from harness.ids import stimulus_filename

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    ids = [f"{1001 + i}" for i in range(14)]
    run = write_run(tmp_path / "runs", model="m", dataset="no-such-dataset", metrics={"nss": 1.0}, n_images=14,
                    maps={sid: _half_map("left") for sid in ids})
    maps = run / "maps"
    index = json.loads((maps / "index.json").read_text())
    bad_npy = {
        "huge": _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }", b"\0" * 64),
        "object": _raw_npy("{'descr': '|O', 'fortran_order': False, 'shape': (2, 2), }", b"\x80\x04N."),
        "truncated": _raw_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (60, 80), }", b"\0" * 64),
        "not npy": b"not an array at all",
    }
    arrays = {"3-D": np.ones((4, 5, 6), np.float32), "empty": np.zeros((0, 0), np.float32),
              "scalar": np.float32(3), "string": np.array([["a", "b"]]), "complex": np.ones((5, 5), np.complex64)}
    pngs = {"bomb": _raw_png(20000, 20000), "too large": _raw_png(300, 200), "not png": b"this is not a png"}
    bad: dict[str, str] = {}
    for sid, (what, data) in zip(ids, [*bad_npy.items(), *arrays.items(), *pngs.items()]):
        path = maps / stimulus_filename(sid, ".npy")
        if what in pngs:
            path.unlink()
            path = path.with_suffix(".png")
            index.pop(stimulus_filename(sid, ".npy"))
            index[path.name] = sid
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            np.save(path, data)
        bad[sid] = str(path)
    (maps / "index.json").write_text(json.dumps(index))
    good = [sid for sid in ids if sid not in bad]
    assert len(good) == 2

    r = CliRunner().invoke(main, ["leaderboard", "build", "--results", str(tmp_path / "runs"), "--output",
                                  str(tmp_path / "site"), "--examples", "14"])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    lines = [x for x in r.output.splitlines() if x.startswith("warning: ") and "no-such-dataset:" not in x.split()[1]]
    assert len(lines) == len(bad), r.output
    for sid, path in bad.items():
        (line,) = [x for x in lines if x.startswith(f"warning: {path}: ")]
        assert line.endswith("; that example is left off the page"), line
    said = "\n".join(lines)
    for words in ("1000000x1000000 is larger than any stimulus' map can be", "dtype '|O' is not a map's",
                  "holds 64 bytes of the 19,200 its header declares", "shape (4, 5, 6) is not a map's",
                  "shape (0, 0)", "shape ()", "dtype '<U1'", "dtype '<c8'", "20000x20000 PNG, larger than an example",
                  "300x200 PNG", "not a PNG file", "not a .npy array"):
        assert words in said, words
    row = page_data(tmp_path / "site" / "index.html")["rows"][0]
    assert sorted(e["stimulus_id"] for e in row["examples"]) == good


def test_a_map_far_larger_than_its_overlay_is_shrunk_in_small_pieces():
    """A 1 x 50 million map (50 MB) cost 1.2 GB in the overlay (found by the security QA): it is
    made block means first, without a float copy of the whole map."""
    from harness.leaderboard.site import EXAMPLE_WIDTH, _shrunk

    rng = np.random.default_rng(0)
    m = rng.random((1603, 2011)).astype(np.float32)
    m[0, 0] = np.nan
    small = _shrunk(m)
    assert small.shape == (802, 1006) and max(small.shape) >= 2 * EXAMPLE_WIDTH
    assert small[0, 0] == pytest.approx(m[:2, :2].ravel()[1:].sum() / 4, rel=1e-5)  # the NaN counts as 0
    assert small[3, 5] == pytest.approx(m[6:8, 10:12].mean(), rel=1e-5)
    assert small[-1, -1] == pytest.approx(m[1602, 2010], rel=1e-5)  # a short block at the edge: its own mean
    assert _shrunk(np.ones((1, 2_000_000), np.uint8)).shape == (1, 721)  # blocks of 2777
    small_enough = np.ones((600, 800), np.float32)
    assert _shrunk(small_enough) is small_enough  # OSIE's maps are drawn as they are
