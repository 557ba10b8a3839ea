"""A third-party attention method for CNN layers runs on the built-in CNN models (EfficientNet-Lite
through `harness eval`; the Hugging Face CNN and Swin classifiers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from harness.hookspecs import hookimpl
from harness.plugins import pm
from harness.results import load_runs


def activation_mean(forward, layer, inputs, targets):
    """Class-agnostic 'activation map': the layer's positive activations averaged over channels."""
    seen = {}
    handle = layer.register_forward_hook(lambda module, args, out: seen.__setitem__("a", out))
    try:
        with torch.no_grad():
            forward(inputs)
    finally:
        handle.remove()
    return seen["a"].clamp(min=0).mean(dim=1), torch.as_tensor(targets)


class ActivationPlugin:
    @hookimpl
    def register_attention_methods(self, register):
        register("activation-mean", activation_mean, applies_to="cnn-layer",
                 description="mean positive activation of the attention layer (test plugin)")


@pytest.fixture
def activation_plugin():
    pm.register(ActivationPlugin(), name="activation-test")
    try:
        yield
    finally:
        pm.unregister(name="activation-test")


def test_plugin_method_is_offered_and_computed_on_efficientnet(activation_plugin, osie_dir, tmp_path):
    from harness.attention.resize import to_stimulus
    from harness.models import load_model
    from plugins.models.efficientnet_lite import preprocess

    model = load_model("efficientnet-lite0")
    assert model.attention_methods[0] == "grad-cam" and "activation-mean" in model.attention_methods

    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "efficientnet-lite0", "--attention", "activation-mean",
                                  "--limit", "2", "--data-dir", str(osie_dir), "--output", str(out),
                                  "--no-references", "--no-show"])
    assert r.exit_code == 0, r.output
    (run,) = load_runs(out)
    assert run.summary["attention"] == "activation-mean" and run.summary["n_failed"] == 0

    # the stored map is the plugin's function applied to the model's layer, at stimulus resolution
    from PIL import Image

    image = Image.open(osie_dir / "stimuli" / "1001.jpg")
    forward, layer = model._network()
    maps, _ = activation_mean(forward, layer, torch.from_numpy(preprocess([image], model.resolution)), [0])
    expected = to_stimulus(maps[0].numpy(), image.size[1], image.size[0])
    from harness.ids import stimulus_filename

    stored = np.load(run.path / "maps" / stimulus_filename("1001", ".npy"))
    assert stored.shape == (600, 800)
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)
    # and it is not Grad-CAM under another name
    cam = model.predict([image], task="free-viewing", attention="grad-cam")[0].attention
    assert np.corrcoef(cam.ravel(), expected.ravel())[0, 1] < 0.999


def test_without_the_plugin_the_method_is_unknown(osie_dir, tmp_path):
    r = CliRunner().invoke(main, ["eval", "--model", "efficientnet-lite0", "--attention", "activation-mean",
                                  "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs")])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown attention 'activation-mean'")


@pytest.mark.parametrize("family", ["resnet", "swin"])
def test_plugin_method_runs_on_hugging_face_cnn_classifiers(activation_plugin, family, tmp_path):
    """The Hugging Face CNN and Swin classifiers offer the same cnn-layer methods, on the layer they
    use for Grad-CAM (the last conv stage; Swin's final tokens as a grid)."""
    from PIL import Image

    import tiny_models
    from harness.models import load_model
    from plugins.huggingface.models import last_conv_layer, token_grid_layer

    path = getattr(tiny_models, f"make_tiny_{family}")(tmp_path / family)
    model = load_model(f"hf:{path}")
    assert model.attention_methods[0] == "grad-cam" and "activation-mean" in model.attention_methods
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8))
    (pred,) = model.predict([image], task="classification", attention="activation-mean")
    assert pred.attention.shape == (30, 50)

    pixels = model._pixels([image])["pixel_values"]

    def forward(x):
        return model.model(pixel_values=x).logits

    if family == "swin":
        with token_grid_layer(model.model, pixels.shape[-2:]) as layer:
            maps, _ = activation_mean(forward, layer, pixels, [0])
    else:
        maps, _ = activation_mean(forward, last_conv_layer(model.model, pixels), pixels, [0])
    expected = model._to_stimulus(maps[0].double().numpy(), 30, 50)
    np.testing.assert_allclose(pred.attention, expected, rtol=1e-5, atol=1e-8)
    cam = model.predict([image], task="classification", attention="grad-cam")[0].attention
    assert not np.allclose(cam, expected)
