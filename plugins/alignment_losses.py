"""Built-in alignment losses for ``harness align``: ``harmonization``, ``rrr`` and ``density-kl``.

Each is a plain function ``loss(batch, **params) -> scalar tensor`` over an
:class:`harness.alignment.batch.AlignmentBatch`; it returns the alignment term only (the trainer adds
the task term and the weight), lower is better aligned, and it is the mean over the batch so that the
batch size does not change its scale. Notation: ``B`` maps of ``H x W`` pixels on the model's input
grid; ``h`` is ``batch.human`` (each map sums to 1); ``g = batch.input_gradients(...)`` is
(B, 3, H, W); ``a = batch.attention()`` is (B, H, W), non-negative.

``harmonization`` -- the neural harmonizer of Fel, Felipe, Linsley & Serre, "Harmonizing the object
recognition strategies of deep neural networks with humans", NeurIPS 2022 (arXiv:2211.04533)::

    s      = mean_c  d logit_target / d x_c                  (signed mean over colour channels)
    z(m)   = relu((m - mean(m)) / (std(m) + 1e-5))           ("standardize-cut", per map, population std)
    zs     = z(s)
    zh     = z(h) / (max z(h) + 1e-6) * (stopgrad(max zs) + 1e-6)
    loss_b = 1/L sum_{l<L} mean_pixels (P_l(zs) - P_l(zh))^2  (P_0 = the map, P_{l+1} = down(P_l))
    down   = 5x5 binomial blur ([1,4,6,4,1] outer itself / 256), stride 2, TensorFlow "SAME" zero padding

  Every choice follows the authors' released TensorFlow code, github.com/serre-lab/Harmonization,
  ``harmonization/training/loss.py`` (``harmonizer_loss``, ``standardize_cut``,
  ``pyramidal_mse_with_tokens``, ``_mse_with_tokens``) and ``harmonization/training/pyramid.py``
  (``pyramidal_representation``, ``_downsample``, ``_binomial_kernel``):

  - saliency: gradient of ``sum(y_pred * one_hot(labels))`` (the target logit; ``y_pred`` are logits,
    their cross-entropy is ``from_logits=True``) w.r.t. the input, then ``tf.reduce_mean(.., -1)``:
    the *signed* mean over the colour channels (no absolute value);
  - standardize-cut: ``tf.reduce_mean`` / ``tf.math.reduce_std`` over the spatial axes, i.e. the
    population std (ddof 0; an unofficial PyTorch port uses ``torch.std``, ddof 1, which we do not),
    ``epsilon=1e-5`` added to the std, then ReLU;
  - rescaling: the human map is divided by its own max ``+ 1e-6`` and multiplied by the saliency's
    max under ``tf.stop_gradient`` ``+ 1e-6``;
  - pyramid: ``pyramidal_representation(x, 5)`` builds the map plus 5 downsamplings, but the loss
    averages the MSE over ``range(nb_levels)``, the first 5 of them: the full-resolution map and 4
    downsampled ones. ``levels`` here is that ``nb_levels``: we build ``levels`` maps, the first the
    map itself. Downsampling is ``tf.nn.conv2d(strides=2, padding="SAME")`` with the normalised 5x5
    binomial kernel; "SAME" pads with zeros, ``out = ceil(n/2)``, total pad ``max((out-1)*2 + 5 - n,
    0)`` split with the smaller half *before* (1 before, 2 after for an even ``n``), which we
    reproduce exactly rather than ``padding=2`` (that shifts the sampling grid by a pixel on even sizes);
  - MSE: ``tf.reduce_mean`` over batch and pixels at each level, then the mean over levels. Their
    per-image ``tokens`` weight (0 for images without a ClickMe map) is 1 here: every stimulus in a
    batch has a human map, so the mean over the batch of each map's loss is the same number.

  One numerical guard of ours: the std is ``sqrt(max(var, 1e-24))``, so a constant map (a model
  whose saliency is exactly zero) gives a zero gradient instead of the NaN of ``d sqrt(v)/dv`` at
  ``v = 0``; since ``1e-12`` is far below the ``1e-5`` epsilon, no other value changes.

``rrr`` -- "right for the right reasons", Ross, Hughes & Doshi-Velez, "Right for the Right Reasons:
Training Differentiable Models by Constraining their Explanations", IJCAI 2017 (arXiv:1703.03717),
the right-reasons term of their eq. 1::

    loss = 1/B sum_n sum_d (A_nd * d/dx_nd sum_k log yhat_nk)^2

  ``d`` runs over every input dimension (pixel x colour channel). ``A`` is 1 on the pixels the
  annotation marks irrelevant; here the *relevant* pixels are where people looked: per map, the
  smallest set of pixels holding ``mass`` of the human density (pixels sorted by density, descending,
  ties in raster order; the prefix whose cumulative mass first reaches ``mass``), and ``A`` is 1 on
  every other pixel, in all 3 channels. ``A`` is a constant (no gradient through the human map). The
  paper sums over the examples ``n``; we take the mean, so the weight does not depend on the batch
  size. A human map summing to 0 marks nothing irrelevant (``A = 0``, loss 0).

``density-kl`` -- the KL divergence of the model's attention from the human density, in nats, as
saliency benchmarks score it (Bylinskii, Judd, Oliva, Torralba & Durand, "What do different evaluation
metrics tell us about saliency models?", TPAMI 41(3), 2019, arXiv:1604.03605; MIT benchmark
``KLdiv.m``)::

    p = h / sum(h),   q = a / sum(a)   (per map; an all-zero ``a`` is read as the uniform map)
    loss_b = sum_pixels p * log(eps + p / (q + eps))

  We use the benchmark's regularised form rather than ``sum p (log p - log(q + eps))``: it is the
  formula of ``harness eval``'s ``kld`` metric (:func:`harness.metrics.saliency.kld`; there on the
  stimulus' pixels, here on the input grid, and with another ``eps``: below), so the training loss
  follows the evaluation score, and it needs no ``0 log 0`` special case (a
  pixel with ``p = 0`` contributes ``0 * log(eps)`` = 0). ``eps`` defaults to 1e-8 rather than the
  benchmark's MATLAB eps (2.2e-16): in float32 2.2e-16 vanishes next to any q above ~1e-9, and where
  q = 0 it would leave gradients of size p / eps ~ 1e15; with 1e-8 the loss of a map with q = 0
  under the human mass is bounded (``log(p / 1e-8)`` per unit mass) and its gradient finite. So the
  two numbers agree (~1e-4) only where the map has mass under the human density: a Grad-CAM that is
  zero on 10% of an OSIE stimulus gave 1.27 here and 1.56 as eval's ``kld`` (measured). The
  all-zero attention map is read as uniform, as ``harness eval`` reads a constant map, and never as
  ``0 / 0``. Identical distributions give ``sum p log(eps + p/(p+eps))`` ~ ``-(N - 1) eps`` over N
  pixels (-5e-4 on a 224 x 224 grid): the loss can go slightly below 0.

Registration imports nothing: the hook names the functions by ``"module:attr"`` string, and torch is
imported inside the functions, so ``harness alignment-losses`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.hookspecs import hookimpl

if TYPE_CHECKING:
    from torch import Tensor

    from harness.alignment.batch import AlignmentBatch

_MODULE = "plugins.alignment_losses"

STANDARDIZE_EPS = 1e-5  # serre-lab/Harmonization loss.py, standardize_cut(epsilon=1e-5)
MAX_EPS = 1e-6  # loss.py, harmonizer_loss: "+ 1e-6" on both maxima
_MIN_VAR = 1e-24  # our guard: std >= 1e-12, far below STANDARDIZE_EPS


# --------------------------------------------------------------------------------------------
# harmonization


def standardize_cut(maps: "Tensor", eps: float = STANDARDIZE_EPS) -> "Tensor":
    """(B, H, W) -> relu((m - mean) / (std + eps)) per map, std with ddof 0 (``tf.math.reduce_std``)."""
    import torch

    mean = maps.mean(dim=(1, 2), keepdim=True)
    var = ((maps - mean) ** 2).mean(dim=(1, 2), keepdim=True)
    std = torch.sqrt(var.clamp_min(_MIN_VAR))
    return torch.relu((maps - mean) / (std + eps))


def _same_padding(n: int, kernel: int = 5, stride: int = 2) -> tuple[int, int]:
    """TensorFlow's ``padding="SAME"``: (before, after) zeros along one axis of length ``n``."""
    out = -(-n // stride)
    total = max((out - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def _binomial_kernel(dtype, device) -> "Tensor":
    import torch

    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=torch.float64)
    k2 = torch.outer(k, k)
    return (k2 / k2.sum()).to(dtype=dtype, device=device)[None, None]


def downsample(maps: "Tensor") -> "Tensor":
    """(B, H, W) -> (B, ceil(H/2), ceil(W/2)): binomial blur, stride 2, TF "SAME" zero padding."""
    import torch.nn.functional as F

    top, bottom = _same_padding(maps.shape[-2])
    left, right = _same_padding(maps.shape[-1])
    x = F.pad(maps[:, None], (left, right, top, bottom))
    return F.conv2d(x, _binomial_kernel(maps.dtype, maps.device), stride=2)[:, 0]


def pyramid(maps: "Tensor", levels: int) -> list["Tensor"]:
    """``levels`` maps: ``maps`` itself, then each the :func:`downsample` of the previous."""
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    out = [maps]
    for _ in range(int(levels) - 1):
        out.append(downsample(out[-1]))
    return out


def harmonization_from_saliency(saliency: "Tensor", human: "Tensor", levels: int = 5) -> "Tensor":
    """(B, H, W) per-map harmonization losses of channel-reduced saliency maps against human maps."""
    import torch

    sal = standardize_cut(saliency)
    hum = standardize_cut(human.to(dtype=saliency.dtype, device=saliency.device))
    hum_max = hum.amax(dim=(1, 2), keepdim=True) + MAX_EPS
    # tf.stop_gradient in the authors' code; our reading of why: the human target is scaled to the
    # saliency's peak, and a free peak would let the loss shrink target and saliency together
    # instead of moving the saliency toward the human map
    sal_max = sal.detach().amax(dim=(1, 2), keepdim=True) + MAX_EPS
    hum = hum / hum_max * sal_max
    per_level = [((a - b) ** 2).mean(dim=(1, 2)) for a, b in zip(pyramid(sal, levels), pyramid(hum, levels))]
    return torch.stack(per_level).mean(dim=0)


def harmonization(batch: "AlignmentBatch", levels: int = 5) -> "Tensor":
    """Fel et al. 2022's pyramidal MSE between the standardize-cut target-logit saliency and the
    standardize-cut human map rescaled to the saliency's peak (see the module docstring)."""
    grads = batch.input_gradients("target")
    _check_grid(grads, batch.human)
    saliency = grads.mean(dim=1)  # signed channel mean, tf.reduce_mean(sa_maps, -1)
    return harmonization_from_saliency(saliency, batch.human, levels).mean()


# --------------------------------------------------------------------------------------------
# right for the right reasons


def fixated_region(human: "Tensor", mass: float = 0.9) -> "Tensor":
    """(B, H, W) bool: per map, the smallest set of pixels holding ``mass`` of the density.

    Pixels sorted by density, descending (ties in raster order); the region is the prefix whose
    cumulative mass first reaches ``mass`` of the map's total (to float32 precision: a cumulative mass
    within 1e-6 of ``mass`` counts as reaching it). A map summing to 0 gives the full grid.
    """
    import torch

    if not 0.0 < float(mass) <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    with torch.no_grad():
        flat = human.detach().reshape(human.shape[0], -1).to(torch.float64)
        order = torch.sort(flat, dim=1, descending=True, stable=True).indices
        total = flat.sum(dim=1, keepdim=True)
        cum = torch.cumsum(torch.gather(flat, 1, order), dim=1) / torch.where(total > 0, total, 1.0)
        # +1: the pixel whose density carries the cumulative mass across `mass` is needed to hold it
        count = (cum < float(mass) - 1e-6).sum(dim=1, keepdim=True) + 1
        count = torch.where(total > 0, count.clamp_max(flat.shape[1]), flat.shape[1])
        ranks = torch.arange(flat.shape[1], device=flat.device).expand_as(flat)
        in_region = torch.zeros_like(flat, dtype=torch.bool)
        in_region.scatter_(1, order, ranks < count)
    return in_region.reshape(human.shape)


def rrr(batch: "AlignmentBatch", mass: float = 0.9) -> "Tensor":
    """Ross et al. 2017's right-reasons term: squared input gradients of the summed
    log-probabilities outside the human-fixated region, summed over pixels and channels, mean over
    the batch."""
    grads = batch.input_gradients("log_probs")
    _check_grid(grads, batch.human)
    irrelevant = (~fixated_region(batch.human, mass)).to(grads.dtype)[:, None]  # A, constant
    return ((irrelevant * grads) ** 2).sum(dim=(1, 2, 3)).mean()


# --------------------------------------------------------------------------------------------
# KL divergence of the attention from the human density


def kl_from_maps(human: "Tensor", attention: "Tensor", eps: float = 1e-8) -> "Tensor":
    """(B,) ``sum p log(eps + p / (q + eps))``, p and q the maps divided by their sums (an all-zero
    attention map read as uniform, an all-zero human map as contributing 0)."""
    import torch

    a = attention.reshape(attention.shape[0], -1)
    p = human.to(dtype=a.dtype, device=a.device).reshape(a.shape)
    p_total = p.sum(dim=1, keepdim=True)
    p = p / torch.where(p_total > 0, p_total, torch.ones_like(p_total))
    a_total = a.sum(dim=1, keepdim=True)
    # a NaN total is not "no mass": it goes through the division, so the loss is NaN and the trainer
    # stops (read as uniform, a NaN map trained toward nothing with a finite loss)
    has_mass = (a_total > 0) | torch.isnan(a_total)
    # dividing by 1 where the map is all zero keeps the unused branch (and its gradient) finite
    q = torch.where(has_mass, a / torch.where(has_mass, a_total, torch.ones_like(a_total)),
                    torch.full_like(a, 1.0 / a.shape[1]))
    return (p * torch.log(eps + p / (q + eps))).sum(dim=1)


def density_kl(batch: "AlignmentBatch", eps: float = 1e-8) -> "Tensor":
    """KL(human density || attention / sum(attention)) in nats, the saliency benchmark's regularised
    form (see the module docstring), mean over the batch."""
    attention = batch.attention()
    _check_grid(attention, batch.human)
    return kl_from_maps(batch.human, attention, eps).mean()


def _check_grid(maps: "Tensor", human: "Tensor") -> None:
    if tuple(maps.shape[-2:]) != tuple(human.shape[-2:]) or maps.shape[0] != human.shape[0]:
        raise ValueError(f"human maps {tuple(human.shape)} do not match the model's maps {tuple(maps.shape)}: "
                         "expected (B, H, W) on the input grid")


# --------------------------------------------------------------------------------------------
# registration (imports nothing)


@hookimpl
def register_alignment_losses(register):
    register(
        "harmonization",
        f"{_MODULE}:harmonization",
        needs=("input_gradients",),
        description=(
            "Neural harmonizer: pyramidal MSE (5 levels) between the standardize-cut gradient of the "
            "target logit (mean over colour channels) and the standardize-cut human map rescaled to "
            "its peak; as the authors' code (serre-lab/Harmonization)."
        ),
        citation="Fel, Felipe, Linsley & Serre, NeurIPS 2022, arXiv:2211.04533",
        default_weight=1.0,
    )
    register(
        "rrr",
        f"{_MODULE}:rrr",
        needs=("input_gradients",),
        description=(
            "Right for the right reasons: squared input gradient of the summed log-probabilities "
            "outside the pixels holding 90% of the human density, summed over pixels and channels."
        ),
        citation="Ross, Hughes & Doshi-Velez, IJCAI 2017, arXiv:1703.03717 (eq. 1)",
        # the sum of squared gradients of 1000 log-probabilities over 224x224x3 inputs is large:
        # 5.7e7 at the start on efficientnet-lite0 and OSIE (measured), so 1e-7 brings the term to
        # the order of the others; the paper, too, sets its lambda_1 per dataset
        default_weight=1e-7,
    )
    register(
        "density-kl",
        f"{_MODULE}:density_kl",
        needs=("attention",),
        description=(
            "KL divergence of the model's own attention (divided by its sum) from the human density, "
            "nats, as the MIT benchmark's KLdiv: sum p log(eps + p/(q+eps))."
        ),
        citation="Bylinskii, Judd, Oliva, Torralba & Durand, TPAMI 2019, arXiv:1604.03605",
        default_weight=1.0,
    )
