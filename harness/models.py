"""What a model plugin's factory returns.

A model turns a batch of stimuli into, per stimulus, an attention map at stimulus resolution and
(for a task) its task output. Models are built lazily by :func:`load_model` from their spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass
class Prediction:
    """One stimulus' result.

    ``attention``: float array of shape (height, width) of the stimulus, non-negative, any scale.
    ``output``: the task output, e.g. ``{"label": "n01440764", "topk": [...]}`` for classification,
    ``{"boxes": [[x, y, w, h], ...], "scores": [...], "categories": [...]}`` for detection,
    ``{"caption": "..."}`` for captioning; empty for free viewing.
    ``maps``: optional extra maps keyed by a name (per detection, per token...), same shape.
    """

    attention: np.ndarray | None
    output: dict[str, Any] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    name: str
    tasks: Sequence[str]
    attention_methods: Sequence[str]

    def provenance(self) -> dict[str, Any]:
        """Identity of the weights: ``{"model_id": ..., "revision": ... or "weights_sha256": ...}``."""

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        """Run on a batch of PIL images; return one :class:`Prediction` per image, in order.

        A model with a class attribute ``needs_pixels = False`` gets, instead of images (no
        decoding), objects with only ``.size`` (width, height) and ``.stimulus_id`` (the dataset's
        id of the stimulus, a string, e.g. ``"1001"`` for OSIE's ``1001.jpg``; ``None`` when the
        caller does not know it): enough for a map that depends on the size only (the baselines)
        or is looked up per stimulus (the mouse-tracking models). A factory registered with
        ``devices=True`` takes ``device="cuda"`` etc."""


def check_request(model: Model, task: str, attention: str) -> None:
    """One-line errors for a task or attention method the model does not offer."""
    from .errors import HarnessError

    if task not in model.tasks:
        raise HarnessError(f"model {model.name!r} does not do task {task!r} (only {', '.join(model.tasks)})")
    if attention not in model.attention_methods:
        raise HarnessError(
            f"model {model.name!r} has no attention method {attention!r} (only {', '.join(model.attention_methods)})"
        )


def is_model_path(name: str) -> bool:
    """``name`` names a folder written by ``harness align`` (an aligned model), not a registered name."""
    from .alignment.model import checkpoint_path

    return checkpoint_path(name) is not None


def device_kwargs(name: str, device: str) -> dict[str, Any]:
    """Where the model runs: models that take a ``device`` get this process' device."""
    if device == "cpu":
        return {}
    if name.startswith("hf:") or is_model_path(name):
        return {"device": device}
    from .plugins import get_registry

    spec = get_registry().get("model", name)
    return {"device": device} if spec.get("devices") else {}


def data_kwargs(name: str, dataset: str, data_dir: Any) -> dict[str, Any]:
    """Models that read data of their own (a factory with a ``data_dir`` argument: the OSIE
    mouse-tracking models) get the folder ``--data-dir`` names for the evaluated dataset (the one
    rule of :func:`harness.data.paths.dataset_folder`), so they read the same data as the dataset."""
    import inspect

    from .data.paths import dataset_folder
    from .plugins import get_registry

    folder = dataset_folder(dataset, data_dir)
    if folder is None or name.startswith("hf:") or is_model_path(name):
        return {}
    try:
        params = inspect.signature(get_registry().get("model", name).resolve()).parameters
    except (TypeError, ValueError):
        return {}
    return {"data_dir": folder} if "data_dir" in params else {}


def load_model(name: str, **kwargs: Any) -> Model:
    """Build a model by registered name, ``hf:<checkpoint>`` for any transformers checkpoint, or the
    path of a folder written by ``harness align`` (``aligned:PATH`` also works)."""
    from .alignment.model import checkpoint_path
    from .plugins import get_registry

    folder = checkpoint_path(name)
    if folder is not None:
        from .alignment.model import AlignedModel

        return AlignedModel(folder, **kwargs)
    reg = get_registry()
    if name.startswith("hf:") and ("model", name) not in reg:
        spec = reg.get("model", "hf")
        return spec.load(checkpoint=name[3:], **kwargs)
    spec = reg.get("model", name)
    factory_kwargs = dict(spec.get("kwargs", {}) or {})
    factory_kwargs.update(kwargs)
    return spec.load(**factory_kwargs)
