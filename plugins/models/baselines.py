"""Image-independent baseline models: ``uniform`` and ``center-bias``.

They bracket every result: a network's attention that does no better than ``center-bias`` has
learnt nothing about *where in this image* people look, only that they look near the middle.
Both return the same map for every image of a given size; their single attention method is
``prior`` (registered by :mod:`plugins.attention`).

Centre bias
-----------
:func:`center_bias_map` is the anisotropic Gaussian that Clarke & Tatler (2014, "Deriving an
appropriate baseline for describing fixation behaviour", Vision Research 102:41-51) fitted across
ten scene-viewing data sets and propose as a data-set-independent baseline, so it needs no fitting
to (and leaks nothing from) the data it is scored on. In coordinates where x runs from -1 (left
edge) to 1 (right edge) and y is scaled by the same factor (y in [-H/W, H/W], image centre at 0)::

    p(x, y) ~ exp(-(x**2 / sigma2 + y**2 / (nu * sigma2)) / 2),  sigma2 = 0.22, nu = 0.45

``nu < 1`` makes it narrower vertically than horizontally, as fixations are. (The MIT saliency
benchmark's "center" baseline, cvzoya/saliency ``code_forOptimization/optimizeParams.m``, instead
``imresize``s one fixed Gaussian image to each image's size, i.e. a Gaussian stretched to the
aspect ratio; for a 4:3 image that is nu = (3/4)**2 = 0.56, close to Clarke & Tatler's 0.45.) The
evaluation also uses this map as the baseline density of the information-gain metric (Kümmerer et
al. 2015), so it is returned as a probability distribution over pixels: float64, strictly positive,
summing to 1.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from harness import __version__
from harness.errors import HarnessError, PluginError
from harness.hookspecs import hookimpl
from harness.models import Prediction, check_request

SIGMA2 = 0.22
NU = 0.45
TASKS = ("free-viewing",)
ATTENTION = ("prior",)


def center_bias_map(height: int, width: int, *, sigma2: float = SIGMA2, nu: float = NU) -> np.ndarray:
    """Clarke & Tatler (2014) centre-bias density for a ``height`` x ``width`` stimulus (sums to 1)."""
    _check_size(height, width)
    # pixel centres, x in (-1, 1); y on the same scale as x, so spans (-H/W, H/W)
    x = (np.arange(width, dtype=np.float64) + 0.5) * (2.0 / width) - 1.0
    y = ((np.arange(height, dtype=np.float64) + 0.5) * (2.0 / height) - 1.0) * (height / width)
    log_p = -0.5 * (x[None, :] ** 2 / sigma2 + y[:, None] ** 2 / (nu * sigma2))
    density = np.exp(log_p - log_p.max())
    return density / density.sum()


def uniform_map(height: int, width: int) -> np.ndarray:
    """The uniform density: every pixel ``1 / (height * width)``."""
    _check_size(height, width)
    return np.full((height, width), 1.0 / (height * width), dtype=np.float64)


def prior_map(model: str, height: int, width: int) -> np.ndarray:
    """The ``prior`` attention method: the baseline model's image-independent map (read-only: one
    array per size serves every stimulus of that size)."""
    maps = {"uniform": uniform_map, "center-bias": center_bias_map}
    if model not in maps:
        raise HarnessError(f"attention method 'prior' exists only for {', '.join(maps)}; not for {model!r}")
    return _prior_map(model, height, width)


@functools.lru_cache(maxsize=8)
def _prior_map(model: str, height: int, width: int) -> np.ndarray:
    # a 4 MB map for each of 700 same-sized OSIE stimuli took as long as scoring it
    m = {"uniform": uniform_map, "center-bias": center_bias_map}[model](height, width)
    m.setflags(write=False)
    return m


class BaselineModel:
    """A model whose attention ignores the image content; its task output is empty."""

    tasks: Sequence[str] = TASKS
    attention_methods: Sequence[str] = ATTENTION
    needs_pixels = False  # reads only each stimulus' size: the evaluator skips decoding

    def __init__(self, name: str) -> None:
        if name not in ("uniform", "center-bias"):
            raise PluginError(f"plugin 'baselines' has no model {name!r}")
        self.name = name

    def provenance(self) -> dict[str, Any]:
        params = {"sigma2": SIGMA2, "nu": NU} if self.name == "center-bias" else {}
        # no weights: the "revision" is the definition, which only changes with the harness
        return {"model_id": self.name, "revision": f"gaze-harness {__version__}", "parameters": params}

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        check_request(self, task, attention)
        out = []
        for image in images:
            width, height = image.size  # PIL: (width, height)
            out.append(Prediction(attention=prior_map(self.name, height, width), output={}))
        return out


def uniform() -> BaselineModel:
    return BaselineModel("uniform")


def center_bias() -> BaselineModel:
    return BaselineModel("center-bias")


@hookimpl
def register_models(register):
    register(
        "uniform",
        "plugins.models.baselines:uniform",
        tasks=TASKS,
        attention=ATTENTION,
        baseline=True,
        description="Uniform map: chance level, the floor every model must beat.",
    )
    register(
        "center-bias",
        "plugins.models.baselines:center_bias",
        tasks=TASKS,
        attention=ATTENTION,
        baseline=True,
        description=(
            "Anisotropic centred Gaussian (Clarke & Tatler 2014: sigma^2=0.22, nu=0.45): "
            "where people look regardless of the image."
        ),
    )


def _check_size(height: int, width: int) -> None:
    if int(height) != height or int(width) != width or height < 1 or width < 1:
        raise ValueError(f"stimulus size must be positive integers; got {height}x{width}")
