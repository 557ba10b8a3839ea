"""The Python API: ``harness.evaluate(...)`` from a notebook, for a registered model, a plain
``torch.nn.Module`` with a named Grad-CAM layer, or any callable ``image -> map``.

>>> import harness
>>> res = harness.evaluate("efficientnet-lite0", dataset="osie", limit=50)
>>> res.summary["metrics"]["nss"], res.per_stimulus.head()
>>> res = harness.evaluate(my_resnet, layer="layer4", dataset="osie", limit=50)     # Grad-CAM of layer4
>>> res = harness.evaluate(lambda image: my_map(image), name="my-map", dataset="osie", limit=50)

In a script, call it under ``if __name__ == "__main__":`` (the scoring processes import the
script again when they start; an unguarded call stops with that advice).

It runs exactly what ``harness eval`` runs (same run folders under ``output``, same resumption, same
references: the human ceiling and the baselines), so a notebook result and a command-line result of
the same model and settings are the same run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import HarnessError


@dataclass
class Evaluation:
    """What :func:`evaluate` returns."""

    summary: dict[str, Any]  #: the run's summary.json (docs/results.md)
    per_stimulus: Any  #: pandas DataFrame, one row per stimulus (stimulus_id, status, one column per metric, ...)
    run_dir: Path
    #: summaries of the reference runs (human ceiling, baselines) on the same stimuli, by model name
    references: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the run was already complete in ``run_dir`` and was read back, not computed
    reused: bool = False


def evaluate(model: Any, dataset: str = "osie", *, limit: int | None = None, task: str = "free-viewing",
             attention: str | None = None, output: str | Path = "runs", data_dir: str | Path | None = None,
             layer: str | None = None, preprocess: Callable[[Sequence[Any]], Any] | None = None,
             input_size: int = 224, name: str | None = None, references: bool = True, progress: bool = False,
             **options: Any) -> Evaluation:
    """Evaluate ``model`` on ``dataset`` and return its summary and per-stimulus rows.

    ``model``: a registered name (``"efficientnet-lite0"``), ``"hf:<checkpoint>"``, the folder of a
    model trained by ``harness align``, a ``torch.nn.Module`` (give ``layer``, the dotted name of
    the convolutional layer whose Grad-CAM is its attention, e.g. ``"layer4"``; the module returns
    logits), or a callable taking a PIL image and returning a 2-D non-negative map (any size: it is
    resized bilinearly to the stimulus). ``name`` names a module or callable in the results (default:
    its class or function name). ``preprocess`` (modules only) turns a list of PIL images into the
    input batch; default: the whole image resized to ``input_size`` square, ImageNet mean/std.
    Further keyword arguments are :class:`harness.evaluation.EvalConfig` fields (``batch_size``,
    ``sigma_deg``, ``profile``, ``seed``, ``device``, ...). ``data_dir`` is the folder holding the
    dataset's files, as for ``harness eval --data-dir``.
    """
    from .evaluation import EvalConfig, run_eval
    from .results import read_run

    _check_arguments(dataset=dataset, task=task, attention=attention, output=output, data_dir=data_dir, name=name,
                     input_size=input_size, references=references, progress=progress)
    obj = None
    if isinstance(model, (str, Path)):
        model_name = str(model)
        if layer is not None or preprocess is not None:
            raise HarnessError("layer= and preprocess= apply to a torch.nn.Module, not to a registered model name")
    else:
        obj = wrap(model, layer=layer, preprocess=preprocess, input_size=input_size, name=name)
        model_name = obj.name
    fields = set(EvalConfig.__dataclass_fields__) - _NOT_OPTIONS
    unknown = sorted(set(options) - fields)
    if unknown:
        raise HarnessError(f"harness.evaluate: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    if options.get("sigma_px") is not None and "sigma_deg" in options:
        # as `harness eval` refuses both: sigma_px won and sigma_deg was dropped without a word
        raise HarnessError("harness.evaluate: sigma_deg and sigma_px are two ways to give the one blur: give one of them")
    cfg = EvalConfig(model=model_name, dataset=dataset, task=task, attention=attention, limit=limit,
                     output=Path(output), data_dir=Path(data_dir) if data_dir is not None else None,
                     progress=progress, command=["harness.evaluate", model_name, dataset], **options)
    try:
        results = run_eval(cfg, references=references, model=obj)
    finally:
        for module, training in getattr(obj, "training", {}).items():  # the user's module as it was
            module.training = training
    main = results[-1]
    run = read_run(main.run_dir)
    n = main.summary.get("n_images", 0)
    if n and main.summary.get("n_failed") == n:  # as `harness eval` stops: a summary without metrics
        raise HarnessError(f"harness.evaluate: every stimulus of {model_name} failed ({n} of {n}); the first reason: "
                           f"{_first_error(run)} (all of them in {main.run_dir}/summary.json)")
    refs = {r.summary["model"]: r.summary for r in results[:-1]}
    return Evaluation(summary=main.summary, per_stimulus=run.per_image(), run_dir=main.run_dir, references=refs,
                      reused=bool(getattr(main, "reused", False)))


#: EvalConfig fields that are arguments of evaluate() or set by the run, not options
_NOT_OPTIONS = frozenset({"model", "dataset", "task", "attention", "limit", "output", "data_dir", "progress", "command",
                          "resolved_device", "resolved_threads"})


def _first_error(run) -> str:
    rows = run.per_image()
    errors = [e for e in rows["error"] if isinstance(e, str) and e] if "error" in rows else []
    return errors[0] if errors else "not recorded"


def _check_arguments(**given: Any) -> None:
    """Types of evaluate()'s own arguments, named when wrong (EvalConfig's fields are checked by
    run_eval as the command line's are: harness.evaluation.config.check_config)."""
    def bad(what: str, expected: str) -> HarnessError:
        return HarnessError(f"harness.evaluate: {what} must be {expected}, got {given[what]!r}")

    if not isinstance(given["dataset"], str):
        raise bad("dataset", "a registered dataset name (a string; the images come from the dataset)")
    if not isinstance(given["task"], str):
        raise bad("task", "a task name (a string)")
    if given["attention"] is not None and not isinstance(given["attention"], str):
        raise bad("attention", "an attention method's name (a string) or None")
    for what in ("output", "data_dir"):
        if not (given[what] is None and what == "data_dir") and not isinstance(given[what], (str, Path)):
            raise bad(what, "a folder (a str or pathlib.Path)")
    if given["name"] is not None and not isinstance(given["name"], str):
        raise bad("name", "a string or None")
    size = given["input_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise bad("input_size", "a positive whole number of pixels")
    for what in ("references", "progress"):
        if not isinstance(given[what], bool):
            raise bad(what, "True or False")


def wrap(model: Any, *, layer: str | None = None, preprocess=None, input_size: int = 224, name: str | None = None):
    """A harness model (``name``, ``tasks``, ``attention_methods``, ``provenance()``, ``predict()``)
    around a torch module with a Grad-CAM layer, or around a callable ``image -> map``."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        if layer is None:
            raise HarnessError("harness.evaluate: a torch.nn.Module needs layer='<dotted name>' (the layer whose "
                               "Grad-CAM is its attention, e.g. 'layer4')")
        return ModuleModel(model, layer, preprocess=preprocess, input_size=input_size, name=name)
    if hasattr(model, "predict") and hasattr(model, "provenance"):
        return model  # already follows harness.models.Model
    if callable(model):
        if layer is not None or preprocess is not None:
            raise HarnessError("layer= and preprocess= apply to a torch.nn.Module, not to a function")
        return FunctionModel(model, name=name)
    raise HarnessError(f"harness.evaluate: cannot evaluate a {type(model).__name__}: give a registered model name, "
                       "a torch.nn.Module with layer=..., or a callable image -> map")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "model"


class ModuleModel:
    """A ``torch.nn.Module`` classifier; attention: Grad-CAM of its top-1 class on ``layer``."""

    tasks: Sequence[str] = ("free-viewing",)

    def __init__(self, module, layer: str, *, preprocess=None, input_size: int = 224, name: str | None = None):
        from .attention import cnn_layer_methods

        import torch

        if isinstance(layer, torch.nn.Module):  # the layer itself: its dotted name in the module
            found = [n for n, m in module.named_modules() if m is layer and n]
            if not found:
                raise HarnessError(f"harness.evaluate: layer= {type(layer).__name__} is not a submodule of the model; "
                                   "give the dotted name of one, e.g. 'layer4'")
            layer = found[0]
        if not isinstance(layer, str) or not layer:
            raise HarnessError(f"harness.evaluate: layer= must be the dotted name of a submodule (e.g. 'layer4'), "
                               f"got {layer!r}")
        try:
            self.layer = module.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in module.named_modules() if n][:8]
            raise HarnessError(f"harness.evaluate: the module has no layer {layer!r} (some of its layers: "
                               f"{', '.join(names)}, ...)") from None
        # evaluated in eval mode; evaluate() puts each submodule's training flag back afterwards
        self.training = {m: m.training for m in module.modules()}
        self.module = module.eval()
        self.layer_name = layer
        self.input_size = int(input_size)
        self._preprocess = preprocess
        self.name = _slug(name or type(module).__name__)
        self.attention_methods = tuple(dict.fromkeys(["grad-cam", *cnn_layer_methods()]))

    def provenance(self) -> dict[str, Any]:
        h = hashlib.sha256()
        # every buffer, not only the state_dict's: a buffer registered with persistent=False changes
        # the maps too (found by QA)
        tensors = dict(self.module.state_dict())
        tensors.update((f"{k} (buffer)", b) for k, b in self.module.named_buffers() if k not in tensors)
        for key, tensor in sorted(tensors.items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        code = hashlib.sha256()  # the forward of every class of the network that is not torch's own
        for cls in sorted({type(m) for m in self.module.modules() if not type(m).__module__.startswith("torch.")},
                          key=lambda c: f"{c.__module__}.{c.__qualname__}"):
            code.update(f"{cls.__module__}.{cls.__qualname__}".encode())
            _feed_callable(code, cls.forward, depth=0)
        out = {"model_id": self.name, "weights_sha256": h.hexdigest(), "class": type(self.module).__qualname__,
               "code_sha256": code.hexdigest(), "attention_layer": self.layer_name,
               "input": "custom preprocess" if self._preprocess else
               f"{self.input_size}x{self.input_size} RGB, whole image bilinear-resized, ImageNet mean/std"}
        if self._preprocess is not None:
            out["preprocess_sha256"] = callable_identity(self._preprocess)
        return out

    def preprocess(self, images):
        import torch
        from PIL import Image

        if self._preprocess is not None:
            return self._preprocess(images)
        size = self.input_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
                        for im in images]) / 255.0
        arr = (arr - np.array([0.485, 0.456, 0.406], dtype=np.float32)) / np.array([0.229, 0.224, 0.225], dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))

    def predict(self, images, *, task: str, attention: str):
        from .attention.gradcam import grad_cam_with_logits
        from .attention.resize import to_stimulus
        from .models import Prediction, check_request

        check_request(self, task, attention)
        if not images:
            return []
        x = self.preprocess(images)
        self.module.eval()  # again after preprocess: one that set train mode updated BatchNorm's statistics
        param = next(self.module.parameters(), None)
        if param is not None:  # a float64 (or half) network gets its own dtype, on its device
            x = x.to(param.device, dtype=param.dtype if x.is_floating_point() else None)
        if attention == "grad-cam":
            maps, targets, _ = grad_cam_with_logits(self.module, self.layer, x, None)
        else:
            from .attention import run_cnn_layer_method

            maps, targets, _ = run_cnn_layer_method(attention, self.module, self.layer, x)
        maps, targets = maps.detach().cpu().double().numpy(), targets.cpu()
        return [Prediction(attention=to_stimulus(maps[i], im.size[1], im.size[0]),
                           output={"class_index": int(targets[i])}) for i, im in enumerate(images)]


class FunctionModel:
    """A callable ``PIL image -> 2-D map`` (height, width) at any resolution; the map is resized
    bilinearly to the stimulus. A map of the image's (width, height) is refused: a transposed map."""

    tasks: Sequence[str] = ("free-viewing",)
    attention_methods: Sequence[str] = ("function",)

    def __init__(self, fn: Callable[[Any], Any], *, name: str | None = None):
        self.fn = fn
        self.name = _slug(name or getattr(fn, "__name__", type(fn).__name__))
        if self.name == "lambda" and name is None:
            self.name = "function"

    def provenance(self) -> dict[str, Any]:
        return {"model_id": self.name, "function": getattr(self.fn, "__qualname__", type(self.fn).__qualname__),
                "code_sha256": callable_identity(self.fn)}

    def predict(self, images, *, task: str, attention: str):
        from .attention.resize import to_stimulus
        from .models import Prediction

        out = []
        for im in images:
            m = np.asarray(self.fn(im))
            if np.iscomplexobj(m):  # numpy would drop the imaginary part with a warning
                raise ValueError(f"{self.name} returned complex values; a map holds real numbers")
            m = m.astype(np.float64)
            if m.ndim != 2:
                raise ValueError(f"{self.name} returned an array of shape {m.shape}; expected a 2-D map")
            w, h = im.size
            if m.shape == (w, h) and w != h:  # (width, height): stretched to the image, it would score as
                # a map of other places, in silence; a model's map of another size is refused the same way
                raise ValueError(f"{self.name} returned a map of shape {m.shape}, the image's (width, height); "
                                 f"a map is (height, width) = ({h}, {w})")
            out.append(Prediction(attention=m if m.shape == (h, w) else to_stimulus(m, h, w)))
        return out


def callable_identity(fn: Any) -> str:
    """SHA-256 of what a callable computes with, as far as it can be read: its code (bytecode, the
    names it calls, its constants, nested functions and comprehensions recursively, without the
    addresses and line numbers ``repr`` puts in them, which changed from one Python process to the
    next), its default arguments, the values its closure holds, a ``functools.partial``'s function and
    arguments, a callable object's ``__call__`` and attributes. Values are hashed by content (numbers,
    text, numpy arrays, torch tensors, containers of them); another object by its type only. Not
    covered: the module globals it reads and the functions it calls by name (their *names* are);
    give ``name=`` to tell such variants apart (docs: README, the Python API)."""
    h = hashlib.sha256()
    _feed_callable(h, fn, depth=0)
    return h.hexdigest()


def _feed_callable(h, fn: Any, depth: int) -> None:
    import functools
    import types

    if depth > 8:  # a callable holding itself
        h.update(b"<deep>")
        return
    if isinstance(fn, functools.partial):
        h.update(b"partial")
        _feed_callable(h, fn.func, depth + 1)
        _feed_value(h, fn.args, depth + 1)
        _feed_value(h, dict(fn.keywords), depth + 1)
        return
    if isinstance(fn, types.MethodType):
        h.update(b"method")
        _feed_callable(h, fn.__func__, depth + 1)
        _feed_value(h, fn.__self__, depth + 1)
        return
    if isinstance(fn, types.FunctionType):
        _feed_code(h, fn.__code__)
        _feed_value(h, fn.__defaults__, depth + 1)
        _feed_value(h, fn.__kwdefaults__, depth + 1)
        for cell in fn.__closure__ or ():
            try:
                _feed_value(h, cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                h.update(b"<empty cell>")
        return
    call = getattr(type(fn), "__call__", None)
    h.update(f"{type(fn).__module__}.{type(fn).__qualname__}".encode())
    if isinstance(call, types.FunctionType):  # a callable object: its method and its state
        _feed_code(h, call.__code__)
        _feed_value(h, getattr(fn, "__dict__", {}), depth + 1)


def _feed_code(h, code: Any) -> None:
    import types

    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_argcount, code.co_kwonlyargcount)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(h, const)
        else:  # by content: a frozenset's repr follows the process' string hashing
            _feed_value(h, const, 0)


def _feed_value(h, value: Any, depth: int) -> None:
    import types

    if depth > 8:
        h.update(b"<deep>")
        return
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(repr(value).encode())
    elif isinstance(value, np.ndarray):
        h.update(f"ndarray{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value.tolist()).encode())
    elif type(value).__module__.startswith("torch") and hasattr(value, "detach") and hasattr(value, "numpy"):
        _feed_value(h, value.detach().cpu().numpy(), depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        h.update(f"{type(value).__name__}[".encode())
        for item in items:
            _feed_value(h, item, depth + 1)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _feed_value(h, value[k], depth + 1)
        h.update(b"}")
    elif callable(value) and not isinstance(value, type) and not isinstance(value, types.ModuleType):
        _feed_callable(h, value, depth + 1)
    else:  # a module, a class, a model object...: by its type (its content is not read)
        h.update(f"<{type(value).__module__}.{type(value).__qualname__}>".encode())
