"""Tiny randomly initialised transformers checkpoints, built in code and saved with ``save_pretrained``.

Each ``make_tiny_*(path)`` writes a complete checkpoint folder (weights, ``config.json``, the image
processor's ``preprocessor_config.json`` and, for captioners, a tokenizer built in code with the
``tokenizers`` library) and returns ``path``. They load through exactly the ``from_pretrained``
path a Hub id takes (``harness.models.load_model("hf:" + str(path))``). No downloads; each takes
well under a second after transformers is imported. Weights are seeded, so outputs are reproducible.

Sizes: images are processed to 32x32 (64x64 for the CNNs, 64..96 px for DETR), hidden sizes 16.
"""

from __future__ import annotations

from pathlib import Path

LABELS = [f"class{i}" for i in range(10)]


def _labels(n: int) -> dict:
    id2label = {i: LABELS[i] for i in range(n)}
    return {"num_labels": n, "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}


def _seed(seed: int) -> None:
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Writing model shards" bars in test output
    torch.manual_seed(seed)


def _vit_config(**kw):
    from transformers import ViTConfig

    base = dict(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=32)
    base.update(kw)
    return ViTConfig(**base)


def make_tiny_vit(path, seed: int = 0) -> Path:
    """ViT classifier: 32x32 input, 8 px patches (4x4 grid + CLS = 17 tokens), 2 layers, 2 heads."""
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    _seed(seed)
    ViTForImageClassification(_vit_config(**_labels(10))).save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return Path(path)


def make_tiny_deit(path, seed: int = 0) -> Path:
    """Distilled DeiT classifier (CLS + distillation token), with DeiT's resize-40 then crop-32."""
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher, DeiTImageProcessorPil

    _seed(seed)
    config = DeiTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, **_labels(10))
    DeiTForImageClassificationWithTeacher(config).save_pretrained(path)
    DeiTImageProcessorPil(size={"height": 40, "width": 40}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return Path(path)


def make_tiny_resnet(path, seed: int = 0) -> Path:
    """ResNet classifier (4 basic stages, stride 32) with the ConvNeXt-style processor: 64x64 input."""
    from transformers import ConvNextImageProcessorPil, ResNetConfig, ResNetForImageClassification

    _seed(seed)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], layer_type="basic",
                          **_labels(10))
    ResNetForImageClassification(config).eval().save_pretrained(path)
    # shortest_edge >= 384 warps without cropping; 64 < 384 resizes to 64/crop_pct and centre-crops
    ConvNextImageProcessorPil(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(path)
    return Path(path)


def make_tiny_convnext(path, seed: int = 0) -> Path:
    """ConvNeXt classifier, 64x64 input (resize shortest edge to 73, centre crop 64)."""
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessorPil

    _seed(seed)
    config = ConvNextConfig(hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1], **_labels(10))
    ConvNextForImageClassification(config).save_pretrained(path)
    ConvNextImageProcessorPil(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(path)
    return Path(path)


def make_tiny_swin(path, seed: int = 0) -> Path:
    """Swin classifier: 32x32 input, 4 px patches, 2 stages (final grid 4x4)."""
    from transformers import SwinConfig, SwinForImageClassification, ViTImageProcessorPil

    _seed(seed)
    config = SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4,
                        **_labels(10))
    SwinForImageClassification(config).save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return Path(path)


def make_tiny_detr(path, seed: int = 0) -> Path:
    """DETR with a transformers ResNet backbone (no timm): shortest edge 64, longest 96, 10 queries."""
    from transformers import DetrConfig, DetrForObjectDetection, DetrImageProcessorPil, ResNetConfig

    _seed(seed)
    backbone = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 16], depths=[1, 1, 1, 1],
                            layer_type="basic", out_features=["stage4"])
    config = DetrConfig(
        use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
        d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=10, **_labels(5),
    )
    DetrForObjectDetection(config).save_pretrained(path)
    DetrImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96}).save_pretrained(path)
    return Path(path)


def _generation_config(path, **kw) -> None:
    """At least 3 new tokens (a random model may end at once), at most 6."""
    from transformers import GenerationConfig

    GenerationConfig(min_new_tokens=3, max_new_tokens=6, do_sample=False, **kw).save_pretrained(path)


def bert_style_tokenizer():
    """A WordLevel tokenizer with BERT-like specials and a WordPiece decoder (``##`` continues a word)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[DEC]", "[MASK]"]
    words = "a the on of in dog cat grass table man woman red sitting ##s ##ing .".split()
    vocab = {t: i for i, t in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", bos_token="[DEC]", mask_token="[MASK]")


def gpt2_style_tokenizer():
    """A WordLevel tokenizer over byte-level pieces (``Ġ`` = a leading space), GPT-2's specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<|endoftext|>"] + ["Ġ" + w for w in "a the on of dog cat grass table man red".split()] + ["s", "ing", "."]
    tk = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="<|endoftext|>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tk.decoder = decoders.ByteLevel()
    eos = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=eos, eos_token=eos, pad_token=eos, unk_token=eos)


def make_tiny_blip(path, seed: int = 0, initializer_range: float = 0.5) -> Path:
    """BLIP captioner: 32x32 input, 8 px patches (CLS + 16 patches), 2-layer text decoder.

    ``initializer_range`` is large so that the random cross-attention is far from uniform."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil

    _seed(seed)
    tok = bert_style_tokenizer()
    config = BlipConfig(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, initializer_range=initializer_range),
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, encoder_hidden_size=16, max_position_embeddings=32,
                         bos_token_id=tok.bos_token_id, sep_token_id=tok.sep_token_id,
                         eos_token_id=tok.sep_token_id, pad_token_id=tok.pad_token_id,
                         initializer_range=initializer_range),
    )
    BlipForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    _generation_config(path, bos_token_id=tok.bos_token_id, eos_token_id=tok.sep_token_id,
                       pad_token_id=tok.pad_token_id)
    return Path(path)


def make_tiny_ved(path, seed: int = 0, initializer_range: float = 0.5) -> Path:
    """VisionEncoderDecoder: ViT encoder (32x32, 8 px patches) + 2-layer GPT-2 decoder with cross-attention.

    ``initializer_range`` is large so that the random cross-attention is far from uniform."""
    from transformers import GPT2Config, ViTImageProcessorPil, VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    _seed(seed)
    tok = gpt2_style_tokenizer()
    eos = tok.eos_token_id
    decoder = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=2, n_head=2,
                         add_cross_attention=True, bos_token_id=eos, eos_token_id=eos,
                         initializer_range=initializer_range)
    encoder = _vit_config(initializer_range=initializer_range)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = eos
    config.pad_token_id = eos
    config.eos_token_id = eos
    VisionEncoderDecoderModel(config=config).save_pretrained(path)
    tok.save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    _generation_config(path, decoder_start_token_id=eos, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    return Path(path)


BUILDERS = {
    "vit": make_tiny_vit,
    "deit": make_tiny_deit,
    "resnet": make_tiny_resnet,
    "convnext": make_tiny_convnext,
    "swin": make_tiny_swin,
    "detr": make_tiny_detr,
    "blip": make_tiny_blip,
    "ved": make_tiny_ved,
}


def make_all(root) -> dict[str, Path]:
    """Every tiny checkpoint under ``root/<kind>``; returns kind -> folder."""
    root = Path(root)
    return {kind: build(root / kind) for kind, build in BUILDERS.items()}
