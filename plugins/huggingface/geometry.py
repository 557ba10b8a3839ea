"""Where a Hugging Face image processor's output lies on the stimulus.

An attention map lives on the model's input (a patch grid, a CNN feature map); metrics need it on the
stimulus as stored. Image processors resize, centre-crop (DeiT, ConvNeXt/ResNet with ``crop_pct``,
CLIP/BiT ``shortest_edge`` + crop) or warp (ViT, BLIP), each with its own rules and rounding. Rather
than re-implement every processor's arithmetic, :func:`view_box` *measures* it: it runs the
processor itself on a probe image whose red channel is a ramp in x and green channel a ramp in y,
with rescaling and normalisation switched off, and fits the affine map from output pixel to stimulus
pixel. Resampling filters (bilinear, bicubic, Lanczos, with PIL's antialiasing) reproduce a linear
ramp exactly away from the borders, so the fit on the central half of the output is the processor's
geometry. Precision is limited by the 8-bit probe: about one stimulus pixel per 255 (under 3 px for
an 800 px wide stimulus), far below a patch or feature cell; a box within that tolerance of the full
stimulus is snapped to it exactly.

Returns the stimulus rectangle ``(left, top, right, bottom)`` in pixel-edge coordinates (the whole
image is ``(0, 0, width, height)``), the ``box`` of :func:`harness.attention.resize.to_stimulus`.
Padding processors (DETR) are handled by the detector from the pixel mask instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Box = tuple[float, float, float, float]


def probe_image(height: int, width: int) -> Any:
    """RGB probe: red = round(255 x / (width - 1)), green = round(255 y / (height - 1)), blue = 0."""
    from PIL import Image

    probe = np.zeros((height, width, 3), dtype=np.uint8)
    probe[..., 0] = np.round(np.arange(width) * 255.0 / max(width - 1, 1))[None, :]
    probe[..., 1] = np.round(np.arange(height) * 255.0 / max(height - 1, 1))[:, None]
    return Image.fromarray(probe, mode="RGB")


def _fit_axis(values: np.ndarray, n_in: int) -> tuple[float, float]:
    """(low edge, high edge) in stimulus pixels of an output axis whose ramp values are ``values``."""
    n = values.shape[0]
    centres = values * (max(n_in - 1, 1) / 255.0)  # stimulus pixel centre of each output pixel
    index = np.arange(n, dtype=np.float64)
    lo, hi = (n // 4, n - n // 4) if n >= 8 else (0, n)
    if hi - lo < 2 or n_in < 2:
        return 0.0, float(n_in)  # a 1-pixel axis: nothing to fit
    slope, intercept = np.polyfit(index[lo:hi], centres[lo:hi], 1)
    low = intercept - slope / 2.0 + 0.5  # centre of output pixel 0, minus half a pixel, to edge coords
    return float(low), float(low + slope * n)


def view_box(processor: Any, height: int, width: int) -> Box:
    """The stimulus rectangle that the processor's output (``pixel_values``) covers."""
    probe = probe_image(height, width)
    out = processor(images=[probe], do_rescale=False, do_normalize=False, return_tensors="np")
    pixels = np.asarray(out["pixel_values"][0], dtype=np.float64)  # (3, h, w)
    left, right = _fit_axis(pixels[0].mean(axis=0), width)
    top, bottom = _fit_axis(pixels[1].mean(axis=1), height)
    return snap_to_full((left, top, right, bottom), height, width)


def snap_to_full(box: Box, height: int, width: int) -> Box:
    """The full stimulus if ``box`` is within the probe's precision of it, else ``box``."""
    tol_x = 1.0 + 1.5 * width / 255.0
    tol_y = 1.0 + 1.5 * height / 255.0
    left, top, right, bottom = box
    if abs(left) <= tol_x and abs(right - width) <= tol_x and abs(top) <= tol_y and abs(bottom - height) <= tol_y:
        return (0.0, 0.0, float(width), float(height))
    return box


def padded_box(height: int, width: int, valid: tuple[int, int], padded: tuple[int, int]) -> Box:
    """The stimulus rectangle covered by a padded input (DETR).

    The processor resized the stimulus to ``valid`` (h, w) pixels and padded it at the bottom and
    right to ``padded`` (h, w). A feature map spans the padded input, so in stimulus pixels it spans
    ``padded * stimulus / valid``; the part beyond the stimulus is the padding.
    """
    vh, vw = valid
    ph, pw = padded
    return (0.0, 0.0, pw * width / vw, ph * height / vh)
