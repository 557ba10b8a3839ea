"""The published form of the leaderboard: one flat row per run, provenance included.

Used by the Hub publisher (Parquet files of a dataset repo) and by the static site (embedded JSON),
so both show the same rows. Nested things (settings, manifest, packages, metric directions) are
stored as JSON strings: a Parquet schema that does not change when a new package or setting
appears, and that ``datasets.load_dataset`` reads without surprises.

Row identity is ``run_id``; a row is *latest* when no other row of the same model, attention,
dataset, task, metric profile, scoring, stimuli (their number, and an aligned model's held-out or
in-sample subset) and blur (``metric_params``) finished later: a run with another blur or on other
stimuli is another experiment, not a newer version of the same one (a re-run with newer weights
or another seed is).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from ..results import Run, settings_hash

LEADERBOARD_FILE = "data/leaderboard.parquet"
PER_IMAGE_FILE = "data/per_image.parquet"

IDENTITY = ("run_id", "model", "attention", "dataset", "task", "kind", "metric_profile", "scoring", "n_images",
            "n_failed", "n_degenerate")
GROUP_KEY = ("model", "attention", "dataset", "task", "metric_profile", "scoring", "n_images", "stimuli",
             "metric_params")
#: settings in GROUP_KEY read from a row's ``settings`` JSON
SETTING_KEYS = ("stimuli", "metric_params")
#: the explained information gain of a calibrated row: 100 * ig / ig of the calibrated human ceiling
EXPLAINED = "ig_explained"
PROVENANCE = (
    "harness_version", "harness_source", "model_id", "weights_sha256", "revision", "dataset_fingerprint", "seed",
    "batch_size", "wall_time_s", "started_at", "finished_at", "settings_sha256", "task_primary", "metric_directions",
    "packages", "settings", "manifest", "nonfinite", "latest", "published_at",
)
JSON_COLUMNS = ("metric_directions", "packages", "settings", "manifest", "nonfinite")
DEFAULT_PRIMARY = "nss"
PER_IMAGE_IDENTITY = ("run_id", "model", "attention", "dataset", "task", "kind", "metric_profile", "scoring")


def _clean(value: Any) -> Any:
    """NaN/inf become None (JSON and the page have no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_row(run: Run) -> dict[str, Any]:
    """The published row of one finished run."""
    s, m, st = run.summary, run.manifest, run.settings
    # settings.json is hashed into the run's name, the manifest is not: what both hold comes from the
    # settings (an edited manifest published a fingerprint its own settings column contradicted)
    prov = st.get("model_provenance") or m.get("model_provenance") or {}
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "model": s.get("model", st.get("model")),
        "attention": s.get("attention", st.get("attention")),
        "dataset": s.get("dataset", st.get("dataset")),
        "task": s.get("task", st.get("task")),
        "kind": s.get("kind", st.get("kind", "model")),
        "metric_profile": s.get("metric_profile", st.get("metric_profile", m.get("metric_profile"))),
        # raw: the maps as they came; calibrated: as fixation densities (harness.evaluation.calibrated)
        "scoring": s.get("scoring", st.get("scoring", "raw")),
        "n_images": s.get("n_images"),
        "n_failed": s.get("n_failed"),
        "n_degenerate": s.get("n_degenerate", 0),
        "harness_version": m.get("harness_version"),
        # the code itself (the version stays 0.1.0 between commits); None for runs that predate it
        "harness_source": m.get("harness_source"),
        "model_id": prov.get("model_id", m.get("model_id")),
        "weights_sha256": prov.get("weights_sha256", m.get("weights_sha256")),
        "revision": prov.get("revision", m.get("revision")),
        "dataset_fingerprint": st.get("dataset_fingerprint", m.get("dataset_fingerprint")),
        "seed": st.get("seed", m.get("seed")),
        "batch_size": m.get("batch_size"),
        "wall_time_s": m.get("wall_time_s"),
        "started_at": m.get("started_at"),
        "finished_at": s.get("finished_at", m.get("finished_at")),
        "settings_sha256": settings_hash(st) if st else m.get("settings_sha256"),
        "task_primary": s.get("task_primary"),
        "metric_directions": json.dumps(s.get("metric_directions") or {}, sort_keys=True),
        "packages": json.dumps(m.get("packages") or {}, sort_keys=True),
        "settings": json.dumps(st, sort_keys=True, default=str),
        "manifest": json.dumps(m, sort_keys=True, default=str),
        # per metric, the stimuli whose value was NaN/inf (left out of the mean); only those > 0
        "nonfinite": json.dumps({k: v for k, v in (s.get("nonfinite") or {}).items() if v}, sort_keys=True),
    }
    for name, value in (s.get("metrics") or {}).items():
        row[name] = _clean(float(value)) if value is not None else None
    for name, value in (s.get("task_metrics") or {}).items():
        row[f"task:{name}"] = _clean(float(value)) if value is not None else None
    for key in ("model_id", "weights_sha256", "revision", "harness_version"):
        if row[key] is not None:
            row[key] = str(row[key])
    return row


def rows_from_runs(runs: Iterable[Run]) -> list[dict[str, Any]]:
    return add_explained([run_row(r) for r in runs if r.finished])


def scoring_of(record: Any) -> str:
    """The scoring of a run's summary, settings or row: raw runs record it by absence."""
    return str(record.get("scoring") or "raw")


def settings_of(row: dict[str, Any]) -> dict[str, Any]:
    """A row's run settings (its ``settings`` JSON), {} when absent or unreadable."""
    raw = row.get("settings")
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _group(row: dict[str, Any], key: str) -> Any:
    if key == "scoring":
        return scoring_of(row)
    if key in SETTING_KEYS:
        return json.dumps(settings_of(row).get(key), sort_keys=True, default=str)
    return row.get(key)


def explained_gold(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run id of each calibrated row -> the calibrated human ceiling (gold standard) row its
    explained information gain is relative to: the same dataset, task, profile, stimuli and blur
    (another blur is another human density: its ceiling's IG is another number), the latest such
    ceiling. Rows without one are left out."""
    def key(row: dict[str, Any]) -> tuple:  # the same stimuli and the same blur: the same human density
        return tuple(_group(row, k) for k in ("dataset", "task", "metric_profile", "n_images", "stimuli",
                                              "metric_params"))

    ceilings: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        if row.get("kind") == "ceiling" and row.get("scoring") == "calibrated":
            cur = ceilings.get(key(row))
            if cur is None or str(row.get("finished_at") or "") > str(cur.get("finished_at") or ""):
                ceilings[key(row)] = row
    return {row["run_id"]: ceilings[key(row)] for row in rows
            if row.get("scoring") == "calibrated" and key(row) in ceilings}


def add_explained(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every calibrated row its explained information gain (DeepGaze's measure): ``100 * ig /
    ig`` of the calibrated human ceiling (the gold standard) of the same dataset, task, profile and
    stimuli (:func:`explained_gold`); a row without one gets none. A ratio of means over the same
    stimuli, as :func:`harness.calibration.explained_information_gain` computes it."""
    gold_of = explained_gold(rows)
    for row in rows:
        gold = gold_of.get(row.get("run_id"))
        ig, ig_gold = row.get("ig"), (gold or {}).get("ig")
        if isinstance(ig, (int, float)) and isinstance(ig_gold, (int, float)) and math.isfinite(ig) \
                and math.isfinite(ig_gold) and ig_gold > 0:
            row[EXPLAINED] = 100.0 * float(ig) / float(ig_gold)
            directions = json.loads(row.get("metric_directions") or "{}")
            directions[EXPLAINED] = "higher"
            row["metric_directions"] = json.dumps(directions, sort_keys=True)
    return rows


def directions_of(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Metric name -> "higher"/"lower", from every row's ``metric_directions``."""
    out: dict[str, str] = {}
    for row in rows:
        raw = row.get("metric_directions")
        if isinstance(raw, str) and raw:
            out.update(json.loads(raw))
        elif isinstance(raw, dict):
            out.update(raw)
    return out


def metric_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Gaze-metric columns: registered metrics in their plugin's order (AUC-Judd first ... IoU
    last), then any other numeric column (a third-party metric's), alphabetically."""
    from ..plugins import get_registry

    known = set(IDENTITY) | set(PROVENANCE)
    seen = set(directions_of(rows))
    for row in rows:
        for k, v in row.items():
            if k not in known and not k.startswith("task:") and (v is None or isinstance(v, (int, float))):
                seen.add(k)
    order = {s.name: i for i, s in enumerate(get_registry().in_order("metric"))}
    # a calibrated table's log-likelihood and explained IG sit beside IG
    if "ig" in order:
        order["ll"], order[EXPLAINED] = order["ig"] + 0.1, order["ig"] + 0.2
    return sorted(seen, key=lambda n: (order.get(n, len(order)), n))


def nonfinite_of(row: dict[str, Any]) -> dict[str, int]:
    """Metric -> number of stimuli with a non-finite value, from a row's ``nonfinite``."""
    raw = row.get("nonfinite")
    if isinstance(raw, str) and raw:
        return json.loads(raw)
    return dict(raw) if isinstance(raw, dict) else {}


def task_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({k for row in rows for k in row if k.startswith("task:")})


def default_primary(rows: Sequence[dict[str, Any]], primary: str | None = None) -> str | None:
    """The headline gaze metric: ``primary`` if given, else NSS, else the first metric present."""
    from ..errors import HarnessError

    metrics = metric_columns(rows)
    if primary is not None:
        if primary not in metrics:
            raise HarnessError(f"unknown primary metric {primary!r}; known: {', '.join(metrics) or 'none'}")
        return primary
    return DEFAULT_PRIMARY if DEFAULT_PRIMARY in metrics else (metrics[0] if metrics else None)


def mark_latest(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set ``latest`` on every row: True for the last finished run of its group."""
    best: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = tuple(_group(row, k) for k in GROUP_KEY)
        cur = best.get(key)
        if cur is None or (str(row.get("finished_at") or ""), row["run_id"]) > (str(cur.get("finished_at") or ""), cur["run_id"]):
            best[key] = row
    winners = {id(r) for r in best.values()}
    for row in rows:
        row["latest"] = id(row) in winners
    return rows


def merge_rows(existing: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Earlier rows stay; a run published again replaces its own row (key ``run_id``); ``latest``
    is recomputed over the union. New rows get ``published_at`` (now); kept rows keep theirs."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    new_ids = {r["run_id"] for r in new}
    merged = [dict(r) for r in existing if r.get("run_id") not in new_ids]
    for r in new:
        merged.append({**r, "published_at": now})
    merged.sort(key=lambda r: (str(r.get("dataset")), str(r.get("task")), str(r.get("model")), str(r.get("run_id"))))
    # a calibrated row published before its ceiling (or the other way round) gets its explained IG now
    return mark_latest(add_explained(merged))


def rows_to_table(rows: Sequence[dict[str, Any]]):
    """Rows -> pyarrow Table with a fixed column order and types: metrics float64, flags bool."""
    import pyarrow as pa

    metrics = metric_columns(rows)
    tasks = task_columns(rows)
    columns = list(IDENTITY) + metrics + tasks + list(PROVENANCE)
    extra = sorted({k for r in rows for k in r} - set(columns))
    columns += extra
    types = {c: pa.float64() for c in metrics + tasks}
    types.update({"n_images": pa.int64(), "n_failed": pa.int64(), "n_degenerate": pa.int64(), "seed": pa.int64(), "batch_size": pa.int64(),
                  "wall_time_s": pa.float64(), "latest": pa.bool_()})
    arrays = {}
    for c in columns:
        values = [_clean(r.get(c)) for r in rows]
        t = types.get(c)
        if t is None:
            values = [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str)) for v in values]
            t = pa.string()
        elif t == pa.int64():
            values = [None if v is None else int(v) for v in values]
        elif t == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays[c] = pa.array(values, type=t)
    return pa.table(arrays)


def table_to_rows(table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return [{k: _clean(v) for k, v in r.items()} for r in rows]


_TEXT_COLUMNS = ("model", "attention", "dataset", "task", "kind", "metric_profile", "scoring")
_COUNT_COLUMNS = ("n_images", "n_failed", "n_degenerate")


def _json_object(raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the object a JSON column holds, None) or (None, why it holds none); empty is {}."""
    if raw is None or raw == "":
        return {}, None
    if not isinstance(raw, str):
        return None, f"a {type(raw).__name__}, not JSON text"
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None, "not JSON, or nested too deeply"
    return (value, None) if isinstance(value, dict) else (None, "not a JSON object")


def _row_problem(row: dict[str, Any]) -> tuple[str, str] | None:
    """(column, why) for the first column of a published row that is not what the schema says."""
    if not isinstance(row.get("run_id"), str) or not row["run_id"]:
        return "run_id", f"{row.get('run_id')!r}, not a run id"
    for key in _TEXT_COLUMNS:
        if row.get(key) is not None and not isinstance(row[key], str):
            return key, f"{row[key]!r}, not a text"
    for key in _COUNT_COLUMNS:
        value = row.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return key, f"{value!r}, not a count"
    for key in JSON_COLUMNS:
        value, why = _json_object(row.get(key))
        if why is not None:
            return key, why
        if key == "metric_directions" and any(v not in ("higher", "lower") for v in value.values()):
            return key, "a direction that is not 'higher' or 'lower'"
        if key == "nonfinite" and any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in value.values()):
            return key, "a number of stimuli that is not a whole number >= 0"
        if key == "settings":
            for name in ("metric_params", "task_params"):
                if value.get(name) is not None and not isinstance(value[name], dict):
                    return key, f"its {name} is not an object"
    return None


def check_rows(rows: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """``rows`` of the published leaderboard ``where``, or one line naming the file, the column and
    the row that is not what the schema says: the file was edited or damaged, and a publish merging
    into it would carry the damage on, so no row of it is used."""
    from ..errors import HarnessError

    for n, row in enumerate(rows, 1):
        found = _row_problem(row)
        if found is not None:
            column, why = found
            raise HarnessError(f"{where}: column {column} of row {n} is not what a gaze-harness leaderboard holds "
                               f"({why}); repair or remove the file")
    return list(rows)


def per_image_table(runs: Iterable[Run], existing=None, replace_ids: Iterable[str] = (), clean=None,
                    public_id=None, known: dict[str, dict[str, Any]] | None = None):
    """Per-image rows of ``runs`` (one row per stimulus per run), merged with ``existing`` rows of
    other runs. Columns are the union; numbers float64, text strings (so files of different
    tasks concatenate into one schema). ``clean``: applied to the new rows' ``error`` texts and
    ``model``; ``public_id(run_id, model)``: the run id the rows carry (a publish shortens local
    paths in all three). ``known``: per run id, identity values (``metric_profile``, ``scoring``)
    for ``existing`` rows that lack them (rows published by a version without those columns)."""
    import pandas as pd
    import pyarrow as pa

    frames = []
    replace = set(replace_ids)
    if existing is not None and existing.num_rows:
        old = existing.to_pandas()
        old = old[~old["run_id"].isin(replace)]
        for column in ("metric_profile", "scoring"):
            filled = old["run_id"].map(lambda i, c=column: (known or {}).get(i, {}).get(c))
            old = old.assign(**{column: old[column].where(old[column].notna(), filled) if column in old.columns
                                else filled})
        frames.append(old)
    for run in runs:
        frame = run.per_image()
        if frame.empty:
            continue
        s = run.summary
        # a raw and a calibrated run of one model share everything else: without these two columns a
        # reader could only tell their rows apart by joining run_id to the leaderboard
        ident = {"run_id": run.run_id, "model": s.get("model"), "attention": s.get("attention"),
                 "dataset": s.get("dataset"), "task": s.get("task"), "kind": s.get("kind", "model"),
                 "metric_profile": s.get("metric_profile", run.settings.get("metric_profile")),
                 "scoring": s.get("scoring", run.settings.get("scoring", "raw"))}
        if public_id is not None:
            ident["run_id"] = public_id(run.run_id, ident["model"])
        if clean is not None:
            ident["model"] = clean(ident["model"])
            if "error" in frame.columns:
                frame = frame.assign(error=[clean(v) for v in frame["error"]])
        frame = frame.drop(columns=[k for k in ident if k in frame.columns])
        for k in reversed(list(ident)):
            frame.insert(0, k, ident[k])
        frames.append(frame)
    if not frames:
        return pa.table({c: pa.array([], type=pa.string()) for c in PER_IMAGE_IDENTITY + ("stimulus_id", "status", "error")})
    frame = pd.concat(frames, ignore_index=True)
    first = list(PER_IMAGE_IDENTITY) + [c for c in ("stimulus_id", "status", "error") if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    return pa.table({c: _column_array(frame[c].tolist()) for c in frame.columns})


def _column_array(values: list[Any]):
    """One Parquet column from Python values, typed by what the values are (not by the pandas
    dtype, which is ``object`` for a column that was all-missing in one run and numbers in another):
    all booleans -> bool, all numbers -> float64, anything else -> string (non-strings as JSON)."""
    import numpy as np
    import pyarrow as pa

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    present = [v for v in values if not missing(v)]
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return pa.array([None if missing(v) else bool(v) for v in values], type=pa.bool_())
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in present):
        return pa.array([None if missing(v) else float(v) for v in values], type=pa.float64()) if present else \
            pa.array([None] * len(values), type=pa.string())
    return pa.array([None if missing(v) else (v if isinstance(v, str) else json.dumps(v, default=str)) for v in values],
                    type=pa.string())


def markdown_table(rows: Sequence[dict[str, Any]], primary: str | None = None) -> str:
    """The latest rows as a GitHub-flavoured Markdown table (the Hub README's), the same table as
    ``harness leaderboard show`` prints, with text cells escaped."""
    from .table import render_rows

    if not rows:
        return "_No runs published yet._"
    return render_rows(rows, "github", primary, escape=_md_escape)


def _md_escape(value: Any) -> str:
    """Text safe inside a Markdown table cell or header: no HTML, no pipes, no line breaks (U+2028
    and the other separators Python splits lines at split a row too), no link syntax (a model named
    ``[x](javascript:...)`` stayed a live link)."""
    import html
    import re

    text = "" if value is None else str(value)
    text = html.escape(text, quote=False).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")
    return re.sub(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]", " ", text)
