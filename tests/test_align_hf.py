"""``harness align`` on Hugging Face classifiers (``hf:<checkpoint>``): a ViT trained on its
last-layer CLS attention, a ResNet and a Swin on their Grad-CAM, all tiny random checkpoints saved with
``save_pretrained`` and loaded through ``from_pretrained``, on real OSIE fixations; the trained
folder evaluated by ``harness eval``; a processor that crops the stimulus refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tiny_models
from harness.cli import main
from harness.errors import HarnessError
from harness.models import load_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from transformers import ViTImageProcessorPil

    root = tmp_path_factory.mktemp("hf-align")
    out = {"vit": tiny_models.make_tiny_vit(root / "vit", seed=1), "deit": tiny_models.make_tiny_deit(root / "deit"),
           "swin": tiny_models.make_tiny_swin(root / "swin")}
    # a ResNet whose processor resizes the whole stimulus to 64x64 (the tiny ResNet's own crops)
    resnet = tiny_models.make_tiny_resnet(root / "resnet")
    (resnet / "preprocessor_config.json").unlink()
    ViTImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(resnet)
    out["resnet"] = resnet
    return out


def _align(model: str, out: Path, epochs: int, lr: float = 0.02):
    return CliRunner().invoke(main, ["align", "--model", model, "--dataset", "osie", "--loss", "density-kl",
                                     "--limit", "12", "--output", str(out), "--batch-size", "4", "--lr", str(lr),
                                     "--epochs", str(epochs), "--no-progress"])


def _weights(folder: Path) -> dict[str, np.ndarray]:
    from harness.alignment.checkpoint import read_checkpoint

    return {k: v.numpy() for k, v in read_checkpoint(folder).weights().items()}


def test_training_attention_is_the_attention_evaluation_scores(tiny):
    """The differentiable maps training moves are evaluation's maps (before evaluation scales each
    to sum 1), to float32 round-off: CLS attention for the ViT, Grad-CAM for the ResNet."""
    import torch
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)) for _ in range(3)]
    for kind, method in (("vit", "cls-attention"), ("resnet", "grad-cam"), ("swin", "grad-cam")):
        model = load_model("hf:" + str(tiny[kind]))
        trainable = model.trainable()
        x = trainable.preprocess(images)
        assert x.dtype == torch.float32 and tuple(x.shape[-2:]) == trainable.input_size
        grids, eval_logits = model.grid_maps(x, method)
        targets = eval_logits.argmax(dim=1)
        trainable.module.requires_grad_(True)  # as training makes its parameters
        logits, maps = trainable.attention(x, targets)
        assert maps.requires_grad
        trainable.module.requires_grad_(False)
        assert torch.allclose(logits.detach(), eval_logits.detach(), atol=1e-6)
        got = maps.detach().double().numpy()
        got = got / got.reshape(len(got), -1).sum(axis=1)[:, None, None]
        want = np.asarray(grids) / np.asarray(grids).reshape(len(grids), -1).sum(axis=1)[:, None, None]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7, err_msg=kind)


@pytest.mark.parametrize("kind, lr", [("vit", 0.02), ("resnet", 0.005), ("swin", 0.002)])
def test_hf_classifier_trains_every_epoch_and_its_folder_evaluates(tiny, tmp_path, osie_dir, kind, lr):
    name = "hf:" + str(tiny[kind])
    one, two = tmp_path / "one", tmp_path / "two"
    r = _align(name, one, 1, lr)
    assert r.exit_code == 0, r.output
    r = _align(name, two, 2, lr)
    assert r.exit_code == 0, r.output
    meta = json.loads((two / "align.json").read_text())
    assert meta["base"]["model"] == name and [h["epoch"] for h in meta["history"]] == [0, 1, 2]
    original = {k: v.detach().numpy() for k, v in load_model(name).trainable().module.state_dict().items()}
    w1, w2 = _weights(one), _weights(two)
    assert set(w1) == set(original)
    # the first epoch moved the weights, and so did the second (scoring the held-out stimuli after
    # an epoch must leave the parameters trainable)
    assert any(not np.array_equal(w1[k], original[k]) for k in w1)
    assert any(not np.array_equal(w2[k], w1[k]) for k in w1)
    # toward the human density: the alignment term falls, held-out NSS rises
    history = meta["history"]
    assert history[2]["train_align"] < history[1]["train_align"]
    assert history[2]["held_out_nss"] > history[0]["held_out_nss"], history
    r = CliRunner().invoke(main, ["eval", "--model", str(two), "--dataset", "osie", "--limit", "12", "--output",
                                  str(tmp_path / "runs"), "--data-dir", str(osie_dir), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    assert "scoring its 4 held-out stimuli of 12" in r.output
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["n_images"] == 4 and summary["n_failed"] == 0 and np.isfinite(summary["metrics"]["nss"])


def test_a_processor_that_crops_is_refused_in_one_line(tiny, tmp_path):
    with pytest.raises(HarnessError, match="its image processor crops the stimulus"):
        load_model("hf:" + str(tiny["deit"])).trainable()
    r = _align("hf:" + str(tiny["deit"]), tmp_path / "ck", 1)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: model ") and "crops the stimulus" in r.output
    assert not (tmp_path / "ck").exists()


def test_an_aligned_model_of_a_relative_hf_folder_finds_its_base_from_anywhere(tiny, tmp_path, osie_dir,
                                                                               monkeypatch):
    """``harness align --model hf:./vit``: align.json keeps the name as given (the base's runs are
    named so) and records the folder's absolute path to load it by, so the aligned folder evaluates
    from another working folder (it looked for ./vit there). Runs keep the name as given."""
    folder = tiny["vit"]
    monkeypatch.chdir(folder.parent)
    r = _align(f"hf:./{folder.name}", tmp_path / "aligned", 1)
    assert r.exit_code == 0, r.output
    base = json.loads((tmp_path / "aligned" / "align.json").read_text())["base"]
    assert base["model"] == f"hf:./{folder.name}" and base["load_as"] == f"hf:{folder}"
    runs = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", f"hf:./{folder.name}", "--dataset", "osie", "--limit", "2",
                                  "--output", str(runs), "--data-dir", str(osie_dir), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    (run,) = runs.iterdir()
    assert json.loads((run / "settings.json").read_text())["model"] == f"hf:./{folder.name}"
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["eval", "--model", "./aligned", "--dataset", "osie", "--limit", "12", "--output",
                                  str(runs), "--data-dir", str(osie_dir), "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
