"""A run's summary computed from its per-image rows: the one function ``harness eval`` writes
``summary.json`` with and ``harness verify`` / the leaderboard check it against.

Everything here depends on the rows only, never on how they were split into shards or in which
order processes finished them: rows are put in stimulus-id order first.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

#: statuses whose metric values enter the means. ``degenerate`` rows (a constant map) are scored:
#: a constant map predicts every pixel equally, and dropping it would flatter a broken method.
SCORED = ("ok", "degenerate")
#: per-image columns that are not metrics
ROW_COLUMNS = ("stimulus_id", "status", "error", "n_fixations", "seconds", "output")
MAX_LISTED = 20


def canonical_order(frame):
    """Rows sorted by stimulus id (stable), so aggregates do not depend on shard layout."""
    if not len(frame):
        return frame
    return frame.sort_values("stimulus_id", kind="stable").reset_index(drop=True)


def metric_columns(frame, known: Iterable[str] | None = None) -> list[str]:
    """Gaze-metric columns of ``frame``: ``known`` (in that order) if given, else every column that is
    neither a row field nor a ``task:`` score."""
    if known is not None:
        return [m for m in known if m in frame.columns]
    return [c for c in frame.columns if c not in ROW_COLUMNS and not str(c).startswith("task:")]


def aggregate(frame, metrics: Iterable[str]) -> dict[str, Any]:
    """Counts and metric means of per-image rows.

    ``metrics`` maps to the mean of its finite values over scored rows (``ok`` and ``degenerate``);
    ``nonfinite`` counts the scored rows where a metric was NaN or infinite (a metric that cannot
    score a stimulus, or a broken plugin): those are left out of the mean, so the count says how
    many stimuli a mean does not cover."""
    frame = canonical_order(frame)
    metrics = list(metrics)
    status = frame["status"].astype(str).to_numpy() if len(frame) else np.array([], dtype=str)
    scored = np.isin(status, SCORED)
    failed = frame[status == "failed"] if len(frame) else frame
    degenerate = frame[status == "degenerate"] if len(frame) else frame
    means: dict[str, float] = {}
    nonfinite: dict[str, int] = {}
    for m in metrics:
        values = frame[m].to_numpy(dtype=np.float64, na_value=np.nan)[scored] if len(frame) else np.zeros(0)
        finite = values[np.isfinite(values)]
        means[m] = float(finite.mean()) if finite.size else math.nan
        nonfinite[m] = int(values.size - finite.size)
    return {
        "n_images": int(len(frame)),
        "n_failed": int(len(failed)),
        "n_degenerate": int(len(degenerate)),
        "failures": [{"stimulus_id": r["stimulus_id"], "error": r.get("error")}
                     for r in failed.head(MAX_LISTED).to_dict("records")],
        "degenerate": [{"stimulus_id": r["stimulus_id"], "reason": r.get("error")}
                       for r in degenerate.head(MAX_LISTED).to_dict("records")],
        "metrics": means,
        "nonfinite": nonfinite,
    }


# --- checking a summary read back from disk ---------------------------------------------------------

_STR_FIELDS = ("model", "kind", "attention", "dataset", "task", "metric_profile", "finished_at")
_COUNT_FIELDS = ("n_images", "n_failed", "n_degenerate")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def type_problems(summary: dict[str, Any]) -> list[str]:
    """What is wrong with the types of a summary (hand edits, truncation), as short phrases."""
    out = []
    for key in _STR_FIELDS:
        if not isinstance(summary.get(key), str):
            out.append(f"{key} is {summary.get(key)!r}, not text")
    for key in _COUNT_FIELDS:
        if key not in summary and key == "n_degenerate":
            continue  # written from schema 2 on
        v = summary.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
            out.append(f"{key} is {v!r}, not a count")
    for block in ("metrics", "task_metrics"):
        values = summary.get(block)
        if not isinstance(values, dict):
            out.append(f"{block} is {type(values).__name__}, not a mapping")
            continue
        for name, v in values.items():
            if not (v is None or _is_number(v)):
                out.append(f"{block}.{name} is {v!r}, not a number")
    directions = summary.get("metric_directions")
    if not isinstance(directions, dict) or any(v not in ("higher", "lower") for v in directions.values()):
        out.append("metric_directions must map metrics to 'higher' or 'lower'")
    nonfinite = summary.get("nonfinite", {})
    if not isinstance(nonfinite, dict) or any(not (isinstance(v, int) and v >= 0) for v in nonfinite.values()):
        out.append("nonfinite must map metrics to counts")
    return out


def same_number(a: Any, b: Any) -> bool:
    """Equal as stored numbers: NaN equals NaN (JSON keeps it as NaN), tiny float noise allowed."""
    if a is None or b is None:
        return (a is None or (isinstance(a, float) and math.isnan(a))) and \
            (b is None or (isinstance(b, float) and math.isnan(b)))
    if not (_is_number(a) and _is_number(b)):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def mismatches(summary: dict[str, Any], recomputed: dict[str, Any]) -> list[str]:
    """Where a stored summary disagrees with the one recomputed from its rows."""
    out = []
    for key in _COUNT_FIELDS:
        if key in summary and summary[key] != recomputed[key]:
            out.append(f"{key} says {summary[key]!r}, the shards hold {recomputed[key]!r}")
    stored = summary.get("metrics") or {}
    for m, v in recomputed["metrics"].items():
        if m not in stored:
            out.append(f"metric {m!r} is in the shards but not in the summary")
        elif not same_number(stored[m], v):
            out.append(f"{m} says {stored[m]!r}, the shards give {v!r}")
    for m in stored:
        if m not in recomputed["metrics"]:
            out.append(f"metric {m!r} is in the summary but not in the shards")
    if "nonfinite" in summary:
        for m, n in recomputed["nonfinite"].items():
            if summary["nonfinite"].get(m, 0) != n:
                out.append(f"nonfinite.{m} says {summary['nonfinite'].get(m, 0)!r}, the shards hold {n}")
    return out
