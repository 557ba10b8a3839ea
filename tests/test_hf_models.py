"""The Hugging Face model plugin, end to end on tiny random checkpoints built in code.

Every checkpoint is saved with ``save_pretrained`` and loaded back through ``load_model("hf:" +
folder)``, the same ``from_pretrained`` path a Hub id takes. Known answers:

- ViT with planted weights whose attention has a closed form (CLS attention, rollout);
- ResNet and Swin Grad-CAM against the closed-form CAM of a global-average-pooled linear head;
- geometry: centre crops (DeiT, ResNet) and DETR's padding against boxes worked out by hand;
- captioners: each token's map against the attention of an independent pass (prefix forward,
  or ``generate``'s own step-wise cross-attentions).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_models  # noqa: E402  (tests/ is on sys.path under pytest's rootdir conftest)
from harness.attention.resize import crop_box, to_stimulus  # noqa: E402
from harness.errors import HarnessError  # noqa: E402
from harness.models import load_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return tiny_models.make_all(tmp_path_factory.mktemp("hf-tiny"))


def _image(h, w, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


IMAGES = [(48, 64), (90, 50)]  # landscape and portrait, neither square


def _images():
    return [_image(h, w, seed=i) for i, (h, w) in enumerate(IMAGES)]


EXPECTED = {
    "vit": ("HFClassifier", "classification", ("cls-attention", "rollout")),
    "deit": ("HFClassifier", "classification", ("cls-attention", "rollout")),
    "resnet": ("HFClassifier", "classification", ("grad-cam",)),
    "convnext": ("HFClassifier", "classification", ("grad-cam",)),
    "swin": ("HFClassifier", "classification", ("grad-cam",)),
    "detr": ("HFDetector", "detection", ("detr-cross-attention",)),
    "blip": ("HFCaptioner", "captioning", ("caption-cross-attention",)),
    "ved": ("HFCaptioner", "captioning", ("caption-cross-attention",)),
}


# -- every architecture: loading, shapes, normalisation, outputs --------------------------------


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_architecture_detected_and_maps_at_stimulus_resolution(tiny, kind):
    cls, task, methods = EXPECTED[kind]
    model = load_model("hf:" + str(tiny[kind]))
    assert type(model).__name__ == cls
    assert tuple(model.tasks) == ("free-viewing", task)
    assert tuple(model.attention_methods) == methods
    prov = model.provenance()
    assert prov["model_id"] == str(tiny[kind].resolve())
    assert prov["weights_sha256"] == hashlib.sha256((tiny[kind] / "model.safetensors").read_bytes()).hexdigest()
    assert prov["attention_implementation"] == "eager"
    for method in methods:
        preds = model.predict(_images(), task=task, attention=method)
        assert len(preds) == 2
        for pred, (h, w) in zip(preds, IMAGES):
            for m in [pred.attention, *pred.maps.values()]:
                assert m.shape == (h, w) and m.dtype == np.float64
                assert np.all(np.isfinite(m)) and m.min() >= 0 and m.sum() > 0
            if task == "classification":
                out = pred.output
                assert out["label"] == out["topk"][0] == f"class{out['class_index']}"
                assert len(out["topk"]) == 5 and out["topk_scores"] == sorted(out["topk_scores"], reverse=True)
            elif task == "captioning":
                assert isinstance(pred.output["caption"], str) and isinstance(pred.output["tokens"], list)
    # free-viewing gives the same maps
    free = model.predict(_images()[:1], task="free-viewing", attention=methods[0])
    again = model.predict(_images()[:1], task=task, attention=methods[0])
    np.testing.assert_allclose(free[0].attention, again[0].attention)
    assert model.predict([], task=task, attention=methods[0]) == []


def test_weights_digest_is_read_once_and_follows_a_rewritten_file(tmp_path):
    """A model's copies load its folder again: the sha256 of its weights is remembered for the file as
    it is (path, inode, size, times), not read again, and a file written since is read again."""
    from plugins.huggingface import loader

    folder = tmp_path / "ckpt"
    folder.mkdir()
    weights = folder / "model.safetensors"
    weights.write_bytes(b"a" * 4096)
    first = loader.weights_digest(folder)["weights_sha256"]
    assert first == hashlib.sha256(b"a" * 4096).hexdigest()
    assert any(key[0] == str(weights.resolve()) for key in loader._FILE_DIGESTS)
    assert loader.weights_digest(folder)["weights_sha256"] == first
    weights.write_bytes(b"b" * 4096)  # same size, same inode: the times say it changed
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert loader.weights_digest(folder)["weights_sha256"] == hashlib.sha256(b"b" * 4096).hexdigest()


def test_wrong_task_or_attention_is_one_line(tiny):
    model = load_model("hf:" + str(tiny["vit"]))
    with pytest.raises(HarnessError, match="does not do task 'detection'"):
        model.predict(_images(), task="detection", attention="rollout")
    with pytest.raises(HarnessError, match="no attention method 'grad-cam'"):
        model.predict(_images(), task="classification", attention="grad-cam")


# -- ViT: planted attention with a closed form ---------------------------------------------------


def _planted_vit(path, s=0.3):
    """A 2-layer ViT whose hidden states never change (values, outputs, MLPs zero) and whose
    tokens are +p or -p, p = LayerNorm(e0): +p for the CLS token and for bright patches, -p for
    dark ones (patch embedding channel 0 = mean normalised intensity). Queries = s * tokens, keys =
    tokens, so every layer's attention has a closed form."""
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    model = ViTForImageClassification(tiny_models._vit_config(**tiny_models._labels(10)))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.fill_(1.0)
        emb = model.vit.embeddings
        emb.patch_embeddings.projection.weight[0] = 1.0 / (3 * 8 * 8)
        emb.cls_token[0, 0, 0] = 1.0
        for layer in model.vit.layers:
            layer.attention.q_proj.weight.copy_(s * torch.eye(16))
            layer.attention.k_proj.weight.copy_(torch.eye(16))
    model.save_pretrained(path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)  # mean = std = 0.5
    return path


def _planted_attention(signs, s=0.3):
    """Closed form: (heads, T, T) attention of the planted ViT for token signs (+1/-1)."""
    x = np.zeros(16)
    x[0] = 1.0
    p = (x - x.mean()) / np.sqrt(x.var() + 1e-12)
    heads = []
    for h in range(2):
        ph = p[8 * h : 8 * h + 8]
        scores = s * np.outer(signs, signs) * (ph @ ph) / np.sqrt(8)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        heads.append(e / e.sum(axis=1, keepdims=True))
    return np.stack(heads)


def test_vit_cls_attention_and_rollout_known_answer(tmp_path):
    from PIL import Image

    model = load_model("hf:" + str(_planted_vit(tmp_path / "planted")))
    # 48x64 stimulus -> 32x32 input, 4x4 patches of 12x16 stimulus pixels; patch (1, 2) bright
    pixels = np.zeros((48, 64, 3), dtype=np.uint8)
    pixels[12:24, 32:48] = 255
    image = Image.fromarray(pixels)
    signs = -np.ones(17)
    signs[0] = 1.0  # CLS
    signs[1 + 1 * 4 + 2] = 1.0  # patch (1, 2), row-major after the CLS
    att = _planted_attention(signs).mean(axis=0)  # heads fused by the mean

    cls_row = att[0, 1:] / att[0, 1:].sum()
    mixed = 0.5 * att + 0.5 * np.eye(17)
    mixed /= mixed.sum(axis=1, keepdims=True)
    rolled = (mixed @ mixed)[0, 1:]  # the same attention in both layers
    rolled /= rolled.sum()

    pixel_values = model.processor(images=[image], return_tensors="pt")["pixel_values"]
    for method, expected in (("cls-attention", cls_row), ("rollout", rolled)):
        grid, _ = model.grid_maps(pixel_values, method)
        np.testing.assert_allclose(grid[0], expected.reshape(4, 4), rtol=1e-4, atol=1e-7)
        assert np.unravel_index(grid[0].argmax(), (4, 4)) == (1, 2)
        pred = model.predict([image], task="classification", attention=method)[0]
        np.testing.assert_allclose(pred.attention, to_stimulus(expected.reshape(4, 4), 48, 64), rtol=1e-4)
        y, x = np.unravel_index(pred.attention.argmax(), (48, 64))
        assert 12 <= y < 24 and 32 <= x < 48
    # head fusion is an option, recorded in the provenance
    maxed = load_model("hf:" + str(tmp_path / "planted") + "?head_fusion=max")
    grid, _ = maxed.grid_maps(pixel_values, "cls-attention")
    row = _planted_attention(signs).max(axis=0)[0, 1:]
    np.testing.assert_allclose(grid[0], (row / row.sum()).reshape(4, 4), rtol=1e-4, atol=1e-7)
    assert maxed.provenance()["options"] == {"head_fusion": "max"}


# -- geometry: centre crops ------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", [(48, 64), (90, 50), (600, 800)])
def test_view_box_matches_the_crop_worked_out_by_hand(tiny, h, w):
    from plugins.huggingface.geometry import view_box

    deit = load_model("hf:" + str(tiny["deit"]))  # resize to 40x40, centre crop 32x32
    expected = crop_box(h, w, (40, 40), (32, 32))
    np.testing.assert_allclose(view_box(deit.processor, h, w), expected, atol=1 + w / 255)
    resnet = load_model("hf:" + str(tiny["resnet"]))  # shortest edge -> int(64 / .875) = 73, crop 64
    short = 73
    resized = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    np.testing.assert_allclose(view_box(resnet.processor, h, w), crop_box(h, w, resized, (64, 64)),
                               atol=1 + max(h, w) / 255)
    vit = load_model("hf:" + str(tiny["vit"]))  # plain resize: exactly the whole stimulus
    assert view_box(vit.processor, h, w) == (0.0, 0.0, float(w), float(h))


def test_cropped_border_gets_zero_attention(tiny):
    model = load_model("hf:" + str(tiny["deit"]))
    pred = model.predict([_image(60, 80)], task="classification", attention="rollout")[0]
    left, top, right, bottom = crop_box(60, 80, (40, 40), (32, 32))  # (8, 6, 72, 54)
    assert np.all(pred.attention[:, : int(left) - 1] == 0) and np.all(pred.attention[: int(top) - 1] == 0)
    assert np.all(pred.attention[:, int(right) + 1 :] == 0) and np.all(pred.attention[int(bottom) + 1 :] == 0)
    assert np.all(pred.attention[int(top) + 1 : int(bottom) - 1, int(left) + 1 : int(right) - 1] > 0)


# -- Grad-CAM: closed-form CAM of a pooled linear head ---------------------------------------------


def test_resnet_grad_cam_is_the_cam_of_the_last_stage(tiny):
    model = load_model("hf:" + str(tiny["resnet"]))
    image = _image(48, 64)
    pv = model.processor(images=[image], return_tensors="pt")["pixel_values"]
    grid, logits = model.grid_maps(pv, "grad-cam")
    assert model._cam_layer is model.model.resnet.encoder.stages[-1]
    with torch.no_grad():
        out = model.model(pixel_values=pv, output_hidden_states=True)
    act = out.hidden_states[-1][0].double().numpy()  # (C, h, w): the last stage
    target = int(out.logits[0].argmax())
    weight = model.model.classifier[-1].weight[target].double().numpy()
    # d y / d A_kij = W_k / (h w) for avg-pool + linear, so Grad-CAM = ReLU(sum_k W_k A_k / (h w))
    cam = np.maximum(np.tensordot(weight, act, axes=1) / (act.shape[1] * act.shape[2]), 0)
    np.testing.assert_allclose(grid[0], cam, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), out.logits.numpy(), rtol=1e-5)
    pred = model.predict([image], task="classification", attention="grad-cam")[0]
    box = model._box(48, 64)  # measured; test_view_box_* checks it against the hand-computed crop
    np.testing.assert_allclose(box, crop_box(48, 64, (73, 97), (64, 64)), atol=1)
    np.testing.assert_allclose(pred.attention, to_stimulus(cam, 48, 64, box=box), rtol=1e-4, atol=1e-7)
    assert pred.output["class_index"] == target


def test_convnext_grad_cam_layer_is_the_last_stage(tiny):
    model = load_model("hf:" + str(tiny["convnext"]))
    pv = model.processor(images=[_image(48, 64)], return_tensors="pt")["pixel_values"]
    grid, _ = model.grid_maps(pv, "grad-cam")
    assert model._cam_layer is model.model.convnext.encoder.stages[-1]
    assert grid.shape == (1, 2, 2)  # 64 px input, stride 32


def test_swin_grad_cam_on_the_final_tokens(tiny):
    model = load_model("hf:" + str(tiny["swin"]))
    pv = model.processor(images=_images(), return_tensors="pt")["pixel_values"]
    layernorm = model.model.swin.layernorm
    grid, logits = model.grid_maps(pv, "grad-cam")
    assert model.model.swin.layernorm is layernorm  # the wrapper is removed again
    with torch.no_grad():
        out = model.model(pixel_values=pv)
        tokens = model.model.swin(pixel_values=pv).last_hidden_state.double().numpy()  # (B, 16, C)
    np.testing.assert_allclose(logits.numpy(), out.logits.numpy(), rtol=1e-5, atol=1e-6)
    for i in range(2):
        target = int(out.logits[i].argmax())
        weight = model.model.classifier.weight[target].double().numpy()
        cam = np.maximum(tokens[i] @ weight / tokens.shape[1], 0).reshape(4, 4)  # row-major tokens
        np.testing.assert_allclose(grid[i], cam, rtol=1e-4, atol=1e-7)


# -- DETR --------------------------------------------------------------------------------------------


def test_detr_detections_maps_and_padding(tiny):
    model = load_model("hf:" + str(tiny["detr"]) + "?threshold=0")
    images = [_image(48, 64, 0), _image(96, 40, 1)]
    preds = model.predict(images, task="detection", attention="detr-cross-attention")
    inputs = model.processor(images=images, return_tensors="pt")
    # By hand (shortest edge 64, longest 96): 48x64 -> 64x85; 96x40 -> 64 x 153.6 is too long, so
    # 96x40. Batch padded to 96x85 at the bottom/right; a ResNet of stride 32 gives a 3x3 grid.
    assert tuple(inputs["pixel_values"].shape[-2:]) == (96, 85)
    boxes = [(0.0, 0.0, 85 * 64 / 85, 96 * 48 / 64), (0.0, 0.0, 85 * 40 / 40, 96 * 96 / 96)]
    with torch.no_grad():
        out = model.model(**inputs, output_attentions=True)
    cross = out.cross_attentions[-1].mean(dim=1).double().numpy()  # last layer, head mean
    probs = torch.softmax(out.logits.double(), -1)[..., :-1]
    for i, (pred, image, box) in enumerate(zip(preds, images, boxes)):
        w, h = image.size
        scores = probs[i].max(-1).values.numpy()
        order = np.argsort(-scores, kind="stable")
        assert pred.output["scores"] == pytest.approx(scores[order].tolist())
        assert len(pred.maps) == 10 and set(pred.maps) == {f"det_{k}" for k in range(10)}
        for k, q in enumerate(order[:3]):
            cx, cy, bw, bh = out.pred_boxes[i, q].tolist()
            assert pred.output["boxes"][k] == pytest.approx([(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h])
            grid = cross[i, q].reshape(3, 3)
            expected = to_stimulus(grid / grid.sum(), h, w, box=box)
            np.testing.assert_allclose(pred.maps[f"det_{k}"], expected, rtol=1e-5, atol=1e-9)
        weights = scores[order] / scores[order].sum()
        maps = np.stack([pred.maps[f"det_{k}"] for k in range(10)])
        total = (maps / maps.sum(axis=(1, 2), keepdims=True) * weights[:, None, None]).sum(0)
        np.testing.assert_allclose(pred.attention, total, rtol=1e-6)
    # the padded cells (masked keys) get no attention, and they lie outside the stimulus
    assert np.allclose(cross[0].reshape(-1, 3, 3)[:, 2, :], 0, atol=1e-6)  # image 0: bottom row padded
    assert preds[0].attention.min() > 0.2 * preds[0].attention.mean()


def test_detr_default_threshold_falls_back_to_all_queries(tiny):
    model = load_model("hf:" + str(tiny["detr"]))  # random weights: no score reaches 0.5
    pred = model.predict([_image(48, 64)], task="detection", attention="detr-cross-attention")[0]
    assert pred.output["boxes"] == [] and pred.output["threshold"] == 0.5 and pred.maps == {}
    assert pred.attention.shape == (48, 64) and pred.attention.min() > 0


# -- captioners ----------------------------------------------------------------------------------


def _prefix_maps(model, pixel_values, token_positions, ids_row, i):
    """Independent per-token maps: the last query of a forward pass over the prefix before it."""
    maps = []
    for j in token_positions:
        prefix = torch.tensor([ids_row[:j]])
        with torch.no_grad():
            if model.kind == "blip":
                emb = model.model.vision_model(pixel_values=pixel_values[i : i + 1]).last_hidden_state
                cross = model.model.text_decoder(input_ids=prefix, encoder_hidden_states=emb,
                                                 output_attentions=True).cross_attentions
            else:
                cross = model.model(pixel_values=pixel_values[i : i + 1], decoder_input_ids=prefix,
                                    output_attentions=True).cross_attentions
        row = torch.stack([c[0, :, -1] for c in cross]).mean(dim=(0, 1)).double().numpy()[1:]  # drop CLS
        maps.append((row / row.sum()).reshape(4, 4))
    return np.stack(maps)


@pytest.mark.parametrize("kind", ["blip", "ved"])
def test_caption_token_maps_are_the_attention_while_generating(tiny, kind):
    from harness.attention.cross_attention import combine

    model = load_model("hf:" + str(tiny[kind]))
    images = _images()
    pixel_values = model.processor(images=images, return_tensors="pt")["pixel_values"]
    ids = model.generate(pixel_values)
    results = model.caption_grids(pixel_values)
    preds = model.predict(images, task="captioning", attention="caption-cross-attention")
    skip, stop = model._special()
    n_words = 0
    for i, ((token_ids, grids), pred) in enumerate(zip(results, preds)):
        row = [int(t) for t in ids[i]]
        positions = []
        for j in range(1, len(row)):
            if row[j] in stop:
                break
            if row[j] not in skip:
                positions.append(j)
        assert token_ids == [row[j] for j in positions] and len(token_ids) >= 1
        np.testing.assert_allclose(grids, _prefix_maps(model, pixel_values, positions, row, i), rtol=1e-4, atol=1e-7)
        h, w = IMAGES[i]
        np.testing.assert_allclose(pred.attention, to_stimulus(combine(grids), h, w), rtol=1e-6)
        assert pred.output["caption"] == model.tokenizer.decode(token_ids, skip_special_tokens=True).strip()
        for key, m in pred.maps.items():
            assert key.startswith("word_")
            n_words += 1
    assert n_words >= 1  # the seeded tiny captioners produce content words, so word maps are tested


def test_ved_token_maps_match_generate_step_attention(tiny):
    """``generate``'s own cross-attentions (incremental decoding with a cache) at step t are the
    attention that produced token t + 1: the same maps as the teacher-forced pass gives."""
    model = load_model("hf:" + str(tiny["ved"]))
    pixel_values = model.processor(images=_images(), return_tensors="pt")["pixel_values"]
    gen = model.generate  # same settings as the plugin uses
    with torch.no_grad():
        out = model.model.generate(pixel_values=pixel_values, output_attentions=True, return_dict_in_generate=True,
                                   **{k: v for k, v in model.model.generation_config.to_diff_dict().items()
                                      if k not in ("transformers_version", "_from_model_config")})
    assert torch.equal(out.sequences, gen(pixel_values))
    results = model.caption_grids(pixel_values)
    skip, stop = model._special()
    for i, (token_ids, grids) in enumerate(results):
        row = out.sequences[i].tolist()
        k = 0
        for step, j in enumerate(range(1, len(row))):
            if row[j] in stop:
                break
            if row[j] in skip:
                continue
            att = torch.stack([layer[i, :, -1] for layer in out.cross_attentions[step]]).mean(dim=(0, 1))
            att = att.double().numpy()[1:]
            np.testing.assert_allclose(grids[k], (att / att.sum()).reshape(4, 4), rtol=1e-4, atol=1e-7)
            k += 1
        assert k == len(token_ids)


def test_word_maps_average_their_sub_word_tokens(tiny):
    from harness.attention.cross_attention import combine, group_words, is_content_word, word_key

    model = load_model("hf:" + str(tiny["ved"]))
    images = _images()
    pixel_values = model.processor(images=images, return_tensors="pt")["pixel_values"]
    preds = model.predict(images, task="captioning", attention="caption-cross-attention")
    for (token_ids, grids), pred, (h, w) in zip(model.caption_grids(pixel_values), preds, IMAGES):
        words = group_words(model.pieces(token_ids))
        expected = {word_key(n, word): combine(grids[members]) for n, (word, members) in enumerate(words)
                    if is_content_word(word)}
        assert set(pred.maps) == set(expected)
        for key, grid in expected.items():
            np.testing.assert_allclose(pred.maps[key], to_stimulus(grid, h, w), rtol=1e-6)
        assert pred.output["words"] == [word for word, _ in words if is_content_word(word)]


# -- locating checkpoints: errors, the Hub cache, offline failure ----------------------------------


def test_bad_names_fail_with_one_line(tiny, tmp_path):
    cases = [
        ("hf:./no/such/folder", "no such checkpoint folder"),
        ("hf:" + str(tmp_path), "no config.json"),
        ("hf:" + str(tiny["vit"] / "config.json"), "is a file"),
        ("hf:" + str(tiny["vit"]) + "?heads=mean", "unknown option 'heads'"),
        ("hf:" + str(tiny["vit"]) + "?head_fusion=median", "head_fusion must be"),
        ("hf:" + str(tiny["vit"]) + "?threshold=high", "is not a float"),
        # each of these used to load and then fail every batch, or name a run identical to the plain model's
        ("hf:", "no checkpoint named"),
        ("hf:" + str(tiny["vit"]) + "?head_fusion=max&head_fusion=min", "option head_fusion given twice"),
        ("hf:" + str(tiny["vit"]) + "@main", "a local folder has no revisions"),
        ("hf:" + str(tiny["vit"]) + "?threshold=0.3", r"option threshold does not apply to a vit model \(its "
                                                        r"options: discard_ratio, head_fusion\)"),
        ("hf:" + str(tiny["resnet"]) + "?head_fusion=max", "option head_fusion does not apply to a cnn model"),
        ("hf:" + str(tiny["detr"]) + "?threshold=nan", r"threshold must be a detection score in \[0, 1\]"),
        ("hf:" + str(tiny["detr"]) + "?layers=-9", r"layers=-9: the decoder has 2 layers"),
        ("hf:" + str(tiny["blip"]) + "?max_new_tokens=0", "max_new_tokens must be at least 1"),
        ("hf:" + str(tiny["ved"]) + "?num_beams=0", "num_beams must be at least 1"),
        ("hf:" + str(tiny["ved"]) + "?layers=7", r"layers=7: the decoder has \d+ layers"),
        ("hf:" + str(tiny["vit"]) + "?device=gpu", "device must be cpu, cuda, cuda:N or mps, got 'gpu'"),
    ]
    for name, message in cases:
        with pytest.raises(HarnessError, match=message) as info:
            load_model(name)
        assert "\n" not in str(info.value)


def test_a_captioner_without_its_tokenizer_is_refused(tiny, tmp_path):
    """Without tokenizer files transformers built a tokenizer of the special tokens alone: every
    caption decoded to "", and the run scored empty captions without a word."""
    import shutil

    folder = tmp_path / "blip-without-tokenizer"
    shutil.copytree(tiny["blip"], folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(HarnessError, match=r"its tokenizer has \d+ tokens for a decoder of \d+: no tokenizer files"):
        load_model("hf:" + str(folder))


def test_unsupported_architecture(tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=8)).save_pretrained(tmp_path)
    with pytest.raises(HarnessError, match="not supported") as info:
        load_model("hf:" + str(tmp_path))
    assert "\n" not in str(info.value)


def test_timm_detr_checkpoint_points_to_the_no_timm_revision(tmp_path):
    from transformers import DetrConfig, DetrImageProcessorPil

    DetrConfig().save_pretrained(tmp_path)  # the original facebook/detr-resnet-50 config: timm ResNet-50
    DetrImageProcessorPil().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not read: the backbone check comes first")
    with pytest.raises(HarnessError, match="timm backbone.*@no_timm"):
        load_model("hf:" + str(tmp_path))


def _fake_hub_cache(root: Path, repo: str, source: Path, commit: str) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    base = root / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in source.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())


def test_hub_id_from_the_cache_offline_records_the_commit(tiny, tmp_path, monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    _fake_hub_cache(tmp_path / "hub", "tiny-org/tiny-vit", tiny["vit"], commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model("hf:tiny-org/tiny-vit")
    prov = model.provenance()
    assert prov["model_id"] == "tiny-org/tiny-vit" and prov["revision"] == commit
    assert prov["source"] == "Hugging Face Hub"
    assert model.predict(_images()[:1], task="classification", attention="rollout")[0].attention.shape == (48, 64)


@pytest.mark.parametrize("env, message", [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE is set"),
    ({"HF_ENDPOINT": "http://127.0.0.1:9"}, "cannot reach http://127.0.0.1:9"),
])
def test_unreachable_hub_fails_fast_with_one_line(tmp_path, monkeypatch, env, message):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    start = time.monotonic()
    with pytest.raises(HarnessError, match=message) as info:
        load_model("hf:google/vit-base-patch16-224")
    assert time.monotonic() - start < 5
    assert "\n" not in str(info.value) and "google/vit-base-patch16-224" in str(info.value)


def test_unreachable_hub_fails_fast_in_a_fresh_process(tmp_path):
    """huggingface_hub reads its environment at import: check a process started with it set."""
    env = dict(os.environ, HF_ENDPOINT="http://127.0.0.1:9", HF_HUB_CACHE=str(tmp_path / "c"))
    env.pop("HF_HUB_OFFLINE", None)
    code = (
        "from harness.errors import HarnessError\n"
        "from harness.models import load_model\n"
        "try:\n    load_model('hf:google/vit-base-patch16-224')\n"
        "except HarnessError as e:\n    print('ERR', e)\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 15
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERR model hf:google/vit-base-patch16-224: cannot reach")


# -- registration ------------------------------------------------------------------------------------


def test_aliases_and_attention_methods_are_registered_without_torch():
    code = (
        "import json, sys\n"
        "from harness.plugins import get_registry\n"
        "reg = get_registry()\n"
        "out = {n: dict(reg.get('model', n).metadata) for n in ('hf', 'vit-base', 'detr-resnet50', 'blip-base')}\n"
        "out['methods'] = {n: reg.get('attention', n).get('description') for n in "
        "('cls-attention', 'rollout', 'detr-cross-attention', 'caption-cross-attention')}\n"
        "out['torch'] = 'torch' in sys.modules or 'transformers' in sys.modules\n"
        "print(json.dumps(out, default=list))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    out = json.loads(proc.stdout)
    assert out["torch"] is False
    assert out["vit-base"]["kwargs"]["checkpoint"] == "google/vit-base-patch16-224"
    assert out["vit-base"]["attention"] == ["cls-attention", "rollout"]
    assert out["detr-resnet50"]["kwargs"] == {"checkpoint": "facebook/detr-resnet-50", "revision": "no_timm",
                                              "name": "detr-resnet50"}
    assert out["blip-base"]["tasks"] == ["free-viewing", "captioning"]
    assert all(out["methods"].values())


def test_imagenet_heads_emit_wnids(tmp_path):
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    from harness.imagenet_classes import NAMES, WNIDS

    labels = {i: NAMES[i] for i in range(1000)}
    config = tiny_models._vit_config(num_labels=1000, id2label=labels, label2id={v: k for k, v in labels.items()})
    ViTForImageClassification(config).save_pretrained(tmp_path)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    pred = load_model("hf:" + str(tmp_path)).predict(_images()[:1], task="classification", attention="cls-attention")[0]
    k = pred.output["class_index"]
    assert pred.output["label"] == WNIDS[k] and pred.output["name"] == NAMES[k]
    assert pred.output["topk"] == [WNIDS[j] for j in pred.output["topk_indices"]]


def test_an_option_the_chosen_attention_never_reads_is_refused(tiny, tmp_path, osie_dir):
    """`?discard_ratio=0.9` with CLS attention (which never reads it) named a run of its own with the
    plain model's maps (found by an attention QA session); with rollout it is used."""
    from click.testing import CliRunner

    from harness.cli import main

    name = "hf:" + str(tiny["vit"]) + "?discard_ratio=0.9"
    base = ["eval", "--model", name, "--dataset", "osie", "--data-dir", str(osie_dir), "--limit", "1",
            "--output", str(tmp_path / "runs"), "--no-references", "--no-show"]
    r = CliRunner().invoke(main, [*base, "--attention", "cls-attention"])
    assert r.exit_code == 1 and r.output.strip().splitlines()[-1] == (
        f"Error: model {name!r}: option discard_ratio does not apply to attention 'cls-attention' (it would name "
        "a run of its own with the same maps)"), r.output
    assert not (tmp_path / "runs").exists()
    r = CliRunner().invoke(main, [*base, "--attention", "rollout"])
    assert r.exit_code == 0, r.output
