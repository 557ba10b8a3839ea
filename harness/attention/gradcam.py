"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017, arXiv:1610.02391).

For a target class ``c`` with pre-softmax score ``y_c`` and the activation ``A`` (channels ``k``,
positions ``i, j``) of a convolutional layer::

    alpha_k = mean_ij  d y_c / d A_kij          (eq. 1: global-average-pooled gradients)
    L_c     = ReLU( sum_k alpha_k A_k )           (eq. 2)

The map has the layer's spatial resolution (e.g. 7x7 for a 224 px EfficientNet); bring it to
stimulus pixels with :func:`harness.attention.resize.to_stimulus`.

Why hand-written and not captum's ``LayerGradCam``
--------------------------------------------------
captum (installed) implements the same equations, and the test suite uses it as an independent
reference. We do not call it at run time because it needs the target classes *before* its forward
pass and does not return the logits: with ``targets=None`` (top-1, our default) that costs a second
full forward pass per batch, and the classifier plugins need the logits anyway for the task output.
Our version makes one forward pass and one backward pass per batch and returns logits, targets and
maps together. It needs no backward hooks (the fragile part of hook-based Grad-CAM): a forward
hook swaps the layer's output for a leaf tensor and ``torch.autograd.grad`` differentiates the
target scores with respect to that leaf. The graph therefore starts at the layer, so nothing before
it is kept for backward when the model's parameters are frozen.

Batching: the target scores of all images are summed before differentiating. That is exact because
images do not interact in a model in ``eval()`` mode (BatchNorm uses running statistics); a model in
training mode would mix the batch, so call ``model.eval()`` first.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def grad_cam(
    forward: Callable[[Tensor], Tensor],
    layer: torch.nn.Module,
    inputs: Tensor,
    targets: Tensor | Sequence[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Grad-CAM maps of ``layer`` for a batch.

    ``forward`` maps ``inputs`` (B, C, H, W) to logits (B, num_classes) and must run ``layer``
    exactly once; ``layer``'s output must be (B, K, h, w) (for a module returning a tuple, its first
    element). ``targets``: one class index per image, or ``None`` for each image's top-1 class.

    Returns ``(maps, targets)``: maps (B, h, w), float, non-negative, detached; the class indices
    used (B,), long.
    """
    maps, used, _ = grad_cam_with_logits(forward, layer, inputs, targets)
    return maps, used


def grad_cam_with_logits(
    forward: Callable[[Tensor], Tensor],
    layer: torch.nn.Module,
    inputs: Tensor,
    targets: Tensor | Sequence[int] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """As :func:`grad_cam`, also returning the detached logits (B, num_classes) of the same pass."""
    logits, activation = _forward_capturing(forward, layer, inputs, detach=True)
    if activation.dim() != 4:
        raise ValueError(
            f"Grad-CAM layer {type(layer).__name__} output has shape {tuple(activation.shape)}; "
            "expected (batch, channels, height, width)"
        )
    if logits.dim() != 2 or logits.shape[0] != activation.shape[0]:
        raise ValueError(f"forward must return logits (batch, classes); got shape {tuple(logits.shape)}")

    used = _targets(targets, logits)
    with torch.enable_grad():  # also under a caller's no_grad()
        score = logits.gather(1, used[:, None]).sum()
        gradient = None
        if score.grad_fn is not None:
            (gradient,) = torch.autograd.grad(score, activation, allow_unused=True)
    if gradient is None:
        raise ValueError(f"the logits do not depend on Grad-CAM layer {type(layer).__name__}")
    with torch.no_grad():
        weights = gradient.mean(dim=(2, 3), keepdim=True)  # alpha_k, eq. 1
        maps = torch.relu((weights * activation).sum(dim=1))  # eq. 2
    return maps, used, logits.detach()


def _forward_capturing(forward: Callable[[Tensor], Tensor], layer: torch.nn.Module, inputs: Tensor, *,
                       detach: bool) -> tuple[Tensor, Tensor]:
    """``(logits, the layer's output)`` of one forward pass. ``detach``: the output is swapped for a
    leaf tensor (the graph then starts at the layer: nothing before it is kept for backward);
    otherwise it stays in the graph, so training can differentiate through the whole network (a
    leaf too when nothing before the layer requires grad: there is no graph to stay in)."""
    captured: list[Tensor] = []

    def hook(module: torch.nn.Module, args: tuple, output: object) -> object:
        first = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(first, Tensor):
            raise TypeError(f"Grad-CAM layer {type(module).__name__} returned {type(first).__name__}, not a tensor")
        if not detach and first.requires_grad:
            captured.append(first)
            return None
        # detach, or nothing trained before the layer (``harness align --train-only _fc``): the
        # output becomes a leaf that requires grad, so that the gradient of eq. 1 can be taken (and,
        # for training, built as a graph through the layers after it)
        leaf = first.detach().requires_grad_(True)
        captured.append(leaf)
        # A copy goes on downstream, so an in-place op after the layer cannot alter the leaf.
        replacement = leaf.clone()
        if isinstance(output, tuple):
            return (replacement, *output[1:])
        if isinstance(output, list):
            return [replacement, *output[1:]]
        return replacement

    with layer.register_forward_hook(hook), torch.enable_grad():  # the handle removes the hook on exit
        logits = forward(inputs)
    if len(captured) != 1:
        raise ValueError(
            f"Grad-CAM layer {type(layer).__name__} ran {len(captured)} times in one forward pass; "
            "pick a module that runs exactly once"
        )
    return logits, captured[0]


def _targets(targets: Tensor | Sequence[int] | None, logits: Tensor) -> Tensor:
    batch, classes = logits.shape
    if targets is None:
        return logits.detach().argmax(dim=1)
    used = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1)
    if used.shape[0] != batch:
        raise ValueError(f"got {used.shape[0]} Grad-CAM targets for a batch of {batch}")
    if bool(((used < 0) | (used >= classes)).any()):
        raise ValueError(f"Grad-CAM targets {used.tolist()} outside 0..{classes - 1}")
    return used


def grad_cam_differentiable(
    forward: Callable[[Tensor], Tensor],
    layer: torch.nn.Module,
    inputs: Tensor,
    targets: Tensor,
) -> tuple[Tensor, Tensor]:
    """Grad-CAM that training can differentiate: ``(logits, maps (B, h, w))`` of one forward pass.

    The same equations as :func:`grad_cam_with_logits`, but the activation is not detached and the
    gradient of eq. 1 is built with ``create_graph=True``, so a loss on the maps reaches the
    parameters both through the activations and through the channel weights alpha_k (as the map is
    a function of both). Used by ``harness align``; for evaluation use :func:`grad_cam` (cheaper).
    """
    logits, activation = _forward_capturing(forward, layer, inputs, detach=False)
    used = _targets(targets, logits)
    with torch.enable_grad():
        score = logits.gather(1, used[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, activation, create_graph=True)
        weights = gradient.mean(dim=(2, 3), keepdim=True)
        maps = torch.relu((weights * activation).sum(dim=1))
    return logits, maps
