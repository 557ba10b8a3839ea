"""Attention extraction: plain functions that turn a model's internals into spatial maps.

- :mod:`harness.attention.gradcam`: Grad-CAM for CNNs (``grad_cam``).
- :mod:`harness.attention.resize`: bring a low-resolution map back to stimulus pixels
  (``to_stimulus``, ``crop_box``).

Nothing heavy is imported here; ``gradcam`` imports torch when it is imported itself.
"""


def cnn_layer_methods() -> list[str]:
    """Registered attention methods that take ``(forward, layer, inputs, targets)`` (registered with
    ``applies_to="cnn-layer"``): every CNN model that exposes its attention layer offers them all."""
    from ..plugins import get_registry

    return [s.name for s in get_registry().in_order("attention") if s.get("applies_to") == "cnn-layer"]


def run_cnn_layer_method(name: str, forward, layer, inputs):
    """Maps and logits of the registered cnn-layer method ``name``, explaining the top-1 class.
    Returns ``(maps (B, h, w) tensor, targets (B,), logits)``."""
    import torch

    from ..plugins import get_registry

    method = get_registry().get("attention", name).resolve()
    with torch.no_grad():
        logits = forward(inputs)
    maps, targets = method(forward, layer, inputs, logits.argmax(dim=1))
    return torch.as_tensor(maps).detach(), torch.as_tensor(targets), logits
