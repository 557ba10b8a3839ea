"""Baseline models (uniform, center-bias), the attention-method plugin, and lazy plugin imports."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import HarnessError
from plugins import attention as attention_methods
from plugins.models import baselines
from plugins.models.baselines import center_bias_map, uniform_map

REPO = Path(__file__).resolve().parents[1]


def test_center_bias_known_values():
    # 2x4 stimulus: pixel-centre x = -0.75, -0.25, 0.25, 0.75; y = (-0.5, 0.5) * (2/4) = -0.25, 0.25.
    # p(x=0.75, y) / p(x=0.25, y) = exp(-(0.75^2 - 0.25^2) / (2 * 0.22)) = exp(-0.5 / 0.44)
    m = center_bias_map(2, 4)
    assert m.shape == (2, 4) and m.dtype == np.float64
    assert m[0, 3] / m[0, 2] == pytest.approx(math.exp(-0.5 / 0.44), rel=1e-12)
    # vertical: p(y=0.25) / p(y=-0.25) = 1 (symmetric); use a 4x4 for a vertical ratio:
    # y = x = -0.75, -0.25, 0.25, 0.75; p(y=0.75) / p(y=0.25) = exp(-0.5 / (2 * 0.45 * 0.22))
    s = center_bias_map(4, 4)
    assert s[3, 1] / s[2, 1] == pytest.approx(math.exp(-0.5 / (2 * 0.45 * 0.22)), rel=1e-12)
    assert s[1, 3] / s[1, 2] == pytest.approx(math.exp(-0.5 / 0.44), rel=1e-12)


def test_center_bias_is_a_centred_density():
    m = center_bias_map(600, 800)
    assert m.shape == (600, 800)
    assert m.sum() == pytest.approx(1.0, abs=1e-12)
    assert m.min() > 0
    # maximum at the four centre pixels (even sizes), symmetric about both axes
    assert m[299:301, 399:401].min() == pytest.approx(m.max(), rel=1e-12)
    np.testing.assert_allclose(m, m[::-1, :], rtol=1e-12)
    np.testing.assert_allclose(m, m[:, ::-1], rtol=1e-12)
    # falls off monotonically from the centre along both axes
    assert np.all(np.diff(m[300, 400:]) < 0) and np.all(np.diff(m[300:, 400]) < 0)
    # odd size: a single peak at the centre pixel
    odd = center_bias_map(5, 7)
    assert np.unravel_index(odd.argmax(), odd.shape) == (2, 3)


def test_uniform_is_constant_density():
    m = uniform_map(600, 800)
    assert m.shape == (600, 800)
    assert np.all(m == m[0, 0]) and m.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [(0, 5), (5, -1), (2.5, 4)])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        center_bias_map(*bad)


@pytest.mark.parametrize("name,fn", [("uniform", uniform_map), ("center-bias", center_bias_map)])
def test_baseline_models_predict_at_stimulus_resolution(name, fn):
    from harness.models import Model, load_model

    model = load_model(name)
    assert isinstance(model, Model)
    assert model.name == name and model.tasks == ("free-viewing",) and model.attention_methods == ("prior",)
    images = [Image.new("RGB", (800, 600)), Image.new("L", (300, 200))]
    preds = model.predict(images, task="free-viewing", attention="prior")
    assert [p.attention.shape for p in preds] == [(600, 800), (200, 300)]
    np.testing.assert_array_equal(preds[1].attention, fn(200, 300))
    assert preds[0].output == {}
    prov = model.provenance()
    assert prov["model_id"] == name and prov["revision"].startswith("gaze-harness ")
    with pytest.raises(HarnessError, match="does not do task 'classification'"):
        model.predict(images, task="classification", attention="prior")
    with pytest.raises(HarnessError, match="no attention method 'grad-cam'"):
        model.predict(images, task="free-viewing", attention="grad-cam")


def _collect(hook) -> dict:
    found = {}
    hook(register=lambda name, factory, **meta: found.__setitem__(name, (factory, meta)))
    return found


def test_attention_methods_registered_and_resolvable():
    from harness.plugins import get_registry

    found = _collect(attention_methods.register_attention_methods)
    assert set(found) == {"grad-cam", "prior"}
    assert all(meta["description"] for _, meta in found.values())
    reg = get_registry()
    assert reg.get("attention", "grad-cam").resolve().__name__ == "grad_cam"
    prior = reg.get("attention", "prior").resolve()
    np.testing.assert_array_equal(prior("center-bias", 6, 8), center_bias_map(6, 8))
    with pytest.raises(HarnessError):
        prior("efficientnet-lite0", 6, 8)
    # every registered model of these plugins names registered attention methods only
    for spec in reg.all("model"):
        if spec.plugin in ("baselines", "efficientnet-lite"):
            assert all(("attention", a) in reg for a in spec["attention"]), spec.name


def test_baselines_register_hook():
    found = _collect(baselines.register_models)
    assert set(found) == {"uniform", "center-bias"}
    assert found["center-bias"][0] == "plugins.models.baselines:center_bias"


def test_listing_plugins_does_not_import_torch():
    code = (
        "import sys; import plugins.models.baselines, plugins.models.efficientnet_lite, plugins.attention; "
        "from plugins.models import efficientnet_lite as e; e.EfficientNetLite('lite0').provenance(); "
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'efficientnet_lite_pytorch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
