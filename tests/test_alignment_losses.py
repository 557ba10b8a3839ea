"""The built-in alignment losses (plugins/alignment_losses.py) against their published definitions,
with numbers: hand calculations, analytic gradients of a linear model, and an independent numpy
implementation of the neural harmonizer's pyramidal loss.

Every batch is a real :class:`AlignmentBatch` over a real (tiny) torch model following the
``Trainable`` protocol, built with the ``needs`` each loss is registered with.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from harness.alignment.batch import AlignmentBatch, Trainable
from harness.cli import main
from harness.plugins import get_registry
from plugins import alignment_losses as al

REPO = Path(__file__).resolve().parents[1]
def num(x) -> float:
    """A loss value as a float (detached: these tensors carry a graph)."""
    return float(x.detach()) if isinstance(x, torch.Tensor) else float(x)


NAMES = {"harmonization": "harmonization", "rrr": "rrr", "density-kl": "density_kl"}


# --------------------------------------------------------------------------------------------
# tiny trainables


class LinearTrainable:
    """logits = W x + b on a flattened (3, H, W) input, float64 so comparisons can be tight."""

    class_names = ()

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        classes, dim = weight.shape
        self.module = torch.nn.Linear(dim, classes).double()
        with torch.no_grad():
            self.module.weight.copy_(torch.from_numpy(weight))
            self.module.bias.copy_(torch.from_numpy(bias if bias is not None else np.zeros(classes)))
        self.input_size = (0, 0)

    def preprocess(self, images):
        return torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float64) / 255.0).permute(2, 0, 1)
                            for im in images])

    def logits(self, inputs):
        return self.module(inputs.flatten(1))

    def attention(self, inputs, targets):
        # gradient x input of the target logit, positive part: a real differentiable map
        logits = self.logits(inputs)
        w = self.module.weight[targets].reshape(inputs.shape)
        return logits, torch.relu((w * inputs).sum(dim=1))


class MapTrainable:
    """A fake trainable whose attention is its parameter ``raw`` (h, w), the same for every image."""

    class_names = ()

    def __init__(self, values):
        self.module = torch.nn.Module()
        self.module.raw = torch.nn.Parameter(torch.as_tensor(values, dtype=torch.float64))
        self.input_size = tuple(self.module.raw.shape)

    def preprocess(self, images):
        raise NotImplementedError

    def logits(self, inputs):
        return inputs.flatten(1)[:, :2] * self.module.raw.sum()

    def attention(self, inputs, targets):
        maps = self.module.raw.expand(inputs.shape[0], *self.module.raw.shape)
        return self.logits(inputs), maps


def make_batch(loss: str, trainable, inputs, human, targets=None) -> AlignmentBatch:
    """A batch with the ``needs`` the loss is registered with."""
    needs = get_registry().get("alignment-loss", loss)["needs"]
    if targets is None:
        targets = torch.zeros(inputs.shape[0], dtype=torch.long)
    return AlignmentBatch(trainable, inputs.clone(), torch.as_tensor(human, dtype=torch.float64), targets,
                          needs=needs)


def kl(human, raw, eps=1e-8):
    human = np.asarray(human, dtype=np.float64)
    trainable = MapTrainable(raw)
    inputs = torch.zeros(human.shape[0] if human.ndim == 3 else 1, 3, *trainable.input_size, dtype=torch.float64)
    human = human if human.ndim == 3 else human[None]
    batch = make_batch("density-kl", trainable, inputs, human)
    return al.density_kl(batch, eps=eps), trainable


def test_trainables_follow_the_protocol():
    assert isinstance(LinearTrainable(np.zeros((2, 12))), Trainable)
    assert isinstance(MapTrainable(np.ones((2, 2))), Trainable)


# --------------------------------------------------------------------------------------------
# density-kl


def test_density_kl_hand_computed():
    # p = (1/2, 1/4, 1/8, 1/8), q uniform: 1/2 log(2) + 1/4 log(1) + 2 * 1/8 log(1/2) = 1/4 log 2
    loss, _ = kl([[0.5, 0.25], [0.125, 0.125]], [[1.0, 1.0], [1.0, 1.0]])
    assert num(loss) == pytest.approx(0.25 * math.log(2), abs=1e-6)
    assert num(loss) == pytest.approx(0.17328679513998632, abs=1e-6)


def test_density_kl_hand_computed_with_a_zero_of_the_attention():
    # p uniform, a = (2, 1, 1, 0) -> q = (1/2, 1/4, 1/4, 0); eps = 1e-8 written out:
    # 1/4 log(eps + 0.25/(0.5+eps)) + 2 * 1/4 log(eps + 0.25/(0.25+eps)) + 1/4 log(eps + 0.25/eps)
    eps = 1e-8
    expected = (0.25 * math.log(eps + 0.25 / (0.5 + eps)) + 0.5 * math.log(eps + 0.25 / (0.25 + eps))
                + 0.25 * math.log(eps + 0.25 / eps))
    assert expected == pytest.approx(0.25 * math.log(0.5) + 0.25 * math.log(2.5e7), abs=1e-6)  # 4.0853...
    loss, _ = kl(np.full((2, 2), 0.25), [[2.0, 1.0], [1.0, 0.0]], eps=eps)
    assert num(loss) == pytest.approx(expected, rel=1e-9)
    assert num(loss) == pytest.approx(4.085309755, abs=1e-6)


def test_density_kl_is_zero_for_identical_distributions_and_scale_invariant():
    p = np.array([[0.4, 0.3], [0.2, 0.1]])
    loss, _ = kl(p, p)
    assert abs(num(loss)) < 1e-6
    q = np.array([[0.1, 0.2], [0.3, 0.4]])
    base, _ = kl(p, q)
    for scale in (1e-3, 7.3, 250.0):
        scaled, _ = kl(p, q * scale)
        assert num(scaled) == pytest.approx(num(base), rel=1e-9)
    # and equal to the textbook KL(p || q), the eps terms aside
    assert num(base) == pytest.approx(num(np.sum(p * np.log(p / q))), abs=1e-6)


def test_density_kl_all_zero_attention_is_finite_and_uniform():
    p = np.array([[0.5, 0.25], [0.125, 0.125]])
    loss, trainable = kl(p, np.zeros((2, 2)))
    uniform, _ = kl(p, np.ones((2, 2)))
    assert torch.isfinite(loss)
    assert num(loss) == pytest.approx(num(uniform), rel=1e-12)
    loss.backward()
    assert torch.isfinite(trainable.module.raw.grad).all()


def test_density_kl_gradient_sign_and_value():
    # dKL/da_j = (1 - p_j / q_j) / sum(a) (eps aside): a = ones, sum 4, q_j = 1/4
    p = np.array([[0.5, 0.25], [0.125, 0.125]])
    loss, trainable = kl(p, np.ones((2, 2)))
    loss.backward()
    grad = trainable.module.raw.grad.numpy()
    assert grad[0, 0] < 0 < grad[1, 0]  # more attention where people look more lowers the loss
    np.testing.assert_allclose(grad, [[-0.25, 0.0], [0.125, 0.125]], atol=1e-6)


def test_density_kl_is_the_mean_over_the_batch():
    p = np.array([[[0.5, 0.25], [0.125, 0.125]], [[0.1, 0.2], [0.3, 0.4]]])
    raw = [[1.0, 2.0], [3.0, 0.5]]
    both, _ = kl(p, raw)
    one = [num(kl(p[i], raw)[0]) for i in range(2)]
    assert num(both) == pytest.approx(np.mean(one), rel=1e-12)


def test_density_kl_through_an_upsampled_attention_map():
    """The batch upsamples the model's own grid to the input grid; gradients reach the parameters."""
    rng = np.random.default_rng(0)
    trainable = LinearTrainable(rng.normal(size=(3, 3 * 8 * 8)))
    human = rng.random((2, 8, 8))
    human /= human.sum(axis=(1, 2), keepdims=True)
    inputs = torch.from_numpy(rng.random((2, 3, 8, 8)))
    loss = al.density_kl(make_batch("density-kl", trainable, inputs, human, torch.tensor([0, 2])))
    assert loss.ndim == 0 and torch.isfinite(loss) and num(loss) > 0
    loss.backward()
    assert torch.isfinite(trainable.module.weight.grad).all() and trainable.module.weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------------------------
# rrr


def test_fixated_region_handmade():
    # masses 0.5, 0.3, 0.15, 0.05 placed out of raster order
    human = torch.tensor([[[0.15, 0.5], [0.05, 0.3]]])
    region = lambda mass: al.fixated_region(human, mass)[0].tolist()  # noqa: E731
    assert region(0.9) == [[True, True], [False, True]]  # 0.5 + 0.3 = 0.8 < 0.9 <= 0.95
    assert region(0.8) == [[False, True], [False, True]]  # exactly reached by two pixels
    assert region(0.5) == [[False, True], [False, False]]
    assert region(0.96) == [[True, True], [True, True]]
    assert region(1.0) == [[True, True], [True, True]]
    # unnormalised densities: the mass is a fraction of the total
    assert al.fixated_region(human * 7, 0.9)[0].tolist() == region(0.9)
    # a map summing to 0 marks no pixel irrelevant
    assert al.fixated_region(torch.zeros(1, 2, 2), 0.9).all()
    with pytest.raises(ValueError, match="mass"):
        al.fixated_region(human, 0.0)


def _region_numpy(d: np.ndarray, mass: float) -> np.ndarray:
    order = np.argsort(-d.ravel(), kind="stable")
    cum = np.cumsum(d.ravel()[order]) / d.sum()
    k = int(np.searchsorted(cum, mass)) + 1  # first index whose cumulative mass reaches `mass`
    region = np.zeros(d.size, dtype=bool)
    region[order[:k]] = True
    return region.reshape(d.shape)


def _linear_case(seed=0, b=3, classes=4, h=8, w=8):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(classes, 3 * h * w))
    bias = rng.normal(size=classes)
    inputs = rng.normal(size=(b, 3, h, w))
    human = rng.random((b, h, w)) ** 6  # peaked, no ties
    human /= human.sum(axis=(1, 2), keepdims=True)
    return weight, bias, inputs, human


def test_rrr_matches_the_analytic_input_gradient_of_a_linear_model():
    weight, bias, inputs, human = _linear_case()
    classes = weight.shape[0]
    z = inputs.reshape(len(inputs), -1) @ weight.T + bias
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    # d/dx sum_k log softmax_k(Wx + b) = sum_k W_k - C sum_k softmax_k W_k
    grad = (weight.sum(axis=0)[None] - classes * soft @ weight).reshape(inputs.shape)
    for mass in (0.9, 0.5):
        irrelevant = ~np.stack([_region_numpy(d, mass) for d in human])
        expected = np.mean([np.sum((irrelevant[n][None] * grad[n]) ** 2) for n in range(len(inputs))])
        trainable = LinearTrainable(weight, bias)
        loss = al.rrr(make_batch("rrr", trainable, torch.from_numpy(inputs), human), mass=mass)
        assert num(loss) == pytest.approx(expected, rel=1e-10)
        loss.backward()
        g = trainable.module.weight.grad
        assert torch.isfinite(g).all() and g.abs().sum() > 0  # double backprop reaches the weights


def test_rrr_is_zero_when_the_gradient_vanishes_outside_the_region():
    weight, bias, inputs, human = _linear_case(seed=1)
    region = np.stack([_region_numpy(d, 0.9) for d in human])
    common = region.all(axis=0)  # pixels fixated in every map of the batch
    assert common.any() and not common.all()
    masked = weight.reshape(len(weight), 3, 8, 8) * common[None, None]
    loss = al.rrr(make_batch("rrr", LinearTrainable(masked.reshape(len(weight), -1), bias),
                             torch.from_numpy(inputs), human))
    assert num(loss) == 0.0
    loss = al.rrr(make_batch("rrr", LinearTrainable(weight, bias), torch.from_numpy(inputs), human))
    assert num(loss) > 0


def test_rrr_is_a_mean_over_the_batch():
    weight, bias, inputs, human = _linear_case(seed=2)
    whole = num(al.rrr(make_batch("rrr", LinearTrainable(weight, bias), torch.from_numpy(inputs), human)))
    single = [num(al.rrr(make_batch("rrr", LinearTrainable(weight, bias), torch.from_numpy(inputs[i:i + 1]),
                                      human[i:i + 1]))) for i in range(len(inputs))]
    assert whole == pytest.approx(np.mean(single), rel=1e-12)


# --------------------------------------------------------------------------------------------
# harmonization: an independent numpy implementation of the authors' TensorFlow code


def _standardize_cut_np(m):
    return np.maximum((m - m.mean()) / (m.std() + 1e-5), 0.0)  # np.std: ddof 0, as tf.math.reduce_std


def _downsample_np(m):
    """tf.nn.conv2d(stride 2, padding "SAME") with the 5x5 binomial kernel, by explicit sums."""
    k1 = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = np.outer(k1, k1) / 256.0
    out_shape, before = [], []
    for n in m.shape:
        out = math.ceil(n / 2)
        total = max((out - 1) * 2 + 5 - n, 0)
        out_shape.append(out)
        before.append(total // 2)
    res = np.zeros(out_shape)
    for i in range(out_shape[0]):
        for j in range(out_shape[1]):
            for a in range(5):
                for b in range(5):
                    y, x = 2 * i + a - before[0], 2 * j + b - before[1]
                    if 0 <= y < m.shape[0] and 0 <= x < m.shape[1]:
                        res[i, j] += kernel[a, b] * m[y, x]
    return res


def _harmonization_np(saliency, human, levels=5, sal_max=None):
    s = _standardize_cut_np(saliency)
    h = _standardize_cut_np(human)
    h = h / (h.max() + 1e-6) * ((s.max() if sal_max is None else sal_max) + 1e-6)
    total = 0.0
    for _ in range(levels):
        total += np.mean((s - h) ** 2)
        s, h = _downsample_np(s), _downsample_np(h)
    return total / levels


def test_downsample_reproduces_tensorflow_same_padding():
    out = al.downsample(torch.ones(1, 8, 8, dtype=torch.float64))[0].numpy()
    assert out.shape == (4, 4)
    # n = 8: one zero row/column before, two after; output i reads inputs 2i-1 .. 2i+3
    assert out[0, 0] == pytest.approx((15 / 16) ** 2)  # tap at -1 (weight 1/16) is padding
    assert out[1, 1] == pytest.approx(1.0)
    assert out[3, 3] == pytest.approx((11 / 16) ** 2)  # taps at 8, 9 (weights 4/16, 1/16) are padding
    out = al.downsample(torch.ones(1, 7, 7, dtype=torch.float64))[0].numpy()
    assert out.shape == (4, 4) and out[0, 0] == pytest.approx((11 / 16) ** 2)  # n = 7: two and two


def test_pyramid_has_the_levels_asked():
    maps = torch.rand(2, 13, 10, dtype=torch.float64)
    levels = al.pyramid(maps, 5)
    assert [tuple(p.shape) for p in levels] == [(2, 13, 10), (2, 7, 5), (2, 4, 3), (2, 2, 2), (2, 1, 1)]
    assert levels[0] is maps
    assert len(al.pyramid(maps, 1)) == 1 and len(al.pyramid(maps, 7)) == 7
    with pytest.raises(ValueError, match="levels"):
        al.pyramid(maps, 0)


def _harmonization_case(seed=0, h=13, w=10, classes=3):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(classes, 3 * h * w))
    inputs = rng.normal(size=(2, 3, h, w))
    human = rng.random((2, h, w)) ** 4
    human /= human.sum(axis=(1, 2), keepdims=True)
    return weight, inputs, human, torch.tensor([2, 0])


@pytest.mark.parametrize("levels", [1, 3, 5])
def test_harmonization_matches_a_numpy_implementation(levels):
    weight, inputs, human, targets = _harmonization_case()
    trainable = LinearTrainable(weight)
    loss = al.harmonization(make_batch("harmonization", trainable, torch.from_numpy(inputs), human, targets),
                            levels=levels)
    # the saliency of a linear model is its target row; the channel reduction is the signed mean
    saliency = weight[targets.numpy()].reshape(2, 3, 13, 10).mean(axis=1)
    expected = np.mean([_harmonization_np(saliency[n], human[n], levels) for n in range(2)])
    assert num(loss) == pytest.approx(expected, rel=1e-9)
    loss.backward()
    g = trainable.module.weight.grad
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_harmonization_levels_one_is_the_plain_mse_of_the_standardized_maps():
    rng = np.random.default_rng(3)
    s, h = rng.normal(size=(1, 6, 6)), rng.random((1, 6, 6))
    loss = al.harmonization_from_saliency(torch.from_numpy(s), torch.from_numpy(h), levels=1)
    zs, zh = _standardize_cut_np(s[0]), _standardize_cut_np(h[0])
    zh = zh / (zh.max() + 1e-6) * (zs.max() + 1e-6)
    assert num(loss[0]) == pytest.approx(np.mean((zs - zh) ** 2), rel=1e-12)


@pytest.mark.parametrize("scale", [1.0, 5.0, 0.01])
def test_harmonization_is_zero_when_saliency_and_human_map_agree_up_to_scale(scale):
    rng = np.random.default_rng(4)
    pattern = rng.random((8, 8)) ** 3
    weight = rng.normal(size=(2, 3 * 64))
    weight[1] = scale * np.tile(pattern.ravel(), 3)  # the target row: the same pattern in every channel
    human = (pattern / pattern.sum())[None]
    batch = make_batch("harmonization", LinearTrainable(weight), torch.from_numpy(rng.normal(size=(1, 3, 8, 8))),
                       human, torch.tensor([1]))
    assert num(al.harmonization(batch)) < 1e-10
    # and not when they differ
    weight[1] = np.tile(rng.random(64), 3)
    batch = make_batch("harmonization", LinearTrainable(weight), torch.zeros(1, 3, 8, 8, dtype=torch.float64),
                       human, torch.tensor([1]))
    assert num(al.harmonization(batch)) > 1e-3


def test_harmonization_saliency_max_is_a_constant():
    """The gradient matches finite differences of the loss with the saliency's max held fixed
    (tf.stop_gradient in the authors' code), and not the one with the max free, at the peak pixel."""
    rng = np.random.default_rng(5)
    s, h = rng.normal(size=(6, 6)), rng.random((6, 6))
    sal = torch.from_numpy(s[None]).requires_grad_(True)
    al.harmonization_from_saliency(sal, torch.from_numpy(h[None]), levels=3).sum().backward()
    grad = sal.grad[0].numpy()
    frozen_max = _standardize_cut_np(s).max()
    peak = np.unravel_index(np.argmax(s), s.shape)
    step = 1e-6
    for pixel in [peak, (0, 0), (2, 3), (5, 1)]:
        plus, minus = s.copy(), s.copy()
        plus[pixel] += step
        minus[pixel] -= step
        frozen = (_harmonization_np(plus, h, 3, frozen_max) - _harmonization_np(minus, h, 3, frozen_max)) / (2 * step)
        assert grad[pixel] == pytest.approx(frozen, rel=1e-5, abs=1e-9)
        if pixel == peak:
            free = (_harmonization_np(plus, h, 3) - _harmonization_np(minus, h, 3)) / (2 * step)
            assert abs(free - frozen) > 1e-3


def test_harmonization_of_a_zero_saliency_is_finite():
    trainable = LinearTrainable(np.zeros((2, 3 * 16)))
    human = np.full((1, 4, 4), 1 / 16)
    human[0, 0, 0] = 0.5
    human /= human.sum()
    loss = al.harmonization(make_batch("harmonization", trainable, torch.ones(1, 3, 4, 4, dtype=torch.float64),
                                       human))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(trainable.module.weight.grad).all()


# --------------------------------------------------------------------------------------------
# registration, listing, declared needs


def test_losses_are_registered_with_their_needs():
    reg = get_registry()
    expected_needs = {"harmonization": ("input_gradients",), "rrr": ("input_gradients",),
                      "density-kl": ("attention",)}
    for name, needs in expected_needs.items():
        spec = reg.get("alignment-loss", name)
        assert spec.plugin == "alignment-losses"
        assert tuple(spec["needs"]) == needs
        assert spec.factory == f"plugins.alignment_losses:{NAMES[name]}"
        assert spec.resolve() is getattr(al, NAMES[name])
        assert spec["default_weight"] == (1e-7 if name == "rrr" else 1.0)
        assert spec["description"] and spec["citation"]


def test_registering_does_not_import_torch():
    code = ("import sys; import plugins.alignment_losses; from harness.plugins import get_registry; "
            "get_registry().get('alignment-loss', 'rrr'); assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_cli_lists_the_losses():
    runner = CliRunner()
    result = runner.invoke(main, ["alignment-losses", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert {"harmonization", "rrr", "density-kl"} <= set(rows)
    assert rows["density-kl"]["needs"] == ["attention"] and rows["rrr"]["needs"] == ["input_gradients"]
    assert all(rows[n]["plugin"] == "alignment-losses" for n in ("harmonization", "rrr", "density-kl"))
    text = runner.invoke(main, ["alignment-losses", "--wide"], catch_exceptions=False).output
    for name in ("harmonization", "rrr", "density-kl"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), text


def test_a_batch_without_the_declared_need_refuses():
    weight, bias, inputs, human = _linear_case()
    bare = AlignmentBatch(LinearTrainable(weight, bias), torch.from_numpy(inputs), torch.from_numpy(human),
                          torch.zeros(len(inputs), dtype=torch.long), needs=())
    with pytest.raises(RuntimeError, match=r"needs=\('input_gradients',\)"):
        al.rrr(bare)
    with pytest.raises(RuntimeError, match=r"needs=\('input_gradients',\)"):
        al.harmonization(bare)
    with pytest.raises(RuntimeError, match=r"needs=\('attention',\)"):
        al.density_kl(bare)


def test_human_maps_on_another_grid_are_refused():
    weight, bias, inputs, human = _linear_case()
    batch = make_batch("rrr", LinearTrainable(weight, bias), torch.from_numpy(inputs), human[:, :4, :4])
    with pytest.raises(ValueError, match="input grid"):
        al.rrr(batch)
