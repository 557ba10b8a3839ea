"""What an alignment loss sees: :class:`AlignmentBatch`, and what a model exposes to be trained
(:class:`Trainable`).

A loss plugin is a plain function ``loss(batch) -> scalar tensor``. It reads what it needs from the
batch; the batch computes each quantity once, on first use, in the same forward pass:

- ``batch.inputs``: (B, 3, H, W) model input (preprocessed), ``requires_grad`` when a loss needs
  input gradients;
- ``batch.human``: (B, H, W) human fixation density on the model's input grid, each summing to 1
  (the stimulus' density, blurred as ``harness eval`` blurs it, area-resampled to the input grid);
- ``batch.targets``: (B,) the class each stimulus' attention explains: its label where the dataset
  has one, else the *original* model's top-1 (fixed for the whole training, so the loss cannot
  chase a moving target);
- ``batch.logits()``: (B, classes), differentiable;
- ``batch.attention()``: (B, H, W) the model's own attention (Grad-CAM for the CNNs), non-negative,
  differentiable in the parameters (built with ``create_graph``), bilinearly upsampled to the input
  grid exactly as ``harness eval`` upsamples it to the stimulus;
- ``batch.input_gradients(of)``: (B, 3, H, W) gradient of ``of`` with respect to the input pixels,
  differentiable (double backpropagation): ``of="target"`` the target class' logit (the saliency of
  Fel et al. 2022), ``of="log_probs"`` the sum of all log-probabilities (Ross et al. 2017).
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class Trainable(Protocol):
    """What ``model.trainable()`` returns for a model that can be trained toward human gaze.

    ``module``: the ``torch.nn.Module`` holding every parameter training may change; its
    ``state_dict()`` is what a checkpoint stores and ``load_state_dict`` what loading one restores.
    ``input_size``: (H, W) of the model input. The input must show the *whole* stimulus (resized, not
    cropped), so the input grid and the stimulus map onto each other by a plain resize.
    ``class_names``: the output classes' names as the dataset's labels spell them (ImageNet wnids),
    or empty when the outputs have no such names.
    """

    module: torch.nn.Module
    input_size: tuple[int, int]
    class_names: Sequence[str]

    def preprocess(self, images: Sequence[Any]) -> Tensor:
        """PIL images -> float32 tensor (B, 3, H, W) on the CPU."""

    def logits(self, inputs: Tensor) -> Tensor:
        """(B, classes), differentiable in the inputs and the parameters."""

    def attention(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (B, classes), maps (B, h, w) >= 0)`` from one forward pass, both differentiable
        in the parameters (the maps' own gradients built with ``create_graph=True``); ``maps`` explain
        ``targets`` on the model's own grid (e.g. 7x7)."""


class AlignmentBatch:
    """One training batch, computing each thing a loss asks for once (see the module docstring)."""

    def __init__(self, trainable: Trainable, inputs: Tensor, human: Tensor, targets: Tensor,
                 *, needs: Sequence[str] = ()) -> None:
        self.trainable = trainable
        self.needs = frozenset(needs)
        self.inputs = inputs.requires_grad_(True) if "input_gradients" in self.needs else inputs
        self.human = human
        self.targets = targets
        self._logits: Tensor | None = None
        self._attention: Tensor | None = None
        self._gradients: dict[str, Tensor] = {}

    def _forward(self) -> None:
        if self._logits is not None:
            return
        if "attention" in self.needs:
            logits, maps = self.trainable.attention(self.inputs, self.targets)
            self._attention = upsample(maps, self.inputs.shape[-2:])
            self._logits = logits
        else:
            self._logits = self.trainable.logits(self.inputs)

    def logits(self) -> Tensor:
        self._forward()
        return self._logits

    def attention(self) -> Tensor:
        if "attention" not in self.needs:
            raise RuntimeError("this loss reads batch.attention() but was not registered with needs=('attention',)")
        self._forward()
        return self._attention

    def input_gradients(self, of: str = "target") -> Tensor:
        if "input_gradients" not in self.needs:
            raise RuntimeError("this loss reads batch.input_gradients() but was not registered with "
                               "needs=('input_gradients',)")
        if of not in self._gradients:
            logits = self.logits()
            if of == "target":
                score = logits.gather(1, self.targets[:, None]).sum()
            elif of == "log_probs":
                score = torch.log_softmax(logits, dim=1).sum()
            else:
                raise ValueError(f"input_gradients(of={of!r}): expected 'target' or 'log_probs'")
            (grad,) = torch.autograd.grad(score, self.inputs, create_graph=True)
            self._gradients[of] = grad
        return self._gradients[of]


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """(B, h, w) -> (B, H, W), bilinear with pixel centres aligned (``align_corners=False``), as
    :func:`harness.attention.resize.to_stimulus` brings a map to the stimulus."""
    import torch.nn.functional as F

    return F.interpolate(maps[:, None], size=tuple(int(s) for s in size), mode="bilinear",
                         align_corners=False)[:, 0]


def density_on_grid(density, size: Sequence[int]) -> Tensor:
    """A stimulus' density (h, w) resampled to the input grid by area averaging, summing to 1."""
    import numpy as np
    import torch.nn.functional as F

    d = torch.from_numpy(np.ascontiguousarray(density, dtype=np.float32))[None, None]
    out = F.adaptive_avg_pool2d(d, tuple(int(s) for s in size))[0, 0].clamp_min(0)
    total = out.sum()
    return out / total if float(total) > 0 else torch.full_like(out, 1.0 / out.numel())
