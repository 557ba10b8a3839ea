"""The real EfficientNet-Lite0/1/2 through the classification task machinery, on real OSIE stimuli.

Labels: ``tests/data/imagenet_osie_labels.json``, ImageNet-1k WordNet ids assigned by a person who
looked at each of twelve OSIE images (main object one unambiguous ImageNet class) before any model
was run on them. Gaze: the real OSIE fixations of those images (15 observers). The dataset is a test
plugin, registered for the duration of the test: OSIE's own converter on a twelve-image subset of the
real data (``fixations.mat`` entries and stimuli copied into tmp_path), with ``label`` added.

All three variants are evaluated into one results folder through the CLI, so the human ceiling and
the baselines are computed once and ``harness report`` has three models to rank.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.results import load_runs
from plugins.datasets.osie import OSIE

LABELS_FILE = Path(__file__).parent / "data" / "imagenet_osie_labels.json"
LABELS = {sid: v["wnid"] for sid, v in json.loads(LABELS_FILE.read_text())["labels"].items()}
VARIANTS = ("lite0", "lite1", "lite2")

# Measured (CPU, torch 2.13, this repository's preprocessing): top-1 11/12 for all three variants
# (each misses one of the twelve), top-5 11/12 (lite0) and 12/12 (lite1, lite2); chance is 1/1000
# and 5/1000. The thresholds below leave two images of slack for numerical drift across torch
# versions and platforms, and still fail at once for broken preprocessing (wrong normalisation,
# channel order, a crop that cuts the object away) or a wrong wnid mapping, which drop accuracy to
# near chance.
MIN_TOP1 = 9 / 12
MIN_TOP5 = 10 / 12


class OSIEImageNet(OSIE):
    """OSIE's converter, keeping the labelled stimuli and adding their ImageNet wnid as ``label``."""

    name = "osie-imagenet-test"
    tasks = ("classification",)

    def source_files(self, root: Path) -> list[Path]:
        return [*super().source_files(root), LABELS_FILE]  # relabelling must invalidate the cache

    def convert(self, root: Path):
        for record in super().convert(root):
            if record["stimulus_id"] in LABELS:
                yield {**record, "label": LABELS[record["stimulus_id"]]}


class _Plugin:
    @hookimpl
    def register_datasets(self, register):
        register(OSIEImageNet.name, OSIEImageNet, tasks=OSIEImageNet.tasks,
                 pixels_per_degree=OSIEImageNet.pixels_per_degree, description="OSIE stimuli with ImageNet labels (test)")


@pytest.fixture
def labelled_osie(osie_dir, tmp_path):
    """A data folder holding the real fixations.mat entries and stimuli of the labelled images."""
    import scipy.io

    dest = tmp_path / "osie-imagenet"
    (dest / "eye").mkdir(parents=True)
    (dest / "stimuli").mkdir()
    cell = scipy.io.loadmat(str(osie_dir / "eye" / "fixations.mat"))["fixations"]
    keep = [i for i in range(cell.shape[0]) if Path(str(cell[i, 0][0, 0]["img"][0])).stem in LABELS]
    assert len(keep) == len(LABELS)
    scipy.io.savemat(str(dest / "eye" / "fixations.mat"), {"fixations": cell[keep].copy()})
    for sid in LABELS:
        shutil.copyfile(osie_dir / "stimuli" / f"{sid}.jpg", dest / "stimuli" / f"{sid}.jpg")
    pm.register(_Plugin(), name="test-osie-imagenet")
    try:
        yield dest
    finally:
        pm.unregister(name="test-osie-imagenet")


def _cli(args):
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.slow
def test_efficientnet_lite_classifies_labelled_osie_images(labelled_osie, tmp_path):
    from plugins.tasks import Classification

    out = tmp_path / "runs"
    for variant in VARIANTS:
        _cli(["eval", "--model", f"efficientnet-{variant}", "--dataset", OSIEImageNet.name, "--task", "classification",
              "--data-dir", str(labelled_osie), "--cache-dir", str(tmp_path / "cache"), "--output", str(out),
              "--batch-size", "6", "--no-show"])
    runs = {r.summary["model"]: r for r in load_runs(out)}
    assert set(runs) == {"human-ceiling", "uniform", "center-bias", *(f"efficientnet-{v}" for v in VARIANTS)}

    n = len(LABELS)
    observed = {}
    for variant in VARIANTS:
        run = runs[f"efficientnet-{variant}"]
        s = run.summary
        assert s["n_images"] == n and s["n_failed"] == 0
        frame = run.per_image()
        outputs = [json.loads(o) for o in frame["output"]]
        wnids = [LABELS[sid] for sid in frame["stimulus_id"]]
        # the summary's accuracy is what the stored outputs give, counted here by hand
        top1 = sum(o["label"] == w for o, w in zip(outputs, wnids)) / n
        top5 = sum(w in o["topk"][:5] for o, w in zip(outputs, wnids)) / n
        assert s["task_metrics"] == pytest.approx({"top1": top1, "top5": top5})
        assert s["task_metrics"] == Classification().score_dataset(outputs, [{"label": w} for w in wnids])
        assert list(frame["task:top1"]) == [float(o["label"] == w) for o, w in zip(outputs, wnids)]
        observed[variant] = (top1, top5)
        assert top1 >= MIN_TOP1 and top5 >= MIN_TOP5, (variant, top1, top5)
        a = s["alignment_vs_task"]
        assert a["n_solved"] == round(top1 * n) and a["n_unsolved"] == n - round(top1 * n)
        # Grad-CAM of a real ImageNet model on real gaze: better than chance at predicting fixations
        assert s["metrics"]["auc_judd"] > 0.6
    print("efficientnet-lite top-1/top-5 on the labelled OSIE images:", observed)

    table = _cli(["leaderboard", "show", "--results", str(out), "--task", "classification"])
    assert "task:top1" in table and all(f"efficientnet-{v}" in table for v in VARIANTS)
    report = _cli(["report", "--results", str(out)])
    assert "Across models" in report and "computed again" not in report  # stored as the report computes it
    stored = json.loads((out / "alignment_vs_task.json").read_text())
    nss = next(c for c in stored["across_models"] if c["metric"] == "nss")
    assert nss["n_models"] == 3 and nss["performance"] == [observed[v][0] for v in VARIANTS]
    assert nss["alignment"] == pytest.approx([runs[f"efficientnet-{v}"].summary["metrics"]["nss"] for v in VARIANTS])
