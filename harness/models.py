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


def checked_model(model: Any, name: str, provenance: bool = True) -> dict[str, Any] | None:
    """Check that ``model`` (what a plugin's factory returned, or an object given to
    ``harness.evaluate``) is a model, and return its provenance (None when not asked: computing it
    may hash a weights file). What is wrong is a one-line :class:`~harness.errors.PluginError`
    naming the model, never a traceback from deep inside the evaluation (plugins are not trusted
    to follow :class:`Model`)."""
    from .errors import PluginError

    what = f"model {name!r} ({type(model).__name__}{_plugin_note(name)})"
    missing = [a for a in ("tasks", "attention_methods", "predict", "provenance") if not hasattr(model, a)]
    if missing:
        raise PluginError(f"{what} has no {', '.join(missing)}: a model needs tasks, attention_methods, "
                          "predict() and provenance() (docs/plugins.md)")
    for attr in ("tasks", "attention_methods"):
        value = getattr(model, attr)
        if isinstance(value, str) or not all(isinstance(v, str) for v in _items(value)) or not _items(value):
            raise PluginError(f"{what}: {attr} must be a non-empty sequence of names, got {value!r}")
    if not callable(model.predict) or not callable(model.provenance):
        raise PluginError(f"{what}: predict and provenance must be methods")
    if not provenance:
        return None
    try:
        provenance = model.provenance()
    except Exception as exc:
        raise PluginError(f"{what}: provenance() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(provenance, dict):
        raise PluginError(f"{what}: provenance() must return a dict (model_id, revision or weights_sha256), "
                          f"got {type(provenance).__name__}")
    import json

    try:  # it names the run: a value written with str() (an object's address) would change every time
        json.dumps(provenance, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise PluginError(f"{what}: provenance() must return plain JSON data (strings, numbers, lists, dicts): "
                          f"{exc}") from exc
    return provenance


def _plugin_note(name: str) -> str:
    """``, plugin 'x'`` for a registered model (the package to fix or uninstall), else nothing."""
    try:
        from .plugins import get_registry

        plugins = get_registry(warn=False).plugins_of("model", name)
    except Exception:  # naming the plugin must never hide the error being reported
        return ""
    return f", plugin {plugins[0]!r}" if len(plugins) == 1 else ""


def _items(value: Any) -> list[Any]:
    try:
        return list(value)
    except TypeError:
        return []


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


def canonical_model_name(name: str) -> str:
    """``name`` as it loads from any working folder: an ``hf:`` checkpoint given as a local folder
    (``hf:./x``) with the folder's absolute path (links kept, as given); every other name as is.
    ``harness align`` records it beside the base model's name, so that the aligned folder finds its
    base wherever it is evaluated. (Runs keep the name as given: a name made absolute would split
    them from the runs made before, and the page's shortened paths would merge two checkpoints of
    one folder name.)"""
    import os
    from pathlib import Path

    if not name.startswith("hf:"):
        return name
    from .plugins import get_registry

    if ("model", name) in get_registry():  # a registered alias named hf:...
        return name
    base, sep, query = name[3:].partition("?")
    folder = Path(base).expanduser()
    if not base or not folder.is_dir():  # a Hub id (or a revision after '@'), or a missing folder
        return name
    return f"hf:{os.path.abspath(folder)}{sep}{query}"


def device_kwargs(name: str, device: str) -> dict[str, Any]:
    """Where the model runs: models that take a ``device`` get this process' device."""
    if device == "cpu":
        return {}
    if name.startswith("hf:") or is_model_path(name):
        return {"device": device}
    from .plugins import get_registry

    spec = get_registry().get("model", name)
    return {"device": device} if spec.get("devices") else {}


def copies_allowed(name: str) -> bool:
    """Whether several instances of the model may run batches side by side in threads of one
    process by default (``harness eval --model-copies``): the built-in models, Hugging Face
    checkpoints, aligned folders, and plugins registered with ``copies=True``. Not assumed of other
    plugins: two instances that share state (a module-level cache handing both the same torch
    module, a hook that stores activations on it) would race and give wrong maps without an error."""
    if name.startswith("hf:") or is_model_path(name):
        return True
    from .plugins import get_registry

    reg = get_registry()
    return ("model", name) in reg and bool(reg.get("model", name).get("copies"))


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


#: a Linear given fewer rows than this computes them padded to this many (the last row repeated)
INVARIANT_ROWS = 8


def batch_invariant_linears(module: Any) -> Any:
    """Make every ``torch.nn.Linear`` in ``module`` compute an input of fewer than
    :data:`INVARIANT_ROWS` rows as that many (the last row repeated, the copies' outputs dropped),
    so that a stimulus' numbers do not depend on the batch it is in. BLAS computes a product of few
    rows with routines that add in another order than the product of many (measured with torch's
    MKL: one row on an Intel Xeon, one to three rows on an AMD EPYC with AVX2; from four rows on,
    every row's numbers were the same for any row count up to 32), while convolutions and the
    products over tokens give each stimulus the same numbers in any batch: so without this a
    classifier head's logits (and a caption decoder's, one token at a time) move by a few ulps when
    the stimulus is in a small batch (``--batch-size 1`` or 3, or a run's last batch). Gradients
    are unchanged (the copies' outputs are unused: their gradient is zero). The layers become
    :class:`TwoRowLinear` (named when it padded one row to two; a ``Linear`` subclass: same
    parameters and state dict, picklable); subclasses of ``Linear`` (a quantised layer, say) are
    left alone. Returns ``module``; calling it twice is harmless."""
    import torch

    cls = _two_row_linear_class()
    for sub in module.modules():
        if type(sub) is torch.nn.Linear:
            sub.__class__ = cls
    return module


_TWO_ROW: list[Any] = []


def _two_row_linear_class() -> Any:
    """:class:`TwoRowLinear`, made on first use (importing this module does not import torch)."""
    if not _TWO_ROW:
        import torch
        import torch.nn.functional as F

        class TwoRowLinear(torch.nn.Linear):
            """A ``Linear`` that computes fewer than :data:`INVARIANT_ROWS` rows as that many (see
            :func:`batch_invariant_linears`)."""

            def forward(self, x: Any) -> Any:
                rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
                if rows >= INVARIANT_ROWS or rows == 0:  # enough rows: the matrix product already
                    return F.linear(x, self.weight, self.bias)
                flat = x.reshape(rows, x.shape[-1])
                padded = torch.cat([flat, flat[-1:].expand(INVARIANT_ROWS - rows, -1)])
                out = F.linear(padded, self.weight, self.bias)[:rows]
                return out.reshape(*x.shape[:-1], self.out_features)

        TwoRowLinear.__module__ = __name__  # pickled by name: harness.models.TwoRowLinear
        TwoRowLinear.__qualname__ = "TwoRowLinear"
        _TWO_ROW.append(TwoRowLinear)
    return _TWO_ROW[0]


def __getattr__(name: str) -> Any:
    if name == "TwoRowLinear":  # for pickle and for readers: made on first use
        return _two_row_linear_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
