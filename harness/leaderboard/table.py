"""Leaderboard tables: one row per model x attention x dataset x task, one column per metric.

One renderer for every table the project prints or publishes: ``harness leaderboard show`` (local
runs or a published board), ``harness eval``'s closing table and the Hub README all go through
:func:`render_rows`, over the flat rows of :mod:`.hub_table`, so the same runs always give the same
table whichever way they were reached.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import HarnessError
from ..results import Run
from . import hub_table

KIND_ORDER = {"ceiling": 0, "model": 1, "baseline": 2}
ARROW = {"higher": "↑", "lower": "↓"}
FORMATS = {"github": "github", "markdown": "pipe", "html": "html", "csv": None, "plain": "simple"}
LABEL = {"ceiling": "", "baseline": " (baseline)", "model": ""}


def sorted_latest(rows: Sequence[dict[str, Any]], primary: str | None = None) -> tuple[list[dict[str, Any]], list[str], dict[str, str], str | None]:
    """The latest rows (see :func:`hub_table.mark_latest`), best first by ``primary`` within each
    dataset and task; with the metric columns in order, each metric's direction and the primary."""
    rows = [dict(r) for r in rows]
    if any("latest" not in r for r in rows):
        hub_table.mark_latest(rows)
    latest = [r for r in rows if r.get("latest")]
    directions = hub_table.directions_of(latest)
    metric_cols = hub_table.metric_columns(latest)
    primary = hub_table.default_primary(latest, primary)
    sign = -1 if directions.get(primary, "higher") == "higher" else 1

    def sort_key(r):
        v = r.get(primary) if primary else None
        bad = v is None or (isinstance(v, float) and math.isnan(v))
        return (str(r.get("dataset") or ""), str(r.get("task") or ""), bad, sign * (v if not bad else 0.0),
                KIND_ORDER.get(r.get("kind"), 9), str(r.get("model")))

    return sorted(latest, key=sort_key), metric_cols, directions, primary


def leaderboard_rows(runs: Sequence[Run], primary: str | None = None) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """Rows of the latest finished run per model x attention x dataset x task x profile x number of
    images, the metric columns in order and each metric's direction. Sorted best first."""
    rows, metric_cols, directions, _ = sorted_latest(hub_table.rows_from_runs(runs), primary)
    return rows, metric_cols, directions


def render_rows(rows: Sequence[dict[str, Any]], fmt: str = "github", primary: str | None = None, escape=None) -> str:
    """Flat leaderboard rows as a table; ``escape`` makes text cells safe for the target (Markdown)."""
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows, metric_cols, directions, _ = sorted_latest(rows, primary)
    if not rows:
        raise HarnessError("no finished runs to show")
    task_cols = hub_table.task_columns(rows)
    text = escape or (lambda v: v)
    # a metric with non-finite values somewhere is flagged: its mean covers fewer stimuli
    flagged = {m: [(r, hub_table.nonfinite_of(r)[m]) for r in rows if hub_table.nonfinite_of(r).get(m)]
               for m in metric_cols}
    flagged = {m: v for m, v in flagged.items() if v}
    headers = ["model", "attention", "dataset", "task", "images"]
    headers += [f"{m}{'*' if m in flagged else ''} {ARROW.get(directions.get(m), '')}".strip() for m in metric_cols]
    headers += task_cols
    body = []
    for r in rows:
        notes = [f"{r.get('n_failed')} failed"] if r.get("n_failed") else []
        notes += [f"{r.get('n_degenerate')} constant"] if r.get("n_degenerate") else []
        images = f"{r.get('n_images')} ({', '.join(notes)})" if notes else r.get("n_images")
        body.append(
            [text(f"{r.get('model')}{LABEL.get(r.get('kind'), '')}"), text(r.get("attention")), text(r.get("dataset")),
             text(r.get("task")), images]
            + [r.get(m) for m in metric_cols]
            + [r.get(t) for t in task_cols]
        )
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(headers)
        w.writerows(body)
        return buf.getvalue()
    table = tabulate(body, headers=headers, tablefmt=FORMATS[fmt], floatfmt=".4f", missingval="–")
    if flagged and fmt != "html":
        table += "\n\n" + "\n".join(
            f"{m}*: non-finite values left out of the mean: "
            + ", ".join(f"{text(str(r.get('model')))} {n} of {r.get('n_images')}" for r, n in found)
            for m, found in flagged.items())
    return table


def render_table(runs: Sequence[Run], fmt: str = "github", primary: str | None = None) -> str:
    """The table of local runs (``harness leaderboard show``, the end of ``harness eval``)."""
    return render_rows(hub_table.rows_from_runs(runs), fmt=fmt, primary=primary)
