"""Viewing geometry per stimulus: a dataset whose images have different sizes and were each scaled to
the screen has no single pixels-per-degree.

The end-to-end tests build such a dataset from real OSIE data: eight OSIE stimuli, the even ones
stored at 1/8 of their size (100x75) and the odd ones at full size (800x600), the fixations of all
15 observers mapped onto the stored pixels (pixel centre to pixel centre). All were shown at OSIE's
800x600 on the same screen (24 display pixels per degree, OSIE's figure), so the small ones were
enlarged 8x: ``display_scale`` 8 and 1, one degree = 3 and 24 pixels of the stored images. The
dataset plugin (written as a new plugin author would, registered for the test only) declares
``display_pixels_per_degree = 24`` and a ``display_scale`` per record; a twin plugin reads the same
files but declares no geometry, as a dataset did before per-stimulus geometry existed, so a blur
can only be one number of pixels for every image.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness.data import GazeDataset
from harness.data.density import stimulus_ppd, stimulus_sigma_px
from harness.errors import DataError, HarnessError
from harness.evaluation import EvalConfig, run_eval
from harness.evaluation.config import CEILING, run_sigma_px, stimulus_blurs
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.results import read_run

DISPLAY = (800, 600)  # every stimulus was shown at this size
SCALES = (0.125, 1.0)  # stored size / displayed size, alternating over the stimuli
N_STIMULI = 8


# ------------------------------------------------------------------------------ the test datasets

class MixedSizes(GazeDataset):
    """Images of different sizes, each scaled to 800x600 on one screen (``fixations.json``: per image
    its display scale and, per subject, ``[x, y, duration_ms]`` in stored-image pixels)."""

    name = "mixed-sizes-test"
    display_pixels_per_degree = 24.0  # OSIE's screen: 24 display pixels per degree
    tasks = ("free-viewing",)
    converter_version = "1"
    description = "OSIE stimuli stored at different sizes, all shown at 800x600 (test)"

    def source_files(self, root):
        return [root / "fixations.json", *sorted((root / "images").iterdir())]

    def convert(self, root):
        table = json.loads((root / "fixations.json").read_text())
        for name, entry in sorted(table.items()):
            path = root / "images" / name
            size = self.image_size(path)
            if size is None:
                continue
            fixations = []
            for subject, points in sorted(entry["subjects"].items()):
                x, y, d = np.asarray(points, dtype=np.float64).T
                fixations += self.fixation_list(subject, x, y, width=size[0], height=size[1], duration_ms=d)
            yield {"stimulus_id": path.stem, "image": str(path), "width": size[0], "height": size[1],
                   "fixations": fixations, **self.geometry(entry)}

    def geometry(self, entry):
        return {"display_scale": entry["display_scale"]}  # display pixels per image pixel


class MixedSizesNoGeometry(MixedSizes):
    """The same files with no geometry declared: one pixel blur for every image."""

    name = "mixed-sizes-flat-test"
    display_pixels_per_degree = float("nan")

    def geometry(self, entry):
        return {}


class _Plugin:
    @hookimpl
    def register_datasets(self, register):
        for cls in (MixedSizes, MixedSizesNoGeometry):
            register(cls.name, cls, tasks=cls.tasks, description=cls.description)


@pytest.fixture(scope="module")
def mixed_dir(osie_dir, tmp_path_factory):
    """The data folder: OSIE stimuli 1001-1008 resized, their fixations mapped to the stored pixels."""
    import scipy.io
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed-sizes")
    (root / "images").mkdir()
    cell = scipy.io.loadmat(str(osie_dir / "eye" / "fixations.mat"))["fixations"]
    table = {}
    for i in range(N_STIMULI):
        entry = cell[i, 0][0, 0]
        stem = Path(str(entry["img"][0])).stem
        scale = SCALES[i % len(SCALES)]
        w, h = round(DISPLAY[0] * scale), round(DISPLAY[1] * scale)
        with Image.open(osie_dir / "stimuli" / f"{stem}.jpg") as im:
            im.convert("RGB").resize((w, h), Image.Resampling.BOX).save(root / "images" / f"{stem}.png")
        subjects = {}
        for k in range(entry["subjects"].shape[0]):
            s = entry["subjects"][k, 0][0, 0]
            x = np.atleast_1d(s["fix_x"].ravel()).astype(np.float64) - 1  # OSIE is 1-based
            y = np.atleast_1d(s["fix_y"].ravel()).astype(np.float64) - 1
            d = np.atleast_1d(s["fix_duration"].ravel()).astype(np.float64)
            # display pixel centre -> stored pixel centre
            x, y = (x + 0.5) * (w / DISPLAY[0]) - 0.5, (y + 0.5) * (h / DISPLAY[1]) - 0.5
            subjects[f"s{k + 1:02d}"] = np.stack([x, y, d], axis=1).tolist()
        table[f"{stem}.png"] = {"display_scale": DISPLAY[0] / w, "subjects": subjects}
    (root / "fixations.json").write_text(json.dumps(table))
    return root


@pytest.fixture
def mixed_plugin():
    pm.register(_Plugin(), name="test-mixed-sizes")
    try:
        yield
    finally:
        pm.unregister(name="test-mixed-sizes")


def _references(tmp_path, data_dir, dataset, **kw) -> dict:
    """The human ceiling's and the centre-bias baseline's per-stimulus frames (indexed by id)."""
    cfg = EvalConfig(model=CEILING, dataset=dataset, data_dir=data_dir, cache_dir=tmp_path / "cache",
                     output=tmp_path / "runs", progress=False, score_workers=0, **kw)
    return {"ceiling" if r.summary["kind"] == "ceiling" else r.summary["model"]: read_run(r.run_dir)
            for r in run_eval(cfg)}


def _by_size(run) -> dict[int, dict[str, float]]:
    """Mean CC and SIM over the stimuli of each stored width (100: enlarged 8x, 800: shown 1:1)."""
    frame = run.per_image().set_index("stimulus_id")
    # stimulus i of the fixture is OSIE's 1001 + i, stored at SCALES[i % 2]: 1001, 1003, ... are small
    widths = {sid: (100 if int(sid) % 2 == 1 else 800) for sid in frame.index}
    out = {}
    for width in (100, 800):
        rows = frame.loc[[sid for sid, w in widths.items() if w == width]]
        out[width] = {"cc": float(rows["cc"].mean()), "sim": float(rows["sim"].mean())}
    return out


# ------------------------------------------------------------------------------ end to end

def test_mixed_sizes_blur_per_stimulus(tmp_path, mixed_dir, mixed_plugin):
    from harness.data import load_gaze_dataset

    gaze, ds = load_gaze_dataset(MixedSizes.name, data_dir=mixed_dir, cache_dir=tmp_path / "cache")
    assert set(ds.column_names) >= {"display_scale", "pixels_per_degree"}
    rows = ds.remove_columns(["image"]).to_list()
    assert sorted({(r["width"], r["display_scale"]) for r in rows}) == [(100, 8.0), (800, 1.0)]
    assert all(math.isnan(r["pixels_per_degree"]) for r in rows)
    assert gaze.info()["per_stimulus_geometry"]["display_scale"] == {"records": 8, "min": 1.0, "max": 8.0}

    # one degree (the default): 24 display px = 3 px of a 100x75 image, 24 px of an 800x600 one
    deg = _references(tmp_path / "deg", mixed_dir, MixedSizes.name)
    params = deg["ceiling"].settings["metric_params"]
    assert params["sigma_deg"] == 1.0 and params["sigma_px"] is None
    per = params["sigma_per_stimulus"]
    assert (per["min"], per["max"], per["sources"]) == (3.0, 24.0, {"display": 8})
    # --sigma-px on a dataset with display scales counts display pixels: the same blur, other run id
    px = _references(tmp_path / "px", mixed_dir, MixedSizes.name, sigma_px=24.0)
    px_params = px["ceiling"].settings["metric_params"]
    assert px_params["sigma_px"] == 24.0 and px_params["sigma_per_stimulus"]["sources"] == {"display-px": 8}
    assert px_params["sigma_per_stimulus"]["sha256"] == per["sha256"]
    assert px["ceiling"].run_id != deg["ceiling"].run_id
    a = deg["ceiling"].per_image().set_index("stimulus_id")
    b = px["ceiling"].per_image().set_index("stimulus_id")
    assert np.array_equal(a[["cc", "sim", "nss"]].to_numpy(), b[["cc", "sim", "nss"]].to_numpy())

    # with the blur per stimulus, people predict people better than the centre bias does, on
    # both CC and SIM, on the dataset and on each image size (measured: ceiling CC 0.711 / 0.703,
    # SIM 0.558 / 0.544 on the enlarged / 1:1 images; centre bias CC 0.344 / 0.357, SIM 0.363 / 0.400)
    ceiling, cb = deg["ceiling"], deg["center-bias"]
    for m in ("cc", "sim"):
        assert ceiling.summary["metrics"][m] > cb.summary["metrics"][m] + 0.1
    ce_size, cb_size = _by_size(ceiling), _by_size(cb)
    for width in (100, 800):
        for m in ("cc", "sim"):
            assert ce_size[width][m] > cb_size[width][m] + 0.1, (width, m)
    # the blur is one visual angle, so the two image sizes agree (1:1 vs 8x enlarged)
    assert ce_size[100]["cc"] == pytest.approx(ce_size[800]["cc"], abs=0.05)
    assert ce_size[100]["sim"] == pytest.approx(ce_size[800]["sim"], abs=0.05)

    # the same data with one pixel blur for every image (what --sigma-px did before)
    small = _references(tmp_path / "flat3", mixed_dir, MixedSizesNoGeometry.name, sigma_px=3.0)
    large = _references(tmp_path / "flat24", mixed_dir, MixedSizesNoGeometry.name, sigma_px=24.0)
    assert small["ceiling"].settings["metric_params"] == {"sigma_deg": None, "sigma_px": 3.0,
                                                          "ig_baseline": "center-bias"}
    # 3 px, right for the enlarged images, is 1/8 degree on the others: there the centre bias beats
    # the human ceiling on CC and SIM (measured: ceiling CC 0.127, SIM 0.079; centre bias 0.139,
    # 0.087); the dataset means stay in the ceiling's favour only thanks to the small images
    ce3, cb3 = _by_size(small["ceiling"]), _by_size(small["center-bias"])
    assert ce3[100] == pytest.approx(ce_size[100], abs=1e-12)  # the right blur there
    assert cb3[800]["cc"] > ce3[800]["cc"] and cb3[800]["sim"] > ce3[800]["sim"]
    # 24 px, right for the 1:1 images, is 8 degrees on the enlarged ones: every map is a broad blob,
    # and the centre bias' CC there more than doubles (measured 0.344 -> 0.785)
    ce24, cb24 = _by_size(large["ceiling"]), _by_size(large["center-bias"])
    assert ce24[800] == pytest.approx(ce_size[800], abs=1e-12)
    assert cb24[100]["cc"] > 2 * cb_size[100]["cc"]


def test_dataset_without_any_geometry_still_needs_sigma_px(tmp_path, mixed_dir, mixed_plugin):
    with pytest.raises(HarnessError, match=r"no known viewing geometry .*--sigma-px"):
        _references(tmp_path, mixed_dir, MixedSizesNoGeometry.name)


# ------------------------------------------------------------------------------ the rules


class _Geo:
    name = "geo"
    pixels_per_degree = 30.0
    display_pixels_per_degree = 40.0


def _rec(sid="a", w=100, h=80, **geo):
    return {"stimulus_id": sid, "width": w, "height": h, **geo}


def test_precedence_of_pixels_per_degree():
    nan = float("nan")
    assert stimulus_ppd(_rec(pixels_per_degree=12.0, display_scale=2.0), _Geo) == (12.0, "record")
    assert stimulus_ppd(_rec(pixels_per_degree=nan, display_scale=2.0), _Geo) == (20.0, "display")
    assert stimulus_ppd(_rec(display_scale=nan), _Geo) == (30.0, "dataset")
    assert stimulus_ppd(_rec(), _Geo) == (30.0, "dataset")  # a table without the columns

    class NoDisplay(_Geo):
        display_pixels_per_degree = nan

    assert stimulus_ppd(_rec(display_scale=2.0), NoDisplay) == (30.0, "dataset")

    class Nothing:
        name = "nothing"
        pixels_per_degree = nan

    assert stimulus_ppd(_rec(display_scale=2.0), Nothing)[1] == "none"
    with pytest.raises(DataError, match="no valid pixels_per_degree for stimulus 'a'"):
        stimulus_sigma_px(_rec(display_scale=2.0), Nothing)
    # --sigma-px beats every ppd: display pixels where the record has a display scale
    scaled = _rec(pixels_per_degree=12.0, display_scale=4.0)
    assert stimulus_sigma_px(scaled, _Geo, sigma_px=20.0) == (5.0, "display-px")
    assert stimulus_sigma_px(_rec(pixels_per_degree=12.0), _Geo, sigma_px=20.0) == (20.0, "image-px")
    assert stimulus_sigma_px(_rec(display_scale=2.0), _Geo, degrees=0.5) == (10.0, "display")


def test_blur_settings_uniform_and_per_stimulus():
    osie_like = type("OSIELike", (), {"name": "osie-like", "pixels_per_degree": 24.0})
    cfg = EvalConfig(model="uniform", dataset="x")
    blur = stimulus_blurs(cfg, osie_like, [_rec("a", 800, 600), _rec("b", 800, 600)])
    # exactly what runs recorded before per-stimulus geometry: their run ids do not change
    assert blur.uniform and blur.params == {"sigma_deg": 1.0, "sigma_px": 24.0} and blur.sigma_px == 24.0

    recs = [_rec("a", display_scale=1.0), _rec("b", display_scale=2.0), _rec("c", pixels_per_degree=10.0)]
    blur = stimulus_blurs(cfg, _Geo, recs)
    assert not blur.uniform and blur.sigma_px is None
    assert blur.sigmas.tolist() == [40.0, 20.0, 10.0]
    assert blur.params["sigma_per_stimulus"]["sources"] == {"display": 2, "record": 1}
    # a change of any one blur changes the recorded settings (so the run id)
    other = type("Other", (_Geo,), {"display_pixels_per_degree": 41.0})
    assert stimulus_blurs(cfg, other, recs).params != blur.params
    # every blur must be a sane one: the message names the stimulus and where its blur came from
    with pytest.raises(HarnessError, match=r"between 0.5 px and the longest image side \(100 px\).*"
                                           r"0\.4 px on stimulus 'b' \(display pixels divided by its display_scale\)"):
        stimulus_blurs(EvalConfig(model="uniform", dataset="x", sigma_px=0.8), _Geo, recs)


def test_run_sigma_px_reads_both_forms():
    assert run_sigma_px({"sigma_deg": 1.0, "sigma_px": 24.0}, None, _rec()) == 24.0
    per = {"sigma_deg": None, "sigma_px": 30.0, "sigma_per_stimulus": {}}
    assert run_sigma_px(per, _Geo, _rec(display_scale=3.0)) == 10.0
    assert run_sigma_px({"sigma_deg": 2.0, "sigma_per_stimulus": {}}, _Geo, _rec(display_scale=2.0)) == 40.0


def test_converted_geometry_is_checked(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 10)).save(tmp_path / "a.png")
    Image.new("RGB", (40, 20)).save(tmp_path / "b.png")

    class Tiny(GazeDataset):
        name = "tiny-geometry"
        pixels_per_degree = 5.0
        scales = {"a": 2.0}

        def source_files(self, root):
            return [root / "a.png", root / "b.png"]

        def convert(self, root):
            for stem in ("a", "b"):
                w, h = self.image_size(root / f"{stem}.png")
                rec = {"stimulus_id": stem, "image": str(root / f"{stem}.png"), "width": w, "height": h,
                       "fixations": self.fixation_list("s1", [1.0], [1.0], width=w, height=h)}
                if stem in self.scales:
                    rec["display_scale"] = self.scales[stem]
                yield rec

    ds = Tiny(data_dir=tmp_path, cache_dir=tmp_path / "cache").load()
    rows = ds.remove_columns(["image"]).to_list()
    assert rows[0]["display_scale"] == 2.0 and math.isnan(rows[1]["display_scale"])  # not said: NaN
    assert all(math.isnan(r["pixels_per_degree"]) for r in rows)

    class Bad(Tiny):
        name = "tiny-geometry-bad"
        scales = {"a": -1.0}

    with pytest.raises(DataError, match=r"record 'a': display_scale must be positive and finite"):
        Bad(data_dir=tmp_path, cache_dir=tmp_path / "cache").load()


def test_old_tables_without_the_columns_keep_working(osie_dataset, osie):
    """OSIE's converter yields no geometry: its table (cached before the columns existed, or now)
    has no such columns, and its one blur is the dataset's 24 px."""
    from harness.evaluation.config import geometry_rows
    from harness.evaluation.context import DatasetContext

    assert "display_scale" not in osie_dataset.column_names
    cfg = EvalConfig(model="uniform", dataset="osie", limit=3)
    blur = stimulus_blurs(cfg, osie, geometry_rows(osie_dataset, 3))
    assert blur.uniform and blur.params == {"sigma_deg": 1.0, "sigma_px": 24.0}
    ctx = DatasetContext(osie, osie_dataset, 3, blur)
    assert ctx.sigma_px == 24.0 and ctx.sigma(2) == 24.0


def test_other_image_fixations_stay_inside_a_smaller_image():
    """Shuffled AUC takes its negatives from the other images, rescaled to this one: pixel centre to
    pixel centre when sizes differ, so the last column of a 50-wide image is inside a 20-wide one."""
    from harness.evaluation.context import DatasetContext

    from datasets import Dataset

    from harness.schema import FEATURES, empty_task_fields

    def rec(sid, w, h, x, y):
        return {"stimulus_id": sid, "image": None, "width": w, "height": h, **empty_task_fields(),
                "fixations": [{"subject": "s", "x": x, "y": y, "start_ms": 0.0, "duration_ms": 0.0}]}

    def Rows(records):  # a real canonical dataset (no images: the context does not read them)
        return Dataset.from_list(records, features=FEATURES)

    ctx = DatasetContext(None, Rows([rec("a", 50, 40, 49.0, 0.0), rec("b", 20, 30, 0.0, 29.0)]), None, 2.0)
    x, y = ctx.others(1)
    assert (x[0], y[0]) == pytest.approx((49.5 * 20 / 50 - 0.5, 0.5 * 30 / 40 - 0.5))
    assert -0.5 <= x[0] < 19.5 and -0.5 <= y[0] < 29.5
    x, y = ctx.others(0)
    assert (x[0], y[0]) == pytest.approx((0.5 * 50 / 20 - 0.5, 29.5 * 40 / 30 - 0.5))
    # one size for all: x / w * w, as ever
    same = DatasetContext(None, Rows([rec("a", 20, 30, 19.0, 0.0), rec("b", 20, 30, 3.0, 29.0)]), None, 2.0)
    assert same.others(1)[0][0] == 19.0 / 20 * 20 and same.others(0)[1][0] == 29.0 / 30 * 30
