"""The human ceiling of one stimulus: how well the other observers predict each observer.

For each subject ``s`` with fixations, the metric suite scores the density of everyone else's
fixations (leave-one-subject-out, :func:`harness.data.density.loso_densities`) against ``s``'s
fixations, with ``s``'s own density (:func:`harness.data.density.fixation_density`) as the human
density of CC, SIM, KLD and IoU, the stimulus' centre-bias baseline, its other-image fixations and
the seed ``seed + i``; the stimulus' score is the mean over subjects (NaN ignored).
:func:`ceiling_scores` returns exactly, to the bit, what that computation written plainly returns
(one :func:`harness.evaluation.scoring.score` call per subject; ``tests/test_ceiling.py`` holds that
version), at a fraction of the cost (``benchmarks/ceiling.py``):

- one blur per subject serves both the subject's own density and the leave-one-out maps (prefix
  + suffix sums of the subjects' blurred fixations, one compiled sweep that also finds each own
  density's statistics and each sum's total; normalising a map finds its statistics too), so the
  metric suite reads each map only for the metrics (:class:`harness.data.density.LeaveOneOut`,
  :func:`harness.metrics.saliency.suite_of_known`);
- what the subjects' metric calls share is prepared once per stimulus
  (:class:`harness.metrics.SharedInputs`): the other images' fixations (sliced from the dataset's
  pool, converted to pixel indices, sorted and de-duplicated once), the baseline (validated and
  summed once);
- the maps live in a buffer reused from one stimulus to the next (per thread): fresh 4 MB arrays
  cost a thousand page faults each, ~2 ms on a virtual machine.
"""

from __future__ import annotations

import math
import threading

import numpy as np


_LOCAL = threading.local()


def _buffer(n_subjects: int, h: int, w: int) -> np.ndarray:
    """This thread's work array for a :class:`~harness.data.density.LeaveOneOut` of ``n_subjects``
    maps of h x w (grown when a stimulus needs more)."""
    from ..data.density import LeaveOneOut

    size = LeaveOneOut.buffer_size(n_subjects, (h, w))
    maps = getattr(_LOCAL, "maps", None)
    if maps is None or maps.size < size:
        maps = _LOCAL.maps = np.empty(size)
    return maps


def ceiling_scores(ctx, i: int, profile: str, seed: int, notes: list[str] | None = None) -> dict[str, float] | None:
    """The human ceiling's scores of stimulus ``i`` of ``ctx`` (a
    :class:`harness.evaluation.context.DatasetContext`), averaged over subjects; ``None`` when fewer
    than two subjects have fixations. Plugin metrics (``ctx.extra_metrics``) are called per subject
    with the same arguments as :func:`harness.evaluation.scoring.score` gives them; one that raises
    for any subject is NaN for the stimulus (a mean over the other subjects would be another
    quantity), and why goes to ``notes``."""
    from ..data.density import LeaveOneOut
    from ..metrics.saliency import suite_of_known
    from .scoring import _baseline_inputs, _baseline_map, plugin_scores

    fix = ctx.fixations[i]
    w, h = ctx.sizes[i]
    n_subjects = int(np.unique(fix.subject).size)
    if n_subjects < 2:
        LeaveOneOut(fix, (h, w), ctx.sigma(i))  # checks the fixations, as loso_densities did
        return None
    loo = LeaveOneOut(fix, (h, w), ctx.sigma(i), buffer=_buffer(n_subjects, h, w), lazy=True)
    baseline = _baseline_map(h, w)
    negatives = ctx.negatives(i)
    shared = _baseline_inputs(h, w).with_negatives(reused=True, **negatives)
    per_subject = []
    broken: dict[tuple[str, str], list] = {}  # (metric, why) -> the subjects it raised for
    for k, subject in enumerate(loo.subjects):
        held = fix.subset(fix.subject == subject)
        if len(held) == 0:
            continue
        smap = loo.map(k)  # normalised now: read from memory once, then from the cache
        density = loo.own(k)
        # both maps' statistics come from passes the sweep and the normalisation made anyway
        scores = suite_of_known(smap, held.x, held.y, density=density, known=(loo.map_stats(k), loo.own_stats(k)),
                                profile=profile, seed=seed + i, shared=shared)
        if ctx.extra_metrics:
            context = dict(density=density, baseline=baseline, profile=profile, **negatives)
            failures: dict[str, str] = {}
            scores.update(plugin_scores(ctx.extra_metrics, smap, held, seed + i, context, failures=failures))
            for name, why in failures.items():
                broken.setdefault((name, why), []).append(subject)
        per_subject.append(scores)
    if not per_subject:
        return None
    if notes is not None:
        from .scoring import metric_failure

        for (name, why), subjects in broken.items():
            word = "subject" if len(subjects) == 1 else "subjects"
            notes.append(metric_failure(name, why, f"{word} {', '.join(str(s) for s in subjects)}; "))
    nan = {name for name, _ in broken}
    return {key: math.nan if key in nan else _nanmean([s[key] for s in per_subject]) for key in per_subject[0]}


def _nanmean(values: list[float]) -> float:
    """``np.nanmean`` (the same bits), NaN without numpy's "Mean of empty slice" warning when every
    subject's value is NaN (the run's summary counts non-finite values already)."""
    a = np.asarray(values, dtype=np.float64)
    return math.nan if np.isnan(a).all() else float(np.nanmean(a))


def ceiling_per_subject(ctx, i: int, profile: str, seed: int) -> dict[str, float] | None:
    """The definition :func:`ceiling_scores` computes faster, one held-out subject at a time: the
    leave-one-out density scored against that subject's fixations, with the subject's own density
    for the distribution metrics, averaged over subjects. Kept as the reference the tests and
    ``benchmarks/ceiling.py`` compare with, bit for bit."""
    from ..data.density import fixation_density, loso_densities
    from .scoring import score

    w, h = ctx.sizes[i]
    fix = ctx.fixations[i]
    per_subject = []
    for subj, loo in loso_densities(fix, (h, w), ctx.sigma(i)):
        held = fix.subset(fix.subject == subj)
        if len(held) == 0:
            continue
        held_density = fixation_density(held.x, held.y, (h, w), ctx.sigma(i))
        per_subject.append(score(loo, held, ctx, i, profile, seed, density=held_density))
    if not per_subject:
        return None
    return {k: _nanmean([s[k] for s in per_subject]) for k in per_subject[0]}
