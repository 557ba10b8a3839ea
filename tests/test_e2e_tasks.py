"""Every task end to end through the CLI: ``harness eval`` -> ``harness leaderboard show`` -> ``harness report``.

Each test builds a tiny transformers checkpoint (``tests/tiny_models.py``), loads it as
``hf:<folder>``, and evaluates it on fixture data in a dataset's original on-disk layout:

- classification: CUB-GHA layout (``Fixation.txt`` + ``CUB_200_2011/``), tiny ViT;
- detection: COCO-Search18 layout (fixation JSON + ``images/<category>/``), tiny DETR;
- captioning: capgaze1 layout (pickled gaze dicts + transcription JSON per participant), tiny BLIP.

The classifier's and the detector's heads are set by hand (weights zero, chosen biases), so what they
predict is known and the task metrics have exact expected values; the captioner stays random and its
scores are checked against pycocoevalcap run on the stored outputs.

Density blur: CUB-GHA, COCO-Search18 and capgaze ship ``pixels_per_degree = NaN`` (their viewing
geometry is not published with the data / not verified), so their runs pass ``--sigma-px`` as a user
must.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

import tiny_models  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest)
from model_helpers import ByCall, blob
from harness.cli import main
from harness.results import load_runs

SIGMA_PX = "10"  # the density blur passed to the datasets without a geometry


# ---------------------------------------------------------------------------------------- helpers


def _image(size, seed: int) -> Image.Image:
    """A small image with a few coloured shapes (deterministic), so models see some structure."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(im)
    w, h = size
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        draw.rectangle([x0, y0, x0 + w // 3, y0 + h // 3], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return im


def _cli(args: list[str]) -> str:
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


def _run_all(model: str, dataset: str, task: str, out: Path, data_dir: Path | None, cache: Path,
             extra: tuple[str, ...] = ()) -> tuple[object, str, str]:
    """eval (with references), leaderboard show, report; returns (the model's run, table, report)."""
    args = ["eval", "--model", model, "--dataset", dataset, "--task", task, "--output", str(out),
            "--cache-dir", str(cache), "--batch-size", "2", "--no-show", *extra]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    _cli(args)
    table = _cli(["leaderboard", "show", "--results", str(out), "--task", task])
    report = _cli(["report", "--results", str(out)])
    # the report computes each run's statistics again from its rows: this version's summary holds the same
    assert "computed again" not in report, report
    (run,) = [r for r in load_runs(out) if r.summary["kind"] == "model"]
    return run, table, report


def _outputs_and_records(run, ds) -> tuple[list[dict], list[dict], object]:
    """The stored task outputs and the dataset records they belong to, in stored row order."""
    frame = run.per_image()
    by_id = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    outputs = [json.loads(o) if isinstance(o, str) else {} for o in frame["output"]]
    return outputs, [by_id[s] for s in frame["stimulus_id"]], frame


def _no_nan(obj):
    """NaN -> None, as ``harness report`` stores it (valid JSON)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def _check_common(run, table: str, report: str, *, task: str, score: str, metrics: tuple[str, ...], n: int,
                  scored: int | None = None):
    """What every task's run must show: finished, per-image task columns, the task metrics in the
    summary and the leaderboard, alignment_vs_task in the summary and printed by the report, and
    stored by the report beside the runs. ``scored``: stimuli with a task score (default all)."""
    scored = n if scored is None else scored
    s = run.summary
    assert run.finished and s["task"] == task and s["n_images"] == n and s["n_failed"] == 0
    frame = run.per_image()
    assert {f"task:{score}", "task:solved"} <= set(frame.columns)
    assert set(s["task_metrics"]) == set(metrics)
    for m in metrics:
        assert f"task:{m}" in table
    a = s["alignment_vs_task"]
    assert a["task_score"] == score and a["n_solved"] + a["n_unsolved"] == scored
    assert {"auc_judd", "nss", "cc"} <= set(a["metrics"])
    for m, v in a["metrics"].items():
        assert v["n"] == scored
        solved = frame.loc[frame["task:solved"] >= 0.5, m]
        if len(solved):
            assert v["solved"]["mean"] == pytest.approx(solved.mean())
    assert f"on {s['dataset']}/{task}" in report and f"task score: {score}" in report
    assert f"solved {a['n_solved']}, unsolved {a['n_unsolved']}" in report
    stored = json.loads((run.path.parent / "alignment_vs_task.json").read_text())
    assert stored["runs"][run.run_id] == _no_nan(a)


# ---------------------------------------------------------------------------------- classification

CUB_CLASSES = ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross", "Groove_billed_Ani",
               "Crested_Auklet", "Least_Auklet", "Parakeet_Auklet", "Rhinoceros_Auklet", "Brewer_Blackbird",
               "Red_winged_Blackbird"]
# the classifier's logits are its bias (weights zero): class i scores i, so the ranking is 9, 8, 7, 6, 5, ...
CUB_IMAGES = [  # (image id, class index, (width, height))
    (1, 9, (48, 40)),  # the top-1 class: top-1 and top-5 right
    (2, 6, (40, 48)),  # 4th: top-5 only
    (3, 0, (48, 40)),  # last: wrong
    (4, 7, (44, 44)),  # 3rd: top-5 only
]
CUB_TOP1, CUB_TOP5 = 1 / 4, 3 / 4


def write_cub_fixture(root: Path, cub_images=CUB_IMAGES) -> Path:
    """CUB-GHA's layout: ``Fixation.txt`` (display coordinates) and ``CUB_200_2011/``. Each image is
    shown 1:1 at display position (100, 50), so display (100 + x, 50 + y) is image pixel (x, y)."""
    cub = root / "CUB_200_2011"
    images, labels, lines = [], [], []
    for image_id, cls, (w, h) in cub_images:
        rel = f"{cls + 1:03d}.{CUB_CLASSES[cls]}/{CUB_CLASSES[cls]}_{image_id:04d}.jpg"
        (cub / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        _image((w, h), image_id).save(cub / "images" / rel, quality=95)
        images.append(f"{image_id} {rel}")
        labels.append(f"{image_id} {cls + 1}")
        pts = [(w // 2, h // 2, 300), (w // 4, h // 3, 200), (3 * w // 4, 2 * h // 3, 250), (w // 2, h // 4, 180),
               (0, 0, 100)]  # the last triplet is left out, as the authors' reader does
        lines.append(",".join(map(str, [image_id, w, h, w, h, 100, 50]
                                  + [v for x, y, d in pts for v in (100 + x, 50 + y, d)])))
    cub.mkdir(parents=True, exist_ok=True)
    (cub / "images.txt").write_text("\n".join(images) + "\n")
    (cub / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (cub / "classes.txt").write_text("".join(f"{i + 1} {i + 1:03d}.{c}\n" for i, c in enumerate(CUB_CLASSES)))
    (root / "Fixation.txt").write_text("\n".join(lines) + "\n")
    return root


def make_ranked_vit(path: Path) -> Path:
    """Tiny ViT whose class scores are fixed: weights zero, bias i for class i; labels = CUB classes."""
    import torch
    from transformers import ViTForImageClassification

    tiny_models.make_tiny_vit(path)
    model = ViTForImageClassification.from_pretrained(path)
    model.config.id2label = dict(enumerate(CUB_CLASSES))
    model.config.label2id = {c: i for i, c in enumerate(CUB_CLASSES)}
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.arange(len(CUB_CLASSES), dtype=torch.float32))
    model.save_pretrained(path)
    return path


def test_classification_end_to_end(tmp_path):
    from harness.data import load_gaze_dataset
    from plugins.tasks import Classification

    data = write_cub_fixture(tmp_path / "cub-gha")
    model = make_ranked_vit(tmp_path / "vit")
    out = tmp_path / "runs"
    run, table, report = _run_all(f"hf:{model}", "cub-gha", "classification", out, data, tmp_path / "cache",
                                  extra=("--sigma-px", SIGMA_PX))
    _check_common(run, table, report, task="classification", score="top1", metrics=("top1", "top5"), n=4)
    assert run.settings["metric_params"]["sigma_px"] == float(SIGMA_PX)  # the blur the user chose

    _, ds = load_gaze_dataset("cub-gha", data_dir=data, cache_dir=tmp_path / "cache")
    outputs, records, frame = _outputs_and_records(run, ds)
    # the model's fixed ranking, stored as class names
    assert all(o["label"] == CUB_CLASSES[9] and o["topk"] == CUB_CLASSES[9:4:-1] for o in outputs)
    by_id = frame.set_index("stimulus_id")
    expected = {f"{CUB_CLASSES[c]}_{i:04d}": (float(c == 9), float(c >= 5)) for i, c, _ in CUB_IMAGES}
    for sid, (top1, top5) in expected.items():
        assert (by_id.loc[sid, "task:top1"], by_id.loc[sid, "task:top5"]) == (top1, top5), sid
    tm = run.summary["task_metrics"]
    assert tm == {"top1": CUB_TOP1, "top5": CUB_TOP5}
    assert tm == Classification().score_dataset(outputs, records)
    a = run.summary["alignment_vs_task"]
    assert (a["n_solved"], a["n_unsolved"]) == (1, 3)


def test_a_classifier_whose_labels_never_name_a_class_is_warned_about(tmp_path):
    """A model whose labels are not the dataset's classes (ImageNet ids against CUB's birds) scores
    top-1 0 whatever it sees: the run says so instead of reporting the zero without a word."""
    data = write_cub_fixture(tmp_path / "cub-gha")
    model = tiny_models.make_tiny_vit(tmp_path / "vit")  # labels of its own, none a CUB class
    args = ["eval", "--model", f"hf:{model}", "--dataset", "cub-gha", "--task", "classification", "--output",
            str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(data),
            "--sigma-px", SIGMA_PX, "--no-references", "--no-show"]
    out = _cli(args)
    assert "warning: none of the " in out and "labels the model predicted names one of the dataset's 4 classes" in out
    (run,) = load_runs(tmp_path / "runs")
    assert run.summary["task_metrics"] == {"top1": 0.0, "top5": 0.0}
    # the ranked ViT names CUB's classes: nothing said
    ranked = make_ranked_vit(tmp_path / "ranked")
    out = _cli([*args[:2], f"hf:{ranked}", *args[3:]])
    assert "labels the model predicted" not in out


def test_a_calibrated_classification_run_keeps_the_raw_runs_task_scores(tmp_path):
    """``--scoring calibrated`` with a task: the calibrated run carries each stimulus' task scores
    and output over from its raw run (the model is not run again), its task metrics are the raw
    run's, and its alignment-vs-task split is the raw run's solved/unsolved split, with the
    calibrated gaze scores."""
    images = [(i + 1, (9, 6, 0, 7)[i % 4], ((48, 40), (40, 48), (44, 44))[i % 3]) for i in range(10)]
    data = write_cub_fixture(tmp_path / "cub-gha", images)
    model = make_ranked_vit(tmp_path / "vit")
    out = tmp_path / "runs"
    _cli(["eval", "--model", f"hf:{model}", "--dataset", "cub-gha", "--task", "classification", "--output", str(out),
          "--cache-dir", str(tmp_path / "cache"), "--data-dir", str(data), "--batch-size", "2", "--no-show",
          "--no-references", "--sigma-px", SIGMA_PX, "--scoring", "calibrated"])
    runs = [r for r in load_runs(out) if r.summary["kind"] == "model"]
    (raw,) = [r for r in runs if r.settings.get("scoring", "raw") == "raw"]
    (cal,) = [r for r in runs if r.settings.get("scoring") == "calibrated"]
    assert cal.summary["n_images"] == raw.summary["n_images"] == 10 and cal.summary["n_failed"] == 0
    a, b = raw.per_image().set_index("stimulus_id"), cal.per_image().set_index("stimulus_id")
    assert sorted(a.index) == sorted(b.index)
    for column in ("task:top1", "task:top5", "task:solved", "output"):
        assert a[column].to_dict() == b[column].reindex(a.index).to_dict(), column
    expected = {"top1": 3 / 10, "top5": 8 / 10}  # classes 9, 6, 0, 7 repeating: 9 top-1, all but 0 top-5
    assert raw.summary["task_metrics"] == cal.summary["task_metrics"] == expected
    ra, ca = raw.summary["alignment_vs_task"], cal.summary["alignment_vs_task"]
    assert (ca["n_solved"], ca["n_unsolved"]) == (ra["n_solved"], ra["n_unsolved"]) == (3, 7)
    solved = b["task:solved"] >= 0.5
    for m in ("nss", "auc_judd"):
        assert ca["metrics"][m]["solved"]["mean"] == pytest.approx(b.loc[solved, m].mean())
    assert not np.allclose(a["nss"].reindex(b.index), b["nss"])  # calibrated numbers, not the raw ones


# ---------------------------------------------------------------------------------------- detection

SEARCH_SIZE = (1680, 1050)  # COCO-Search18's display size; the plugin skips any other
DETR_LABELS = ["bottle", "cup", "car", "chair", "bowl"]
BOX_HIT = [300.0, 200.0, 400.0, 300.0]  # the detector's one fixed box, [x, y, w, h] in stimulus pixels
SEARCH_TRIALS = [  # (condition, category, image name, target box or None)
    ("present", "bottle", "000000000001.jpg", BOX_HIT),  # the fixed box is the target: found
    ("present", "bottle", "000000000002.jpg", [1100.0, 600.0, 300.0, 250.0]),  # elsewhere: missed
    ("absent", "cup", "000000000003.jpg", None),  # no target box: no per-image task score
]


def write_search_fixture(root: Path) -> Path:
    """COCO-Search18's layout: fixation JSON (X/Y in 1680x1050 image pixels, first = centre
    fixation) and images under ``images/<category>/`` (present) / ``coco_search18_images_TA/`` (absent)."""
    trials = {"present": [], "absent": []}
    for k, (condition, category, name, bbox) in enumerate(SEARCH_TRIALS):
        folder = "images" if condition == "present" else "coco_search18_images_TA"
        (root / folder / category).mkdir(parents=True, exist_ok=True)
        _image(SEARCH_SIZE, 10 + k).save(root / folder / category / name, quality=90)
        for subject in (1, 2):
            xs = [840.0, 400.0 + 100 * subject, 500.0 + 50 * k, 1200.0 - 60 * subject]
            ys = [525.0, 300.0 + 30 * subject, 350.0 + 40 * k, 700.0 + 20 * subject]
            item = {"name": name, "subject": subject, "task": category, "condition": condition, "X": xs, "Y": ys,
                    "T": [200.0, 250.0, 300.0, 180.0], "length": 4, "correct": 1, "RT": 1500, "split": "train"}
            if bbox is not None:
                item["bbox"] = bbox
            trials[condition].append(item)
    (root / "coco_search18_fixations_TP_train_split1.json").write_text(json.dumps(trials["present"]))
    (root / "coco_search18_fixations_TA_trainval.json").write_text(json.dumps(trials["absent"]))
    return root


def make_fixed_detr(path: Path) -> Path:
    """Tiny DETR where every query detects ``bottle`` (p = e^6 / (e^6 + 5), softmax over 5 classes +
    "no object") at BOX_HIT:
    class-head and last box-layer weights zero, biases chosen; DETR's sigmoid(bias) is then the
    relative (cx, cy, w, h) of BOX_HIT."""
    import torch
    from transformers import DetrForObjectDetection

    tiny_models.make_tiny_detr(path)
    model = DetrForObjectDetection.from_pretrained(path)
    model.config.id2label = dict(enumerate(DETR_LABELS))
    model.config.label2id = {c: i for i, c in enumerate(DETR_LABELS)}
    x, y, w, h = BOX_HIT
    W, H = SEARCH_SIZE
    rel = torch.tensor([(x + w / 2) / W, (y + h / 2) / H, w / W, h / H], dtype=torch.float64)
    with torch.no_grad():
        model.class_labels_classifier.weight.zero_()
        bias = torch.zeros(len(DETR_LABELS) + 1)
        bias[DETR_LABELS.index("bottle")] = 6.0
        model.class_labels_classifier.bias.copy_(bias)
        last = model.bbox_predictor.layers[-1]
        last.weight.zero_()
        last.bias.copy_(torch.logit(rel).float())
    model.save_pretrained(path)
    return path


def test_detection_end_to_end(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from harness.data import load_gaze_dataset
    from plugins.tasks import Detection, _iou_xywh

    data = write_search_fixture(tmp_path / "coco-search18")
    model = make_fixed_detr(tmp_path / "detr")
    out = tmp_path / "runs"
    run, table, report = _run_all(f"hf:{model}", "coco-search18", "detection", out, data, tmp_path / "cache",
                                  extra=("--sigma-px", SIGMA_PX))
    _check_common(run, table, report, task="detection", score="recall50", metrics=("map", "map50"), n=3, scored=2)

    _, ds = load_gaze_dataset("coco-search18", data_dir=data, cache_dir=tmp_path / "cache")
    outputs, records, frame = _outputs_and_records(run, ds)
    for o in outputs:  # 10 queries, all "bottle" at the fixed box (sigmoid round trip in float32)
        assert o["categories"] == ["bottle"] * 10
        assert o["scores"] == pytest.approx([math.exp(6) / (math.exp(6) + 5)] * 10)
        assert all(_iou_xywh(b, BOX_HIT) > 0.999 for b in o["boxes"])
    by_id = frame.set_index("stimulus_id")
    assert by_id.loc["TP/bottle/000000000001", "task:recall50"] == 1.0
    assert by_id.loc["TP/bottle/000000000002", "task:recall50"] == 0.0
    assert math.isnan(by_id.loc["TA/cup/000000000003", "task:recall50"])
    a = run.summary["alignment_vs_task"]
    assert (a["n_solved"], a["n_unsolved"]) == (1, 1)  # the target-absent image is neither

    tm = run.summary["task_metrics"]
    # COCO-Search18 annotates only the target: the run says so, and scores each image's target only
    assert run.settings["task_params"] == {"version": Detection.version, "objects_exhaustive": False}
    assert tm == Detection(objects_exhaustive=False).score_dataset(outputs, records)
    # pycocotools run directly on the stored outputs: one category, three images; the bottles
    # found in the cup-search image are not scored (no bottle is annotated or searched for there)
    gt = COCO()
    gt.dataset = {"images": [{"id": i + 1, "width": r["width"], "height": r["height"]} for i, r in enumerate(records)],
                  "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": o["bbox"],
                                   "area": o["bbox"][2] * o["bbox"][3], "iscrowd": 0}
                                  for i, r in enumerate(records) for o in (r["objects"] or [])],
                  "categories": [{"id": 1, "name": "bottle"}]}
    gt.createIndex()
    dets = [{"image_id": i + 1, "category_id": 1, "bbox": b, "score": s}
            for i, (o, r) in enumerate(zip(outputs, records)) if r["search_target"] == "bottle"
            for b, s in zip(o["boxes"], o["scores"])]
    ev = COCOeval(gt, gt.loadRes(dets), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert tm["map"] == pytest.approx(ev.stats[0]) and tm["map50"] == pytest.approx(ev.stats[1])
    # one of two targets found, by a box exact at every IoU threshold: AP is the same at all of them
    assert 0 < tm["map50"] < 1 and tm["map"] == pytest.approx(tm["map50"])


# --------------------------------------------------------------------------------------- captioning

CAPTION_SIZE = (40, 32)
CAPTIONS = {
    "2008_000001": ["a dog on the grass", "a red dog sitting on grass"],
    "2008_000002": ["a man sitting on a table", "the man on the table"],
    "2008_000003": ["a cat in the grass", "a woman and a cat"],
}


@pytest.fixture
def caption_data(tmp_path):
    """capgaze1's layout: two participants per image, each with a gaze file (the authors read 3
    samples of 24) and a transcribed description."""
    from test_formats_capgaze import gaze_dict, write_capgaze

    images = {}
    for k, (image_id, captions) in enumerate(sorted(CAPTIONS.items())):
        gaze = {"1": gaze_dict(24, 1, {10: (0.5, 0.5), 14: (0.2 + 0.1 * k, 0.3), 18: (0.7, 0.6)}),
                "2": gaze_dict(24, 0, {10: (0.45, 0.55), 14: (0.25, 0.35 + 0.1 * k), 18: (0.8, 0.5)})}
        images[image_id] = (CAPTION_SIZE, gaze, {"1": captions[0], "2": captions[1]})
    root = tmp_path / "capgaze"
    write_capgaze(root, images)
    for k, image_id in enumerate(sorted(CAPTIONS)):  # structured images, so the captioner sees something
        _image(CAPTION_SIZE, 20 + k).save(root / "images" / f"{image_id}.jpg")
    return root


def test_captioning_end_to_end(tmp_path, caption_data):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from harness.data import load_gaze_dataset
    from plugins.tasks import Captioning, tokenize_caption

    model = tiny_models.make_tiny_blip(tmp_path / "blip")
    out = tmp_path / "runs"
    run, table, report = _run_all(f"hf:{model}", "capgaze", "captioning", out, caption_data,
                                  tmp_path / "cache", ("--sigma-px", SIGMA_PX))
    _check_common(run, table, report, task="captioning", score="rougeL", metrics=("bleu4", "cider", "rougeL"), n=3)

    _, ds = load_gaze_dataset("capgaze", data_dir=caption_data, cache_dir=tmp_path / "cache")
    outputs, records, frame = _outputs_and_records(run, ds)
    assert all(isinstance(o["caption"], str) and o["caption"] for o in outputs)
    tm = run.summary["task_metrics"]
    assert tm == Captioning().score_dataset(outputs, records)
    # pycocoevalcap's scorers, called directly on the stored captions
    gts = {r["stimulus_id"]: [tokenize_caption(c) for c in r["captions"]] for r in records}
    res = {r["stimulus_id"]: [tokenize_caption(o["caption"])] for o, r in zip(outputs, records)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert tm["bleu4"] == pytest.approx(bleu[3])
    assert tm["cider"] == pytest.approx(Cider().compute_score(gts, res)[0])
    rouge, per_image = Rouge().compute_score(gts, res)
    assert tm["rougeL"] == pytest.approx(rouge)
    by_id = frame.set_index("stimulus_id")
    for sid, value in zip(gts, per_image):
        assert by_id.loc[sid, "task:rougeL"] == pytest.approx(value)
        assert by_id.loc[sid, "task:solved"] == float(value >= 0.5)


class _MalformedDetector(ByCall):
    """A detection model plugin whose outputs are, per call order: not a dict, a box of NaN (which
    pycocotools matched with every reference: mAP 1.0), then a well-formed detection."""

    name = "malformed-detector"
    tasks = ("detection", "free-viewing")
    attention_methods = ("blob",)

    def prediction(self, k, w, h):
        from harness.models import Prediction

        good = {"boxes": [list(BOX_HIT)], "scores": [0.9], "categories": ["bottle"]}
        nan = float("nan")
        output = {0: ["bottle"], 1: {"boxes": [[nan] * 4], "scores": [0.9], "categories": ["bottle"]}}.get(k, good)
        return Prediction(attention=blob(w, h, spread=4.0), output=output)


def test_a_malformed_task_output_fails_its_stimulus_with_the_reason(tmp_path):
    from harness.hookspecs import hookimpl
    from harness.plugins import pm
    from harness.results import load_runs

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("malformed-detector", _MalformedDetector, tasks=_MalformedDetector.tasks, attention=("blob",),
                     description="test")

    data = write_search_fixture(tmp_path / "coco-search18")
    pm.register(Plugin(), name="malformed-test")
    try:
        r = CliRunner().invoke(main, ["eval", "--model", "malformed-detector", "--dataset", "coco-search18",
                                      "--task", "detection", "--data-dir", str(data), "--cache-dir",
                                      str(tmp_path / "cache"), "--output", str(tmp_path / "runs"), "--sigma-px",
                                      SIGMA_PX, "--batch-size", "3", "--no-references", "--no-show"])
    finally:
        pm.unregister(name="malformed-test")
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    (run,) = load_runs(tmp_path / "runs")
    frame = run.per_image().set_index("stimulus_id")
    first, second, third = sorted(frame.index)  # the order the model saw them in
    assert frame.loc[first, "status"] == frame.loc[second, "status"] == "failed"
    assert frame.loc[first, "error"] == ("the model's output cannot be scored for task 'detection': TypeError: "
                                         "the output is a list, not a dict")
    assert frame.loc[second, "error"] == ("the model's output cannot be scored for task 'detection': ValueError: "
                                          "a box must be [x, y, width, height], finite, width and height >= 0; "
                                          "got [nan, nan, nan, nan]")
    assert frame.loc[third, "status"] == "ok" and run.summary["n_failed"] == 2
    # the dataset-level metrics cover the stimulus that was scored, as the gaze means do
    from harness.data import load_gaze_dataset
    from plugins.tasks import Detection

    _, ds = load_gaze_dataset("coco-search18", data_dir=data, cache_dir=tmp_path / "cache")
    record = next(r for r in ds.remove_columns("image") if r["stimulus_id"] == third)
    expected = Detection(objects_exhaustive=False).score_dataset([json.loads(frame.loc[third, "output"])], [record])
    assert run.summary["task_metrics"] == pytest.approx(expected)
