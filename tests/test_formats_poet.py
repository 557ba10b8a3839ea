"""POET in its release layout: ``etData/etData_<class>.mat`` struct arrays + ``PascalImages/``.

Written with ``scipy.io.savemat`` as MATLAB struct arrays and read back the way the public readers
read them (``squeeze_me=True, struct_as_record=False``), so scipy's squeezing of one-element arrays,
uint16 positions and empty ``pos`` arrays all occur. Images are not square, the right eye holds
other points than the left, and boxes are 1-based: reading the wrong eye, swapping x and y or
forgetting the box's index base fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.data import load_gaze_dataset
from harness.errors import DataError


def struct_array(records: list[dict], fields: list[str]) -> np.ndarray:
    """A MATLAB struct array for savemat (a dict alone becomes a 1x1 struct)."""
    arr = np.zeros((len(records),), dtype=[(f, object) for f in fields])
    for i, r in enumerate(records):
        for f in fields:
            arr[i][f] = r[f]
    return arr


def observers(left: list, right: list | None = None) -> np.ndarray:
    right = right or [np.array([[0.0, 0.0]])] * len(left)
    return struct_array([{"imgCoord": {"fixL": {"pos": lp}, "fixR": {"pos": rp}}} for lp, rp in zip(left, right)],
                        ["imgCoord"])


def entry(filename: str, dims, gtbb, fixations) -> dict:
    return {"filename": filename, "dimensions": np.array(dims, dtype=np.uint16), "gtbb": np.array(gtbb, dtype=np.uint16),
            "fixations": fixations}


def write_class(root: Path, cls: str, entries: list[dict], sizes: dict[str, tuple[int, int]]) -> None:
    (root / "etData").mkdir(parents=True, exist_ok=True)
    (root / "PascalImages").mkdir(parents=True, exist_ok=True)
    for filename, size in sizes.items():
        Image.new("RGB", size, (10, 80, 160)).save(root / "PascalImages" / f"{cls}_{filename}.jpg")
    scipy.io.savemat(root / "etData" / f"etData_{cls}.mat",
                     {"etData": struct_array(entries, ["filename", "dimensions", "gtbb", "fixations"])})


def write_poet(root: Path) -> None:
    dog = [
        entry("2008_000001", [30, 40], [1, 2, 10, 20], observers(
            left=[np.array([[5, 6], [39, 29]], dtype=np.uint16),  # uint16 as some release files hold
                  np.array([[10.5, 7.25]]),                       # one fixation: scipy squeezes it to (2,)
                  np.zeros((0, 2)),                               # an observer without fixations
                  np.array([[np.nan, 3.0], [-1.0, 5.0], [41.0, 5.0]]),  # NaN, left of and right of the image
                  np.array([[20.0, 15.0]])],
            right=[np.array([[1.0, 1.0]])] * 5)),
        # [height width 3], two instances
        entry("2008_000002", [20, 50, 3], [[1, 1, 50, 20], [11, 5, 20, 8]], observers(
            left=[np.array([[49.0, 19.0], [0.0, 0.0]])] + [np.array([[25.0, 10.0]])] * 4)),
        entry("2008_000003", [30, 40], [1, 1, 5, 5], observers(left=[np.array([[3.0, 3.0]])] * 5)),  # image is 41x30
    ]
    write_class(root, "dog", dog, {"2008_000001": (40, 30), "2008_000002": (50, 20), "2008_000003": (41, 30)})
    # one image: scipy gives etData as a single struct, not an array
    cat = [entry("2008_000004", [40, 30], [5, 5, 30, 40], observers(left=[np.array([[29.0, 39.0]])] * 5))]
    write_class(root, "cat", cat, {"2008_000004": (30, 40)})


def test_poet_structs_eyes_boxes(tmp_path):
    root = tmp_path / "poet" / "POETdataset"
    write_poet(root)
    obj, ds = load_gaze_dataset("poet", data_dir=tmp_path / "poet", cache_dir=tmp_path / "cache")
    recs = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    assert sorted(recs) == ["cat_2008_000004", "dog_2008_000001", "dog_2008_000002"]

    one = recs["dog_2008_000001"]
    assert (one["width"], one["height"], one["label"]) == (40, 30, "dog")
    assert one["objects"] == [{"bbox": [0.0, 1.0, 10.0, 19.0], "category": "dog"}]
    got = [(f["subject"], f["x"], f["y"]) for f in one["fixations"]]
    assert got == [("1", 5.0, 6.0), ("1", 39.0, 29.0), ("2", 10.5, 7.25), ("5", 20.0, 15.0)]
    assert all(np.isnan(f["duration_ms"]) and np.isnan(f["start_ms"]) for f in one["fixations"])

    two = recs["dog_2008_000002"]
    assert [o["bbox"] for o in two["objects"]] == [[0.0, 0.0, 50.0, 20.0], [10.0, 4.0, 10.0, 4.0]]
    assert [(f["x"], f["y"]) for f in two["fixations"]][:2] == [(49.0, 19.0), (0.0, 0.0)]
    cat = recs["cat_2008_000004"]
    assert cat["label"] == "cat" and {(f["x"], f["y"]) for f in cat["fixations"]} == {(29.0, 39.0)}

    s = obj.stats
    assert s["dropped_invalid"] == 1 and s["dropped_out_of_bounds"] == 2
    assert s["observers_without_fixations"] == 1 and s["skipped_size_mismatch"] == 1
    assert s["fields etData"] == "dimensions, filename, fixations, gtbb"
    assert s["fields fixL"] == "pos"

    r = CliRunner().invoke(main, ["datasets", "info", "poet", "--data-dir", str(tmp_path / "poet"),
                                  "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 0, r.output
    assert "fields imgCoord:" in r.output and "fixL, fixR" in r.output

    # the right eye is the other choice
    from plugins.datasets.poet import POET

    class RightEye(POET):
        eye = "right"

    right = RightEye(data_dir=tmp_path / "poet", cache_dir=tmp_path / "cache-right").load()
    first = next(r for r in right.remove_columns("image").to_list() if r["stimulus_id"] == "dog_2008_000001")
    assert {(f["x"], f["y"]) for f in first["fixations"]} == {(1.0, 1.0)}


def test_poet_refuses_transposed_positions_and_zero_based_boxes(tmp_path):
    root = tmp_path / "poet"
    x, y = np.linspace(25, 95, 30), np.linspace(1, 18, 30)  # inside a 100x20 image
    transposed = np.stack([y, x], axis=1)  # stored as [y x]
    write_class(root, "boat", [entry("2008_000010", [20, 100], [1, 1, 9, 9], observers(left=[transposed] * 5))],
                {"2008_000010": (100, 20)})
    with pytest.raises(DataError, match=r"etData_boat\.mat: .* outside their images as \[x y\]"):
        load_gaze_dataset("poet", data_dir=root, cache_dir=tmp_path / "cache")

    write_class(root, "boat", [entry("2008_000010", [20, 100], [0, 1, 9, 9], observers(left=[np.array([[3.0, 3.0]])] * 5))],
                {"2008_000010": (100, 20)})
    r = CliRunner().invoke(main, ["datasets", "info", "poet", "--data-dir", str(root), "--cache-dir", str(tmp_path / "cache")])
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "etData(1): gtbb [0 1 9 9] is not a 1-based inclusive box" in r.output


def test_poet_serves_its_tasks(tmp_path):
    """Through ``harness eval`` (a free-viewing baseline; the task list and the geometry error), and
    its boxes and labels through the detection and classification scorers: outputs equal to the
    ground truth score 1, the other class scores 0."""
    from harness.results import load_runs
    from plugins.tasks import Classification, Detection

    root = tmp_path / "poet"
    write_poet(root)
    out = tmp_path / "runs"
    args = ["eval", "--model", "center-bias", "--dataset", "poet", "--data-dir", str(root), "--cache-dir",
            str(tmp_path / "cache"), "--output", str(out), "--no-show", "--no-references"]
    r = CliRunner().invoke(main, [*args, "--task", "captioning", "--sigma-px", "5"])
    assert r.exit_code == 1 and "it serves: free-viewing, classification, detection" in r.output
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "no known viewing geometry" in r.output and "--sigma-px" in r.output
    r = CliRunner().invoke(main, [*args, "--sigma-px", "5"])
    assert r.exit_code == 0, r.output
    (run,) = load_runs(out)
    assert run.summary["n_images"] == 3 and run.summary["n_failed"] == 0

    _, ds = load_gaze_dataset("poet", data_dir=root, cache_dir=tmp_path / "cache")
    records = ds.remove_columns("image").to_list()
    perfect = [{"boxes": [o["bbox"] for o in r["objects"]], "scores": [0.9] * len(r["objects"]),
                "categories": [o["category"] for o in r["objects"]]} for r in records]
    detection = Detection(objects_exhaustive=False)  # what eval builds for POET
    assert detection.score_dataset(perfect, records) == {"map": pytest.approx(1.0), "map50": pytest.approx(1.0)}
    wrong = [{**p, "categories": ["cat" if c == "dog" else "dog" for c in p["categories"]]} for p in perfect]
    assert detection.score_dataset(wrong, records)["map50"] == pytest.approx(0.0)
    labels = [{"label": r["label"]} for r in records]
    assert Classification().score_dataset(labels, records)["top1"] == pytest.approx(1.0)


def test_imagenet_aliases_name_the_voc_classes():
    """Every ImageNet class a VOC class accepts is, by its WordNet name, an instance of it."""
    from harness.imagenet_classes import NAMES
    from plugins.datasets.poet import IMAGENET

    words = {"aeroplane": ("airliner", "warplane"), "bicycle": ("bicycle", "bike"), "cow": ("ox", "buffalo", "bison"),
             "horse": ("sorrel",), "motorbike": ("moped", "scooter"), "diningtable": ("dining table",),
             "sofa": ("couch",), "cat": ("cat", "Persian", "Siamese"),
             "boat": ("carrier", "canoe", "catamaran", "ship", "fireboat", "gondola", "lifeboat", "liner",
                      "schooner", "speedboat", "submarine", "trimaran", "yawl")}
    for cls, indices in IMAGENET.items():
        assert len(set(indices)) == len(indices)
        if cls == "dog":  # the 118 breeds: Chihuahua ... Mexican hairless
            assert (NAMES[151], NAMES[268], len(indices)) == ("Chihuahua", "Mexican hairless", 118)
            continue
        for i in indices:
            assert any(w in NAMES[i] for w in words[cls]), (cls, i, NAMES[i])


@pytest.mark.slow
def test_real_classifier_on_poet_counts_imagenet_breeds_as_dog(tmp_path, osie_dir):
    """EfficientNet-Lite0 (real ImageNet weights) on real photos of dogs filed as POET ``dog``: any
    predicted breed counts; the same photo filed as ``cat`` does not. The run stores the aliases."""
    import json

    from harness.imagenet_classes import WNIDS
    from harness.results import load_runs
    from plugins.datasets.poet import IMAGENET

    root = tmp_path / "poet"
    dogs = ["1009", "1097", "1292"]  # a beagle, a corgi, a golden retriever (tests/data/imagenet_osie_labels.json)
    one = np.array([[400.0, 300.0]])
    write_class(root, "dog", [entry(sid, [600, 800], [1, 1, 800, 600], observers(left=[one] * 5)) for sid in dogs], {})
    write_class(root, "cat", [entry("1009", [600, 800], [1, 1, 800, 600], observers(left=[one] * 5))], {})
    for cls, ids in (("dog", dogs), ("cat", ["1009"])):
        for sid in ids:
            (root / "PascalImages" / f"{cls}_{sid}.jpg").write_bytes((osie_dir / "stimuli" / f"{sid}.jpg").read_bytes())
    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "efficientnet-lite0", "--dataset", "poet", "--task", "classification",
                                  "--data-dir", str(root), "--cache-dir", str(tmp_path / "cache"), "--output", str(out),
                                  "--sigma-px", "24", "--no-show", "--no-references"])
    assert r.exit_code == 0, r.output
    (run,) = load_runs(out)
    aliases = run.settings["task_params"]["label_aliases"]
    assert aliases["dog"] == [WNIDS[i] for i in IMAGENET["dog"]]
    frame = run.per_image().set_index("stimulus_id")
    for sid in frame.index:
        predicted = json.loads(frame.loc[sid, "output"])["label"]
        assert frame.loc[sid, "task:top1"] == float(predicted in aliases[sid.split("_")[0]])
    assert [frame.loc[f"dog_{sid}", "task:top1"] for sid in dogs] == [1.0, 1.0, 1.0]
    assert frame.loc["cat_1009", "task:top1"] == 0.0
    assert run.summary["task_metrics"]["top1"] == pytest.approx(3 / 4)


def test_poet_other_struct_layout_is_an_error_not_an_empty_dataset(tmp_path):
    root = tmp_path / "poet"
    odd = struct_array([{"imgCoord": {"fixLeft": {"pos": np.array([[3.0, 3.0]])}}}] * 5, ["imgCoord"])
    write_class(root, "cow", [entry("2008_000020", [20, 30], [1, 1, 9, 9], odd)], {"2008_000020": (30, 20)})
    with pytest.raises(DataError, match=r"etData\(1\)\.fixations\(1\)\.imgCoord has no field 'fixL' \(fields: fixLeft\)"):
        load_gaze_dataset("poet", data_dir=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("field", ["pos", "gtbb"])
def test_poet_text_where_numbers_belong_names_the_entry(tmp_path, field):
    """pos (or gtbb) of text ended as "converting ... failed: ValueError: could not convert string to
    float: np.str_('ab')", naming no file or entry (found by the converter QA, round 2)."""
    root = tmp_path / "poet"
    text = np.array(["ab", "cd"])
    left = [text if field == "pos" else np.array([[3.0, 3.0]])] + [np.array([[3.0, 3.0]])] * 4
    one = entry("2008_000020", [20, 30], [1, 1, 9, 9], observers(left=left))
    if field == "gtbb":
        one["gtbb"] = text
    write_class(root, "cow", [one], {"2008_000020": (30, 20)})
    where = f"poet: {root / 'etData' / 'etData_cow.mat'} etData(1)" + (".fixations(1)" if field == "pos" else "")
    with pytest.raises(DataError) as exc:
        load_gaze_dataset("poet", data_dir=root, cache_dir=tmp_path / "cache")
    assert str(exc.value) == f"{where}: {field} holds text ('ab'), not numbers"
