"""Hugging Face transformers models as harness models: classifiers, DETR detectors, captioners.

Built by :func:`plugins.huggingface.load` once the checkpoint is located; see ``docs/huggingface.md``
for the methods per architecture. torch and transformers are imported inside functions only, so
importing this module stays cheap.

Every model:

- loads with ``attn_implementation="eager"`` (SDPA and flash attention return no weights);
- preprocesses with the checkpoint's own image processor, PIL backend (``backend="pil"``);
- maps its grid maps back to the stimulus with :func:`harness.attention.resize.to_stimulus`, using
  the processor's measured geometry (:mod:`plugins.huggingface.geometry`): pixels the model never saw (cut
  off by a centre crop) get 0.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from harness.errors import HarnessError
from harness.models import Prediction, check_request

from .geometry import padded_box, view_box

TOP_K = 5
DEFAULT_MAX_NEW_TOKENS = 30  # COCO captions are ~10 words; 30 tokens leave room for sub-words

# Transformers whose ``attentions`` are full (B, heads, T, T) self-attention over a CLS token, maybe
# more prefix tokens (DeiT's distillation token, DINOv2's registers) and the patch grid.
VIT_LIKE = frozenset(
    {"vit", "deit", "beit", "data2vec-vision", "dinov2", "dinov2_with_registers", "vit_msn"}
)
# Hierarchical window-attention transformers: no global CLS attention; Grad-CAM on the final tokens.
SWIN_LIKE = frozenset({"swin", "swinv2"})
POOLING = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "AvgPool2d", "MaxPool2d")


class HFModel:
    """What every Hugging Face model shares: identity, task/attention checks, geometry cache."""

    task: str = ""
    attention_methods: Sequence[str] = ()

    def __init__(self, *, name: str, model: Any, processor: Any, provenance: dict[str, Any],
                 options: dict[str, Any]) -> None:
        self.name = name
        self.model = model
        self.processor = processor
        self.options = dict(options)
        self.tasks = ("free-viewing", self.task)
        self._provenance = dict(provenance)
        self._boxes: dict[tuple[int, int], tuple[float, float, float, float]] = {}

    def provenance(self) -> dict[str, Any]:
        out = dict(self._provenance)
        out["architecture"] = type(self.model).__name__
        out["attention_implementation"] = "eager"
        if self.options:
            out["options"] = dict(sorted(self.options.items()))
        return out

    def _check(self, task: str, attention: str) -> None:
        check_request(self, task, attention)

    def _box(self, height: int, width: int):
        key = (height, width)
        if key not in self._boxes:
            self._boxes[key] = view_box(self.processor, height, width)
        return self._boxes[key]

    def _to_stimulus(self, grid_maps: np.ndarray, height: int, width: int) -> np.ndarray:
        from harness.attention.resize import to_stimulus

        box = self._box(height, width)
        full = box == (0.0, 0.0, float(width), float(height))
        return to_stimulus(grid_maps, height, width, box=None if full else box)

    def _pixels(self, images: Sequence[Any]):
        rgb = [im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt").to(self.model.device)


def _labels(config: Any) -> tuple[list[str], list[str] | None]:
    """Class names by index, and ImageNet-1k wnids when the head is the standard ImageNet-1k one."""
    n = int(config.num_labels)
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(n)]
    if n == 1000:
        from harness.imagenet_classes import NAMES, WNIDS

        first = [s.split(",")[0].strip().lower() for s in names]
        ref = [s.split(",")[0].strip().lower() for s in NAMES]
        if sum(a == b for a, b in zip(first, ref)) >= 990:
            return names, list(WNIDS)
    return names, None


class HFClassifier(HFModel):
    """Image classifiers: ViT-like transformers (CLS attention, rollout), CNNs and Swin (Grad-CAM).

    Task output: ``label`` (the ImageNet wnid for ImageNet-1k heads, as the other harness
    classifiers emit, else the checkpoint's ``id2label`` name), ``class_index``, ``name``, ``topk``,
    ``topk_indices``, ``topk_scores`` (softmax), ``topk_names``.
    """

    task = "classification"

    def __init__(self, *, family: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.family = family
        if family == "vit":
            self.attention_methods = ("cls-attention", "rollout")
        else:  # Grad-CAM first (the default), then every other registered method for a CNN layer
            from harness.attention import cnn_layer_methods

            self.attention_methods = tuple(dict.fromkeys(["grad-cam", *cnn_layer_methods()]))
        self.names, self.wnids = _labels(self.model.config)
        self._cam_layer = None
        # evaluation needs gradients w.r.t. activations only; set once, not per batch, so that the
        # parameters `harness align` makes trainable stay so when it scores held-out stimuli
        self.model.requires_grad_(False)

    def options_unused_by(self, attention: str) -> list[str]:
        """Options of the model's name that ``attention`` never reads: ``discard_ratio`` is
        rollout's; with CLS attention it would name a run of its own with the plain model's maps."""
        return ["discard_ratio"] if self.family == "vit" and attention != "rollout" and "discard_ratio" in self.options \
            else []

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        self._check(task, attention)
        if not images:
            return []
        import torch

        pixel_values = self._pixels(images)["pixel_values"]
        grids, logits = self.grid_maps(pixel_values, attention)
        probs = torch.softmax(logits.double().cpu(), dim=-1)
        k = min(TOP_K, probs.shape[-1])
        top = torch.topk(probs, k, dim=-1)
        preds = []
        for i, image in enumerate(images):
            width, height = image.size
            idx = [int(j) for j in top.indices[i]]
            ids = self.wnids or self.names
            output = {
                "label": ids[idx[0]],
                "class_index": idx[0],
                "name": self.names[idx[0]],
                "topk": [ids[j] for j in idx],
                "topk_indices": idx,
                "topk_scores": [float(p) for p in top.values[i]],
                "topk_names": [self.names[j] for j in idx],
            }
            preds.append(Prediction(attention=self._to_stimulus(grids[i], height, width), output=output))
        return preds

    def grid_maps(self, pixel_values: Any, attention: str) -> tuple[np.ndarray, Any]:
        """Attention maps on the model's own grid (B, rows, cols) and the logits, for a processed batch."""
        import torch

        if self.family != "vit":
            return self._cnn_maps(pixel_values, attention)
        with torch.no_grad():
            out = self.model(pixel_values=pixel_values, output_attentions=True)
        return self._vit_maps(out.attentions, pixel_values.shape[-2:], attention), out.logits

    def _vit_maps(self, attentions: Sequence[Any], input_hw: Sequence[int], attention: str) -> np.ndarray:
        from harness.attention.cross_attention import normalise_maps
        from harness.attention.rollout import cls_attention, rollout_row, tokens_to_grid

        if not attentions or attentions[0] is None:
            raise HarnessError(f"model {self.name!r} returned no attention weights (needs eager attention)")
        fusion = self.options.get("head_fusion", "mean")
        if attention == "cls-attention":
            scores = cls_attention(attentions[-1], fusion)
        else:
            scores = rollout_row(attentions, fusion, float(self.options.get("discard_ratio", 0.0)))
        grid = patch_grid(self.model.config, scores.shape[1], int(input_hw[0]), int(input_hw[1]))
        return normalise_maps(tokens_to_grid(scores, grid))

    def _cnn_maps(self, pixel_values: Any, attention: str):
        """Grad-CAM, or another registered cnn-layer method, on the layer the pooled head reads."""
        from harness.attention import run_cnn_layer_method
        from harness.attention.gradcam import grad_cam_with_logits

        def forward(x):
            return self.model(pixel_values=x).logits

        def run(layer):
            if attention == "grad-cam":
                maps, _, logits = grad_cam_with_logits(forward, layer, pixel_values, None)
            else:
                maps, _, logits = run_cnn_layer_method(attention, forward, layer, pixel_values)
            return maps.double().cpu().numpy(), logits

        if self.family == "swin":
            with token_grid_layer(self.model, pixel_values.shape[-2:]) as layer:
                return run(layer)
        if self._cam_layer is None:
            self._cam_layer = last_conv_layer(self.model, pixel_values[:1])
        return run(self._cam_layer)


    # -- training (harness align) -------------------------------------------------------------------

    def trainable(self) -> "HFTrainable":
        """The network as :class:`harness.alignment.batch.Trainable`: the same module ``predict``
        uses, trained on the attention :meth:`predict` gives by default (CLS attention of the last
        layer for ViT-like models, Grad-CAM for CNNs and Swin). Only for a processor that shows the
        model the whole stimulus (a plain resize): the human density must map onto its input."""
        return HFTrainable(self)


class HFTrainable:
    """A Hugging Face image classifier for ``harness align`` (see :meth:`HFClassifier.trainable`).
    The network stays in ``eval()`` mode while training, as for EfficientNet-Lite: no dropout, and
    BatchNorm (the CNNs) keeps its statistics."""

    def __init__(self, owner: HFClassifier) -> None:
        from PIL import Image

        self._owner = owner
        self.module = owner.model
        shapes = set()
        for height, width in ((600, 800), (800, 600)):
            if owner._box(height, width) != (0.0, 0.0, float(width), float(height)):
                raise HarnessError(f"model {owner.name!r} cannot be trained by `harness align`: its image processor "
                                   "crops the stimulus (a centre crop), and training needs an input that shows the "
                                   "whole stimulus, so that the human density maps onto it")
            shapes.add(tuple(self.preprocess([Image.new("RGB", (width, height))]).shape[-2:]))
        if len(shapes) != 1:
            raise HarnessError(f"model {owner.name!r} cannot be trained by `harness align`: its input size depends "
                               "on the stimulus' shape")
        (self.input_size,) = shapes
        self.class_names = tuple(owner.wnids or owner.names)
        self._method = owner.attention_methods[0]

    def preprocess(self, images: Sequence[Any]) -> Any:
        return self._owner._pixels(images)["pixel_values"].float().cpu()

    def logits(self, inputs: Any) -> Any:
        return self.module(pixel_values=inputs).logits

    def attention(self, inputs: Any, targets: Any) -> tuple[Any, Any]:
        from harness.attention.gradcam import grad_cam_differentiable

        owner = self._owner
        if owner.family == "vit":
            out = self.module(pixel_values=inputs, output_attentions=True)
            return out.logits, cls_attention_maps(out.attentions, owner.model.config, inputs.shape[-2:],
                                                  owner.options.get("head_fusion", "mean"))

        def forward(x):
            return self.module(pixel_values=x).logits

        if owner.family == "swin":
            with token_grid_layer(self.module, inputs.shape[-2:]) as layer:
                return grad_cam_differentiable(forward, layer, inputs, targets)
        if owner._cam_layer is None:
            owner._cam_layer = last_conv_layer(self.module, inputs[:1].detach())
        return grad_cam_differentiable(forward, owner._cam_layer, inputs, targets)


def cls_attention_maps(attentions: Sequence[Any], config: Any, input_hw: Sequence[int], fusion: str = "mean") -> Any:
    """The last layer's CLS attention over the patch grid, ``(B, rows, cols)``, in torch and
    differentiable: what :func:`harness.attention.rollout.cls_attention` and
    :func:`~harness.attention.rollout.tokens_to_grid` compute for evaluation (which also scales
    each map to sum 1: no matter to a loss on the map's distribution)."""
    last = attentions[-1]  # (B, heads, T, T)
    if fusion == "mean":
        fused = last.mean(dim=1)
    elif fusion == "max":
        fused = last.amax(dim=1)
    elif fusion == "min":
        fused = last.amin(dim=1)
    else:
        raise HarnessError(f"head_fusion must be one of mean, max, min, got {fusion!r}")
    row = fused[:, 0, :]
    rows, cols = patch_grid(config, row.shape[1], int(input_hw[0]), int(input_hw[1]))
    return row[:, row.shape[1] - rows * cols:].reshape(row.shape[0], rows, cols)


def patch_grid(config: Any, n_tokens: int, height: int, width: int) -> tuple[int, int]:
    """(rows, cols) of the patch tokens among ``n_tokens`` for an input of ``height x width``."""
    from harness.attention.rollout import grid_shape

    patch = getattr(config, "patch_size", None)
    if isinstance(patch, (list, tuple)):
        ph, pw = int(patch[0]), int(patch[-1])
    elif patch:
        ph = pw = int(patch)
    else:
        ph = pw = 0
    if ph and pw:
        rows, cols = height // ph, width // pw
        if 0 < rows * cols <= n_tokens and n_tokens - rows * cols <= 16:
            return rows, cols
    for prefix in (0, 1, 2):
        try:
            return grid_shape(n_tokens - prefix, height, width)
        except ValueError:
            continue
    raise HarnessError(f"cannot find the patch grid among {n_tokens} tokens for a {height}x{width} input")


def last_conv_layer(model: Any, sample: Any) -> Any:
    """The module Grad-CAM should use: the last one, in execution order, that returns a
    (B, C, h, w) tensor, runs once per forward pass and is not a pooling layer — for ResNet,
    ConvNeXt, RegNet and the like, the last stage of the backbone (what the pooled head reads)."""
    import torch

    order: list[Any] = []
    calls: dict[int, int] = {}

    def hook(module, args, output):
        first = output[0] if isinstance(output, (tuple, list)) and output else output
        calls[id(module)] = calls.get(id(module), 0) + 1
        if isinstance(first, torch.Tensor) and first.dim() == 4 and type(module).__name__ not in POOLING:
            order.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(pixel_values=sample)
    finally:
        for h in handles:
            h.remove()
    for module in reversed(order):
        if calls[id(module)] == 1:
            return module
    raise HarnessError(f"no convolutional layer for Grad-CAM found in {type(model).__name__}")


class token_grid_layer:
    """Context manager: temporarily make a Swin's final LayerNorm expose its tokens as (B, C, h, w).

    The final LayerNorm's tokens are what Swin's pooled head reads. Grad-CAM needs a module whose
    output is a 4-D feature map, so the LayerNorm is wrapped in ``ToGrid`` (tokens -> map, the hooked
    layer) followed by ``FromGrid`` (map -> tokens): the model computes exactly what it did before.
    """

    def __init__(self, model: Any, input_hw: Sequence[int]) -> None:
        self.base = getattr(model, model.base_model_prefix)
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))

    def __enter__(self):
        import torch

        from harness.attention.rollout import grid_shape

        input_hw = self.input_hw

        class ToGrid(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                y = self.inner(x)
                b, n, c = y.shape
                rows, cols = grid_shape(n, *input_hw)
                return y.transpose(1, 2).reshape(b, c, rows, cols)

        class FromGrid(torch.nn.Module):
            def forward(self, x):
                return x.flatten(2).transpose(1, 2)

        self.original = self.base.layernorm
        self.layer = ToGrid(self.original)
        self.base.layernorm = torch.nn.Sequential(self.layer, FromGrid())
        return self.layer

    def __exit__(self, *exc):
        self.base.layernorm = self.original
        return False


class HFDetector(HFModel):
    """DETR: per-detection decoder cross-attention over the backbone feature map.

    Detections: the object queries whose best non-"no object" class probability exceeds
    ``threshold`` (default 0.5, DETR's own demo setting), sorted by score; boxes ``[x, y, w, h]`` in
    stimulus pixels (DETR predicts boxes relative to the unpadded image).
    Maps: ``det_<i>`` = cross-attention of detection ``i``'s query in the decoder layer(s)
    ``layers`` (default the last), heads fused by ``head_fusion`` (default mean), normalised to sum
    1 on the feature grid. ``attention`` = the score-weighted mean of the detections' maps; with no
    detection above the threshold, of all queries' maps weighted by their scores.
    """

    task = "detection"
    attention_methods = ("detr-cross-attention",)

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        self._check(task, attention)
        if not images:
            return []
        import torch

        from harness.attention.cross_attention import combine, fuse_layers, normalise_maps
        from harness.attention.resize import to_stimulus

        inputs = self._pixels(images)
        pixel_mask = inputs.get("pixel_mask")
        features: list[Any] = []
        hook = self.model.model.backbone.register_forward_hook(
            lambda module, args, output: features.append(output[-1][0].shape[-2:])
        )
        try:
            with torch.no_grad():
                out = self.model(**inputs, output_attentions=True)
        finally:
            hook.remove()
        rows, cols = int(features[-1][0]), int(features[-1][1])
        cross = fuse_layers(out.cross_attentions, self.options.get("layers", "last"),
                            self.options.get("head_fusion", "mean"))  # (B, Q, rows*cols)
        probs = torch.softmax(out.logits.double().cpu(), dim=-1)[..., :-1]
        pred_boxes = out.pred_boxes.double().cpu()
        scores, labels = probs.max(dim=-1)
        threshold = float(self.options.get("threshold", 0.5))
        names = self.model.config.id2label
        padded = tuple(int(s) for s in inputs["pixel_values"].shape[-2:])
        preds = []
        for i, image in enumerate(images):
            width, height = image.size
            if pixel_mask is not None:
                mask = pixel_mask[i].bool().cpu()
                valid = (int(mask.any(dim=1).sum()), int(mask.any(dim=0).sum()))
            else:
                valid = padded
            box = padded_box(height, width, valid, padded)
            s = scores[i].numpy()
            order = [int(q) for q in np.argsort(-s, kind="stable") if s[q] > threshold]
            grids = normalise_maps(cross[i].reshape(-1, rows, cols))  # every query
            boxes, kept_scores, cats = [], [], []
            for q in order:
                cx, cy, bw, bh = (float(v) for v in pred_boxes[i, q])
                boxes.append([(cx - bw / 2) * width, (cy - bh / 2) * height, bw * width, bh * height])
                kept_scores.append(float(s[q]))
                cats.append(str(names.get(int(labels[i, q]), int(labels[i, q]))))
            if order:
                det = to_stimulus(grids[order], height, width, box=box)
                maps = {f"det_{k}": det[k] for k in range(len(order))}
                overall = combine(det, kept_scores)
            else:
                maps = {}
                overall = to_stimulus(combine(grids, s), height, width, box=box)
            output = {
                "boxes": boxes,
                "scores": kept_scores,
                "categories": cats,
                "labels": [int(labels[i, q]) for q in order],
                "threshold": threshold,
            }
            preds.append(Prediction(attention=overall, output=output, maps=maps))
        return preds


class HFCaptioner(HFModel):
    """Captioners (BLIP, VisionEncoderDecoder): cross-attention of each generated token.

    The caption is generated with the checkpoint's generation settings (overridable:
    ``max_new_tokens``, ``num_beams``); a teacher-forced forward pass over the generated ids then
    gives, for every token, the decoder's cross-attention over the image tokens at the position that
    produced it (:func:`harness.attention.cross_attention.caption_queries`), layers fused by
    ``layers`` (default the mean over layers), heads by ``head_fusion`` (default mean).
    ``attention`` = mean over the caption's tokens (special tokens skipped); ``maps`` has one
    ``word_<i>_<word>`` map per content word (the mean of its sub-word tokens' maps; stopwords
    skipped). A caption with no tokens falls back to the map of the step that ended it.
    """

    task = "captioning"
    attention_methods = ("caption-cross-attention",)

    def __init__(self, *, tokenizer: Any, kind: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.tokenizer = tokenizer
        self.kind = kind  # "blip" or "ved"

    def generate(self, pixel_values: Any) -> Any:
        """Generated ids (B, T), start token first, with the checkpoint's generation settings.

        Settings are passed as keyword arguments (the non-default fields of the checkpoint's
        generation config) because BLIP's ``generate`` delegates to its text decoder, which would
        otherwise use its own defaults. Without any length limit, ``DEFAULT_MAX_NEW_TOKENS``.
        """
        gen = self.model.generation_config.to_diff_dict()
        for key in ("transformers_version", "_from_model_config"):
            gen.pop(key, None)
        for key in ("max_new_tokens", "num_beams"):
            if key in self.options:
                gen[key] = int(self.options[key])
        if gen.get("max_new_tokens") is None and gen.get("max_length") is None:
            gen["max_new_tokens"] = DEFAULT_MAX_NEW_TOKENS
        if self.kind == "blip":  # BLIP's generate sets these itself from its config
            for key in ("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id"):
                gen.pop(key, None)
        else:
            config = self.model.config
            if gen.get("pad_token_id") is None:
                pad = config.pad_token_id if config.pad_token_id is not None else config.decoder_start_token_id
                gen["pad_token_id"] = pad
        return self.model.generate(pixel_values=pixel_values, **gen)

    def _cross_attentions(self, pixel_values: Any, ids: Any):
        if self.kind == "blip":
            image_embeds = self.model.vision_model(pixel_values=pixel_values).last_hidden_state
            out = self.model.text_decoder(input_ids=ids, encoder_hidden_states=image_embeds, output_attentions=True)
            encoder_config = self.model.config.vision_config
        else:
            out = self.model(pixel_values=pixel_values, decoder_input_ids=ids, output_attentions=True)
            encoder_config = self.model.config.encoder
        return out.cross_attentions, encoder_config

    def _special(self) -> tuple[set[int], set[int]]:
        tok = self.tokenizer
        config = self.model.config
        text_config = getattr(config, "text_config", None) or getattr(config, "decoder", None) or config
        stop = {getattr(text_config, "sep_token_id", None) if self.kind == "blip" else None,
                getattr(text_config, "eos_token_id", None), getattr(config, "eos_token_id", None),
                getattr(self.model.generation_config, "eos_token_id", None)}
        flat_stop = set()
        for s in stop:
            if isinstance(s, (list, tuple)):
                flat_stop.update(int(x) for x in s)
            elif s is not None:
                flat_stop.add(int(s))
        skip = set(int(i) for i in tok.all_special_ids)
        for attr in ("bos_token_id", "pad_token_id", "decoder_start_token_id"):
            for c in (config, text_config):
                v = getattr(c, attr, None)
                if isinstance(v, int):
                    skip.add(v)
        return skip, flat_stop

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """The text each of ``ids`` adds to the decoded caption (for grouping tokens into words)."""
        out, previous = [], ""
        for k in range(len(ids)):
            text = self.tokenizer.decode(list(ids[: k + 1]), skip_special_tokens=True,
                                         clean_up_tokenization_spaces=False)
            if text.startswith(previous):
                out.append(text[len(previous):])
            else:  # a decoder that rewrites earlier text: treat the token as its own word
                out.append(" " + self.tokenizer.decode([int(ids[k])], skip_special_tokens=True).strip())
            previous = text
        return out

    def caption_grids(self, pixel_values: Any) -> list[tuple[list[int], np.ndarray]]:
        """Per image: the generated token ids (special tokens removed) and each one's cross-attention
        map on the encoder's patch grid (T, rows, cols), each summing to 1. A caption without tokens
        gets the map of the step that ended it, and no ids."""
        import torch

        from harness.attention.cross_attention import caption_queries, fuse_layers, query_maps

        with torch.no_grad():
            ids = self.generate(pixel_values)
            cross, encoder_config = self._cross_attentions(pixel_values, ids)
        fused = fuse_layers(cross, self.options.get("layers", "mean"), self.options.get("head_fusion", "mean"))
        grid = patch_grid(encoder_config, fused.shape[-1], int(pixel_values.shape[-2]), int(pixel_values.shape[-1]))
        skip, stop = self._special()
        out = []
        for i in range(len(ids)):
            seq = [int(t) for t in ids[i]]
            steps = caption_queries(seq, skip, stop)
            if steps:
                out.append(([seq[j] for j, _ in steps], query_maps(fused[i], [q for _, q in steps], grid)))
            else:
                end = next((j for j in range(1, len(seq)) if seq[j] in stop), len(seq) - 1)
                out.append(([], query_maps(fused[i], [max(end - 1, 0)], grid)))
        return out

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list[Prediction]:
        self._check(task, attention)
        if not images:
            return []
        from harness.attention.cross_attention import combine, group_words, is_content_word, word_key

        pixel_values = self._pixels(images)["pixel_values"]
        preds = []
        for image, (token_ids, token_grids) in zip(images, self.caption_grids(pixel_values)):
            width, height = image.size
            pieces = self.pieces(token_ids)
            words = group_words(pieces)
            stack = [combine(token_grids)]
            keys, content = [], []
            for w_index, (word, members) in enumerate(words):
                if is_content_word(word):
                    keys.append(word_key(w_index, word))
                    content.append(word)
                    stack.append(combine(token_grids[members]))
            maps = self._to_stimulus(np.stack(stack), height, width)
            output = {
                "caption": self.tokenizer.decode(token_ids, skip_special_tokens=True).strip(),
                "tokens": [p.strip() for p in pieces],
                "words": content,
            }
            preds.append(Prediction(attention=maps[0], output=output, maps=dict(zip(keys, maps[1:]))))
        return preds
