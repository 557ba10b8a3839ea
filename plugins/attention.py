"""Attention methods of the CNN and baseline models: ``grad-cam`` and ``prior``.

A model lists the method names it supports (first = default) and ``harness eval --attention NAME``
picks one; the factory named here is the plain function that computes it. Transformer methods
(rollout, CLS attention, cross-attention) are registered by the Hugging Face plugin.

Methods registered with ``applies_to="cnn-layer"`` share one signature,
``fn(forward, layer, inputs, targets) -> (maps (B, h, w) >= 0, targets (B,))`` (``forward`` returns
logits, ``layer`` is the model's attention layer, ``targets`` the classes to explain), so every CNN
model that exposes such a layer (EfficientNet-Lite) can run any of them, a third party's included.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl


@hookimpl
def register_attention_methods(register):
    register(
        "grad-cam",
        "harness.attention.gradcam:grad_cam",
        description=(
            "Grad-CAM (Selvaraju et al. 2017): activations of the last convolutional block weighted "
            "by the spatially averaged gradient of the top-1 class score, summed over channels, ReLU; "
            "upsampled bilinearly to the stimulus."
        ),
        citation="Selvaraju et al., ICCV 2017, arXiv:1610.02391",
        applies_to="cnn-layer",
    )
    register(
        "prior",
        "plugins.models.baselines:prior_map",
        description=(
            "The image-independent map of a baseline model (uniform, or the Clarke & Tatler 2014 "
            "centre-bias Gaussian); the same for every image of a given size."
        ),
        applies_to="baselines",
    )
