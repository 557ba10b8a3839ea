"""Grad-CAM against hand-computed answers and against captum; the stimulus-resolution resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.attention.gradcam import grad_cam, grad_cam_with_logits
from harness.attention.resize import crop_box, to_stimulus


def _tiny_net(inplace: bool = False) -> tuple[nn.Sequential, nn.Module]:
    """x (1 channel) -> 1x1 conv with weights [1, -1] -> ReLU -> global average pool -> linear.

    The ReLU's output A has channels A0 = relu(x), A1 = relu(-x).
    """
    conv = nn.Conv2d(1, 2, kernel_size=1, bias=False)
    relu = nn.ReLU(inplace=inplace)
    fc = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).reshape(2, 1, 1, 1))
        fc.weight.copy_(torch.tensor([[2.0, 1.0], [-1.0, 3.0]]))
    net = nn.Sequential(conv, relu, nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()
    return net, relu


X = torch.tensor([[1.0, 2.0], [3.0, -4.0]]).reshape(1, 1, 2, 2)


def test_known_answer_by_hand():
    # A0 = [[1, 2], [3, 0]], A1 = [[0, 0], [0, 4]]; mean(A0) = 1.5, mean(A1) = 1.
    # logits: y0 = 2*1.5 + 1*1 = 4, y1 = -1*1.5 + 3*1 = 1.5 -> top-1 is class 0.
    # dy_c/dA_kij = W_ck / 4, so alpha = W_c / 4:
    #   class 0: alpha = (0.5, 0.25); map = relu(0.5*A0 + 0.25*A1) = [[0.5, 1], [1.5, 1]]
    #   class 1: alpha = (-0.25, 0.75); map = relu(-0.25*A0 + 0.75*A1) = [[0, 0], [0, 3]]
    net, layer = _tiny_net()
    maps, targets, logits = grad_cam_with_logits(net, layer, X)
    assert logits.tolist() == [[4.0, 1.5]]
    assert targets.tolist() == [0]
    assert maps.shape == (1, 2, 2)
    assert maps[0].tolist() == [[0.5, 1.0], [1.5, 1.0]]

    maps, targets = grad_cam(net, layer, X, [1])
    assert targets.tolist() == [1]
    assert maps[0].tolist() == [[0.0, 0.0], [0.0, 3.0]]


def test_batch_with_per_image_targets():
    # Second image is 2*X: activations double, alphas do not, so its class-0 map doubles.
    net, layer = _tiny_net()
    maps, targets = grad_cam(net, layer, torch.cat([X, 2 * X]), torch.tensor([1, 0]))
    assert targets.tolist() == [1, 0]
    assert maps[0].tolist() == [[0.0, 0.0], [0.0, 3.0]]
    assert maps[1].tolist() == [[1.0, 2.0], [3.0, 2.0]]


def test_in_place_op_after_layer_does_not_corrupt_activation():
    # Hook the conv (pre-ReLU A = [x, -x]) and follow it by an in-place ReLU.
    # dy0/dA_kij = W_0k/4 * [A_kij > 0]: channel 0 alive at 3 of 4 cells, channel 1 at 1 of 4.
    # alpha = (2 * 3/4 / 4, 1 * 1/4 / 4) = (0.375, 0.0625)
    # map = relu(0.375 * x - 0.0625 * x) = relu(0.3125 * x) = [[0.3125, 0.625], [0.9375, 0]]
    net, _ = _tiny_net(inplace=True)
    maps, targets = grad_cam(net, net[0], X)
    assert targets.tolist() == [0]
    assert torch.allclose(maps[0], torch.tensor([[0.3125, 0.625], [0.9375, 0.0]]))


def test_matches_captum_layer_gradcam():
    from captum.attr import LayerGradCam

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 32),
        nn.Tanh(),  # a non-linear head: Grad-CAM is no longer plain CAM
        nn.Linear(32, 10),
    ).eval()
    layer = net[3]
    x = torch.randn(4, 3, 12, 12)
    targets = [3, 0, 9, 3]
    ours, used = grad_cam(net, layer, x, targets)
    reference = LayerGradCam(net, layer).attribute(x, target=targets, relu_attributions=True)
    assert used.tolist() == targets
    assert ours.shape == (4, 6, 6)
    assert torch.allclose(ours, reference[:, 0], atol=1e-6)
    assert ours.abs().sum() > 0

    top1, used = grad_cam(net, layer, x)
    assert used.tolist() == net(x).argmax(1).tolist()
    reference = LayerGradCam(net, layer).attribute(x, target=used, relu_attributions=True)
    assert torch.allclose(top1, reference[:, 0], atol=1e-6)


def test_frozen_parameters_and_no_grad_context():
    net, layer = _tiny_net()
    net.requires_grad_(False)
    with torch.no_grad():
        maps, _ = grad_cam(net, layer, X)
    assert maps[0].tolist() == [[0.5, 1.0], [1.5, 1.0]]


def test_layer_that_runs_twice_is_refused():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 2, 1), relu, nn.Conv2d(2, 2, 1), relu, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with pytest.raises(ValueError, match="ran 2 times"):
        grad_cam(net, relu, X)


def test_bad_targets_are_refused():
    net, layer = _tiny_net()
    with pytest.raises(ValueError, match="2 Grad-CAM targets for a batch of 1"):
        grad_cam(net, layer, X, [0, 1])
    with pytest.raises(ValueError, match="outside 0..1"):
        grad_cam(net, layer, X, [2])


# -- resize -------------------------------------------------------------------------------------


@pytest.mark.parametrize("src,dst", [((7, 7), (600, 800)), ((5, 3), (17, 11)), ((9, 9), (9, 9)), ((4, 6), (2, 3))])
def test_to_stimulus_equals_torch_bilinear(src, dst):
    rng = np.random.default_rng(1)
    m = rng.random(src)
    ours = to_stimulus(m, *dst)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(m)[None, None], size=dst, mode="bilinear", align_corners=False
    )[0, 0].numpy()
    assert ours.shape == dst and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_to_stimulus_known_values_and_batch():
    # 1x2 map [0, 1] onto 1x4 pixels: source coords (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    # clamped to [0, 1] -> values 0, 0.25, 0.75, 1.
    np.testing.assert_allclose(to_stimulus([[0.0, 1.0]], 1, 4), [[0.0, 0.25, 0.75, 1.0]])
    batch = np.stack([np.full((7, 7), 2.0), np.arange(49.0).reshape(7, 7)])
    out = to_stimulus(batch, 60, 80)
    assert out.shape == (2, 60, 80)
    np.testing.assert_allclose(out[0], 2.0)
    assert out[1].min() >= 0 and out[1].max() <= 48


def test_to_stimulus_box_pastes_into_window():
    # a constant 1x1 map covering (left=2, top=1, right=6, bottom=3) of a 4x8 stimulus:
    # pixel centres x + 0.5 in [2, 6] -> x = 2..5; y + 0.5 in [1, 3] -> y = 1, 2
    out = to_stimulus([[5.0]], 4, 8, box=(2, 1, 6, 3), fill=-1.0)
    expected = np.full((4, 8), -1.0)
    expected[1:3, 2:6] = 5.0
    np.testing.assert_array_equal(out, expected)


def test_crop_box_hf_resize_then_centre_crop():
    # 800x600 stimulus, shortest edge -> 256 gives (256, 341); centre crop 224:
    # top = (256 - 224) // 2 = 16, left = (341 - 224) // 2 = 58
    box = crop_box(600, 800, resized=(256, 341), crop=(224, 224))
    np.testing.assert_allclose(box, (58 * 800 / 341, 16 * 600 / 256, 282 * 800 / 341, 240 * 600 / 256))
    out = to_stimulus(np.ones((7, 7)), 600, 800, box=box)
    assert out[300, 400] == 1.0 and out[0, 0] == 0.0 and out[300, 100] == 0.0
    # the covered window is (about) the crop's share of the stimulus
    assert abs(out.mean() - (224 / 256) * (224 / 341)) < 0.01


def test_to_stimulus_rejects_bad_shapes():
    with pytest.raises(ValueError):
        to_stimulus(np.ones(5), 10, 10)
    with pytest.raises(ValueError):
        to_stimulus(np.ones((2, 2)), 0, 10)


def test_layer_off_the_logit_path_is_refused():
    net, _ = _tiny_net()
    side = nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="ran 0 times"):
        grad_cam(net, side, X)
    with pytest.raises(ValueError, match="do not depend on Grad-CAM layer"):
        grad_cam(lambda x: (side(x), net(x))[1], side, X)
