"""Scores of a calibrated density: log-likelihood, information gain, and every saliency metric on its
metric-specific map; the gold standard (leave-one-subject-out human density, calibrated the same
way) and the explained information gain.

Log-likelihood and information gain (Kuemmerer, Wallis & Bethge, PNAS 2015) are computed on the
density itself, every fixation counted (the likelihood of the data; the MIT profile's binary
fixation map would drop repeats), in bits per fixation:

- ``ll = mean_x log2 p(x) + log2(H * W)``: the gain over the uniform density;
- ``ig = mean_x log2 p(x) - log2 c(x)``: the gain over the centre-bias baseline ``c`` (the
  harness's IG baseline, ``plugins.models.baselines.center_bias_map``).

Explained information gain (as DeepGaze reports it): ``100 * IG_model / IG_gold`` in percent, both
averaged over the same stimuli, where the gold standard is the density of the *other* observers
(:func:`loso_inputs`: for each subject, everyone else's fixations blurred as the harness blurs them,
:class:`harness.data.density.LeaveOneOut`) calibrated with the same parameterisation, folds and fit.
The ratio is of means over stimuli (a per-stimulus ratio is unstable where the gold standard's gain
is small).
"""

from __future__ import annotations

import math
from typing import Iterable, Iterator, Sequence

import numpy as np

from .maps import METRIC_MAP, metric_maps

LN2 = math.log(2.0)
DISTRIBUTION_METRICS = ("cc", "kld", "sim", "iou_top20")


def _pixels(fix_x, fix_y, shape) -> tuple[np.ndarray, np.ndarray]:
    from ..metrics import pixel_indices

    flat = pixel_indices(fix_x, fix_y, shape)
    return np.divmod(flat, shape[1])


def log_likelihood_bits(density: np.ndarray, fix_x, fix_y, baseline: np.ndarray | None = None) -> float:
    """Mean log2 density at the fixations (every fixation counted), relative to ``baseline`` (a
    density of the same shape) or, without one, to the uniform density."""
    density = np.asarray(density, dtype=np.float64)
    r, c = _pixels(fix_x, fix_y, density.shape)
    if r.size == 0:
        return float("nan")
    ref = math.log2(density.size) if baseline is None else -np.log2(np.asarray(baseline, np.float64)[r, c])
    return float(np.mean(np.log2(density[r, c]) + ref))


def score_calibrated(density: np.ndarray, fix_x, fix_y, *, sigma_px: float, baseline: np.ndarray | None = None,
                     human_density: np.ndarray | None = None, other_x=None, other_y=None, other_index=None,
                     shuffled: np.ndarray | None = None, sim_fixations: int | None = None,
                     profile: str = "mit", seed: int = 0, factor: int = 8, metrics: Sequence[str] | None = None,
                     equalize: bool | None = None, sim_samples: int = 256) -> dict[str, float]:
    """Scores of one calibrated density ``density`` (e.g. :func:`harness.calibration.calibrated_density`)
    against the fixations ``(fix_x, fix_y)`` of its stimulus.

    Returns ``ll`` and ``ig`` (bits per fixation, see the module doc) and the harness metrics on the
    ECCV 2018 metric-specific maps (:func:`harness.calibration.maps.metric_maps`): ``auc_judd``,
    ``auc_borji``, ``nss`` always; ``sauc`` with ``other_x``/``other_y`` (the shuffled negatives,
    as the harness passes them) and ``shuffled`` (the model's mean density over other stimuli, e.g.
    ``harness.calibration.model.shuffled_density(fold_fit, shape)``; default the baseline);
    ``cc``, ``kld``, ``iou_top20`` with ``human_density``; ``sim`` with ``human_density`` and
    ``sim_fixations`` (the number of fixations the human density is made of; the SIM map depends on
    it). ``sigma_px``: the human density's blur (the CC/KLD/SIM maps model that empirical map).
    ``profile``: the harness metric profile (``mit`` or ``pysaliency``); ``equalize``: histogram-equalise
    the AUC-Borji and sAUC maps (default: for the ``mit`` profile, whose AUC-Borji and sAUC threshold at
    fixed steps; the pysaliency profile's exact ROC areas do not change under it).
    ``baseline``: the IG baseline (default the harness's centre bias). ``other_index``: the
    shuffled negatives as flat pixel indices instead of coordinates (as
    :func:`harness.metrics.pixel_indices` makes them, e.g.
    ``harness.evaluation.context.DatasetContext.other_pixels``)."""
    p = np.asarray(density, dtype=np.float64)
    return _score_calibrated(p, fix_x, fix_y, _negatives(p.shape, other_x, other_y, other_index), sigma_px=sigma_px,
                             baseline=baseline, human_density=human_density, shuffled=shuffled,
                             sim_fixations=sim_fixations, profile=profile, seed=seed, factor=factor, metrics=metrics,
                             equalize=equalize, sim_samples=sim_samples)


def _negatives(shape: tuple[int, int], other_x, other_y, other_index, reused: bool = False):
    """The shuffled negatives, validated and converted to pixel indices once (a
    :class:`harness.metrics.SharedInputs`), or None without any."""
    from ..metrics import SharedInputs

    if other_index is None and (other_x is None or other_y is None):
        return None
    return SharedInputs(shape, other_x=other_x, other_y=other_y, other_index=other_index, reused=reused)


def _score_calibrated(p: np.ndarray, fix_x, fix_y, negatives, *, sigma_px: float, baseline, human_density, shuffled,
                      sim_fixations, profile, seed, factor, metrics, equalize, sim_samples) -> dict[str, float]:
    """:func:`score_calibrated` with its negatives prepared (``negatives``: a
    :class:`harness.metrics.SharedInputs` or None), so that several maps of a stimulus share them."""
    from ..metrics import compute_suite

    shape = p.shape
    if baseline is None:
        from plugins.models.baselines import center_bias_map

        baseline = center_bias_map(*shape)
    out = {"ll": log_likelihood_bits(p, fix_x, fix_y), "ig": log_likelihood_bits(p, fix_x, fix_y, baseline)}
    if equalize is None:
        equalize = profile == "mit"
    wanted = ["auc_judd", "auc_borji", "nss"]
    if negatives is not None:
        wanted.append("sauc")
    if human_density is not None:
        wanted += ["cc", "kld", "iou_top20"]
        if sim_fixations is not None:
            wanted.append("sim")
    if metrics is not None:
        wanted = [m for m in wanted if m in metrics]
    keys = {METRIC_MAP[m] for m in wanted}
    maps = metric_maps(p, sigma_px=sigma_px, shuffled=baseline if shuffled is None else shuffled,
                       sim_fixations=sim_fixations, factor=factor, equalize=equalize, sim_samples=sim_samples,
                       seed=seed, which=keys)
    by_map: dict[str, list[str]] = {}
    for m in wanted:
        by_map.setdefault(METRIC_MAP[m], []).append(m)
    for key, names in by_map.items():
        # no metric here reads the baseline (IG is computed on the density above): only the
        # shuffled AUC's map needs the shared inputs, for its negatives
        shared = negatives if "sauc" in names else None
        dens = human_density if any(n in DISTRIBUTION_METRICS for n in names) else None
        out.update(compute_suite(maps[key], fix_x, fix_y, density=dens, profile=profile, seed=seed, metrics=names,
                                 shared=shared))
    return out


def explained_information_gain(ig_model: Iterable[float], ig_gold: Iterable[float]) -> float:
    """``100 * mean(ig_model) / mean(ig_gold)`` over the same stimuli (NaN pairs dropped), percent."""
    a = np.asarray(list(ig_model), dtype=np.float64)
    b = np.asarray(list(ig_gold), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} model values for {b.size} gold-standard values")
    ok = np.isfinite(a) & np.isfinite(b)
    return float(100.0 * a[ok].mean() / b[ok].mean()) if ok.any() else float("nan")


# --- the gold standard -----------------------------------------------------------------------------


def loso_items(fix, shape: tuple[int, int], sigma_px: float) -> Iterator[tuple[int, np.ndarray, object]]:
    """``(subject, density of everyone else, that subject's fixations)`` for each subject of one
    stimulus with fixations (the harness's leave-one-subject-out densities)."""
    from ..data.density import LeaveOneOut

    loo = LeaveOneOut(fix, shape, sigma_px, lazy=True)
    if loo.maps is None:
        return
    for k, subject in enumerate(loo.subjects):
        held = fix.subset(fix.subject == subject)
        if len(held):
            yield int(subject), np.array(loo.map(k)), held


def loso_inputs(fixations: Sequence, shapes: Sequence[tuple[int, int]], ids: Sequence[str],
                sigma_px: float | Sequence[float], factor: int = 8, prior=None):
    """The gold standard's fit inputs, prepared (:func:`harness.calibration.fit.prepare`): one map
    per (stimulus, subject), the leave-one-subject-out density, scored on that subject's fixations;
    folds by stimulus. Maps are downsampled as they are made (memory: one stimulus at a time).
    ``sigma_px``: one blur, or one per stimulus (datasets with per-stimulus geometry)."""
    from .fit import prepare

    map_ids: list[str] = []
    held_fix: list = []
    sigmas = [float(sigma_px)] * len(ids) if np.ndim(sigma_px) == 0 else [float(v) for v in sigma_px]

    def maps():
        for fix, shape, sid, sigma in zip(fixations, shapes, ids, sigmas):
            for _, dens, held in loso_items(fix, shape, sigma):
                map_ids.append(str(sid))
                held_fix.append(held)
                yield dens

    # prepare() takes each map's fixations right after the map, so the list is filled in time
    prep = prepare(maps(), _Lazy(held_fix), prior, factor=factor)
    prep.ids = list(map_ids)
    return prep


class _Lazy:
    """An iterator over a list that is filled while it is read (the fixations made with each map)."""

    def __init__(self, items: list):
        self.items = items
        self.k = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.k >= len(self.items):
            raise StopIteration
        self.k += 1
        return self.items[self.k - 1]


def score_gold(fix, shape: tuple[int, int], params, *, sigma_px: float, prior=None, other_x=None, other_y=None,
               other_index=None, shuffled: np.ndarray | None = None, profile: str = "mit", seed: int = 0,
               metrics: Sequence[str] | None = None, sim_fixations: int | None = None,
               sim_samples: int = 256) -> dict[str, float] | None:
    """The calibrated gold standard of one stimulus: for each subject, the leave-one-out density
    calibrated with ``params`` (the stimulus' fold), scored on the subject's fixations with the
    subject's own density as the human density (as the harness's human ceiling does). ``ll`` and
    ``ig`` pool every fixation of the stimulus (comparable with a model's per-stimulus values);
    the other metrics are means over subjects. ``metrics=()`` computes only ``ll`` and ``ig``.
    The shuffled negatives (``other_x``/``other_y`` or ``other_index``, as for
    :func:`score_calibrated`) are converted and sorted once for all subjects."""
    from ..data.density import fixation_density
    from .model import _prior, calibrated_log_density

    c = _prior(prior, shape)
    negatives = _negatives(tuple(shape), other_x, other_y, other_index, reused=True)
    lp_all, lc_all, per_subject = [], [], []
    for _, dens, held in loso_items(fix, shape, sigma_px):
        logp = calibrated_log_density(dens, params, c)
        r, col = _pixels(held.x, held.y, shape)
        lp_all.append(logp[r, col])
        lc_all.append(np.log(c[r, col]))
        if metrics is not None and len(metrics) == 0:
            continue
        own = fixation_density(held.x, held.y, shape, sigma_px)
        p = np.exp(logp)
        p /= p.sum()
        s = _score_calibrated(p, held.x, held.y, negatives, sigma_px=sigma_px, baseline=c, human_density=own,
                              shuffled=shuffled, sim_fixations=sim_fixations or len(held), profile=profile, seed=seed,
                              factor=params.factor, metrics=metrics, equalize=None, sim_samples=sim_samples)
        per_subject.append(s)
    if not lp_all:
        return None
    lp = np.concatenate(lp_all)
    lc = np.concatenate(lc_all)
    out = {"ll": float(np.mean(lp) / LN2 + math.log2(shape[0] * shape[1])), "ig": float(np.mean(lp - lc) / LN2)}
    if per_subject:
        for key in per_subject[0]:
            if key not in ("ll", "ig"):
                out[key] = float(np.nanmean([s[key] for s in per_subject]))
    return out
