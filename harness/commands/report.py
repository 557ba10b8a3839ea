"""``harness report``: alignment versus task success, per run and across models.

Reading a results folder (no RUN arguments) that holds finished runs, it also stores what it
reports with the runs, as ``<results>/alignment_vs_task.json`` (the ``--json`` document, written
atomically and rewritten on every report), so the across-models numbers live beside the runs they
come from. Given explicit RUN folders, which may lie anywhere, it writes nothing. Non-finite numbers (a correlation over constant values, a mean
over no stimulus) are ``null`` in both, so the JSON is valid for any reader.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import main
from . import FOLDER, results_option
from ..results.files import jsonable as _jsonable


REPORT_FILE = "alignment_vs_task.json"


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f"{v:.4f}"


def scored_tasks() -> dict[str, list[str]]:
    """Task -> the datasets that serve it, for every registered task that scores the model's output
    (its ``primary`` task metric is set: classification, detection, captioning; not free viewing)."""
    from ..plugins import get_registry

    reg = get_registry()
    out: dict[str, list[str]] = {}
    for spec in reg.in_order("task"):
        try:
            primary = getattr(spec.resolve(), "primary", None)
        except Exception:  # a broken task plugin: left out here, named by `harness plugins`
            continue
        if primary:
            out[spec.name] = sorted(d.name for d in reg.all("dataset") if spec.name in (d.get("tasks") or ()))
    return out


def _applies_to() -> str:
    """Which tasks and datasets the report applies to, as lines to print."""
    tasks = scored_tasks()
    if not tasks:
        return "It relates gaze alignment to task success, and no registered task scores a model's output."
    width = max(len(t) for t in tasks)
    lines = ["It relates gaze alignment to task success: it applies to runs of a task with a task metric,"]
    lines += [f"  {t:<{width}}  datasets: {', '.join(ds) or 'none registered'}" for t, ds in tasks.items()]
    lines.append("(harness eval --task TASK --dataset DATASET ...)")
    return "\n".join(lines)


def _before_after(loaded) -> list[dict]:
    """Each aligned model against its base (and the centre-bias baseline) on the stimuli they share."""
    from ..alignment.compare import baseline_on, find_pairs, pair

    out = []
    for base, aligned in find_pairs(loaded):
        frame, directions = aligned.per_image(), aligned.summary.get("metric_directions")
        entry = {"base": base.run_id, "aligned": aligned.run_id,
                 "model": pair(base.settings, base.per_image(), aligned.settings, frame, directions=directions)}
        ref = baseline_on(loaded, aligned, "center-bias")
        if ref is not None:  # the baseline the base model is far below, on the same held-out stimuli
            entry["center_bias"] = pair(ref.settings, ref.per_image(), aligned.settings, frame, directions=directions)
        out.append(entry)
    return out


def _per_run(loaded) -> tuple[dict[str, dict], list[str]]:
    """Each run's ``alignment_vs_task``, computed now from its per-image rows (what ``harness eval``
    stores in the summary, the same numbers for a run made by this version): a summary written by
    an older version keeps the statistics of then (session 21 replaced Spearman's t approximation
    for small n and added each mean's ``n``), which a report must not print as today's. Returns the
    analyses by run id and the runs whose stored analysis differed."""
    from ..analysis import alignment_vs_task
    from ..results.files import jsonable

    out: dict[str, dict] = {}
    stale: list[str] = []
    for r in loaded:
        stored = r.summary.get("alignment_vs_task") or {}
        if not stored.get("metrics"):
            continue
        directions = r.summary.get("metric_directions") or {m: "higher" for m in stored["metrics"]}
        fresh = alignment_vs_task(r.per_image(), directions, seed=int(r.settings.get("seed", 0) or 0),
                                  score=stored.get("task_score"))
        if not fresh.get("metrics"):  # the rows do not say what the summary says: keep it, say so
            stale.append(f"{r.run_id} (its per-image rows give no analysis; the summary's is shown)")
            fresh = stored
        elif json.dumps(jsonable(fresh), sort_keys=True) != json.dumps(jsonable(stored), sort_keys=True):
            stale.append(r.run_id)
        out[r.run_id] = fresh
    return out, stale


def _is_report(path: Path) -> bool:
    """A file this command wrote: a user's own file of that name was removed as stale (found by QA)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeError, ValueError):
        return False
    return isinstance(doc, dict) and set(doc) <= {"runs", "across_models", "before_after"} and "runs" in doc


@main.command()
@click.argument("runs", nargs=-1, type=FOLDER)
@results_option("Folder holding run folders (as written by `harness eval --output`); used when no RUN is given.")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable output: the document also stored as <results>/alignment_vs_task.json.")
def report(runs, results_dir, as_json) -> None:
    """Relate gaze alignment to task success for RUN folders (default: every run in --results), and
    compare each model trained by `harness align` with its base on its held-out stimuli."""
    from tabulate import tabulate

    from ..analysis import across_models
    from ..errors import HarnessError
    from ..results import atomic_write_json, load_runs, read_run

    if len(runs) == 1 and Path(runs[0]).is_dir() and not (Path(runs[0]) / "settings.json").is_file():
        results_dir, runs = Path(runs[0]), ()  # `harness report runs/`: a results folder, not a run
    for p in runs:
        if not Path(p).exists():
            raise HarnessError(f"{p}: no such run folder")
    if runs:
        from ..results.verify import run_problems

        loaded = []
        for p in runs:
            r = read_run(p)
            if not r.finished:
                raise HarnessError(f"{r.path}: not a finished run (no summary.json)")
            problems = run_problems(r)
            if problems:  # the same check as every reader of a results folder: named, left out
                click.echo(f"warning: {r.path}: damaged run left out ({problems[0]}); `harness verify` tells more",
                           err=True)
                continue
            loaded.append(r)
        if not loaded:  # said 'no run with a task metric' and exit 0 (found by QA)
            raise HarnessError(f"{'the run given is' if len(runs) == 1 else 'every run given is'} damaged "
                               "(the warning above says why); nothing to report")
    else:
        loaded = load_runs(results_dir)
    analyses, stale = _per_run(loaded)
    per_run = [r for r in loaded if r.run_id in analyses]
    if stale:
        click.echo(f"note: the alignment-vs-task statistics of {len(stale)} run(s) were computed again from their "
                   f"per-image rows: their summaries hold an older version's ({', '.join(stale)}); "
                   "`harness eval` with the same settings rewrites a summary", err=True)
    cross = across_models([{**r.summary, "settings": r.settings} for r in loaded])
    before_after = _before_after(loaded)
    document = _jsonable({"runs": {r.run_id: analyses[r.run_id] for r in per_run},
                          "across_models": cross, **({"before_after": before_after} if before_after else {})})
    if not per_run and not cross and not before_after:  # nothing to relate: say where it applies, store nothing
        where = "these runs" if runs else str(results_dir)
        stale = Path(results_dir) / REPORT_FILE
        removed = ""
        if not runs and _is_report(stale):  # an earlier report, of runs no longer there (or now damaged)
            stale.unlink()
            removed = f" (the earlier {REPORT_FILE}, of runs no longer there, was removed)"
        message = (f"No run with a task metric in {where}: nothing to report, nothing written{removed}.\n"
                   + _applies_to())
        if as_json:
            click.echo(json.dumps(document, indent=2, allow_nan=False))
            click.echo(message, err=True)
        else:
            click.echo(message)
        return
    if not runs and loaded:
        atomic_write_json(Path(results_dir) / REPORT_FILE, document)
    if as_json:
        click.echo(json.dumps(document, indent=2, allow_nan=False))
        return
    for r in per_run:
        a = analyses[r.run_id]
        click.echo(f"\n{r.summary['model']} [{r.summary['attention']}] on {r.summary['dataset']}/{r.summary['task']}"
                   f" — solved {a['n_solved']}, unsolved {a['n_unsolved']}; task score: {a['task_score']}")
        def mean(v, group):  # a stimulus without this metric's value is out of its group's mean: say so
            n, of = v[group].get("n"), a[f"n_{group}"]
            return _fmt(v[group]["mean"]) + (f" (of {n})" if n is not None and n != of else "")

        table = [[m, mean(v, "solved"), f"[{_fmt(v['solved']['ci95'][0])}, {_fmt(v['solved']['ci95'][1])}]",
                  mean(v, "unsolved"), f"[{_fmt(v['unsolved']['ci95'][0])}, {_fmt(v['unsolved']['ci95'][1])}]",
                  _fmt(v["spearman_rho"]), _fmt(v["spearman_p"]), v["n"]]
                 for m, v in a["metrics"].items()]
        # numbers stay as formatted: tabulate would reprint "0.0000" as "0" beside "[0.0000, 0.0000]"
        click.echo(tabulate(table, headers=["metric", "solved", "95% CI", "unsolved", "95% CI", "rho", "p", "n"],
                            disable_numparse=True))
    if cross:
        click.echo("\nAcross models (mean alignment vs task performance):")
        # groups alike in the columns shown are told apart by what else differs (blur, scoring, task
        # version, seed, stimuli ...): a column only then
        def shown(c):
            return (c["dataset"], c["task"], c.get("metric_profile"), c.get("n_images"), c["metric"])

        keys = sorted({k for c in cross for k in (c.get("settings") or {})})
        differ = [k for k in keys if any(
            json.dumps((c.get("settings") or {}).get(k), sort_keys=True, default=str)
            != json.dumps((o.get("settings") or {}).get(k), sort_keys=True, default=str)
            for c in cross for o in cross if shown(c) == shown(o))]

        def settings_cell(c):
            return ", ".join(f"{k}={json.dumps((c.get('settings') or {}).get(k), sort_keys=True, default=str)}"
                             for k in differ)

        extra = ["settings"] if differ else []
        click.echo(tabulate([[c["dataset"], c["task"], c.get("metric_profile"), c.get("n_images"),
                              *([settings_cell(c)] if differ else []), c["metric"], c["task_metric"],
                              _fmt(c["spearman_rho"]), _fmt(c["spearman_p"]), c["n_models"]] for c in cross],
                            headers=["dataset", "task", "profile", "images", *extra, "metric", "task metric", "rho",
                                     "p", "models"], disable_numparse=True))
    if before_after:
        from ..alignment.compare import format_table

        click.echo("\nBefore/after alignment (paired over the aligned model's stimuli; interval: percentile "
                   "bootstrap; p: sign-flip permutation test):")
        for e in before_after:
            click.echo("\n" + format_table(e["model"]))
            if "center_bias" in e:
                click.echo("\n" + format_table(e["center_bias"]))
        tests = max(len(e["model"].get("metrics") or {}) + len(e["model"].get("task") or {}) for e in before_after)
        if tests > 1:
            click.echo(f"\np-values two-sided, each table's not corrected for its {tests} comparisons.")
