"""Any Hugging Face transformers checkpoint as a harness model: ``--model hf:<hub id or folder>``.

Supported (architecture detected from the checkpoint's ``config.json``):

- image classification, ViT-like (ViT, DeiT, BEiT, DINOv2...): ``cls-attention``, ``rollout``;
- image classification, CNNs (ResNet, ConvNeXt, RegNet...) and Swin: ``grad-cam`` and every other
  registered ``cnn-layer`` method;
- object detection, DETR: ``detr-cross-attention``;
- image captioning, BLIP and VisionEncoderDecoder: ``caption-cross-attention``.

Name syntax: ``hf:<id-or-folder>[@<revision>][?key=value&...]``, options ``head_fusion``
(mean|max|min), ``discard_ratio`` (rollout), ``threshold`` (DETR), ``layers`` (last|mean|<index>,
cross-attention), ``max_new_tokens`` and ``num_beams`` (captioning), ``device``.

Hub access: a Hub id is looked up in the local Hugging Face cache first. With ``HF_HUB_OFFLINE=1``
only the cache is used; otherwise the endpoint is probed once with a short timeout before
transformers (whose client retries for ~20 s) is let loose, so an unreachable Hub fails at once with
one line. Named aliases for well-known checkpoints are listed in ``registry.yaml`` under this
plugin's entry and registered here as models of their own.

Nothing heavy is imported at module level: listing models never imports torch or transformers.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from harness.errors import HarnessError
from harness.models import batch_invariant_linears
from harness.hookspecs import hookimpl
from harness.hub import probe_endpoint  # shared with `leaderboard show --from`

PLUGIN = "huggingface"
TASKS = ("free-viewing", "classification", "detection", "captioning")
ATTENTION = ("cls-attention", "rollout", "grad-cam", "detr-cross-attention", "caption-cross-attention")
OPTIONS = {
    "head_fusion": str, "discard_ratio": float, "threshold": float, "layers": str,
    "max_new_tokens": int, "num_beams": int, "device": str,
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


# -- hooks --------------------------------------------------------------------------------------


def aliases() -> dict[str, dict[str, Any]]:
    """Alias name -> ``{checkpoint, revision?, tasks, attention, description?}`` from registry.yaml."""
    from harness.plugins import builtin_catalogue

    for entry in builtin_catalogue():
        if entry.get("name") == PLUGIN:
            return dict(entry.get("aliases") or {})
    return {}


@hookimpl
def register_models(register):
    register(
        "hf",
        "plugins.huggingface.loader:load",
        tasks=TASKS,
        attention=ATTENTION,
        description=(
            "Any transformers checkpoint: hf:<hub id or folder>[@revision][?option=value]. "
            "Classifiers (ViT-like: CLS attention, rollout; CNNs, Swin: Grad-CAM), DETR, BLIP, VisionEncoderDecoder."
        ),
        licence="per checkpoint",
        citation="Wolf et al. 2020, Transformers: State-of-the-Art Natural Language Processing, EMNLP demos",
    )
    for name, alias in aliases().items():
        kwargs = {"checkpoint": alias["checkpoint"]}
        if alias.get("revision"):
            kwargs["revision"] = alias["revision"]
        kwargs["name"] = name
        register(
            name,
            "plugins.huggingface.loader:load",
            kwargs=kwargs,
            devices=True,  # takes device="cuda" etc. (harness eval --device)
            copies=True,  # instances share nothing: several may run batches side by side (--model-copies)
            checkpoint=alias["checkpoint"],
            tasks=tuple(["free-viewing"] + list(alias.get("tasks", ()))),
            attention=tuple(alias.get("attention", ())),
            description=alias.get("description", f"Hugging Face checkpoint {alias['checkpoint']}"),
            licence=alias.get("licence", "see the model card"),
            citation=alias.get("citation", ""),
        )


@hookimpl
def register_attention_methods(register):
    register(
        "cls-attention",
        "harness.attention.rollout:cls_attention",
        description="ViT-like transformers: the CLS token's attention over the patches in the last layer, heads averaged.",
        citation="Dosovitskiy et al. 2021, An Image is Worth 16x16 Words, ICLR",
        applies_to="ViT-like classifiers",
    )
    register(
        "rollout",
        "harness.attention.rollout:attention_rollout",
        description=(
            "Attention rollout: per layer 0.5*A + 0.5*I (residual), rows renormalised, multiplied through "
            "the layers; the CLS row over the patches. Heads fused by mean (option head_fusion=max|min)."
        ),
        citation="Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers, ACL",
        applies_to="ViT-like classifiers",
    )
    register(
        "detr-cross-attention",
        "harness.attention.cross_attention:query_maps",
        description=(
            "DETR: each detection's object-query cross-attention over the backbone feature map (last decoder "
            "layer, heads averaged); the image map is the score-weighted mean over detections."
        ),
        citation="Carion et al. 2020, End-to-End Object Detection with Transformers, ECCV",
        applies_to="DETR detectors",
    )
    register(
        "caption-cross-attention",
        "harness.attention.cross_attention:caption_queries",
        description=(
            "Captioners: the decoder's cross-attention over the image patches while generating each token "
            "(layers and heads averaged); mean over the caption, and one map per content word."
        ),
        citation="Xu et al. 2015, Show, Attend and Tell, ICML; Li et al. 2022, BLIP, ICML",
        applies_to="BLIP, VisionEncoderDecoder captioners",
    )


# -- locating a checkpoint ----------------------------------------------------------------------


def parse_name(spec: str) -> tuple[str, str | None, dict[str, Any]]:
    """``id-or-folder[@revision][?k=v&...]`` -> (id-or-folder, revision, options)."""
    options: dict[str, Any] = {}
    base, sep, query = spec.partition("?")
    if sep:
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in OPTIONS:
                raise HarnessError(
                    f"model hf:{spec}: unknown option {key!r} (known: {', '.join(sorted(OPTIONS))})"
                )
            if key in options:  # the last would win without a word
                raise HarnessError(f"model hf:{spec}: option {key} given twice")
            options[key] = _option(key, value, spec)
    revision = None
    if "@" in base and not Path(base).expanduser().exists():
        base, _, revision = base.rpartition("@")
        if not revision:
            raise HarnessError(f"model hf:{spec}: nothing after '@' (give a revision, or leave the '@' out)")
    if not base:
        raise HarnessError(f"model hf:{spec}: no checkpoint named (hf:<hub id or folder>)")
    return base, revision, options


def _option(key: str, value: str, spec: str) -> Any:
    kind = OPTIONS[key]
    if key == "layers":
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    try:
        return kind(value)
    except ValueError:
        raise HarnessError(f"model hf:{spec}: option {key}={value!r} is not a {kind.__name__}") from None


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or "https://huggingface.co"


def _cache_dir() -> str | None:
    """The hub cache as the environment says now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]) / "hub")
    return None


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit hash of the cached snapshot holding ``config.json``, or None if not cached."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, "config.json", revision=revision, cache_dir=_cache_dir())
    if isinstance(path, str):
        return Path(path).parent.name
    return None


def locate(checkpoint: str, revision: str | None, label: str | None = None) -> dict[str, Any]:
    """Where to load from: ``{"path", "local_files_only", "provenance"}``; fails fast with one line.

    ``label`` names the model in messages (an alias, or ``hf:<checkpoint>``)."""
    label = label or f"hf:{checkpoint}"
    if not label.startswith("hf:"):  # an alias: say what it stands for
        label = f"{label} ({checkpoint}{'@' + revision if revision else ''})"
    path = Path(checkpoint).expanduser()
    if path.exists():
        if not path.is_dir():
            raise HarnessError(f"model {label}: {path} is a file; give the checkpoint folder")
        if not (path / "config.json").is_file():
            raise HarnessError(f"model {label}: no config.json in {path} (not a transformers checkpoint)")
        return {
            "path": str(path.resolve()),
            "local_files_only": True,
            "provenance": {"model_id": str(path.resolve()), "source": "local folder", **weights_digest(path)},
        }
    if checkpoint.startswith((".", "/", "~")) or checkpoint.count("/") > 1 or not _HUB_ID.match(checkpoint):
        raise HarnessError(f"model {label}: no such checkpoint folder {path}")
    commit = cached_commit(checkpoint, revision)
    where = _cache_dir() or "the Hugging Face cache"
    if _offline():
        if commit is None:
            raise HarnessError(
                f"model {label}: not in {where} and HF_HUB_OFFLINE is set, so it cannot be downloaded"
            )
        local_only = True
    else:
        problem = probe_endpoint(_endpoint())
        if problem is not None and commit is None:
            raise HarnessError(
                f"model {label}: cannot reach {_endpoint()} to download it ({problem}) and it is not in {where}"
            )
        local_only = problem is not None  # Hub down but cached: use the cache without retries
    return {
        "path": checkpoint,
        "local_files_only": local_only,
        "provenance": {"model_id": checkpoint, "source": "Hugging Face Hub", "requested_revision": revision or "main"},
    }


#: sha256 of weight files already read by this process, by (path, device, inode, size, mtime and
#: ctime in ns): the model copies of a run (harness eval --model-copies) load the same folder again,
#: and reading ViT-Base's 350 MB again cost each copy ~0.3 s; a file written since has another mtime
_FILE_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def _file_digest(f: Path) -> str:
    from harness.data.download import sha256_file

    st = f.stat()
    key = (str(f.resolve()), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        digest = _FILE_DIGESTS[key] = sha256_file(f)
    return digest


def weights_digest(folder: Path) -> dict[str, Any]:
    """sha256 of the weights in a local folder: of the file itself when there is one, else of the
    sorted ``"<name> <sha256>"`` lines of all weight files (so ``sha256sum`` can check either)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))
    if not files:
        raise HarnessError(f"model hf:{folder}: no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {folder}")
    digests = [(f.name, _file_digest(f)) for f in files]
    if len(digests) == 1:
        return {"weights_sha256": digests[0][1], "weights_files": [digests[0][0]]}
    combined = hashlib.sha256("".join(f"{n} {d}\n" for n, d in digests).encode()).hexdigest()
    return {"weights_sha256": combined, "weights_files": [n for n, _ in digests]}


# -- building the model -------------------------------------------------------------------------


def family(config: Any) -> str:
    """``vit`` | ``cnn`` | ``swin`` (classifiers), ``detr``, ``blip``, ``ved``; HarnessError otherwise."""
    from transformers import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING

    from .models import SWIN_LIKE, VIT_LIKE

    model_type = getattr(config, "model_type", "")
    architectures = list(getattr(config, "architectures", None) or [])
    if model_type == "detr":
        return "detr"
    if model_type == "blip" and (not architectures or "BlipForConditionalGeneration" in architectures):
        return "blip"
    if model_type == "vision-encoder-decoder":
        return "ved"
    if type(config) in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING and (
        not architectures or any("ImageClassification" in a for a in architectures)
    ):
        if model_type in VIT_LIKE:
            return "vit"
        if model_type in SWIN_LIKE:
            return "swin"
        if getattr(config, "num_attention_heads", None) or getattr(config, "num_heads", None):
            raise HarnessError(
                f"model type {model_type!r}: transformer classifiers other than ViT-like and Swin are not supported"
            )
        return "cnn"
    raise HarnessError(
        f"architecture {architectures[0] if architectures else model_type!r} is not supported "
        "(image classification, DETR detection, BLIP or VisionEncoderDecoder captioning)"
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def load(checkpoint: str, revision: str | None = None, name: str | None = None, **options: Any):
    """Factory of ``hf:<checkpoint>`` and of the aliases: locate, detect the architecture, build."""
    base, rev_in_name, parsed = parse_name(checkpoint)
    revision = revision or rev_in_name
    for key, value in options.items():
        if key not in OPTIONS:
            raise HarnessError(f"model hf:{checkpoint}: unknown option {key!r} (known: {', '.join(sorted(OPTIONS))})")
    parsed.update(options)
    options = parsed
    _validate(options, checkpoint)
    label = name or f"hf:{checkpoint}"
    where = locate(base, revision, label)
    if revision and where["provenance"].get("source") == "local folder":
        raise HarnessError(f"model {label}: a local folder has no revisions (transformers ignores @{revision} "
                           "there); name the folder of the revision you mean")

    from transformers import AutoConfig
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no weight-loading reports or generation warnings per batch
    hf_logging.disable_progress_bar()
    common = {"revision": revision, "local_files_only": where["local_files_only"]}
    if _cache_dir() and not where["provenance"].get("source") == "local folder":
        common["cache_dir"] = _cache_dir()
    try:
        config = AutoConfig.from_pretrained(where["path"], **common)
        kind = family(config)
        _applicable(kind, config, options)  # before the weights load
        built = _build(kind, where["path"], common, config)
    except HarnessError as exc:
        raise HarnessError(f"model {label}: {exc}") from exc
    except Exception as exc:  # transformers/hub errors are long; the user needs one line
        raise HarnessError(f"model {label}: cannot load {where['path']}: {_one_line(exc)}") from exc
    model, processor, tokenizer = built

    provenance = dict(where["provenance"])
    if provenance.get("source") == "Hugging Face Hub":
        provenance["revision"] = cached_commit(base, revision) or getattr(config, "_commit_hash", None)
    import transformers

    provenance["transformers"] = transformers.__version__
    device = options.pop("device", None) or "cpu"
    model.to(device).eval()
    batch_invariant_linears(model)  # a stimulus alone in its batch gets the same numbers as in any other

    from .models import HFCaptioner, HFClassifier, HFDetector

    kw = {"name": label, "model": model, "processor": processor, "provenance": provenance, "options": options}
    if kind in ("vit", "cnn", "swin"):
        return HFClassifier(family=kind, **kw)
    if kind == "detr":
        return HFDetector(**kw)
    return HFCaptioner(tokenizer=tokenizer, kind=kind, **kw)


def _validate(options: dict[str, Any], checkpoint: str) -> None:
    if options.get("head_fusion", "mean") not in ("mean", "max", "min"):
        raise HarnessError(f"model hf:{checkpoint}: head_fusion must be mean, max or min")
    if not 0.0 <= float(options.get("discard_ratio", 0.0)) < 1.0:
        raise HarnessError(f"model hf:{checkpoint}: discard_ratio must be in [0, 1)")
    layers = options.get("layers", "last")
    if not (layers in ("last", "mean") or isinstance(layers, int)):
        raise HarnessError(f"model hf:{checkpoint}: layers must be last, mean or a layer index")
    if not 0.0 <= float(options.get("threshold", 0.5)) <= 1.0:  # NaN too: no detection would pass
        raise HarnessError(f"model hf:{checkpoint}: threshold must be a detection score in [0, 1]")
    for key in ("max_new_tokens", "num_beams"):
        if key in options and int(options[key]) < 1:
            raise HarnessError(f"model hf:{checkpoint}: {key} must be at least 1")
    device = options.get("device")
    if device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", str(device)):
        raise HarnessError(f"model hf:{checkpoint}: device must be cpu, cuda, cuda:N or mps, got {device!r}")


#: the options each architecture family reads (device: every one)
_FAMILY_OPTIONS = {
    "vit": {"head_fusion", "discard_ratio"}, "cnn": set(), "swin": set(),
    "detr": {"layers", "head_fusion", "threshold"},
    "blip": {"layers", "head_fusion", "max_new_tokens", "num_beams"},
    "ved": {"layers", "head_fusion", "max_new_tokens", "num_beams"},
}


def _decoder_layers(kind: str, config: Any) -> int | None:
    """How many decoder layers' cross-attentions ``layers`` picks from (None: not known)."""
    if kind == "detr":
        return getattr(config, "decoder_layers", None)
    sub = getattr(config, "text_config", None) if kind == "blip" else getattr(config, "decoder", None)
    for attr in ("num_hidden_layers", "n_layer", "decoder_layers", "num_layers"):
        value = getattr(sub, attr, None)
        if isinstance(value, int):
            return value
    return None


def _applicable(kind: str, config: Any, options: dict[str, Any]) -> None:
    """An option the model never reads would name a run of its own that is the plain model's, and
    a layer index beyond the decoder failed every batch: both refused here, in one line."""
    unused = sorted(set(options) - _FAMILY_OPTIONS[kind] - {"device"})
    if unused:
        uses = ", ".join(sorted(_FAMILY_OPTIONS[kind])) or "none but device"
        raise HarnessError(f"option {', '.join(unused)} does not apply to a {kind} model (its options: {uses})")
    layers, n = options.get("layers"), _decoder_layers(kind, config)
    if isinstance(layers, int) and n is not None and not -n <= layers < n:
        raise HarnessError(f"layers={layers}: the decoder has {n} layers (0 to {n - 1}, or -1 to -{n})")


def _build(kind: str, path: str, common: dict[str, Any], config: Any):
    """(model, PIL image processor, tokenizer or None), all from the same folder or Hub snapshot."""
    import transformers as tf

    processor = tf.AutoImageProcessor.from_pretrained(path, backend="pil", **common)
    kwargs = dict(common, config=config, attn_implementation="eager")
    tokenizer = None
    if kind in ("vit", "cnn", "swin"):
        if kind == "cnn":
            kwargs.pop("attn_implementation")  # no attention: nothing to choose
        model = tf.AutoModelForImageClassification.from_pretrained(path, **kwargs)
    elif kind == "detr":
        backbone = config.backbone_config
        backbone_type = backbone.get("model_type") if isinstance(backbone, dict) else getattr(backbone, "model_type", "")
        if backbone_type == "timm_backbone" and not _has("timm"):
            raise HarnessError(
                "this DETR checkpoint uses a timm backbone and timm is not installed; "
                "use the transformers-backbone revision (e.g. facebook/detr-resnet-50@no_timm)"
            )
        model = tf.DetrForObjectDetection.from_pretrained(path, **kwargs)
    elif kind == "blip":
        model = tf.BlipForConditionalGeneration.from_pretrained(path, **kwargs)
        tokenizer = tf.AutoTokenizer.from_pretrained(path, **common)
    else:
        model = tf.VisionEncoderDecoderModel.from_pretrained(path, **kwargs)
        tokenizer = tf.AutoTokenizer.from_pretrained(path, **common)
    if tokenizer is not None:
        # without its tokenizer files transformers builds a tokenizer of a few special tokens, and
        # every caption decodes to "": a run of empty captions, scored as such
        sub = config.text_config if kind == "blip" else config.decoder
        vocab = getattr(sub, "vocab_size", None)
        if isinstance(vocab, int) and 2 * len(tokenizer) < vocab:
            raise HarnessError(f"its tokenizer has {len(tokenizer)} tokens for a decoder of {vocab}: no tokenizer "
                               f"files in {path}?")
    return model, processor, tokenizer


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
