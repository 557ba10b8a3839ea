"""Small model plugins for tests: a map per stimulus chosen by the order the model sees them."""

from __future__ import annotations

from typing import Any

import numpy as np


def blob(width: int, height: int, cx: float = 0.5, spread: float = 5.0) -> np.ndarray:
    """A Gaussian blob (float64) centred at ``cx`` of the width and half the height, of width
    ``1 / spread`` of the image's."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.exp(-(((xx - width * cx) / (width / spread)) ** 2 + ((yy - height / 2) / (height / spread)) ** 2))


class ByCall:
    """A model whose k-th stimulus (in the order it is asked) gets :meth:`prediction` ``(k, width,
    height)``; subclasses set ``name`` and may set ``tasks`` and ``attention_methods``."""

    name = "by-call"
    tasks: tuple[str, ...] = ("free-viewing",)
    attention_methods: tuple[str, ...] = ("odd",)

    def __init__(self):
        self.calls = 0

    def provenance(self) -> dict[str, Any]:
        return {"model_id": self.name, "weights_sha256": f"{len(self.name) % 10}" * 64}

    def prediction(self, k: int, width: int, height: int) -> Any:
        raise NotImplementedError

    def predict(self, images, *, task, attention):
        out = []
        for im in images:
            k, self.calls = self.calls, self.calls + 1
            out.append(self.prediction(k, *im.size))
        return out
