"""ROC-area kernels shared by the AUC metrics. Plain functions over 1-D arrays; no validation here.

Three ROC constructions appear in the saliency literature:

- :func:`rank_auc`: every distinct value is a threshold, so the area equals the Mann-Whitney
  statistic P(positive > negative) + 0.5 P(positive == negative) (pysaliency ``general_roc``);
- :func:`judd_auc`: thresholds only at the positive values, negatives counted among all pixels
  (``AUC_Judd.m``);
- :func:`step_auc`: thresholds at a fixed step over [0, 1] (``AUC_Borji.m``, ``AUC_shuffled.m``).

Each is computed from counts (binary searches in sorted arrays), never by a per-threshold loop.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .inputs import MetricInputError


def rank_auc(positives: np.ndarray, sorted_negatives: np.ndarray) -> float:
    """Area under the full ROC curve of ``positives`` against ``sorted_negatives`` (ascending):
    the fraction of (positive, negative) pairs with the positive higher, ties counting half."""
    if positives.size == 0 or sorted_negatives.size == 0:
        return float("nan")
    below = np.searchsorted(sorted_negatives, positives, side="left")
    below_or_equal = np.searchsorted(sorted_negatives, positives, side="right")
    # integer sums are exact; one division at the end
    twice = 2 * int(below.sum()) + int((below_or_equal - below).sum())
    return twice / (2.0 * positives.size * sorted_negatives.size)


def rank_auc_counts(below: np.ndarray, equal: np.ndarray, n_negatives: int) -> float:
    """:func:`rank_auc` from each positive's count of negatives below it and equal to it."""
    if below.size == 0 or n_negatives == 0:
        return float("nan")
    twice = 2 * int(below.sum()) + int(equal.sum())
    return twice / (2.0 * below.size * n_negatives)


def judd_auc(
    fixated_values: np.ndarray,
    n: int,
    counts: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    rng: np.random.Generator | None = None,
) -> float:
    """``AUC_Judd.m``: thresholds at the fixated values (descending); at the i-th, tp = i / P and
    fp = (#pixels >= threshold - i) / (N - P); the curve runs from (0, 0) to (1, 1) and its area
    is the trapezoid rule. ``fixated_values`` holds one value per fixated pixel, ``n`` is the
    number of pixels and ``counts(values)`` says how many pixels lie below and how many equal
    each value (exact integer counts: a binary search in the sorted map, or
    :meth:`MetricInputs.s_counts`).

    With ``rng``, ties are broken uniformly at random, which is what the MATLAB jitter (uniform noise
    far smaller than any gap between distinct values) does: within a block of m equal pixels, the
    f fixated ones take a random f-subset of the m ranks. We draw those ranks instead of jittering
    and re-sorting the whole map. Without ``rng`` the formula runs on the values as they are.
    """
    p = fixated_values.size
    if p == 0 or n == p:
        return float("nan")
    i = np.arange(1, p + 1)
    if rng is None:
        thresholds = np.sort(fixated_values)[::-1]
        above = n - counts(thresholds)[0]
    else:
        values, fixated = np.unique(fixated_values, return_counts=True)
        values, fixated = values[::-1], fixated[::-1]
        below, block = counts(values)
        higher = n - (below + block)  # pixels strictly above the block
        rank = np.ones(p, dtype=np.int64)  # 1-based rank of each fixated pixel within its block
        start = np.concatenate(([0], np.cumsum(fixated)[:-1]))
        for b in np.flatnonzero(block > 1):  # only tied values need a draw
            rank[start[b] : start[b] + fixated[b]] = np.sort(rng.choice(block[b], fixated[b], replace=False)) + 1
        above = np.repeat(higher, fixated) + rank
    tp = np.concatenate(([0.0], i / p, [1.0]))
    fp = np.concatenate(([0.0], (above - i) / (n - p), [1.0]))
    return float(np.trapezoid(tp, fp))


def step_thresholds(step: float) -> np.ndarray:
    """``0:step:1``, the thresholds over a map rescaled to [0, 1], as ``k * step`` (MATLAB's colon
    computes its upper half down from the end, which can differ in the last bit: it matters only for
    a value exactly on a threshold)."""
    if not 0 < step <= 1:
        raise MetricInputError(f"step_size must be in (0, 1], got {step}")
    return step * np.arange(int(np.floor(1.0 / step + 1e-9)) + 1)


def counts_at_or_above(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many of ``sorted_values`` (ascending) are >= each threshold."""
    return sorted_values.size - np.searchsorted(sorted_values, thresholds, side="left")


def step_auc(tp: np.ndarray, fp: np.ndarray) -> float:
    """Area of the curve through (0, 0), the points (fp[j], tp[j]) for thresholds in *descending*
    order, and (1, 1) (``AUC_Borji.m``). ``fp`` may be the mean false-positive rate over random
    splits: the area is linear in ``fp``, so the area of the mean equals the mean of the areas."""
    tp = np.concatenate(([0.0], tp[::-1], [1.0]))
    fp = np.concatenate(([0.0], fp[::-1], [1.0]))
    return float(np.trapezoid(tp, fp))


def sampled_fp(
    counts_ge: np.ndarray,
    n_sample: int,
    n_splits: int | None,
    rng: np.random.Generator,
    replace: bool,
) -> np.ndarray:
    """Mean false-positive rate per threshold over ``n_splits`` random draws of ``n_sample``
    negatives from a pool whose counts at-or-above each threshold are ``counts_ge``.

    MATLAB draws the negatives one by one and bins them; only the per-bin counts matter, so we draw
    the counts directly: multinomial for sampling with replacement (AUC_Borji.m: ``randi`` over all
    pixels), multivariate hypergeometric without (AUC_shuffled.m: ``randperm`` of the other
    fixation locations). Same distribution, no per-sample work. ``n_splits=None`` returns the exact
    expectation (the pool's own rate), which is what infinitely many splits converge to.
    """
    pool = int(counts_ge[0])
    if n_splits is not None and (int(n_splits) != n_splits or n_splits < 1):
        raise MetricInputError(f"n_splits must be a positive integer or None, got {n_splits}")
    if n_splits is None:
        return counts_ge / pool
    bins = np.append(counts_ge[:-1] - counts_ge[1:], counts_ge[-1])  # bin j: [t_j, t_{j+1})
    if replace:
        draws = rng.multinomial(n_sample, bins / pool, size=n_splits)
    else:
        draws = rng.multivariate_hypergeometric(bins, n_sample, size=n_splits)
    draws_ge = np.cumsum(draws[:, ::-1], axis=1)[:, ::-1]
    return draws_ge.mean(axis=0) / n_sample
