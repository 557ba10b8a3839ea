"""Cross-attention maps of encoder-decoder models: DETR object queries and caption tokens.

Plain functions over arrays. One decoder layer's cross-attention is ``(B, heads, Q, K)``: rows are
decoder queries (DETR object queries, or caption token positions), columns the encoder tokens
(DETR: the flattened backbone feature map; captioning: a ViT's CLS + patch tokens). The model plugin
turns the per-query rows into patch-grid maps with these functions and places them on the stimulus.

Why these choices:

- **Heads and layers** are fused by the mean by default: single heads are noisy and specialised.
- **Each map is renormalised to sum to 1** before maps are combined, so a query or token that
  spreads its attention thinly does not weigh less than one that focuses it.
- **Caption tokens** are grouped into words by the text the tokenizer decodes: a piece that starts
  with whitespace starts a new word (GPT-2 ``Ġ`` tokens, BERT word pieces without ``##``), so a
  word's map is the mean of its sub-word tokens' maps.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .rollout import HEAD_FUSIONS, as_array, fuse_heads, tokens_to_grid

# Function words skipped when building per-word maps: the union of the usual English stopword
# lists (articles, pronouns, prepositions, conjunctions, auxiliaries, quantifiers) — the words that
# have no visual referent in a caption.
STOPWORDS = frozenset(
    """
    a an the this that these those there here it its itself they them their theirs he him his she
    her hers we us our ours you your yours i me my mine one ones some any each every all both few
    many much more most other such no nor not only own same so than too very just also
    of in on at by for with about against between into through during before after above below to
    from up down out off over under again further onto upon near next beside behind across along
    around toward towards inside outside within without atop
    and or but if because as until while then once when where why how what which who whom whose
    is are was were be been being am do does did doing have has had having can could will would
    shall should may might must
    s t 's
    """.split()
)


def fuse_layers(attentions: Sequence, layers: str | int = "last", head_fusion: str = "mean") -> np.ndarray:
    """Fuse per-layer ``(B, heads, Q, K)`` cross-attentions to ``(B, Q, K)``.

    ``layers``: ``"last"`` (the last decoder layer), ``"mean"`` (mean over layers) or a layer index.
    """
    if len(attentions) == 0:
        raise ValueError("no cross-attention layers")
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if layers == "last":
        return fuse_heads(attentions[-1], head_fusion)
    if layers == "mean":
        return np.mean([fuse_heads(a, head_fusion) for a in attentions], axis=0)
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        return fuse_heads(attentions[int(layers)], head_fusion)
    raise ValueError(f"layers must be 'last', 'mean' or a layer index, got {layers!r}")


def normalise_maps(maps) -> np.ndarray:
    """Scale each map of ``(N, ...)`` to sum to 1; an all-zero map stays zero."""
    m = np.clip(as_array(maps), 0.0, None)
    if m.shape[0] == 0:
        return m
    sums = m.reshape(m.shape[0], -1).sum(axis=1)
    sums = np.where(sums > 0, sums, 1.0)
    return m / sums.reshape((-1,) + (1,) * (m.ndim - 1))


def query_maps(cross, queries: Sequence[int], grid: tuple[int, int]) -> np.ndarray:
    """Rows ``queries`` of one image's fused cross-attention ``(Q, K)`` as grid maps ``(N, rows, cols)``.

    Leading non-grid encoder tokens (a ViT's CLS) are dropped by :func:`tokens_to_grid`; each map
    is renormalised over the grid cells.
    """
    c = as_array(cross)
    if c.ndim != 2:
        raise ValueError(f"cross-attention of one image must be (Q, K), got shape {c.shape}")
    rows = c[np.asarray(list(queries), dtype=np.int64)] if len(queries) else np.zeros((0, c.shape[1]))
    return normalise_maps(tokens_to_grid(rows, grid)) if len(rows) else np.zeros((0,) + tuple(grid))


def combine(maps, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of ``(N, H, W)`` maps, each first normalised to sum 1; weights default to 1.

    Used for a detector's image map (weights = detection scores) and a caption's map (all tokens
    equal). Returns a map summing to 1 (zeros if there is nothing to combine).
    """
    m = normalise_maps(maps)
    if m.shape[0] == 0:
        return np.zeros(m.shape[1:])
    w = np.ones(m.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (m.shape[0],) or np.any(w < 0):
        raise ValueError(f"weights must be {m.shape[0]} non-negative numbers, got {w!r}")
    if w.sum() <= 0:
        w = np.ones_like(w)
    return np.tensordot(w / w.sum(), m, axes=1)


def caption_queries(ids: Sequence[int], skip_ids: Sequence[int], stop_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Which decoder query produced each generated token of ``ids`` (start token first).

    A causal decoder predicts token ``j`` from the query at position ``j - 1``, so the attention
    that "looked" while generating token ``j`` is row ``j - 1`` of a teacher-forced forward pass
    over ``ids``. Returns ``[(j, j - 1), ...]`` for generated tokens, skipping ``skip_ids``
    (special tokens) and stopping at the first of ``stop_ids`` (end of sequence).
    """
    skip, stop = set(int(i) for i in skip_ids), set(int(i) for i in stop_ids)
    out = []
    for j in range(1, len(ids)):
        tok = int(ids[j])
        if tok in stop:
            break
        if tok in skip:
            continue
        out.append((j, j - 1))
    return out


def group_words(pieces: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Group decoded token pieces into words: ``[(word, [piece indices]), ...]``.

    ``pieces[i]`` is the text token ``i`` adds to the decoded caption. A piece starting with
    whitespace (or the first piece) starts a new word; a piece without it continues the word
    (``##s``, ``ing``). Pieces with no letter or digit (punctuation) belong to no word and end
    the current one.
    """
    words: list[tuple[str, list[int]]] = []
    joined = False  # may the next piece continue the last word?
    for i, piece in enumerate(pieces):
        if not re.search(r"\w", piece):
            joined = False
            continue
        if words and joined and not piece[:1].isspace():
            text, idx = words[-1]
            words[-1] = (text + piece.strip(), idx + [i])
        else:
            words.append((piece.strip(), [i]))
        joined = not piece[-1:].isspace()
    return [(re.sub(r"^\W+|\W+$", "", text), idx) for text, idx in words]


def is_content_word(word: str) -> bool:
    """A word with a letter in it that is not a stopword."""
    w = word.lower()
    return any(ch.isalpha() for ch in w) and w not in STOPWORDS


def word_key(index: int, word: str) -> str:
    """``word_<i>_<word>``: the key of a per-word map in ``Prediction.maps`` (``i`` = word position)."""
    safe = re.sub(r"[^0-9a-z]+", "-", word.lower()).strip("-") or "x"
    return f"word_{index}_{safe}"
