"""Leaderboard tables: one row per model x attention x dataset x task, one column per metric."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..errors import HarnessError
from ..results import Run

KIND_ORDER = {"ceiling": 0, "model": 1, "baseline": 2}
ARROW = {"higher": "↑", "lower": "↓"}
DEFAULT_PRIMARY = "nss"
FORMATS = {"github": "github", "markdown": "pipe", "html": "html", "csv": None, "plain": "simple"}


def _directions(runs: Sequence[Run]) -> dict[str, str]:
    out: dict[str, str] = {}
    for run in runs:
        out.update(run.summary.get("metric_directions") or {})
    return out


def _canonical_order(names: list[str]) -> list[str]:
    """Registered metrics in their plugin's order (AUC-Judd first ... IoU last), others after."""
    from ..plugins import get_registry

    order = {s.name: i for i, s in enumerate(get_registry().in_order("metric"))}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def leaderboard_rows(runs: Sequence[Run], primary: str | None = None) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """Rows (latest finished run per model x attention x dataset x task x profile), the metric
    columns in order, and each metric's direction. Sorted best first by ``primary``."""
    directions = _directions(runs)
    latest: dict[tuple, Run] = {}
    for run in runs:
        s = run.summary
        key = (s.get("model"), s.get("attention"), s.get("dataset"), s.get("task"), s.get("metric_profile"), s.get("n_images"))
        if key not in latest or str(s.get("finished_at")) > str(latest[key].summary.get("finished_at")):
            latest[key] = run
    metric_cols = _canonical_order(list(directions))
    primary = primary or (DEFAULT_PRIMARY if DEFAULT_PRIMARY in directions else (metric_cols[0] if metric_cols else None))
    if primary is not None and primary not in directions:
        raise HarnessError(f"unknown primary metric {primary!r}; known: {', '.join(metric_cols)}")
    rows = []
    for run in latest.values():
        s = run.summary
        row = {
            "model": s.get("model"),
            "kind": s.get("kind", "model"),
            "attention": s.get("attention"),
            "dataset": s.get("dataset"),
            "task": s.get("task"),
            "images": s.get("n_images"),
            "failed": s.get("n_failed"),
            "run_id": run.run_id,
        }
        for m in metric_cols:
            row[m] = (s.get("metrics") or {}).get(m)
        for k, v in (s.get("task_metrics") or {}).items():
            row[f"task:{k}"] = v
        rows.append(row)

    def sort_key(r):
        v = r.get(primary) if primary else None
        bad = v is None or (isinstance(v, float) and math.isnan(v))
        sign = -1 if directions.get(primary, "higher") == "higher" else 1
        return (r["dataset"] or "", bad, sign * (v if not bad else 0.0), KIND_ORDER.get(r["kind"], 9))

    rows.sort(key=sort_key)
    return rows, metric_cols, directions


def render_table(runs: Sequence[Run], fmt: str = "github", primary: str | None = None) -> str:
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    rows, metric_cols, directions = leaderboard_rows(runs, primary)
    if not rows:
        raise HarnessError("no finished runs to show")
    task_cols = sorted({k for r in rows for k in r if k.startswith("task:")})
    label = {"ceiling": "", "baseline": " (baseline)", "model": ""}
    headers = ["model", "attention", "dataset", "task", "images"] + [f"{m} {ARROW.get(directions.get(m), '')}".strip() for m in metric_cols] + task_cols
    body = []
    for r in rows:
        body.append(
            [f"{r['model']}{label.get(r['kind'], '')}", r["attention"], r["dataset"], r["task"],
             r["images"] if not r["failed"] else f"{r['images']} ({r['failed']} failed)"]
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
    return tabulate(body, headers=headers, tablefmt=FORMATS[fmt], floatfmt=".4f", missingval="–")
