"""Leaderboard tables: one row per model x attention x dataset x task, one column per metric.

One renderer for every table the project prints or publishes: ``harness leaderboard show`` (local
runs or a published board), ``harness eval``'s closing table and the Hub README all go through
:func:`render_rows`, over the flat rows of :mod:`.hub_table`, so the same runs always give the same
table whichever way they were reached.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from ..errors import HarnessError
from ..results import Run
from ..results.store import terminal_safe
from . import hub_table

KIND_ORDER = {"ceiling": 0, "proxy": 1, "model": 1, "baseline": 2}
ARROW = {"higher": "↑", "lower": "↓"}
FORMATS = {"github": "github", "markdown": "pipe", "html": "html", "csv": None, "plain": "simple"}
LABEL = {"ceiling": "", "baseline": " (baseline)", "model": "", "proxy": " (human proxy)"}
#: formats whose tables ``render_rows(width=...)`` cuts to fit; markdown, html and csv never are
FIT_FORMATS = ("github", "plain")
#: the first columns of the csv format (then the gaze metrics, then the task metrics)
CSV_IDENTITY = ("model", "kind", "attention", "dataset", "task", "scoring", "metric_profile", "n_images", "n_failed",
                "n_degenerate", "sigma_deg", "sigma_px", "dataset_fingerprint", "task_version", "task_params", "seed",
                "run_id")
#: what each scoring means, said above its table when a table holds more than one
SCORING_TITLES = {
    "raw": "Raw scoring: the attention maps as the models give them.",
    "calibrated": "Calibrated scoring: each model as a fixation density, calibrated on other stimuli "
                  "(5-fold cross-validation by stimulus; Kuemmerer et al., ECCV 2018); ll and ig in bits per "
                  "fixation, ig_explained in % of the human ceiling's ig.",
}


def filtered(items: Sequence[Any], record, dataset: str | None, task: str | None, where: str) -> list[Any]:
    """``items`` (runs or rows; ``record(item)`` gives the mapping holding ``dataset`` and ``task``)
    of that dataset and task. A filter that matches nothing among finished items is an error naming
    what there is (``--task detect`` said only "no finished runs to show")."""
    out = list(items)
    for key, wanted in (("dataset", dataset), ("task", task)):
        if not wanted:
            continue
        have = sorted({str(record(i).get(key)) for i in out if record(i).get(key) is not None})
        out = [i for i in out if record(i).get(key) == wanted]
        if not out and have:
            raise HarnessError(f"no finished run of {key} {wanted!r} in {where}; there are: {', '.join(have)}")
    return out


def _by_scoring(items: Sequence[Any], scoring_of) -> list[tuple[str, list[Any]]]:
    """Items grouped by scoring, raw first: raw and calibrated numbers never share a table."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(scoring_of(item), []).append(item)
    return sorted(groups.items(), key=lambda kv: (kv[0] != "raw", kv[0]))


def _titled(parts: list[tuple[str, str]], fmt: str, always: bool = False) -> str:
    """Tables under their titles; one alone keeps no title unless ``always``."""
    if len(parts) == 1 and not always:
        return parts[0][1]
    if fmt == "html":
        import html

        return "\n".join(f"<p><strong>{html.escape(SCORING_TITLES.get(k, k))}</strong></p>\n{t}" for k, t in parts)
    return "\n\n".join(f"{SCORING_TITLES.get(k, k)}\n\n{t}" for k, t in parts)


def sorted_latest(rows: Sequence[dict[str, Any]], primary: str | None = None) -> tuple[list[dict[str, Any]], list[str], dict[str, str], str | None]:
    """The latest rows (see :func:`hub_table.mark_latest`), best first by ``primary`` within each
    scoring (raw first), metric profile, dataset and task (the human formats print one table per
    scoring and profile; csv keeps their rows together in that order); with the metric columns in
    order, each metric's direction and the primary."""
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
        scoring = hub_table.scoring_of(r)
        return (scoring != "raw", scoring, str(r.get("metric_profile")), str(r.get("dataset") or ""),
                str(r.get("task") or ""), bad, sign * (v if not bad else 0.0),
                KIND_ORDER.get(r.get("kind"), 9), str(r.get("model")))

    return sorted(latest, key=sort_key), metric_cols, directions, primary


def leaderboard_rows(runs: Sequence[Run], primary: str | None = None) -> tuple[list[dict[str, Any]], list[str], dict[str, str]]:
    """Rows of the latest finished run per model x attention x dataset x task x profile x number of
    images, the metric columns in order and each metric's direction. Sorted best first."""
    rows, metric_cols, directions, _ = sorted_latest(hub_table.rows_from_runs(runs), primary)
    return rows, metric_cols, directions


#: the references a ceiling-normalised score is measured between: 0 and 1
NORMALISE_LOW, NORMALISE_HIGH = "center-bias", "ceiling"
NORMALISED_NOTE = ("Ceiling-normalised: each gaze metric as (model - center-bias) / (human ceiling - center-bias) "
                   "of the same dataset, task, scoring and stimuli (center-bias 0, ceiling 1, higher is better for "
                   "every metric, KLD included); – where either reference is missing or they are equal.")


def ceiling_normalised(rows: list[dict[str, Any]], metric_cols: list[str]) -> list[dict[str, Any]]:
    """``rows`` (latest rows; changed in place and returned) with every gaze metric replaced by
    ``(v - center-bias) / (ceiling - center-bias)``, the references of the row's own dataset, task,
    profile, scoring and number of stimuli."""
    def group(r):  # the references blurred alike too: another blur is another human density
        return tuple(hub_table._group(r, k)
                     for k in ("dataset", "task", "metric_profile", "scoring", "n_images", "metric_params"))

    low = {group(r): r for r in rows if r.get("model") == NORMALISE_LOW and r.get("kind") == "baseline"}
    high = {group(r): r for r in rows if r.get("kind") == NORMALISE_HIGH}
    refs = {g: (low.get(g), high.get(g)) for g in {group(r) for r in rows}}
    out = []
    for r in rows:
        lo, hi = refs[group(r)]
        new = dict(r)
        for m in metric_cols:
            a, b, v = (lo or {}).get(m), (hi or {}).get(m), r.get(m)
            ok = all(_finite(x) for x in (a, b, v)) and b != a
            new[m] = (v - a) / (b - a) if ok else None
        out.append(new)
    return out


def _printable(value: Any) -> Any:
    return terminal_safe(value, one_line=True) if isinstance(value, str) else value


def render_rows(rows: Sequence[dict[str, Any]], fmt: str = "github", primary: str | None = None, escape=None,
                width: int | None = None, stats=None, normalise: bool = False, _in_title: bool = False) -> str:
    """Flat leaderboard rows as a table; ``escape`` makes text cells safe for the target (Markdown).

    The human formats label reference rows (``center-bias (baseline)``), put each metric's
    direction in its header (``nss ↑``) and note failed images in the images cell; ``csv`` is for
    programs: plain column names, a ``kind`` column, plain model names and numeric ``n_images``,
    ``n_failed``, ``n_degenerate`` columns, and no footnote. ``width`` (github and plain only)
    leaves out the low-priority columns that do not fit in that many characters and says so in a
    line under the table: a dataset or task column that holds one value, then the gaze metrics
    after the primary one (last first), then the task metrics.

    ``stats`` (a :class:`.significance.TableStats` of the same rows, from ``--ci``) adds each metric's
    bootstrap interval to its cell (``0.6730 [0.667, 0.679]``; csv: ``<metric>_lo``/``<metric>_hi``
    columns), marks the primary cells that are not significantly different from the model above
    (``†``) or from centre-bias (``‡``), and explains both under the table (csv: p-value columns)."""
    # every format, csv included, reaches a terminal: the names and texts of rows from run folders or a
    # published file are data, shown without their control characters (run_id: the key of ``stats``)
    rows = [{_printable(k): v if k == "run_id" else _printable(v) for k, v in r.items()} for r in rows]
    return terminal_safe(_render_rows(rows, fmt, primary, escape, width, stats, normalise, _in_title))


def _render_rows(rows: Sequence[dict[str, Any]], fmt: str, primary: str | None, escape, width: int | None, stats,
                 normalise: bool, _in_title: bool) -> str:
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise HarnessError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    groups = _by_scoring(rows, hub_table.scoring_of)
    if len(groups) > 1 and fmt != "csv":  # csv has a scoring column; a human table never mixes them
        return _titled([(k, render_rows(g, fmt, primary, escape, width, stats, normalise, _in_title=True))
                        for k, g in groups], fmt)
    if len(groups) == 1 and groups[0][0] != "raw" and fmt != "csv" and not _in_title:
        # calibrated numbers alone (the end of `eval --scoring calibrated`) are titled too: uniform's
        # NSS 0.9 reads as wrong without it; raw alone stays as it always was, untitled
        return _titled([(groups[0][0], render_rows(rows, fmt, primary, escape, width, stats, normalise,
                                                   _in_title=True))], fmt, always=True)
    profiles: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        profiles.setdefault(str(r.get("metric_profile")), []).append(r)
    if len(profiles) > 1 and fmt != "csv":  # the same metrics, defined two ways: never one table
        return _titled([(f"Metric profile {k}:", render_rows(g, fmt, primary, escape, width, stats, normalise,
                                                             _in_title=True))
                        for k, g in sorted(profiles.items())], fmt)
    rows, metric_cols, directions, primary = sorted_latest(rows, primary)
    if not rows:
        raise HarnessError("no finished runs to show")
    if normalise:  # a monotone map per group with the direction folded in: the order stays
        if stats is not None:
            raise HarnessError("--normalise and --ci cannot be combined: the intervals are in the metrics' own units")
        rows = ceiling_normalised(rows, metric_cols)
        directions = {m: "higher" for m in metric_cols}
    task_cols = hub_table.task_columns(rows)
    if fmt == "csv":
        return _csv(rows, metric_cols, task_cols, stats)
    # published rows carry every column (a raw row's calibrated-only ones empty): shown as from run folders
    metric_cols = [m for m in metric_cols if m not in ("ll", hub_table.EXPLAINED) or any(r.get(m) is not None for r in rows)]
    if escape is None and fmt in ("github", "markdown"):
        # what is printed in Markdown is pasted into Markdown: a model named `a|b` added a column there
        escape = hub_table._md_escape
    text = escape or (lambda v: v)
    # a metric with non-finite values somewhere is flagged: its mean covers fewer stimuli
    flagged = {m: [(r, hub_table.nonfinite_of(r)[m]) for r in rows if hub_table.nonfinite_of(r).get(m)]
               for m in metric_cols}
    flagged = {m: v for m, v in flagged.items() if v}
    variants = _setting_variants(rows)
    columns: list[tuple[str, str, list[Any]]] = [  # (key, header, cells)
        # the label's own brackets stay brackets (escaped they read `\[task v1\]` on a terminal)
        ("model", "model", [text(f"{r.get('model')}{LABEL.get(r.get('kind'), '')}")
                            + (f" [{text(variants[id(r)])}]" if id(r) in variants else "") for r in rows]),
        ("attention", "attention", [text(r.get("attention")) for r in rows]),
        ("dataset", "dataset", [text(r.get("dataset")) for r in rows]),
        ("task", "task", [text(r.get("task")) for r in rows]),
        ("images", "images", [_images_cell(r) for r in rows]),
    ]
    columns += [(m, f"{text(m)}{'*' if m in flagged else ''} {ARROW.get(directions.get(m), '')}".strip(),
                 [_unsigned_zero(r.get(m)) if stats is None else _ci_cell(r, m, stats, primary) for r in rows])
                for m in metric_cols]
    columns += [(t, text(t), [_unsigned_zero(r.get(t)) for r in rows]) for t in task_cols]

    def render(cols) -> str:
        # with intervals, metric cells are text: keep them right-aligned like numbers
        align = None if stats is None else ["right" if c[0] in metric_cols else "global" for c in cols]
        return tabulate([list(cells) for cells in zip(*(c[2] for c in cols))], headers=[c[1] for c in cols],
                        tablefmt=FORMATS[fmt], floatfmt=".4f", missingval="–", colalign=align)

    table = render(columns)
    left_out: list[str] = []
    if width is not None and fmt in FIT_FORMATS and _widest(table) > width:
        for key in _drop_order(rows, metric_cols, task_cols, primary):
            if _widest(table) <= width:
                break
            (col,) = [c for c in columns if c[0] == key]
            values = {str(v) for v in col[2]}
            left_out.append(f"{key} ({values.pop()} in every row)" if key in ("dataset", "task") else key)
            columns.remove(col)
            table = render(columns)
    shown = {c[0] for c in columns}
    flagged = {m: v for m, v in flagged.items() if m in shown}
    if flagged and fmt != "html":
        table += "\n\n" + "\n".join(
            f"{text(m)}*: non-finite values left out of the mean: "
            + ", ".join(f"{text(str(r.get('model')))} {n} of {r.get('n_images')}" for r, n in found)
            for m, found in flagged.items())
    table += _notes(_mixed_stimuli_notes(rows, text, variants) + _variant_notes(rows, variants, text), fmt, width)
    if stats is not None:
        table += _notes(_ci_notes(stats, rows, text, primary in shown), fmt, width)
    if normalise and fmt != "csv":
        if fmt == "html":
            import html

            table += f"\n<p>{html.escape(NORMALISED_NOTE, quote=False)}</p>"
        else:
            table += "\n\n" + NORMALISED_NOTE
    if left_out:
        import textwrap

        table += "\n\n" + textwrap.fill(f"Not shown, to fit {width} columns (--wide shows all): "
                                          f"{', '.join(left_out)}.", max(width, 40))
    return table


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _unsigned_zero(v: Any, digits: int = 4) -> Any:
    """A number that rounds to zero at the shown precision, without a sign: the calibrated uniform
    map's IG is -1e-17, and "-0.0000" reads as a loss. Other values are left as they are."""
    if isinstance(v, float) and math.isfinite(v) and round(v, digits) == 0:
        return 0.0
    return v


def _ci_cell(r: dict[str, Any], m: str, stats, primary: str | None) -> Any:
    """``0.6730 [0.667, 0.679]`` (+ ``†``/``‡`` on the primary cell); None (shown as ``–``) for a
    missing value; the bare value when there is no interval (fewer than two stimuli)."""
    v = r.get(m)
    if not _finite(v):
        return None
    iv = (stats.intervals.get(r.get("run_id")) or {}).get(m) or {}
    cell = f"{_unsigned_zero(v):.4f}"
    if _finite(iv.get("lo")) and _finite(iv.get("hi")):
        cell += f" [{_unsigned_zero(iv['lo'], 3):.3f}, {_unsigned_zero(iv['hi'], 3):.3f}]"
    if m == primary:
        cell += stats.marks(r.get("run_id"))
    return cell


def _ci_notes(stats, rows: Sequence[dict[str, Any]], text, primary_shown: bool) -> list[str]:
    """The lines under a ``--ci`` table: how the intervals and the marks were computed."""
    notes = [f"[lo, hi]: {stats.level:.0%} percentile-bootstrap interval of the mean over stimuli "
             f"({stats.n_boot:,} resamples, seed {stats.seed})."]
    if any(hub_table.EXPLAINED in iv for iv in stats.intervals.values()):
        notes[0] = notes[0][:-1] + (f"; for {hub_table.EXPLAINED}, of the ratio of the run's mean ig to the human "
                                    "ceiling's, the two resampled together over the stimuli both scored.")
    if stats.comparisons and primary_shown:
        notes.append(f"{stats.primary} †: not significantly different from the model ranked just above; "
                     f"‡: not significantly different from center-bias (paired sign-flip test over the stimuli both "
                     f"runs scored, Holm-corrected across the "
                     f"{len(stats.comparisons)} test{'' if len(stats.comparisons) == 1 else 's'} of this table, "
                     f"alpha {stats.alpha:g}).")
    names = {r.get("run_id"): r.get("model") for r in rows}
    for run_id, why in stats.not_compared.items():
        if run_id in names:
            notes.append(f"{text(str(names[run_id]))}: {'; '.join(why)}.")
    return notes


def _stimuli_note(r: dict[str, Any]) -> str | None:
    """``held-out`` / ``in-sample`` for an aligned model's run (its settings' ``stimuli``)."""
    stimuli = hub_table.settings_of(r).get("stimuli")
    if not isinstance(stimuli, dict):
        return None
    return "in-sample" if stimuli.get("in_sample") else str(stimuli.get("subset") or "") or None


def _notes(notes: list[str], fmt: str, width: int | None) -> str:
    """Lines to put under a table: paragraphs in html, wrapped to ``width`` if given."""
    if not notes:
        return ""
    if fmt == "html":
        import html

        return "\n" + "\n".join(f"<p>{html.escape(n, quote=False)}</p>" for n in notes)
    if width is not None:
        import textwrap

        return "\n\n" + "\n".join(textwrap.fill(n, max(width, 40), break_on_hyphens=False) for n in notes)
    return "\n\n" + "\n".join(notes)


def _mixed_stimuli_notes(rows: Sequence[dict[str, Any]], text, variants: dict[int, str] | None = None) -> list[str]:
    """One line per dataset and task whose rows were scored on different stimuli (another
    ``--limit``, an aligned model's held-out subset): their means are over different images, and
    the shuffled-AUC negatives of a stimulus come from the other stimuli its run scored, so the
    rows do not compare. The images column shows the counts; this says what they mean."""
    groups: dict[tuple[str, str], dict[tuple[Any, str], list[str]]] = {}
    for r in rows:
        which = (r.get("n_images"), _stimuli_note(r) or "")
        # a row blurred otherwise carries its label, as in the table: the same name twice said nothing
        label = f" [{text(variants[id(r)])}]" if variants and id(r) in variants else ""
        groups.setdefault((str(r.get("dataset")), str(r.get("task"))), {}).setdefault(which, []).append(
            text(str(r.get("model"))) + label)

    def label(which: tuple[Any, str]) -> str:
        return f"{which[0]} images" + (f" ({which[1]})" if which[1] else "")

    def larger_first(item) -> tuple:
        n = item[0][0]
        return (-n if isinstance(n, int) else 0, item[0][1])

    def advice(sets) -> str:
        # another --limit is mended by the same --limit; an aligned model's subset is not (its base
        # run with the same --limit still scores every stimulus): harness report pairs them
        out = []
        if len({n for n, note in sets if not note}) > 1:
            out.append("evaluate every model with the same --limit")
        if any(note for _, note in sets):
            out.append("`harness report` compares an aligned model with its base on its held-out stimuli")
        return "; ".join(out)

    return [f"{text(dataset)}/{text(task)}: rows scored on different stimuli ("
            + "; ".join(f"{label(which)}: {', '.join(models)}"
                        for which, models in sorted(sets.items(), key=larger_first))
            + "): their means are over different images and do not compare; " + advice(sets)
            for (dataset, task), sets in groups.items() if len(sets) > 1]


def _setting_variants(rows: Sequence[dict[str, Any]]) -> dict[int, str]:
    """``id(row)`` -> what sets the row apart from the rest of its dataset and task, as a label
    (``sigma_deg=2, sigma_px=48``, ``task v1``): another blur (:func:`_blur_variants`) or another
    scoring of the task (:func:`_task_variants`). Such rows keep rows of their own (see
    :data:`hub_table.GROUP_KEY`) or sit beside rows scored otherwise, and without a label two of
    them would look the same."""
    blur, task, data = _blur_variants(rows), _task_variants(rows), _data_variants(rows)
    # " + " between reasons: the notes that name labelled rows separate their groups with "; "
    return {k: " + ".join(v for v in (blur.get(k), task.get(k), data.get(k)) if v) for k in {**blur, **task, **data}}


def variant_kinds(rows: Sequence[dict[str, Any]]) -> dict[int, list[str]]:
    """``id(row)`` -> what sets the row apart (``blur``, ``task``, ``data``), for the page's notes."""
    out: dict[int, list[str]] = {}
    for kind, found in (("blur", _blur_variants(rows)), ("task", _task_variants(rows)), ("data", _data_variants(rows))):
        for k in found:
            out.setdefault(k, []).append(kind)
    return out


def _data_variants(rows: Sequence[dict[str, Any]]) -> dict[int, str]:
    """``id(row)`` -> ``data 742c8801`` for each row scored on another version of its dataset's
    files (another ``dataset_fingerprint``) than most rows of its dataset and task: the files changed
    between runs (an edited fixation, a replaced image, a converter bumped), and without a label the
    row sat beside references of the other version as if it compared (found by a plugin author's QA)."""
    from collections import Counter

    out: dict[int, str] = {}
    for members in _by_dataset_task(rows):
        prints = [str(r.get("dataset_fingerprint") or "") for r in members]
        known = [f for f in prints if f]
        if len(set(known)) < 2:
            continue
        usual = Counter(known).most_common(1)[0][0]
        for r, f in zip(members, prints):
            if f and f != usual:
                out[id(r)] = f"data {f.removeprefix('sha256:')[:8]}"
    return out


def _by_dataset_task(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r.get("dataset")), str(r.get("task"))), []).append(r)
    return list(groups.values())


def _blur_variants(rows: Sequence[dict[str, Any]]) -> dict[int, str]:
    """``id(row)`` -> what differs (``sigma_deg=2, sigma_px=48``) for each row scored with another
    blur than most rows of its dataset and task."""
    from collections import Counter

    out: dict[int, str] = {}
    for members in _by_dataset_task(rows):
        params = [hub_table.settings_of(r).get("metric_params") or {} for r in members]
        keys = [json.dumps(p, sort_keys=True, default=str) for p in params]
        if len(set(keys)) < 2:
            continue
        usual = json.loads(Counter(keys).most_common(1)[0][0])
        for r, p, k in zip(members, params, keys):
            if k != json.dumps(usual, sort_keys=True, default=str) and isinstance(p, dict):
                out[id(r)] = ", ".join(f"{name}={_short(p.get(name))}" for name in sorted(set(p) | set(usual))
                                       if p.get(name) != usual.get(name))
    return out


def _task_version(params: dict[str, Any]) -> int:
    """The version of a task's scoring a row's ``task_params`` record (none recorded: 1, the scoring
    before tasks had versions); a version that is not a number counts as 0."""
    try:
        return int(params.get("version", 1))
    except (TypeError, ValueError):
        return 0


def _task_variants(rows: Sequence[dict[str, Any]]) -> dict[int, str]:
    """``id(row)`` -> ``task v1`` (or ``task label_aliases``) for each row whose task was scored
    otherwise than the rest of its dataset and task: by an older version of the task's scoring
    (a run made before detection's COCO aliases or captioning's tokenizer changed: the leaderboard
    keeps a model's latest run, which may predate them) or with other task parameters than most
    rows of the newest version. Their gaze metrics compare; their task columns do not."""
    from collections import Counter

    out: dict[int, str] = {}
    for members in _by_dataset_task(rows):
        params = [hub_table.settings_of(r).get("task_params") or {} for r in members]
        params = [p if isinstance(p, dict) else {} for p in params]
        keys = [json.dumps(p, sort_keys=True, default=str) for p in params]
        if len(set(keys)) < 2:
            continue
        newest = max(_task_version(p) for p in params)
        usual = json.loads(Counter(k for p, k in zip(params, keys) if _task_version(p) == newest).most_common(1)[0][0])
        for r, p, k in zip(members, params, keys):
            if k == json.dumps(usual, sort_keys=True, default=str):
                continue
            if _task_version(p) != newest:
                out[id(r)] = f"task v{p.get('version', 1)}"
            else:
                out[id(r)] = "task " + ", ".join(name for name in sorted(set(p) | set(usual))
                                                  if p.get(name) != usual.get(name))
    return out


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _variant_notes(rows: Sequence[dict[str, Any]], variants: dict[int, str], text) -> list[str]:
    if not variants:
        return []
    notes = []
    blur, task, data = _blur_variants(rows), _task_variants(rows), _data_variants(rows)
    if blur:
        listed = "; ".join(f"{text(str(r.get('model')))} [{text(variants[id(r)])}]" for r in rows if id(r) in blur)
        notes.append(f"Rows blurred otherwise than the rest ({listed}): their density metrics use another human "
                     "density, so their scores do not compare with the others'.")
    if task:
        listed = "; ".join(f"{text(str(r.get('model')))} [{text(variants[id(r)])}]" for r in rows if id(r) in task)
        notes.append(f"Rows whose task was scored otherwise than the rest ({listed}): their task columns do not "
                     "compare with the others' (their gaze metrics do); evaluate them again to score the task "
                     "as the others were.")
    if data:
        listed = "; ".join(f"{text(str(r.get('model')))} [{text(variants[id(r)])}]" for r in rows if id(r) in data)
        notes.append(f"Rows scored on another version of the dataset's files than the rest ({listed}): the files "
                     "changed between their runs (their dataset fingerprint differs), so their scores do not "
                     "compare with the others'; evaluate them again on the same files.")
    return notes


def _images_cell(r: dict[str, Any]) -> Any:
    notes = [_stimuli_note(r)] if _stimuli_note(r) else []
    notes += [f"{r.get('n_failed')} failed"] if r.get("n_failed") else []
    notes += [f"{r.get('n_degenerate')} constant"] if r.get("n_degenerate") else []
    return f"{r.get('n_images')} ({', '.join(notes)})" if notes else r.get("n_images")


#: the columns ``--ci`` adds at the end of the csv format (p-values of the primary metric's tests)
CSV_TESTS = ("above_model", "p_above", "p_above_holm", "p_center_bias", "p_center_bias_holm")


def _csv(rows: Sequence[dict[str, Any]], metric_cols: list[str], task_cols: list[str], stats=None) -> str:
    import csv
    import io

    def plain(v: Any) -> Any:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return ""
        return v

    if stats is None:
        headers = list(CSV_IDENTITY) + metric_cols + task_cols
    else:  # each metric followed by its interval; the tests' p-values last
        headers = list(CSV_IDENTITY) + [c for m in metric_cols for c in (m, f"{m}_lo", f"{m}_hi")] + task_cols \
            + list(CSV_TESTS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(headers)
    for r in rows:
        values = dict(r)
        # what tells two runs of one model apart besides the columns above: the blur (the human
        # formats label such a row [sigma_deg=2, ...]; sigma_px empty where each stimulus has its own)
        params = hub_table.settings_of(r).get("metric_params") or {}
        values["sigma_deg"], values["sigma_px"] = params.get("sigma_deg"), params.get("sigma_px")
        # and what the human formats label [data 742c8801] and [task v1]: the files' fingerprint and
        # the task's scoring (its version, and its parameters as JSON; empty where it records none)
        task_params = hub_table.settings_of(r).get("task_params")
        task_params = task_params if isinstance(task_params, dict) else {}
        values["task_version"] = _task_version(task_params)
        values["task_params"] = json.dumps(task_params, sort_keys=True, default=str) if task_params else None
        if stats is not None:
            for m, iv in (stats.intervals.get(r.get("run_id")) or {}).items():
                values[f"{m}_lo"], values[f"{m}_hi"] = iv.get("lo"), iv.get("hi")
            above = stats.comparison(r.get("run_id"), "above") or {}
            ref = stats.comparison(r.get("run_id"), "reference") or {}
            values.update(above_model=above.get("against_model"), p_above=above.get("p"),
                          p_above_holm=above.get("p_holm"), p_center_bias=ref.get("p"),
                          p_center_bias_holm=ref.get("p_holm"))
        w.writerow([plain(values.get(k)) for k in headers])
    return buf.getvalue().removesuffix("\n")  # the caller ends the last line: nothing after the rows


def _drop_order(rows, metric_cols: list[str], task_cols: list[str], primary: str | None) -> list[str]:
    """Columns ``render_rows`` may leave out to fit a width, least needed first."""
    order = [k for k in ("dataset", "task") if len({str(r.get(k)) for r in rows}) == 1]
    order += [m for m in reversed(metric_cols) if m != primary]
    order += list(reversed(task_cols))
    return order


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def render_table(runs: Sequence[Run], fmt: str = "github", primary: str | None = None,
                 width: int | None = None, ci: bool = False, n_boot: int | None = None,
                 seed: int | None = None, normalise: bool = False, _in_title: bool = False) -> str:
    """The table of local runs (``harness leaderboard show``, the end of ``harness eval``); ``ci``
    adds bootstrap intervals and significance marks (:func:`.significance.table_statistics`, with
    ``n_boot`` resamples and ``seed``, 10,000 and 0 by default), computed from the runs' per-image rows."""
    # the titles of the tables name a scoring and a metric profile from the runs' summaries
    return terminal_safe(_render_table(runs, fmt, primary, width, ci, n_boot, seed, normalise, _in_title))


def _render_table(runs: Sequence[Run], fmt: str, primary: str | None, width: int | None, ci: bool,
                  n_boot: int | None, seed: int | None, normalise: bool, _in_title: bool) -> str:
    rows = hub_table.rows_from_runs(runs)
    groups = _by_scoring([r for r in runs if r.finished], lambda r: hub_table.scoring_of(r.summary))
    if ci and len(groups) > 1 and fmt != "csv":  # intervals and tests within one scoring
        return _titled([(k, render_table(g, fmt, primary, width, ci, n_boot, seed, normalise, _in_title=True))
                        for k, g in groups], fmt)
    if ci and len(groups) == 1 and groups[0][0] != "raw" and fmt != "csv" and not _in_title:  # as render_rows
        return _titled([(groups[0][0], render_table(runs, fmt, primary, width, ci, n_boot, seed, normalise,
                                                    _in_title=True))], fmt, always=True)
    profiles: dict[str, list[Run]] = {}
    for r in runs:
        if r.finished:
            profiles.setdefault(str(r.summary.get("metric_profile")), []).append(r)
    if ci and len(profiles) > 1 and fmt != "csv":  # tests (and their correction) within one profile's table
        return _titled([(f"Metric profile {k}:", render_table(g, fmt, primary, width, ci, n_boot, seed, normalise,
                                                              _in_title=_in_title))
                        for k, g in sorted(profiles.items())], fmt)
    if ci and normalise:
        raise HarnessError("--normalise and --ci cannot be combined: the intervals are in the metrics' own units")
    stats = None
    if ci and rows:
        from . import significance

        if fmt not in FORMATS:
            raise HarnessError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        def table_stats(group):
            return significance.table_statistics(
                group, primary, n_boot=significance.N_BOOT if n_boot is None else n_boot,
                seed=significance.SEED if seed is None else seed)

        if fmt == "csv":  # one file, but each table's tests corrected alone, as the human formats print them
            key = lambda r: (hub_table.scoring_of(r.summary), str(r.summary.get("metric_profile")))  # noqa: E731
            parts = [table_stats(g) for _, g in _by_scoring([r for r in runs if r.finished], key)]
            stats = parts[0]
            for part in parts[1:]:
                stats.intervals.update(part.intervals)
                stats.comparisons += part.comparisons
                stats.not_compared.update(part.not_compared)
        else:
            stats = table_stats(runs)
    return render_rows(rows, fmt=fmt, primary=primary, width=width, stats=stats, normalise=normalise,
                       _in_title=_in_title)
