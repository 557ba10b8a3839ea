"""Mouse tracking as a model (plugins/models/mouse.py) on the real OSIE mouse data.

The read is checked on the real files: ``coord`` is ``[row, column]``, 1-based (the authors'
``sub2ind([h w], coord(:,1), coord(:,2))``); a transposed read must fail, both by its ranges and by
agreeing with the eye fixations of the same images far worse than the correct read does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from harness.cli import main
from harness.data.density import fixation_density
from harness.errors import DataError, HarnessError
from harness.evaluation.loader import StimulusSize, batches
from harness.metrics.saliency import auc_judd, nss
from harness.schema import Fixations
from plugins.models.mouse import (MousePoints, MouseModel, find_mouse_folder, mouse_map, read_mouse_mat)

FIRST8 = [str(i) for i in range(1001, 1009)]
SOURCES = {"amt": "mouse_amt", "lab": "mouse_lab"}


def raw(osie_dir: Path, source: str, sid: str):
    """The struct exactly as scipy gives it (uint fields), no harness code involved."""
    return scipy.io.loadmat(str(osie_dir / SOURCES[source] / f"{sid}.mat"))["fixations"][0, 0]


@pytest.fixture(scope="module")
def models(osie_dir):
    return {s: MouseModel(s, data_dir=osie_dir) for s in SOURCES}


# --- (1) the read --------------------------------------------------------------------------------


@pytest.mark.parametrize("source", list(SOURCES))
def test_mat_layout_ranges_and_index_base(osie_dir, source):
    """Fields subj/coord/order; column 1 of coord is the row (<= 600), column 2 the column (reaches
    beyond 600, up to ~800), 1-based: never 0; the harness read is [column-1, row-1]."""
    rows, cols = [], []
    for sid in FIRST8:
        rec = raw(osie_dir, source, sid)
        assert set(rec.dtype.names) == {"subj", "coord", "order"}
        coord = rec["coord"]
        assert coord.ndim == 2 and coord.shape[1] == 2 and coord.dtype.kind == "u"
        assert rec["subj"].shape == rec["order"].shape == (coord.shape[0], 1)
        c = coord.astype(np.int64)  # uint16: cast before arithmetic
        rows.append(c[:, 0])
        cols.append(c[:, 1])
        pts = read_mouse_mat(osie_dir / SOURCES[source] / f"{sid}.mat", width=800, height=600)
        np.testing.assert_array_equal(pts.x, c[:, 1] - 1)
        np.testing.assert_array_equal(pts.y, c[:, 0] - 1)
        assert pts.x.dtype == np.float64 and len(pts) == coord.shape[0]
        assert 0 <= pts.x.min() and pts.x.max() <= 799 and 0 <= pts.y.min() and pts.y.max() <= 599
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    assert rows.min() >= 1 and cols.min() >= 1  # 1-based: 0 never occurs
    assert rows.max() <= 600 and cols.max() <= 800
    assert cols.max() > 700 and (cols > 600).mean() > 0.03  # x (columns) runs up to ~800
    if source == "amt":
        # both borders reached: 600 and 800 are valid 1-based indices, impossible 0-based
        assert rows.max() == 600 and cols.max() == 800


def test_lab_traces_start_at_the_image_centre(osie_dir, models):
    """Every lab participant's trace starts at [300, 400] = the centre of 800x600 as [row, column]:
    read correctly that is (x 399, y 299); transposed it would be (x 299, y 399)."""
    starts = []
    for sid in FIRST8:
        pts = models["lab"].points(sid, 800, 600)
        starts += [(pts.x[pts.order == 1][k], pts.y[pts.order == 1][k]) for k in range(int((pts.order == 1).sum()))]
    starts = np.array(starts)
    centred = np.mean((starts[:, 0] == 399) & (starts[:, 1] == 299))
    assert centred > 0.8, starts[:10]


def test_transposed_file_is_refused(osie_dir, tmp_path):
    """The same samples with the columns swapped ([column, row]) do not fit 800x600: one-line
    error naming the file, instead of a wrong map."""
    rec = raw(osie_dir, "amt", "1001")
    swapped = {"subj": rec["subj"], "coord": rec["coord"][:, ::-1].copy(), "order": rec["order"]}
    path = tmp_path / "1001.mat"
    scipy.io.savemat(str(path), {"fixations": swapped})
    with pytest.raises(DataError) as err:
        read_mouse_mat(path, width=800, height=600)
    msg = str(err.value)
    assert str(path) in msg and "outside the 800x600" in msg and "\n" not in msg
    # and the untouched file, re-saved the same way, reads
    scipy.io.savemat(str(path), {"fixations": {k: rec[k] for k in ("subj", "coord", "order")}})
    assert len(read_mouse_mat(path, width=800, height=600)) == rec["coord"].shape[0]


def _mean_scores(ds, make_map, n=20):
    out = []
    for i in range(n):
        rec = ds[i]
        fix = Fixations.from_record(rec)
        m = make_map(str(rec["stimulus_id"]))
        out.append((nss(m, fix.x, fix.y), auc_judd(m, fix.x, fix.y)))
    return np.mean(out, axis=0)


@pytest.mark.parametrize("source", list(SOURCES))
def test_correct_read_predicts_eye_fixations_far_better_than_transposed(osie_dataset, models, source):
    """On the first 20 OSIE images, the mouse map of the correct read agrees with the 15
    observers' eye fixations far better than the transposed read (x <-> y, rescaled to fit)."""
    ds = osie_dataset.select(range(20)).select_columns(["stimulus_id", "fixations", "width", "height"])
    model = models[source]

    def correct(sid):
        return mouse_map(model.points(sid, 800, 600), (600, 800))

    def transposed(sid):
        p = model.points(sid, 800, 600)
        x = np.minimum(np.round(p.y * 800 / 600), 799)
        y = np.minimum(np.round(p.x * 600 / 800), 599)
        return mouse_map(MousePoints(x, y, p.subject, p.order), (600, 800))

    good_nss, good_auc = _mean_scores(ds, correct)
    bad_nss, bad_auc = _mean_scores(ds, transposed)
    # measured: amt NSS 2.73 / AUC-Judd 0.912 against 0.92 / 0.720 transposed
    assert good_nss > 1.5 and good_auc > 0.85, (good_nss, good_auc)
    assert good_nss > bad_nss + 1.0 and good_auc > bad_auc + 0.1, (good_nss, bad_nss, good_auc, bad_auc)


# --- the map -------------------------------------------------------------------------------------


def test_map_counts_each_visited_pixel_once(osie_dir, models):
    """The authors' ``map(unique(ptInd)) = 1`` then their eye Gaussian (24 px, zero padding):
    dwelling adds no weight; the map is non-negative, at stimulus resolution, sums to 1."""
    pts = MousePoints(x=np.array([10.0, 10, 10, 700]), y=np.array([20.0, 20, 20, 500]),
                      subject=np.array([1, 1, 1, 2]), order=np.array([1, 2, 3, 1]))
    m = mouse_map(pts, (600, 800))
    np.testing.assert_array_equal(m, fixation_density([10.0, 700], [20.0, 500], (600, 800), 24.0))
    assert m[20, 10] == pytest.approx(m[500, 700], rel=0.05)  # same weight (borders differ slightly)
    real = models["amt"].predict([StimulusSize(800, 600, "1001")], task="free-viewing", attention="mouse-map")
    (pred,) = real
    assert pred.attention.shape == (600, 800) and pred.attention.dtype == np.float64
    assert (pred.attention >= 0).all() and pred.attention.sum() == pytest.approx(1.0)


# --- errors --------------------------------------------------------------------------------------


def test_missing_file_is_a_one_line_error(tmp_path):
    (tmp_path / "mouse_amt").mkdir()
    model = MouseModel("amt", data_dir=tmp_path)
    with pytest.raises(DataError) as err:
        model.predict([StimulusSize(800, 600, "1001")], task="free-viewing", attention="mouse-map")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "mouse_amt" / "1001.mat") in msg and "does not exist" in msg


def test_missing_folder_and_missing_id_are_one_line_errors(tmp_path, monkeypatch, osie_dir):
    with pytest.raises(DataError) as err:
        MouseModel("lab", data_dir=tmp_path)
    assert str(tmp_path / "mouse_lab") in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError) as err:
        find_mouse_folder("amt")
    assert str(tmp_path / "osie" / "mouse_amt") in str(err.value) and "\n" not in str(err.value)
    model = MouseModel("amt", data_dir=osie_dir)
    with pytest.raises(HarnessError, match="stimulus_id"):
        model.predict([StimulusSize(800, 600)], task="free-viewing", attention="mouse-map")
    with pytest.raises(DataError, match="outside the 640x480"):  # not an OSIE stimulus
        model.predict([StimulusSize(640, 480, "1001")], task="free-viewing", attention="mouse-map")


def test_finds_the_data_like_the_osie_plugin(osie_dir, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(osie_dir.parent))
    assert find_mouse_folder("amt") == osie_dir / "mouse_amt"
    assert find_mouse_folder("lab", data_dir=osie_dir) == osie_dir / "mouse_lab"


def test_provenance_names_data_reader_and_blur(osie_dir, tmp_path, models):
    prov = models["lab"].provenance()
    assert prov["model_id"] == "osie/mouse_lab" and prov["revision"] == "mouse reader 1"
    assert len(prov["data_sha256"]) == 64 and prov["weights_sha256"] == prov["data_sha256"]
    assert prov["parameters"]["sigma_px"] == 24.0 and "700 files" in prov["data_files"]
    # the digest follows the content
    (tmp_path / "mouse_lab").mkdir()
    for sid in ("1001", "1002"):
        (tmp_path / "mouse_lab" / f"{sid}.mat").write_bytes((osie_dir / "mouse_lab" / f"{sid}.mat").read_bytes())
    first = MouseModel("lab", data_dir=tmp_path).provenance()["data_sha256"]
    (tmp_path / "mouse_lab" / "1002.mat").write_bytes((osie_dir / "mouse_lab" / "1003.mat").read_bytes())
    assert MouseModel("lab", data_dir=tmp_path).provenance()["data_sha256"] != first


def test_loader_passes_stimulus_ids():
    class Ctx:
        ids = ["1001", "1002", "1003"]
        sizes = [(800, 600), (800, 600), (640, 480)]

    ((chunk, idx, objs),) = list(batches(Ctx(), [(0, [1, 2])], pixels=False))
    assert [o.stimulus_id for o in objs] == ["1002", "1003"] and [o.size for o in objs] == [(800, 600), (640, 480)]


# --- the command line ----------------------------------------------------------------------------


def test_eval_mouse_amt_on_osie(tmp_path, osie):
    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "mouse-amt", "--dataset", "osie", "--limit", "8",
                                  "--output", str(out), "--no-show"])
    assert r.exit_code == 0, r.output
    folders = {json.loads(p.read_text())["model"]: p.parent for p in out.rglob("summary.json")}
    summaries = {m: json.loads((f / "summary.json").read_text()) for m, f in folders.items()}
    s = summaries["mouse-amt"]
    assert s["kind"] == "proxy" and s["attention"] == "mouse-map"
    assert s["n_images"] == 8 and s["n_failed"] == 0
    assert s["metrics"]["nss"] > 1.5  # the uniform baseline scores 0
    assert s["metrics"]["nss"] > summaries["center-bias"]["metrics"]["nss"]
    prov = json.loads((folders["mouse-amt"] / "manifest.json").read_text())["model_provenance"]
    assert prov["revision"] == "mouse reader 1" and len(prov["data_sha256"]) == 64
    shown = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(out), "--wide"])
    assert "mouse-amt (human proxy)" in shown.output, shown.output


def test_models_listing_has_both():
    r = CliRunner().invoke(main, ["models", "--json"])
    assert r.exit_code == 0, r.output
    listed = {m["name"]: m for m in json.loads(r.stdout)}
    assert listed["mouse-amt"]["description"].startswith("mouse (crowdsourced)")
    assert listed["mouse-lab"]["description"].startswith("mouse (lab)")
    assert listed["mouse-amt"]["attention"] == ["mouse-map"] and listed["mouse-amt"]["tasks"] == ["free-viewing"]
    r = CliRunner().invoke(main, ["attention-methods", "--json"])
    assert "mouse-map" in [m["name"] for m in json.loads(r.stdout)]


def test_eval_data_dir_reaches_the_mouse_model(osie_dir, tmp_path, monkeypatch):
    """`harness eval --data-dir` names the OSIE folder for the dataset and for the mouse model alike."""
    from click.testing import CliRunner

    from harness.cli import main

    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "elsewhere"))  # nothing there
    args = ["eval", "--model", "mouse-amt", "--dataset", "osie", "--limit", "2", "--no-references", "--no-show",
            "--output", str(tmp_path / "runs")]
    r = CliRunner().invoke(main, [*args, "--data-dir", str(osie_dir)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, [*args, "--data-dir", str(osie_dir.parent)])  # DIR holding osie/: the same rule
    assert r.exit_code == 0, r.output
