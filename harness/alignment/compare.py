"""Before/after: does a model trained toward human gaze agree with gaze better than the model it
started from, on the same held-out stimuli?

Two runs are compared *stimulus by stimulus*: each stimulus is scored by the base model (before)
and by the aligned model (after), and what is tested is the mean of the per-stimulus differences.
Pairing removes the between-stimulus variance (some images are easy for every model), which is
most of the variance of a saliency metric, so a paired interval is far narrower than two separate
intervals on the two means would suggest (Efron & Tibshirani 1993, ch. 2 and ch. 13).

- :func:`paired_bootstrap`: the percentile-bootstrap interval of the mean difference, resampling
  stimuli with replacement (the *same* resampled stimuli for both sides: that is the pairing), and
  a two-sided p-value for "no difference" from the paired sign-flip permutation test (exact up to
  30 stimuli).
- :func:`top1_agreement`: how often the two models' top-1 labels agree (did alignment change what
  the model sees, not only where it looks?).
- :func:`pair`: two runs' per-image tables -> the comparison of every metric, refusing runs whose
  numbers are not comparable (other dataset, other metric settings, other seed).
- :func:`find_pairs`, :func:`baseline_on`: which runs of a results folder to compare.
- :func:`format_table`: the comparison as text.

References:
    B. Efron, R. J. Tibshirani (1993). *An Introduction to the Bootstrap*. Chapman & Hall.
    Ch. 13 (percentile intervals).
    R. A. Fisher (1935). *The Design of Experiments*, section 21 (the sign-flip test of paired
    differences); P. Good (2005). *Permutation, Parametric and Bootstrap Tests of Hypotheses*, ch. 3.
    A. C. Davison, D. V. Hinkley (1997). *Bootstrap Methods and their Application*. Cambridge
    University Press, ch. 4 (the ``(1 + count) / (B + 1)`` Monte-Carlo p-value).
    B. V. North, D. Curtis, P. C. Sham (2002). A note on the calculation of empirical p values from
    Monte Carlo procedures. *Am. J. Hum. Genet.* 71(2), 439-441.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..errors import HarnessError

#: settings that must be equal for two runs' per-stimulus numbers to be comparable: the same stimuli
#: and fixations (dataset and its fingerprint), the same task scoring (task, its dataset-given
#: parameters), the same metric definitions and blur (profile, params) and the same random draws of
#: the seeded metrics (sAUC's other-image fixations, ...). Model, attention, device are what differs.
COMPARABLE = ("dataset", "dataset_fingerprint", "task", "task_params", "metric_profile", "metric_params", "seed",
              "scoring", "calibration")

#: resampled stimulus indices held in memory at once (int64 indices + float64 values: 64 MiB), so
#: 10,000 resamples of 5,000 stimuli (5e7 indices) are drawn in a dozen chunks instead of 800 MiB
_CHUNK = 1 << 22


#: relative size (to the largest |difference|) below which a resampled mean difference is 0: far
#: above the rounding of a mean of thousands of values (~1e-15), far below any difference that matters
_TIE = 1e-10


class NotComparable(HarnessError, ValueError):
    """Two runs whose numbers cannot be compared. A ``ValueError`` for callers of this module and a
    :class:`HarnessError` so that the CLI prints it as one line."""


# --- statistics ---------------------------------------------------------------------------------------

def paired_bootstrap(before, after, *, n_boot: int = 10000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Paired percentile bootstrap of the mean difference ``after - before``.

    ``before`` and ``after`` are per-stimulus scores of the same stimuli in the same order. Pairs
    where either value is not finite are dropped (``n_dropped`` counts them); ``n`` pairs remain.

    Each of ``n_boot`` resamples draws ``n`` stimuli with replacement and takes the mean of their
    differences ``d* = mean(after[i] - before[i])``: both sides are resampled with the same indices,
    which keeps each stimulus' two scores together (Efron & Tibshirani 1993, ch. 13). ``lo``/``hi``
    are the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the ``d*`` (numpy's linear
    interpolation).

    The p-value, two-sided, for "the mean difference is 0", is a paired sign-flip permutation test
    (Fisher 1935; Good 2005, ch. 3): under the null hypothesis each stimulus' difference is as
    likely to have had the other sign, so ``p`` is the share of the ``2^n`` sign assignments whose
    mean difference is at least as far from 0 as the observed one, ``|mean(s * d)| >= |mean(d)|``
    (up to rounding: within ``1e-10 * max|d|``). Exact (every assignment) for ``n <= 30``; for more
    stimuli, ``B = n_boot`` random assignments and ``p = (1 + #{|mean(s* d)| >= |mean(d)|}) / (B + 1)``
    (the ``+1`` of an empirical Monte-Carlo p-value, Davison & Hinkley 1997, ch. 4; North et al.
    2002, so that p is never 0). Its false-positive rate is at most ``alpha`` at every ``n``; the
    percentile bootstrap's own test (the interval inverted) was not: on 3 stimuli whose differences
    share a sign it gives p = 2 / (B + 1) (a false-positive rate of 25% at alpha 0.05 on 3 stimuli,
    11% on 10, 8% on 20, measured), where the sign-flip test gives 0.25. The smallest p on ``n``
    stimuli is ``2 / 2^n``: fewer than 6 stimuli can never be significant at 0.05. A verdict
    (:func:`_verdict`) needs both the interval to exclude 0 and ``p < 1 - level``.

    Returns ``n``, ``n_dropped``, ``before``, ``after`` (means over the ``n`` pairs), ``diff``
    (mean of ``after - before``), ``lo``, ``hi``, ``p``, ``level``, ``n_boot``. With fewer than two
    pairs there is nothing to resample: ``lo``, ``hi``, ``p`` are NaN (and the means too for none).

    Deterministic for the same data, ``n_boot`` and ``seed`` (indices come from
    ``numpy.random.default_rng(seed)``, drawn in chunks whose size depends on ``n`` only).
    """
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    if b.ndim != 1 or a.ndim != 1 or b.shape != a.shape:
        raise ValueError(f"paired_bootstrap needs two 1-D arrays of equal length, got shapes {b.shape} and {a.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    keep = np.isfinite(b) & np.isfinite(a)
    b, a = b[keep], a[keep]
    n = int(keep.sum())
    out: dict[str, Any] = {"n": n, "n_dropped": int(keep.size - n), "before": math.nan, "after": math.nan,
                           "diff": math.nan, "lo": math.nan, "hi": math.nan, "p": math.nan,
                           "level": float(level), "n_boot": int(n_boot)}
    if n == 0:
        return out
    d = a - b
    out.update(before=float(b.mean()), after=float(a.mean()), diff=float(d.mean()))
    if n < 2:  # one stimulus: every resample is that stimulus, an interval of width 0 would be a lie
        return out
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot, dtype=np.float64)
    rows = max(1, _CHUNK // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        reps[start:stop] = d[idx].mean(axis=1)
    # a replicate that is 0 up to the rounding of a mean (resampling -0.2 and +0.2 of scores like
    # 1.0 - 1.2 and 1.6 - 1.4 gives 1e-17, not 0) is 0: otherwise such exact ties land on one side
    # at random, halving p and letting an interval end at +1e-17 "exclude" 0
    reps[np.abs(reps) <= _TIE * float(np.max(np.abs(d)))] = 0.0
    alpha = 1.0 - level
    lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    out.update(lo=float(lo), hi=float(hi), p=_sign_flip_p(d, n_boot, seed))
    return out


#: up to this many pairs the sign-flip test counts every assignment of signs exactly (2^30: a
#: meet in the middle over two halves of 2^15 signed sums each); Monte Carlo above
_EXACT_FLIPS = 30


def _signed_sums(d: np.ndarray) -> np.ndarray:
    """``sum(s * d)`` for every assignment of signs ``s`` to ``d`` (2^len(d) values)."""
    sums = np.zeros(1)
    for v in d:
        sums = np.concatenate([sums + v, sums - v])
    return sums


def _sign_flip_p(d: np.ndarray, n_boot: int, seed: int) -> float:
    """The two-sided p-value of the paired sign-flip test of ``mean(d) = 0`` (see
    :func:`paired_bootstrap`): the share of the 2^n assignments of signs to the differences whose
    mean is at least as far from 0 as the observed one. Exact up to :data:`_EXACT_FLIPS` pairs:
    the signed sums of the first half and of the second half are made apart, and for each sum of
    the first, a binary search in the sorted second counts its partners (Monte Carlo at n = 18 was
    3 standard errors off the exact p in one QA check, with the same draws for every metric of a
    table). Above, ``n_boot`` random assignments from a stream of their own, so the bootstrap's
    resamples (and intervals) are those of the same ``seed`` without the test."""
    n = d.size
    # at least as far from 0 up to the rounding of a mean (an exact tie must count, not land at random)
    bar = abs(float(d.mean())) - _TIE * float(np.max(np.abs(d)))
    if n <= _EXACT_FLIPS:
        if bar <= 0:
            return 1.0
        total = bar * n  # on the scale of sums
        first, second = _signed_sums(d[: n // 2]), np.sort(_signed_sums(d[n // 2:]))
        far = (second.size - np.searchsorted(second, total - first, side="left")
               + np.searchsorted(second, -total - first, side="right"))
        return float(int(far.sum())) / float(1 << n)
    rng = np.random.default_rng([seed, 0x5F11])
    count = 0
    rows = max(1, _CHUNK // n)
    for start in range(0, n_boot, rows):
        signs = rng.integers(0, 2, size=(min(n_boot, start + rows) - start, n)) * 2.0 - 1.0
        count += int(np.count_nonzero(np.abs((signs * d).mean(axis=1)) >= bar))
    return (1 + count) / (n_boot + 1)


def _label(output: Any) -> Any:
    """The ``label`` of one stored output (a JSON string, or an already parsed mapping); None when
    missing, unparseable or not a mapping."""
    if isinstance(output, (str, bytes)):
        try:
            output = json.loads(output)
        except (ValueError, TypeError):
            return None
    if isinstance(output, Mapping):
        label = output.get("label")
        return None if label is None else str(label)
    return None


def top1_agreement(outputs_a: Sequence[Any], outputs_b: Sequence[Any]) -> float:
    """Share of stimuli on which two models' top-1 ``label`` agrees.

    ``outputs_a[i]`` and ``outputs_b[i]`` are stimulus ``i``'s stored outputs (JSON strings as in
    the ``output`` column, or None). A stimulus counts as agreeing only when both outputs carry a
    label and the labels are equal (compared as text). A missing, unparseable or label-less output
    on either side counts as *disagreement*: the question is whether the aligned model still says
    what the base model said, and saying nothing is not saying the same. The denominator is every
    stimulus given; NaN when none is. (:func:`pair` reports it only when at least one stimulus has
    a label on both sides, so tasks without labels never show a spurious 0.)
    """
    if len(outputs_a) != len(outputs_b):
        raise ValueError(f"top1_agreement needs outputs of the same stimuli, got {len(outputs_a)} and {len(outputs_b)}")
    if not len(outputs_a):
        return math.nan
    agree = 0
    for x, y in zip(outputs_a, outputs_b):
        la, lb = _label(x), _label(y)
        agree += la is not None and la == lb
    return agree / len(outputs_a)


# --- two runs -----------------------------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mismatches(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    # a key absent from both (task_params of a free-viewing run) is equal: .get gives None twice
    return [k for k in COMPARABLE if _setting(a, k) != _setting(b, k)]


def _setting(settings: Mapping[str, Any], key: str) -> Any:
    """A setting as compared; a run without ``scoring`` (every raw run) is ``raw``."""
    value = settings.get(key)
    return "raw" if key == "scoring" and value is None else value


def _by_stimulus(frame, which: str):
    """``frame`` indexed by stimulus id; duplicated ids are refused (a run has one row per stimulus,
    so a duplicate means the frame was assembled wrongly and any pairing would be arbitrary)."""
    if "stimulus_id" not in frame.columns:
        if len(frame):
            raise ValueError(f"the {which} run's rows have no stimulus_id column")
        return frame  # no rows (a run with no shards): nothing shared
    dup = frame["stimulus_id"].duplicated()
    if dup.any():
        raise ValueError(f"the {which} run has {int(dup.sum())} duplicated stimulus ids, "
                         f"e.g. {frame['stimulus_id'][dup].iloc[0]!r}")
    return frame.set_index("stimulus_id", drop=False)


def _direction(name: str, directions: Mapping[str, Any] | None) -> bool | None:
    """Whether a higher value of metric ``name`` is better: from the registered metric, else from
    ``directions`` (a summary's ``metric_directions``: "higher"/"lower", or booleans) for a metric
    plugin not installed here; None when neither knows it. The registration comes first: a file's
    direction, edited, turned a worse model into a "better" one."""
    try:
        from ..plugins import get_registry

        reg = get_registry(warn=False)
        if ("metric", name) in reg:
            return bool(reg.get("metric", name).get("higher_is_better", True))
    except Exception:  # a broken registry: the recorded direction, if any
        pass
    if directions and name in directions:
        v = directions[name]
        return v if isinstance(v, bool) else v == "higher"
    return None


def _verdict(stats: Mapping[str, Any], higher_is_better: bool | None) -> bool | None:
    """True if the interval lies wholly on the good side of 0, False if wholly on the bad side,
    None if it contains 0 (not significant at its level) or nothing says which side is good. The
    p-value must agree (below 1 - level): with few resamples the interpolated interval can exclude
    0 while p cannot get that low (20 resamples: p >= 0.095), and a verdict must not contradict the
    p printed beside it."""
    lo, hi = stats["lo"], stats["hi"]
    if higher_is_better is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    p, level = stats.get("p", math.nan), stats.get("level", 0.95)
    if not (math.isfinite(p) and p < round(1 - level, 12)):  # 1 - 0.95 is 0.05000000000000004
        return None
    if lo > 0:
        return higher_is_better
    if hi < 0:
        return not higher_is_better
    return None


def _pool(settings: Mapping[str, Any]) -> Any:
    """Which stimuli a run's context held: shuffled AUC takes its negatives from the fixations on the
    context's *other* stimuli, the first ``limit`` of the dataset (an aligned run scores a subset of
    them but keeps the whole context). None means the whole dataset: no limit, or a run without a
    subset that scored fewer stimuli than its limit. Otherwise the limit (a limit at or above the
    dataset's size is not recognised as the whole dataset for a subset run: the dataset's size is not
    in its settings, so such a pair is treated, conservatively, as differing)."""
    limit = settings.get("limit")
    if limit is None:
        return None
    n = settings.get("n_images")
    if "stimuli" not in settings and isinstance(n, int) and n < limit:
        return None
    return limit


def _needs_other(name: str) -> bool:
    """Whether a metric's value for a stimulus depends on the fixations on the run's other stimuli
    (declared ``needs=("other",)``: shuffled AUC); False for a metric not registered here."""
    try:
        from ..plugins import get_registry

        return "other" in (get_registry().get("metric", name).get("needs") or ())
    except Exception:
        return False


def pair(before_settings: Mapping[str, Any], before_frame, after_settings: Mapping[str, Any], after_frame, *,
         metrics: Iterable[str] | None = None, n_boot: int = 10000, seed: int = 0, level: float = 0.95,
         directions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Compare two runs stimulus by stimulus (``before``: e.g. the base model; ``after``: the aligned
    model, or any two runs scored the same way, such as a baseline and the aligned model).

    Refuses (:class:`NotComparable`, a ``ValueError``, one line naming both models) when the
    settings in :data:`COMPARABLE` differ, or when the runs share no stimulus. The frames are the
    runs' per-image tables (``Run.per_image()``); only stimuli present in both are compared, in
    stimulus-id order, and of those only the ones scored in both runs (status ``ok`` or
    ``degenerate``, as the summaries count them): a stimulus that failed in either run is left out
    and counted, since comparing a score with a failure says nothing about alignment.

    ``metrics``: the gaze-metric columns to compare (default: every metric column of ``before_frame``,
    in its order); those missing from either frame are skipped, and so are metrics that score a
    stimulus against the fixations on the run's *other* stimuli (shuffled AUC) when the two runs'
    contexts differ (another ``limit``): the same stimulus then has other negatives in each run, and
    the difference would not be the models'. Task columns (``task:*``) present in
    both are compared too; every built-in per-image task score (top-1, recall, ROUGE, BLEU, solved)
    is higher-is-better. ``directions`` (a summary's ``metric_directions``) gives the direction of a
    metric not registered here (a plugin missing here); a registered metric's is its registration's. Every comparison uses the same
    ``seed``, so metrics over the same stimuli are resampled identically.

    Returns a dict:
        ``before_model``, ``after_model``, ``before_attention``, ``after_attention``, ``dataset``,
        ``task_name``, ``metric_profile``, ``stimuli`` (the after run's ``settings["stimuli"]`` or
        None);
        ``n_before``, ``n_after`` (rows of each frame), ``n_shared`` (stimuli in both),
        ``n_failed`` (shared but failed in either run, left out), ``n_paired`` (compared);
        ``metrics``: metric -> :func:`paired_bootstrap` dict plus ``higher_is_better`` and ``better``
        (True / False / None: the interval excludes 0 on the good side / on the bad side / neither);
        ``task``: the same per task score (keys without the ``task:`` prefix);
        ``left_out``: metric -> why it was not compared (see above; empty as a rule);
        ``top1_agreement`` (see :func:`top1_agreement`; None unless some compared stimulus has a
        label in both runs) and ``n_labelled`` (compared stimuli with a label in both runs);
        ``level``, ``n_boot``, ``seed``.
    """
    from ..results.summary import SCORED, metric_columns

    before_model = before_settings.get("model")
    after_model = after_settings.get("model")
    what = f"cannot compare {before_model!r} with {after_model!r}"
    bad = _mismatches(before_settings, after_settings)
    if bad:
        k = bad[0]
        more = f" (and {', '.join(bad[1:])})" if len(bad) > 1 else ""
        raise NotComparable(f"{what}: {k} differs, {_short(_setting(before_settings, k))} vs "
                            f"{_short(_setting(after_settings, k))}{more}")
    fb, fa = _by_stimulus(before_frame, "before"), _by_stimulus(after_frame, "after")
    shared = sorted(set(fb.index) & set(fa.index))
    if not shared:
        raise NotComparable(f"{what}: no stimulus in common ({len(fb)} and {len(fa)} stimuli)")
    fb, fa = fb.loc[shared], fa.loc[shared]
    scored = (fb["status"].astype(str).isin(SCORED).to_numpy() & fa["status"].astype(str).isin(SCORED).to_numpy())
    fb, fa = fb[scored], fa[scored]

    def compare(column: str, hib: bool | None) -> dict[str, Any]:
        stats = paired_bootstrap(fb[column].to_numpy(dtype=np.float64, na_value=np.nan),
                                 fa[column].to_numpy(dtype=np.float64, na_value=np.nan),
                                 n_boot=n_boot, seed=seed, level=level)
        return {**stats, "higher_is_better": hib, "better": _verdict(stats, hib)}

    names = metric_columns(before_frame) if metrics is None else list(metrics)
    names = [m for m in names if m in fb.columns and m in fa.columns and not str(m).startswith("task:")]
    left_out: dict[str, str] = {}
    if _pool(before_settings) != _pool(after_settings):
        # the same stimulus' shuffled AUC against other negatives: a difference the models did not make
        for m in [m for m in names if _needs_other(m)]:
            left_out[m] = (f"scored against other stimuli's fixations, and the runs' contexts differ "
                           f"(limit {before_settings.get('limit')} vs {after_settings.get('limit')})")
        names = [m for m in names if m not in left_out]
    task_cols = [c for c in fb.columns if str(c).startswith("task:") and c in fa.columns]

    top1, n_labelled = None, 0
    if "output" in fb.columns and "output" in fa.columns and len(fb):
        ob, oa = fb["output"].tolist(), fa["output"].tolist()
        n_labelled = sum(_label(x) is not None and _label(y) is not None for x, y in zip(ob, oa))
        if n_labelled:
            top1 = top1_agreement(ob, oa)

    return {
        "before_model": before_model,
        "after_model": after_model,
        "before_attention": before_settings.get("attention"),
        "after_attention": after_settings.get("attention"),
        "dataset": after_settings.get("dataset"),
        "task_name": after_settings.get("task"),
        "metric_profile": after_settings.get("metric_profile"),
        "stimuli": after_settings.get("stimuli"),
        "n_before": int(len(before_frame)),
        "n_after": int(len(after_frame)),
        "n_shared": len(shared),
        "n_failed": int((~scored).sum()),
        "n_paired": int(scored.sum()),
        "metrics": {m: compare(m, _direction(m, directions)) for m in names},
        "left_out": left_out,
        "task": {c[len("task:"):]: compare(c, True) for c in task_cols},
        "top1_agreement": top1,
        "n_labelled": int(n_labelled),
        "level": float(level),
        "n_boot": int(n_boot),
        "seed": int(seed),
    }


# --- which runs to compare ----------------------------------------------------------------------------

def is_aligned(settings: Mapping[str, Any]) -> bool:
    """Whether a run's settings are those of a model trained toward gaze (its provenance names the
    base model it was trained from)."""
    provenance = settings.get("model_provenance") if isinstance(settings, Mapping) else None
    aligned = provenance.get("aligned") if isinstance(provenance, Mapping) else None
    return isinstance(aligned, Mapping) and bool(aligned.get("base_model"))


def _finished(run) -> bool:
    return bool(getattr(run, "summary", None))


def _finished_at(run) -> datetime:
    """When a run finished, for "most recent"; a missing or odd timestamp sorts first."""
    text = (getattr(run, "summary", None) or {}).get("finished_at")
    try:
        t = datetime.fromisoformat(str(text))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _stimulus_ids(run) -> set | None:
    """The run's stimulus ids, or None when its rows cannot be read (then it covers nothing)."""
    try:
        frame = run.per_image()
    except HarnessError:
        return None
    return set(frame["stimulus_id"]) if len(frame) and "stimulus_id" in frame.columns else set()


def _best(candidates: list, target) -> Any:
    """Of runs that could stand beside ``target``: those made with the same context first (the same
    ``limit``, see :func:`_pool`: then every metric, shuffled AUC included, compares like with like,
    and all of ``target``'s stimuli are there), then those covering all of its stimuli (a base run
    made with a smaller --limit would leave held-out stimuli out of the comparison), then the most
    recently finished, then the run id (so the choice never depends on listing order)."""
    if not candidates:
        return None
    if len(candidates) == 1:  # nothing to choose: do not read any rows
        return candidates[0]
    wanted = _stimulus_ids(target) or set()
    pool = _pool(target.settings)

    def key(run):
        ids = _stimulus_ids(run)
        return (_pool(run.settings) == pool, ids is not None and wanted <= ids, _finished_at(run),
                str(getattr(run, "run_id", "")))

    return max(candidates, key=key)


def find_pairs(runs: Iterable[Any]) -> list[tuple[Any, Any]]:
    """``(base_run, aligned_run)`` for every finished aligned run among ``runs`` whose base model was
    run the same way.

    The base is a finished run of kind ``model`` whose ``model`` is the aligned provenance's
    ``base_model`` and whose ``model_provenance`` equals its ``base_provenance`` (the very weights
    training started from, not a newer revision), with the same attention method (comparing Grad-CAM
    of one model with rollout of the other would measure the methods) and the same
    :data:`COMPARABLE` settings. Among several, see :func:`_best`. Aligned runs without a base run
    are left out. Runs only need ``.settings``, ``.summary`` and ``.per_image()``.
    """
    runs = [r for r in runs if _finished(r)]
    out = []
    for run in runs:
        if not is_aligned(run.settings):
            continue
        info = run.settings["model_provenance"]["aligned"]
        candidates = [r for r in runs if r is not run
                      and r.settings.get("kind") == "model"
                      and r.settings.get("model") == info.get("base_model")
                      and r.settings.get("model_provenance") == info.get("base_provenance")
                      and r.settings.get("attention") == run.settings.get("attention")
                      and not _mismatches(r.settings, run.settings)]
        base = _best(candidates, run)
        if base is not None:
            out.append((base, run))
    return out


def baseline_on(runs: Iterable[Any], aligned_run, name: str = "center-bias") -> Any:
    """The finished reference run ``name`` (a baseline such as ``center-bias`` or ``uniform``, or the
    ``human-ceiling``) made with the same :data:`COMPARABLE` settings as ``aligned_run``, or None;
    chosen as in :func:`find_pairs`. ``pair(baseline.settings, baseline.per_image(),
    aligned_run.settings, aligned_run.per_image())`` then scores it on the aligned run's stimuli."""
    candidates = [r for r in runs if _finished(r) and r is not aligned_run
                  and r.settings.get("kind") in ("baseline", "ceiling")
                  and r.settings.get("model") == name
                  and not _mismatches(r.settings, aligned_run.settings)]
    return _best(candidates, aligned_run)


# --- text ---------------------------------------------------------------------------------------------

def _num(v: Any, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:+.4f}" if sign else f"{v:.4f}"


def _p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _mark(better: bool | None, stats: Mapping[str, Any]) -> str:
    if better is True:
        return "▲ better"
    if better is False:
        return "▼ worse"
    return "n.s." if math.isfinite(stats.get("lo", math.nan)) else "–"


def format_table(result: Mapping[str, Any]) -> str:
    """A :func:`pair` result as text: a title line, one row per metric and task score (before,
    after, difference with its interval, p, verdict: ▲ better / ▼ worse / n.s.), a line per metric
    left out, then the top-1 agreement. The ``dir`` column says which way is good (↑ higher, ↓ lower)."""
    from tabulate import tabulate

    stimuli = result.get("stimuli") or {}
    subset = ""
    if isinstance(stimuli, Mapping) and stimuli.get("in_sample"):
        subset = " (in-sample: training stimuli included)"
    elif isinstance(stimuli, Mapping) and stimuli.get("subset"):
        subset = f" ({stimuli['subset']})"
    title = (f"{result['before_model']} → {result['after_model']} on {result['dataset']}/{result['task_name']}"
             f"{subset}: {result['n_paired']} stimuli paired of {result['n_shared']} shared"
             + (f", {result['n_failed']} failed in either run left out" if result.get("n_failed") else "")
             # the run assessed ("after") not covered by the other (a base run of fewer stimuli, picked
             # when the right one was damaged), or, outside an aligned model's held-out subset (said in
             # the title), the other run not covered (`compare` of two --limit values: its mean here is
             # not its summary's; said for 'after' only, found by QA): say how small a part was compared
             + (f" (the runs scored {result['n_before']} and {result['n_after']})"
                if result.get("n_shared", 0) < result.get("n_after", 0)
                or (result.get("n_shared", 0) < result.get("n_before", 0) and not subset) else ""))
    level = result.get("level", 0.95)
    rows = []
    for prefix, block in (("", result.get("metrics") or {}), ("task:", result.get("task") or {})):
        for name, s in block.items():
            hib = s.get("higher_is_better")
            rows.append([f"{prefix}{name}", {True: "↑", False: "↓"}.get(hib, "?"), _num(s["before"]), _num(s["after"]),
                         f"{_num(s['diff'], True)} [{_num(s['lo'], True)}, {_num(s['hi'], True)}]",
                         _p(s["p"]), s["n"], _mark(s.get("better"), s)])
    lines = [title]
    if rows:
        lines.append(tabulate(rows, headers=["metric", "dir", "before", "after", f"diff [{level:.0%} CI]", "p", "n", "verdict"],
                              disable_numparse=True))
    for name, why in (result.get("left_out") or {}).items():
        lines.append(f"{name} not compared: {why}")
    if result.get("top1_agreement") is not None:
        # the two models' predicted classes, not accuracy: on a dataset without labels it read as one
        lines.append(f"top-1 agreement: {result['top1_agreement']:.1%} of {result['n_paired']} stimuli"
                     f" ({result['n_labelled']} with a predicted class from both; the same class from both "
                     "models, not accuracy)")
    return "\n".join(lines)
