"""Every task end to end through the CLI: ``harness eval`` -> ``harness leaderboard show`` -> ``harness report``.

Each test builds a tiny transformers checkpoint (``tests/tiny_models.py``), loads it as
``hf:<folder>``, and evaluates it on fixture data in a dataset's original on-disk layout:

- classification: CUB-GHA layout (``Fixation.txt`` + ``CUB_200_2011/``), tiny ViT;
- detection: COCO-Search18 layout (fixation JSON + ``images/<category>/``), tiny DETR;
- captioning: no captioning gaze dataset plugin exists yet, so the test registers one for its
  duration (a ``GazeDataset`` subclass yielding canonical records with ``captions``), tiny BLIP.

The classifier's and the detector's heads are set by hand (weights zero, chosen biases), so what they
predict is known and the task metrics have exact expected values; the captioner stays random and its
scores are checked against pycocoevalcap run on the stored outputs.

Pixels per degree: CUB-GHA and COCO-Search18 ship ``pixels_per_degree = NaN`` (their viewing
geometry is not published with the data / not verified), and the harness refuses to build a human
density without it. The tests set ``TEST_PPD`` on the plugin class for their duration: a made-up
geometry for fixture images, not a claim about either dataset.
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
from harness.cli import main
from harness.data.base import GazeDataset
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.results import load_runs

TEST_PPD = 10.0  # fixture geometry: 10 px per degree, so sigma = 1 deg = 10 px on the tiny images


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
    (run,) = [r for r in load_runs(out) if r.summary["kind"] == "model"]
    return run, table, report


def _outputs_and_records(run, ds) -> tuple[list[dict], list[dict], object]:
    """The stored task outputs and the dataset records they belong to, in stored row order."""
    frame = run.per_image()
    by_id = {r["stimulus_id"]: r for r in ds.remove_columns("image").to_list()}
    outputs = [json.loads(o) if isinstance(o, str) else {} for o in frame["output"]]
    return outputs, [by_id[s] for s in frame["stimulus_id"]], frame


def _check_common(run, table: str, report: str, *, task: str, score: str, metrics: tuple[str, ...], n: int):
    """What every task's run must show: finished, per-image task columns, the task metrics in the
    summary and the leaderboard, alignment_vs_task in the summary and printed by the report."""
    s = run.summary
    assert run.finished and s["task"] == task and s["n_images"] == n and s["n_failed"] == 0
    frame = run.per_image()
    assert {f"task:{score}", "task:solved"} <= set(frame.columns)
    assert set(s["task_metrics"]) == set(metrics)
    for m in metrics:
        assert f"task:{m}" in table
    a = s["alignment_vs_task"]
    assert a["task_score"] == score and a["n_solved"] + a["n_unsolved"] == n
    assert {"auc_judd", "nss", "cc"} <= set(a["metrics"])
    for m, v in a["metrics"].items():
        assert v["n"] == n
        solved = frame.loc[frame["task:solved"] >= 0.5, m]
        if len(solved):
            assert v["solved"]["mean"] == pytest.approx(solved.mean())
    assert f"on {s['dataset']}/{task}" in report and f"task score: {score}" in report
    assert f"solved {a['n_solved']}, unsolved {a['n_unsolved']}" in report
    stored = json.loads((run.path.parent / "alignment_vs_task.json").read_text())
    assert stored["runs"][run.run_id] == a


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


def write_cub_fixture(root: Path) -> Path:
    """CUB-GHA's layout: ``Fixation.txt`` (display coordinates) and ``CUB_200_2011/``. Each image is
    shown 1:1 at display position (100, 50), so display (100 + x, 50 + y) is image pixel (x, y)."""
    cub = root / "CUB_200_2011"
    images, labels, lines = [], [], []
    for image_id, cls, (w, h) in CUB_IMAGES:
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
    from transformers import ViTForImageClassification

    tiny_models.make_tiny_vit(path)
    model = ViTForImageClassification.from_pretrained(path)
    model.config.id2label = dict(enumerate(CUB_CLASSES))
    model.config.label2id = {c: i for i, c in enumerate(CUB_CLASSES)}
    with __import__("torch").no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(__import__("torch").arange(len(CUB_CLASSES), dtype=__import__("torch").float32))
    model.save_pretrained(path)
    return path


@pytest.fixture
def cub_ppd(monkeypatch):
    from plugins.cub_gha import CUBGHA

    monkeypatch.setattr(CUBGHA, "pixels_per_degree", TEST_PPD)


def test_classification_end_to_end(tmp_path, cub_ppd):
    from harness.data import load_gaze_dataset
    from plugins.tasks import Classification

    data = write_cub_fixture(tmp_path / "cub-gha")
    model = make_ranked_vit(tmp_path / "vit")
    out = tmp_path / "runs"
    run, table, report = _run_all(f"hf:{model}", "cub-gha", "classification", out, data, tmp_path / "cache")
    _check_common(run, table, report, task="classification", score="top1", metrics=("top1", "top5"), n=4)

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
