"""Self-attention maps of vision transformers: last-layer CLS attention and attention rollout.

Plain functions over arrays (numpy, or anything ``np.asarray`` accepts, e.g. CPU torch tensors), so
the maths can be checked by hand. Shapes: one layer's attention is ``(B, heads, T, T)`` with rows
indexing the query token and columns the key token; every row sums to 1 (softmax output).

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", ACL) models
the residual connection by mixing each layer's attention with the identity,
``Ã = 0.5 A + 0.5 I``, renormalises the rows and multiplies the layers together from the first to
the last: ``R = Ã_L · … · Ã_2 · Ã_1``. Row ``i`` of ``R`` says how much each input token flows into
output token ``i``; the CLS row over the patch tokens is the map.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

HEAD_FUSIONS = ("mean", "max", "min")


def as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor: no torch import needed here
        x = x.detach().cpu()
        # half/bfloat16 (numpy has no bfloat16) to float32; a float64 network's attention stays
        # float64 (.float() cast it to float32: found by the attention QA)
        x = (x if str(x.dtype) == "torch.float64" else x.float()).numpy()
    return np.asarray(x, dtype=np.float64)


def fuse_heads(attention, head_fusion: str = "mean") -> np.ndarray:
    """Reduce ``(B, heads, T, T)`` to ``(B, T, T)`` by the mean, max or min over heads."""
    a = as_array(attention)
    if a.ndim != 4:
        raise ValueError(f"attention must be (B, heads, T, T), got shape {a.shape}")
    if head_fusion == "mean":
        return a.mean(axis=1)
    if head_fusion == "max":
        return a.max(axis=1)
    if head_fusion == "min":
        return a.min(axis=1)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def discard_lowest(fused: np.ndarray, discard_ratio: float) -> np.ndarray:
    """Zero the ``discard_ratio`` fraction of smallest entries of each (T, T) matrix.

    The CLS-to-CLS entry ``[0, 0]`` is never discarded, as in the reference implementation by
    Gildenblat (``vit-explain``): removing it could leave the CLS row empty.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    out = np.array(fused, dtype=np.float64, copy=True)
    if discard_ratio == 0.0:
        return out
    b, t, _ = out.shape
    n = int(t * t * discard_ratio)
    flat = out.reshape(b, t * t)
    for i in range(b):
        order = np.argsort(flat[i], kind="stable")
        drop = order[:n]
        drop = drop[drop != 0]
        flat[i, drop] = 0.0
    return flat.reshape(b, t, t)


def attention_rollout(
    attentions: Sequence, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> np.ndarray:
    """Roll attention out through the layers; returns ``(B, T, T)``, each row summing to 1.

    ``attentions``: one ``(B, heads, T, T)`` array per layer, first layer first (the order of
    transformers' ``outputs.attentions``).
    """
    if len(attentions) == 0:
        raise ValueError("attention_rollout needs at least one layer")
    result = None
    for layer in attentions:
        fused = discard_lowest(fuse_heads(layer, head_fusion), discard_ratio)
        eye = np.eye(fused.shape[-1])[None]
        mixed = 0.5 * fused + 0.5 * eye
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        result = mixed if result is None else mixed @ result
    return result


def rollout_row(attentions: Sequence, head_fusion: str = "mean", discard_ratio: float = 0.0,
                token: int = 0) -> np.ndarray:
    """Row ``token`` (the CLS row) of :func:`attention_rollout`, ``(B, T)``, without the full product.

    ``e_t^T (Ã_L ··· Ã_1) = (((e_t^T Ã_L) Ã_{L-1}) ··· Ã_1)``: a vector through each layer from the
    last to the first, O(L·T²) instead of O(L·T³) (ViT-Base: 197 tokens, 12 layers). Same float64
    arithmetic; the numbers equal the full product's row to round-off (tested)."""
    if len(attentions) == 0:
        raise ValueError("attention_rollout needs at least one layer")
    row = None
    for layer in reversed(list(attentions)):
        fused = discard_lowest(fuse_heads(layer, head_fusion), discard_ratio)
        t = fused.shape[-1]
        mixed = 0.5 * fused
        mixed[:, np.arange(t), np.arange(t)] += 0.5
        mixed /= mixed.sum(axis=-1, keepdims=True)
        row = mixed[:, token, :] if row is None else np.einsum("bi,bij->bj", row, mixed)
    return row


def cls_attention(attention, head_fusion: str = "mean", token: int = 0) -> np.ndarray:
    """Attention of the query ``token`` (CLS) in one layer, heads fused: ``(B, T)``."""
    return fuse_heads(attention, head_fusion)[:, token, :]


def grid_shape(n_patches: int, height: int, width: int) -> tuple[int, int]:
    """The (rows, columns) of a patch grid of ``n_patches`` cells for a ``height x width`` input.

    Uses the input's aspect ratio, so non-square inputs work; raises if no grid fits.
    """
    for rows in range(1, n_patches + 1):
        if n_patches % rows:
            continue
        cols = n_patches // rows
        if rows * width == cols * height:
            return rows, cols
    side = int(round(np.sqrt(n_patches)))
    if side * side == n_patches:
        return side, side
    raise ValueError(f"cannot lay {n_patches} patches out on a grid for a {height}x{width} input")


def tokens_to_grid(scores, grid: tuple[int, int]) -> np.ndarray:
    """Turn per-token scores ``(B, T)`` into patch maps ``(B, rows, cols)``.

    The leading ``T - rows*cols`` tokens (CLS, a distillation token, register tokens) are dropped;
    the remaining tokens are the patches in row-major order, as ViT-style models flatten them.
    """
    s = as_array(scores)
    rows, cols = grid
    n = rows * cols
    if s.ndim != 2 or s.shape[1] < n:
        raise ValueError(f"scores of shape {s.shape} cannot hold a {rows}x{cols} patch grid")
    return s[:, s.shape[1] - n :].reshape(s.shape[0], rows, cols)
