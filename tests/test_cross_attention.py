"""Cross-attention aggregation (harness.attention.cross_attention) against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attention.cross_attention import (
    caption_queries,
    combine,
    fuse_layers,
    group_words,
    is_content_word,
    normalise_maps,
    query_maps,
    word_key,
)


def _layers():
    # 2 layers, B=1, 2 heads, Q=2 queries, K=5 keys (a CLS then a 2x2 grid)
    l0 = np.zeros((1, 2, 2, 5))
    l0[0, 0, 0] = [0.0, 1.0, 0.0, 0.0, 0.0]
    l0[0, 1, 0] = [0.0, 0.0, 1.0, 0.0, 0.0]
    l0[0, :, 1] = [0.2, 0.2, 0.2, 0.2, 0.2]
    l1 = np.zeros((1, 2, 2, 5))
    l1[0, :, 0] = [0.5, 0.0, 0.0, 0.0, 0.5]
    l1[0, :, 1] = [0.0, 0.0, 0.0, 1.0, 0.0]
    return [l0, l1]


def test_fuse_layers_last_mean_index():
    l0, l1 = _layers()
    np.testing.assert_allclose(fuse_layers([l0, l1], "last")[0, 0], [0.5, 0, 0, 0, 0.5])
    np.testing.assert_allclose(fuse_layers([l0, l1], 0)[0, 0], [0, 0.5, 0.5, 0, 0])
    # mean over layers of the head means: ([0,.5,.5,0,0] + [.5,0,0,0,.5]) / 2
    np.testing.assert_allclose(fuse_layers([l0, l1], "mean")[0, 0], [0.25, 0.25, 0.25, 0, 0.25])
    np.testing.assert_allclose(fuse_layers([l0, l1], "mean", "max")[0, 0], [0.25, 0.5, 0.5, 0, 0.25])
    with pytest.raises(ValueError):
        fuse_layers([l0, l1], "first")
    with pytest.raises(ValueError):
        fuse_layers([], "last")


def test_query_maps_drop_cls_and_renormalise():
    fused = fuse_layers(_layers(), "mean")[0]  # (Q=2, K=5)
    maps = query_maps(fused, [0, 1], (2, 2))
    assert maps.shape == (2, 2, 2)
    # query 0 over the grid tokens: [.25, .25, 0, .25] -> / .75
    np.testing.assert_allclose(maps[0], np.array([[1, 1], [0, 1]]) / 3)
    # query 1: layer 0 head mean [.2]*5, layer 1 [0,0,0,1,0]; mean [.1,.1,.1,.6,.1]; grid [.1,.1,.6,.1]/.9
    np.testing.assert_allclose(maps[1], np.array([[0.1, 0.1], [0.6, 0.1]]) / 0.9)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0)
    assert query_maps(fused, [], (2, 2)).shape == (0, 2, 2)


def test_normalise_maps_keeps_zero_maps_zero():
    m = normalise_maps(np.array([[[0.0, 0.0]], [[1.0, 3.0]]]))
    np.testing.assert_allclose(m, [[[0.0, 0.0]], [[0.25, 0.75]]])


def test_combine_is_the_weighted_mean_of_normalised_maps():
    a = np.array([[2.0, 0.0], [0.0, 0.0]])  # normalised: all mass in the top-left
    b = np.array([[0.0, 0.0], [0.0, 5.0]])  # all mass in the bottom-right
    got = combine(np.stack([a, b]), [3.0, 1.0])
    np.testing.assert_allclose(got, [[0.75, 0.0], [0.0, 0.25]])
    np.testing.assert_allclose(combine(np.stack([a, b])), [[0.5, 0.0], [0.0, 0.5]])
    np.testing.assert_allclose(combine(np.zeros((0, 2, 2))), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        combine(np.stack([a, b]), [1.0])
    with pytest.raises(ValueError):
        combine(np.stack([a, b]), [1.0, -1.0])


def test_caption_queries_align_tokens_with_the_query_before_them():
    # ids: start(0) w(5) [special 9] w(6) eos(2) pad(0)
    ids = [0, 5, 9, 6, 2, 0]
    assert caption_queries(ids, skip_ids=[0, 9], stop_ids=[2]) == [(1, 0), (3, 2)]
    assert caption_queries([0, 2, 5], skip_ids=[0], stop_ids=[2]) == []


def test_group_words_bert_and_gpt2_styles():
    # WordPiece: "a dog ##s ." decodes to pieces "a", " dog", "s", " ." (punctuation joins no word)
    assert group_words(["a", " dog", "s", " ."]) == [("a", [0]), ("dogs", [1, 2])]
    # a word after punctuation starts afresh even without a space: "dog.cat"
    assert group_words(["dog", ".", "cat"]) == [("dog", [0]), ("cat", [2])]
    # byte-level BPE: " a", " sitt", "ing", " cat"
    assert group_words([" a", " sitt", "ing", " cat"]) == [("a", [0]), ("sitting", [1, 2]), ("cat", [3])]
    assert group_words([]) == []


def test_content_words_and_keys():
    assert is_content_word("Dog") and is_content_word("sitting")
    assert not is_content_word("the") and not is_content_word("on") and not is_content_word("42")
    assert word_key(3, "Hot-Dog's") == "word_3_hot-dog-s"
