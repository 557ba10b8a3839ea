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


def _tiny_cnn():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=4, padding=1)
    head = torch.nn.Linear(4, 5)

    def forward(x):
        return head(torch.relu(conv(x)).mean(dim=(2, 3)))

    return forward, conv


BAD_METHODS = {
    "other-targets": (lambda f, layer, x, t: (torch.ones(len(x), 4, 4), t + 1), "other targets than the classes"),
    "other-grid": (lambda f, layer, x, t: (torch.ones(len(x), 4, 12), t), "expected (2, 4, 4)"),
    "missing-map": (lambda f, layer, x, t: (torch.ones(len(x) - 1, 4, 4), t), "expected (2, 4, 4)"),
    "maps-only": (lambda f, layer, x, t: torch.ones(len(x), 4, 4), "returned Tensor, not the pair"),
    "raises": (lambda f, layer, x, t: 1 / 0, "raised ZeroDivisionError"),
    "text": (lambda f, layer, x, t: ("maps", t), "not an array"),
}


@pytest.mark.parametrize("name", sorted(BAD_METHODS))
def test_a_bad_plugin_method_is_named_not_stretched_or_relabelled(name):
    """A cnn-layer method's result is checked before the harness places it on the image and reads
    the label from its targets: a map of another grid was stretched onto the image, other targets
    became the model's label, and a method's exception or bad return said nothing of the plugin."""
    from harness.attention import AttentionMethodError, run_cnn_layer_method

    fn, message = BAD_METHODS[name]

    class Bad:
        @hookimpl
        def register_attention_methods(self, register):
            register(f"bad-{name}", fn, applies_to="cnn-layer")

    pm.register(Bad(), name="bad-method-plugin")
    try:
        forward, layer = _tiny_cnn()
        x = torch.rand(2, 3, 16, 16)
        with pytest.raises(AttentionMethodError, match=rf"attention 'bad-{name}' \(plugin 'bad-method-plugin'\)") as err:
            run_cnn_layer_method(f"bad-{name}", forward, layer, x)
        assert message in str(err.value)
        # the good method on the same network passes the same checks
        maps, targets, logits = run_cnn_layer_method("grad-cam", forward, layer, x)
        assert maps.shape == (2, 4, 4) and torch.equal(targets, logits.argmax(dim=1))
    finally:
        pm.unregister(name="bad-method-plugin")


def test_a_relabelling_method_fails_its_stimuli_in_eval(osie_dir, tmp_path):
    class Relabel:
        @hookimpl
        def register_attention_methods(self, register):
            register("relabel", lambda f, layer, x, t: activation_mean(f, layer, x, t + 1), applies_to="cnn-layer")

    pm.register(Relabel(), name="relabel-plugin")
    try:
        out = tmp_path / "runs"
        r = CliRunner().invoke(main, ["eval", "--model", "efficientnet-lite0", "--attention", "relabel",
                                      "--dataset", "osie", "--limit", "1",
                                      "--data-dir", str(osie_dir), "--output", str(out), "--no-references",
                                      "--no-show"])
        (run,) = load_runs(out)
        rows = run.per_image()
        assert list(rows["status"]) == ["failed"], r.output
        assert "relabel" in rows["error"][0] and "relabel-plugin" in rows["error"][0]
    finally:
        pm.unregister(name="relabel-plugin")
