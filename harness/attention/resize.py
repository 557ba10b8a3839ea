"""Bring a model's low-resolution map back to the stimulus' pixels.

Metrics compare maps with fixations in stimulus pixel coordinates (:mod:`harness.schema`), so every
attention map must end up (height, width) of the stimulus *as stored*, undoing whatever geometry the
model's preprocessing applied:

- the whole image squashed or resized to the network input (EfficientNet-Lite here): the map covers
  the whole stimulus -> ``to_stimulus(m, H, W)``;
- resize then centre-crop (many Hugging Face image processors): the map covers only the cropped
  window -> ``to_stimulus(m, H, W, box=crop_box(...))``; pixels outside the window get ``fill``
  (default 0: the model never saw them, so it attends to none of them).

Interpolation is bilinear with pixel centres aligned (the convention of PIL and of
``torch.nn.functional.interpolate(..., align_corners=False)``): a map cell covers a rectangle of the
stimulus and its value sits at that rectangle's centre, with edge values held constant beyond the
outermost centres. That is the convention Grad-CAM maps are shown with, not the network's geometry:
a cell's receptive field is centred where the strides and paddings put it, up to half a cell away
(EfficientNet's TensorFlow "SAME" padding: cell i of a stride-32 grid at 32i + 31.5 input pixels,
not 32i + 16; a ResNet's symmetric padding at 32i + 0.5). Moving the cells there changed
EfficientNet-Lite0's mean NSS on 30 OSIE stimuli from 0.70 to 0.61 (a QA measurement): the convention
is kept, as Grad-CAM maps are usually upsampled and compared, and docs/plugins.md says so. Bilinear
because a Grad-CAM/attention cell is a smooth estimate over its receptive field: nearest-neighbour
would add block edges that are not in the model, and bicubic would overshoot below zero. Weights are convex, so a non-negative map stays non-negative.
Written in numpy (two small interpolation matrices) so it is exact in float64 and imports no torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in stimulus pixels


def to_stimulus(
    maps: Any, height: int, width: int, *, box: Box | None = None, fill: float = 0.0
) -> np.ndarray:
    """Resize one map (h, w) or a batch (B, h, w) to (height, width) / (B, height, width), float64.

    ``box``: the stimulus rectangle (left, top, right, bottom; pixel edges, so the full image is
    ``(0, 0, width, height)``) that the map covers; default the whole stimulus. Pixels whose centres
    fall outside it get ``fill``.
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected a map (h, w) or a batch (B, h, w); got shape {arr.shape}")
    if height < 1 or width < 1:
        raise ValueError(f"stimulus size must be positive; got {height}x{width}")
    left, top, right, bottom = box if box is not None else (0.0, 0.0, float(width), float(height))
    if not (right > left and bottom > top):
        raise ValueError(f"empty box {box}")
    h, w = arr.shape[-2:]
    rows, inside_rows = _interpolation_matrix(height, h, top, bottom)
    cols, inside_cols = _interpolation_matrix(width, w, left, right)
    out = rows @ arr @ cols.T  # broadcasts over a leading batch axis
    if box is not None:
        outside = ~(inside_rows[:, None] & inside_cols[None, :])
        out[..., outside] = fill
    return out


def crop_box(
    height: int, width: int, resized: tuple[int, int], crop: tuple[int, int]
) -> Box:
    """The stimulus rectangle seen by a network after "resize to ``resized`` (h, w), then centre-crop
    ``crop`` (h, w)", as Hugging Face image processors do (``top = (rh - ch) // 2``, likewise left).

    Pass it as ``box`` to :func:`to_stimulus`. A crop larger than the resized image is padded by the
    processors; the box then extends past the stimulus, which :func:`to_stimulus` handles.
    """
    rh, rw = resized
    ch, cw = crop
    top = (rh - ch) // 2
    left = (rw - cw) // 2
    sy, sx = height / rh, width / rw
    return (left * sx, top * sy, (left + cw) * sx, (top + ch) * sy)


def _interpolation_matrix(n_out: int, n_in: int, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    """(n_out, n_in) bilinear weights from n_in map cells spread over [start, stop) onto n_out pixels,
    and which output pixel centres lie inside [start, stop]."""
    centres = np.arange(n_out, dtype=np.float64) + 0.5
    source = (centres - start) * (n_in / (stop - start)) - 0.5
    source = np.clip(source, 0.0, n_in - 1.0)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, n_in - 1)
    frac = source - lower
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    index = np.arange(n_out)
    np.add.at(weights, (index, lower), 1.0 - frac)
    np.add.at(weights, (index, upper), frac)
    inside = (centres >= start) & (centres <= stop)
    return weights, inside
