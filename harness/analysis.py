"""Alignment versus task success (Lai et al. 2019, arXiv 1906.08764, section 5).

Per run: mean alignment on correctly vs incorrectly solved stimuli, each with a bootstrap 95%
confidence interval, and Spearman's rank correlation between per-stimulus alignment and the
per-stimulus task score. Across runs of one dataset and task: the rank correlation between each
model's mean alignment and its task performance.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np

N_BOOTSTRAP = 2000


def bootstrap_ci(values: np.ndarray, *, seed: int = 0, n: int = N_BOOTSTRAP, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap CI of the mean; NaNs when there is nothing to resample (the
    interval of one value too: every resample is that value, and a width of 0 would claim certainty
    from a single observation). Several values that are all equal (the uniform map's NSS of 0 on
    every stimulus) do get the zero-width interval: that is the percentile bootstrap's answer, and
    there each observation agrees."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    if values.size == 1:
        return float(values[0]), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(values.mean()), float(lo), float(hi)


#: up to this many pairs Spearman's p-value is exact (every one of the n! pairings; 8! = 40,320)
EXACT_SPEARMAN = 8


@functools.lru_cache(maxsize=None)
def _pairings(n: int) -> np.ndarray:
    """Every permutation of ``range(n)``, one a row (made once per ``n``: a report asks for the
    same ``n`` once per metric)."""
    from itertools import permutations

    perms = np.array(list(permutations(range(n))), dtype=np.intp)
    perms.setflags(write=False)
    return perms


def spearman(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, int]:
    """Spearman's rho, its two-sided p-value, and n (pairs with a NaN dropped).

    The p-value is exact for ``n <= 8`` (the share of the ``n!`` pairings of the two rank vectors
    whose rho is at least as far from 0; ties keep their average ranks), and scipy's t
    approximation above. The approximation is far too small for the few models ``across_models``
    ranks: rho = 1 on 3 or 4 models gives p = 0 there, where the exact p is 1/3 and 1/12."""
    from scipy.stats import rankdata, spearmanr

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    n = int(keep.sum())
    if n < 3 or np.ptp(a[keep]) == 0 or np.ptp(b[keep]) == 0:
        return math.nan, math.nan, n
    res = spearmanr(a[keep], b[keep])
    rho, p = float(res.statistic), float(res.pvalue)
    if n <= EXACT_SPEARMAN:
        ra, rb = rankdata(a[keep]), rankdata(b[keep])
        ra, rb = ra - ra.mean(), rb - rb.mean()
        perms = _pairings(n)
        rhos = (rb[perms] @ ra) / math.sqrt(float(ra @ ra) * float(rb @ rb))
        p = float(np.count_nonzero(np.abs(rhos) >= abs(rho) - 1e-12)) / len(perms)
    return rho, p, n


def _task_score_column(columns: Sequence[str], score: str | None = None) -> str | None:
    """The per-stimulus task score to correlate with: the task's ``per_image_score`` when given,
    else the first ``task:`` column (the first key its ``score_image`` returns)."""
    if score is not None:
        return f"task:{score}" if f"task:{score}" in columns else None
    scores = [c for c in columns if c.startswith("task:") and c != "task:solved"]
    return scores[0] if scores else None


def alignment_vs_task(frame, directions: dict[str, str], *, seed: int = 0, score: str | None = None) -> dict[str, Any]:
    """Per gaze metric: solved vs unsolved means with CIs, and rank correlation with the task score."""
    from .results.summary import SCORED

    ok = frame[frame["status"].isin(SCORED)]
    score_col = _task_score_column(list(ok.columns), score)
    out: dict[str, Any] = {"task_score": score_col[5:] if score_col else None, "metrics": {}}
    if "task:solved" not in ok.columns or score_col is None:
        return out
    # a stimulus the task could not score (e.g. a record without a label) is neither solved nor unsolved
    ok = ok[np.isfinite(ok["task:solved"].to_numpy(dtype=float))]
    solved = ok["task:solved"].to_numpy(dtype=float) >= 0.5
    out["n_solved"], out["n_unsolved"] = int(solved.sum()), int((~solved).sum())
    for m in directions:
        if m not in ok.columns:
            continue
        vals = ok[m].to_numpy(dtype=float)
        s_mean, s_lo, s_hi = bootstrap_ci(vals[solved], seed=seed)
        u_mean, u_lo, u_hi = bootstrap_ci(vals[~solved], seed=seed + 1)
        rho, p, n = spearman(vals, ok[score_col].to_numpy(dtype=float))
        # n: the values behind each mean (a NaN metric value leaves its stimulus out of the group)
        out["metrics"][m] = {
            "solved": {"mean": s_mean, "ci95": [s_lo, s_hi], "n": int(np.isfinite(vals[solved]).sum())},
            "unsolved": {"mean": u_mean, "ci95": [u_lo, u_hi], "n": int(np.isfinite(vals[~solved]).sum())},
            "spearman_rho": rho,
            "spearman_p": p,
            "n": n,
        }
    return out


def across_models(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each dataset x task x metric profile x number of images with at least three models:
    Spearman's rank correlation between each model's mean alignment (per metric) and its primary
    task metric.

    Runs are only comparable on the same stimuli under the same metric definitions, hence the
    grouping; a summary that carries its run's ``settings`` (``{**run.summary, "settings":
    run.settings}``) is also grouped by what :data:`harness.alignment.compare.COMPARABLE` names
    (the blur, the task's parameters, the seed), its scoring (raw and calibrated numbers never
    share a group) and its stimuli (``limit``, an aligned model's subset). A model x attention
    evaluated more than once in a group counts once, with its latest
    run (as on the leaderboard), so a re-run does not weigh twice. Each entry lists the models and
    both values per model, so the stored numbers can be checked by hand.
    """
    import json

    from .alignment.compare import COMPARABLE

    groups: dict[tuple, dict[tuple, dict]] = {}
    for s in summaries:
        if s.get("kind", "model") != "model" or not s.get("task_metrics") or not s.get("task_primary"):
            continue
        settings = s.get("settings") or {}
        # what makes two runs' numbers comparable (compare.COMPARABLE: the blur, the scoring, the task's
        # version ...) and the same stimuli (an aligned model's held-out subset has as many as a --limit)
        same = {k: settings.get(k, s.get(k)) for k in (*COMPARABLE, "limit", "stimuli")}
        same["scoring"] = s.get("scoring") or settings.get("scoring") or "raw"
        key = (s["dataset"], s["task"], s.get("metric_profile"), s.get("n_images"),
               json.dumps(same, sort_keys=True, default=str))
        who = (s["model"], s.get("attention"))
        group = groups.setdefault(key, {})
        if who not in group or str(s.get("finished_at", "")) >= str(group[who].get("finished_at", "")):
            group[who] = s
    results = []
    for (dataset, task, profile, n_images, same), by_model in sorted(groups.items(),
                                                                    key=lambda kv: tuple(map(str, kv[0]))):
        if len(by_model) < 3:
            continue
        same = json.loads(same)
        blur = same.get("metric_params") or {}
        group = [by_model[k] for k in sorted(by_model, key=lambda k: tuple(map(str, k)))]
        primary = group[0]["task_primary"]
        perf = [float(g["task_metrics"].get(primary, math.nan)) for g in group]
        metrics = sorted({m for g in group for m in (g.get("metrics") or {})})
        for m in metrics:
            align = [float((g.get("metrics") or {}).get(m, math.nan)) for g in group]
            rho, p, n = spearman(align, perf)
            results.append({"dataset": dataset, "task": task, "metric_profile": profile, "n_images": n_images,
                            "scoring": same["scoring"], "sigma_deg": blur.get("sigma_deg"),
                            "sigma_px": blur.get("sigma_px"), "settings": same, "metric": m,
                            "task_metric": primary, "spearman_rho": rho, "spearman_p": p,
                            "n_models": n, "models": [f"{g['model']} [{g.get('attention')}]" for g in group],
                            "alignment": align, "performance": perf})
    return results
