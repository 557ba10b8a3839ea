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
    assert data["metrics"] == [{"name": "nss", "direction": "higher"}, {"name": "auc_judd", "direction": "higher"},
                               {"name": "kld", "direction": "lower"}]
    assert [m["name"] for m in data["task_metrics"]] == ["task:top1", "task:top5"]
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
def test_example_overlays_from_maps_saved_by_harness_eval(tmp_path, osie_dir):
    """Real runs: `harness eval` keeps the maps of its first stimuli; the site shows the human
    density (recomputed from OSIE with the run's sigma) beside them, in dataset order."""
    results = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", "4", "--output",
                                  str(results), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    (run,) = load_runs(results)
    maps_index = run.path / "maps" / "index.json"
    if maps_index.is_file():  # maps/<stimulus_filename(id)> named in maps/index.json
        saved = sorted(json.loads(maps_index.read_text()).values())
    else:  # runs written before the index: maps/<id>.npy
        saved = sorted(p.stem for p in (run.path / "maps").glob("*.npy"))
    assert len(saved) == 3
    index = build_site(results, tmp_path / "site", n_examples=2)
    row = page_data(index)["rows"][0]
    assert row["model"] == "center-bias" and row["examples_note"] is None
    assert [e["stimulus_id"] for e in row["examples"]] == saved[:2]  # the first stimuli of OSIE, in order
    for ex in row["examples"]:
        human = Image.open(index.parent / ex["human"])
        model = Image.open(index.parent / ex["model"])
        assert human.size == model.size == (360, 270)  # OSIE is 800x600
        assert not ex["human"].startswith(("/", "http")) and not ex["model"].startswith(("/", "http"))
    # the centre-bias map is hottest in the middle of the image
    m = np.asarray(Image.open(index.parent / row["examples"][0]["model"])).astype(float)
    plain = np.asarray(Image.open(osie_dir / "stimuli" / f"{saved[0]}.jpg").convert("RGB").resize((360, 270))).astype(float)
    change = np.abs(m - plain).sum(axis=2)
    assert change[110:160, 155:205].mean() > 3 * change[:30, :30].mean()
    # human and model panels differ (one is fixations, the other the centre bias)
    h = np.asarray(Image.open(index.parent / row["examples"][0]["human"])).astype(float)
    assert np.abs(h - m).mean() > 5


def test_missing_dataset_gives_a_note_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    write_run(tmp_path / "runs", model="m", dataset="no-such-dataset", metrics={"nss": 1.0},
              maps={"1001": np.ones((60, 80))})
    index = build_site(tmp_path / "runs", tmp_path / "site")
    row = page_data(index)["rows"][0]
    assert row["examples_note"].startswith("Human fixation density unavailable: unknown dataset 'no-such-dataset'")
    assert [e["stimulus_id"] for e in row["examples"]] == ["1001"]
    assert "human" not in row["examples"][0]
    assert (index.parent / row["examples"][0]["model"]).is_file()


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

    site = build_site(tmp_path / "runs", tmp_path / "site", n_examples=10)
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
