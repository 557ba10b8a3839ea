"""A third-party attention method for CNN layers runs on a built-in model through `harness eval`."""

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
    from plugins.efficientnet_lite import preprocess

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
    stored = np.load(run.path / "maps" / "1001.npy")
    assert stored.shape == (600, 800)
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6)
    # and it is not Grad-CAM under another name
    cam = model.predict([image], task="free-viewing", attention="grad-cam")[0].attention
    assert np.corrcoef(cam.ravel(), expected.ravel())[0, 1] < 0.999


def test_without_the_plugin_the_method_is_unknown(osie_dir, tmp_path):
    r = CliRunner().invoke(main, ["eval", "--model", "efficientnet-lite0", "--attention", "activation-mean",
                                  "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs")])
    assert r.exit_code == 1 and r.output.startswith("Error: unknown attention 'activation-mean'")
