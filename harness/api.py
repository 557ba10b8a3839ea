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

    obj = None
    if isinstance(model, (str, Path)):
        model_name = str(model)
        if layer is not None or preprocess is not None:
            raise HarnessError("layer= and preprocess= apply to a torch.nn.Module, not to a registered model name")
    else:
        obj = wrap(model, layer=layer, preprocess=preprocess, input_size=input_size, name=name)
        model_name = obj.name
    fields = set(EvalConfig.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise HarnessError(f"harness.evaluate: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})")
    cfg = EvalConfig(model=model_name, dataset=dataset, task=task, attention=attention, limit=limit,
                     output=Path(output), data_dir=Path(data_dir) if data_dir is not None else None,
                     progress=progress, command=["harness.evaluate", model_name, dataset], **options)
    results = run_eval(cfg, references=references, model=obj)
    main = results[-1]
    run = read_run(main.run_dir)
    refs = {r.summary["model"]: r.summary for r in results[:-1]}
    return Evaluation(summary=main.summary, per_stimulus=run.per_image(), run_dir=main.run_dir, references=refs)


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

        try:
            self.layer = module.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in module.named_modules() if n][:8]
            raise HarnessError(f"harness.evaluate: the module has no layer {layer!r} (some of its layers: "
                               f"{', '.join(names)}, ...)") from None
        self.module = module.eval()
        self.layer_name = layer
        self.input_size = int(input_size)
        self._preprocess = preprocess
        self.name = _slug(name or type(module).__name__)
        self.attention_methods = tuple(dict.fromkeys(["grad-cam", *cnn_layer_methods()]))

    def provenance(self) -> dict[str, Any]:
        h = hashlib.sha256()
        for key, tensor in sorted(self.module.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return {"model_id": self.name, "weights_sha256": h.hexdigest(), "class": type(self.module).__qualname__,
                "attention_layer": self.layer_name,
                "input": "custom preprocess" if self._preprocess else
                f"{self.input_size}x{self.input_size} RGB, whole image bilinear-resized, ImageNet mean/std"}

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
        param = next(self.module.parameters(), None)
        if param is not None:
            x = x.to(param.device)
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
        code = getattr(self.fn, "__code__", None) or getattr(getattr(self.fn, "__call__", None), "__code__", None)
        h = hashlib.sha256()
        if code is not None:  # a changed function is another run
            h.update(code.co_code)
            h.update(repr(code.co_consts).encode())
        return {"model_id": self.name, "function": getattr(self.fn, "__qualname__", type(self.fn).__qualname__),
                "code_sha256": h.hexdigest() if code is not None else None}

    def predict(self, images, *, task: str, attention: str):
        from .attention.resize import to_stimulus
        from .models import Prediction

        out = []
        for im in images:
            m = np.asarray(self.fn(im), dtype=np.float64)
            if m.ndim != 2:
                raise ValueError(f"{self.name} returned an array of shape {m.shape}; expected a 2-D map")
            w, h = im.size
            if m.shape == (w, h) and w != h:  # (width, height): stretched to the image, it would score as
                # a map of other places, in silence; a model's map of another size is refused the same way
                raise ValueError(f"{self.name} returned a map of shape {m.shape}, the image's (width, height); "
                                 f"a map is (height, width) = ({h}, {w})")
            out.append(Prediction(attention=m if m.shape == (h, w) else to_stimulus(m, h, w)))
        return out
