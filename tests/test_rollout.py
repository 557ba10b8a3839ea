"""Attention rollout and CLS attention (harness.attention.rollout) against hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.attention.rollout import (
    attention_rollout,
    cls_attention,
    discard_lowest,
    fuse_heads,
    grid_shape,
    tokens_to_grid,
)

# Layer 1 (3 tokens): two heads whose mean is A1 = [[.6,.2,.2],[.2,.6,.2],[.2,.2,.6]].
HEAD_A = np.array([[1.0, 0.0, 0.0], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
HEAD_B = np.array([[0.2, 0.4, 0.4], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
LAYER1 = np.stack([HEAD_A, HEAD_B])[None]  # (1, 2, 3, 3)
# Layer 2: every head sends token 0 and 1 to token 1, token 2 to itself.
A2 = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
LAYER2 = np.stack([A2, A2])[None]


def test_rollout_known_answer_mean_fusion():
    # By hand: Ã1 = .5 A1 + .5 I = [[.8,.1,.1],[.1,.8,.1],[.1,.1,.8]] (rows already sum to 1);
    # Ã2 = [[.5,.5,0],[0,1,0],[0,0,1]]. Rollout = Ã2 @ Ã1:
    #   row 0 = .5*[.8,.1,.1] + .5*[.1,.8,.1] = [.45,.45,.1]; row 1 = Ã1 row 1; row 2 = Ã1 row 2.
    expected = np.array([[0.45, 0.45, 0.10], [0.10, 0.80, 0.10], [0.10, 0.10, 0.80]])
    got = attention_rollout([LAYER1, LAYER2])
    assert got.shape == (1, 3, 3)
    np.testing.assert_allclose(got[0], expected, atol=1e-12)
    # the order matters: Ã1 @ Ã2 would give row 0 = [.4, .5, .1]
    assert not np.allclose(got[0, 0], [0.4, 0.5, 0.1])


def test_rollout_max_fusion_renormalises_rows():
    # max over heads, row 0: [1, .4, .4]; + I, halved: [1, .2, .2] -> / 1.4.
    # rows 1, 2 equal A1's rows; Ã1 rows 1, 2 as in the mean case.
    r1 = np.array([[1.0, 0.2, 0.2], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    r1[0] /= 1.4
    expected = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) @ r1
    got = attention_rollout([LAYER1, LAYER2], head_fusion="max")
    np.testing.assert_allclose(got[0], expected, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-12)


def test_min_fusion_and_single_layer():
    # min over heads of layer 1: row 0 = [.2, 0, 0]; + I, halved: [.6, 0, 0] -> [1, 0, 0]
    got = attention_rollout([LAYER1], head_fusion="min")
    np.testing.assert_allclose(got[0, 0], [1.0, 0.0, 0.0], atol=1e-12)
    # row 1: min = [.2,.6,.2] -> .5*[.2,.6,.2] + .5*[0,1,0] = [.1,.8,.1]
    np.testing.assert_allclose(got[0, 1], [0.1, 0.8, 0.1], atol=1e-12)


def test_fuse_heads_and_cls_attention():
    np.testing.assert_allclose(fuse_heads(LAYER1)[0], (HEAD_A + HEAD_B) / 2)
    np.testing.assert_allclose(fuse_heads(LAYER1, "max")[0], np.maximum(HEAD_A, HEAD_B))
    np.testing.assert_allclose(cls_attention(LAYER1), [[0.6, 0.2, 0.2]])
    np.testing.assert_allclose(cls_attention(LAYER1, "min", token=1), [[0.2, 0.6, 0.2]])
    with pytest.raises(ValueError, match="head_fusion"):
        fuse_heads(LAYER1, "median")
    with pytest.raises(ValueError, match="heads"):
        fuse_heads(HEAD_A)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    got = attention_rollout([torch.tensor(LAYER1, dtype=torch.float32), torch.tensor(LAYER2)])
    np.testing.assert_allclose(got[0, 0], [0.45, 0.45, 0.10], atol=1e-6)
    from harness.attention.rollout import as_array

    third = torch.tensor([[1 / 3]], dtype=torch.float64)  # a float64 network's stays float64
    assert as_array(third)[0, 0] == 1 / 3
    assert as_array(third.to(torch.bfloat16)).dtype == np.float64  # numpy has no bfloat16


def test_discard_lowest_keeps_cls_self_entry():
    fused = np.array([[[0.05, 0.5, 0.45], [0.3, 0.3, 0.4], [0.01, 0.02, 0.97]]])
    # a third of the 9 entries: the 3 smallest are .01, .02, .05 — but .05 is [0, 0] and stays
    got = discard_lowest(fused, 1 / 3)
    expected = fused.copy()
    expected[0, 2, 0] = expected[0, 2, 1] = 0.0
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(discard_lowest(fused, 0.0), fused)
    with pytest.raises(ValueError):
        discard_lowest(fused, 1.0)


def test_rollout_with_discard_ratio_still_row_stochastic():
    rng = np.random.default_rng(0)
    layers = [rng.dirichlet(np.ones(5), size=(2, 3, 5)) for _ in range(4)]  # (B=2, heads=3, 5, 5)
    out = attention_rollout(layers, discard_ratio=0.5)
    assert out.shape == (2, 5, 5)
    assert np.all(out >= 0)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, atol=1e-12)


def test_tokens_to_grid_drops_prefix_tokens():
    scores = np.arange(2 + 6, dtype=float)[None]  # CLS, distillation token, then a 2x3 grid
    grid = tokens_to_grid(scores, (2, 3))
    np.testing.assert_array_equal(grid[0], [[2, 3, 4], [5, 6, 7]])
    with pytest.raises(ValueError):
        tokens_to_grid(np.ones((1, 5)), (2, 3))


def test_grid_shape_follows_the_input_aspect():
    assert grid_shape(196, 224, 224) == (14, 14)
    assert grid_shape(32, 32, 64) == (4, 8)
    assert grid_shape(32, 64, 32) == (8, 4)
    with pytest.raises(ValueError):
        grid_shape(7, 30, 40)


@pytest.mark.parametrize("fusion, discard", [("mean", 0.0), ("max", 0.0), ("min", 0.3), ("mean", 0.5)])
def test_rollout_row_is_the_cls_row_of_the_full_product(fusion, discard):
    """The vector-through-the-layers shortcut equals row 0 of the full rollout (ViT-Base-like sizes)."""
    from harness.attention.rollout import rollout_row

    rng = np.random.default_rng(3)
    layers = []
    for _ in range(12):
        logits = rng.normal(size=(2, 4, 50, 50))
        a = np.exp(logits)
        layers.append(a / a.sum(axis=-1, keepdims=True))
    full = attention_rollout(layers, head_fusion=fusion, discard_ratio=discard)[:, 0, :]
    row = rollout_row(layers, head_fusion=fusion, discard_ratio=discard)
    np.testing.assert_allclose(row, full, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(row.sum(axis=1), 1.0, rtol=1e-12)
