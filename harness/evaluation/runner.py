"""``harness eval``: dataset -> model -> attention -> metrics -> results, one run folder per model.

A run is identified by the settings that determine its numbers (model and weights hash, dataset
fingerprint, task, attention method, metric profile and parameters, limit, seed). The run folder's
name carries a hash of those settings, so different settings never reuse stale results, and the
same settings resume: finished batches are kept as Parquet shards and skipped on the next start.
One process at a time computes a run (:class:`harness.results.writer.RunWriter` holds its lock);
another process asking for the same run waits, then reuses it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import HarnessError
from ..results import read_run
from ..results.summary import canonical_order
from ..results.writer import RunWriter, writable_folder
from . import record
from .config import CEILING, EvalConfig, EvalResult, blur_px
from .context import DatasetContext
from .scoring import check_map, score


def _settings(cfg: EvalConfig, *, model_name, provenance, attention, kind, gaze, ctx) -> dict[str, Any]:
    from ..results import SCHEMA_VERSION

    task_params = _task_params(gaze, cfg.task)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_name,
        "kind": kind,
        "model_provenance": provenance,
        "dataset": cfg.dataset,
        "dataset_fingerprint": gaze.fingerprint(),
        "n_images": len(ctx),
        "limit": cfg.limit,
        "task": cfg.task,
        "attention": attention,
        "metric_profile": cfg.profile,
        "metric_params": {"sigma_deg": cfg.sigma_deg if cfg.sigma_px is None else None, "sigma_px": ctx.sigma_px,
                          "ig_baseline": "center-bias"},
        "seed": cfg.seed,
        # only when present, so runs without them keep their ids
        **({"task_params": task_params} if task_params else {}),
    }


def _task_params(gaze, task: str) -> dict[str, Any]:
    """What the dataset tells the task about its labels (and so changes the task's numbers)."""
    if task == "classification" and _aliases(gaze):
        return {"label_aliases": _aliases(gaze)}
    if task == "detection" and not getattr(gaze, "objects_exhaustive", True):
        return {"objects_exhaustive": False}
    return {}


def _aliases(gaze) -> dict[str, list[str]]:
    """The dataset's class -> model-label aliases (see ``GazeDataset.label_aliases``)."""
    return {str(k): [str(v) for v in vs] for k, vs in sorted((getattr(gaze, "label_aliases", None) or {}).items())}


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # a log file (CI, nohup) gets a line every 30 s instead of every redraw of the bar
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled or total == 0, file=sys.stderr,
                mininterval=0.1 if interactive else 30.0)


def served_tasks(gaze) -> list[str]:
    """The tasks a dataset can serve: free-viewing always (it needs only fixations, which every gaze
    dataset has), then the tasks its plugin declares."""
    return list(dict.fromkeys(["free-viewing", *gaze.tasks]))


def resolve_task(name: str, gaze) -> Any:
    from ..plugins import get_registry

    spec = get_registry().get("task", name)
    served = served_tasks(gaze)
    if name not in served:
        raise HarnessError(f"dataset {gaze.name!r} cannot serve task {name!r}; it serves: {', '.join(served)}")
    task = spec.load()
    for key, value in _task_params(gaze, name).items():
        if hasattr(task, key):
            setattr(task, key, value)
    return task


def _same(a: dict, b: dict) -> bool:
    """Equal as JSON documents (NaN equals NaN), ``finished_at`` aside."""
    def norm(d):
        return json.dumps({k: v for k, v in d.items() if k != "finished_at"}, sort_keys=True, default=str)
    return norm(a) == norm(b)


def _run(cfg: EvalConfig, settings: dict[str, Any], ctx: DatasetContext, *, task_obj, label: str, batch_size: int,
         compute: Callable[[list[int]], tuple[list[dict], list]], extra_manifest: dict[str, Any],
         on_batch: Callable[[int], None] | None = None) -> EvalResult:
    """Fill one run folder: reuse it if complete, else compute the stimuli it lacks, then summarise."""
    with RunWriter(Path(cfg.output), settings) as writer:
        done = writer.done_ids()
        todo = [i for i, sid in enumerate(ctx.ids) if sid not in done]
        if not todo and writer.finished:
            fresh = record.summarize(read_run(writer.dir).per_image(), settings, task_obj=task_obj, ctx=ctx,
                                     seed=cfg.seed)
            if _same(fresh, writer.summary):
                return EvalResult(writer.dir, writer.summary, len(done), 0, reused=True)
            writer.note(f"warning: {writer.dir / 'summary.json'}: not the summary its shards give "
                        "(edited, or written by an older version); written again")
        if todo:
            writer.begin_session()
        bar = _progress(len(todo), f"{label} on {cfg.dataset}", cfg.progress)
        for start in range(0, len(todo), batch_size):
            idx = todo[start:start + batch_size]
            rows, maps = compute(idx)
            for sid, smap in maps:  # before the shard: a shard on disk implies its maps are there
                writer.save_map(sid, smap)
            writer.write_shard(rows, idx[0])
            bar.update(len(idx))
            if on_batch is not None:
                on_batch(start // batch_size)
        bar.close()
        frame = canonical_order(read_run(writer.dir).per_image())
        summary = record.summarize(frame, settings, task_obj=task_obj, ctx=ctx, seed=cfg.seed)
        summary["finished_at"] = record.now()
        writer.finish(record.manifest(writer, cfg, settings, frame, summary["finished_at"], extra_manifest), summary)
        return EvalResult(writer.dir, summary, len(done), len(todo))


def evaluate_model(cfg: EvalConfig, gaze, ctx: DatasetContext, *, model_name: str | None = None,
                   kind: str | None = None, on_batch: Callable[[int], None] | None = None,
                   gaze_only: bool = False, model=None, extra_manifest: dict | None = None) -> EvalResult:
    """Evaluate one model. ``gaze_only`` (the baselines): score alignment under the dataset's task
    without asking the model to solve it; the run is still filed under ``cfg.task``."""
    from ..models import load_model
    from ..plugins import get_registry

    model_name = model_name or cfg.model
    reg = get_registry()
    if not model_name.startswith("hf:"):
        reg.get("model", model_name)  # unknown name: "did you mean" before anything heavy loads
    task_obj = None if gaze_only else resolve_task(cfg.task, gaze)
    predict_task = "free-viewing" if gaze_only else cfg.task
    model = model if model is not None else load_model(model_name)
    if predict_task not in model.tasks:
        raise HarnessError(f"model {model_name!r} does not do task {predict_task!r}; it does: {', '.join(model.tasks)}")
    attention = cfg.attention if (cfg.attention and model_name == cfg.model) else model.attention_methods[0]
    if attention not in model.attention_methods:
        raise HarnessError(
            f"model {model_name!r} does not support attention {attention!r}; it supports: {', '.join(model.attention_methods)}"
        )
    if kind is None:
        kind = "baseline" if ("model", model_name) in reg and reg.get("model", model_name).get("baseline") else "model"
    settings = _settings(cfg, model_name=model_name, provenance=model.provenance(), attention=attention,
                         kind=kind, gaze=gaze, ctx=ctx)
    scores_task = getattr(task_obj, "primary", None) is not None

    def compute(idx: list[int]) -> tuple[list[dict], list[tuple[str, np.ndarray]]]:
        batch = ctx.ds.select(idx)
        images = [r["image"].convert("RGB") for r in batch]
        t0 = time.perf_counter()
        try:
            preds = model.predict(images, task=predict_task, attention=attention)
            batch_error = None if len(preds) == len(images) else f"model returned {len(preds)} predictions for {len(images)} images"
        except HarnessError:
            raise
        except Exception as exc:  # a model crash on one batch is recorded, the run goes on
            preds, batch_error = [None] * len(images), f"{type(exc).__name__}: {exc}"
        infer_s = (time.perf_counter() - t0) / max(len(images), 1)
        rows, maps = [], []
        for j, i in enumerate(idx):
            t1 = time.perf_counter()
            rec, sid, fix = ctx.meta[i], ctx.ids[i], ctx.fixations[i]
            w, h = ctx.sizes[i]
            pred = preds[j] if batch_error is None else None
            if batch_error is not None:
                status, error, smap = "failed", batch_error, None
            else:
                status, error, smap = check_map(pred.attention, h, w, constant_expected=kind == "baseline")
            scores, task_scores, output = {}, {}, {}
            if smap is not None:
                output = pred.output or {}
                try:
                    scores = score(smap, fix, ctx, i, cfg.profile, cfg.seed)
                    if scores_task:
                        task_scores = task_obj.score_image(output, rec)
                except HarnessError as exc:
                    status, error, scores, task_scores = "failed", str(exc), {}, {}
                if status != "failed" and i < cfg.save_maps:
                    maps.append((sid, smap))
            rows.append(record.row(sid, status, error, scores, task_scores, output,
                                   infer_s + time.perf_counter() - t1, len(fix)))
        return rows, maps

    return _run(cfg, settings, ctx, task_obj=task_obj, label=model_name, batch_size=cfg.batch_size,
                compute=compute, extra_manifest=extra_manifest or {}, on_batch=on_batch)


def evaluate_ceiling(cfg: EvalConfig, gaze, ctx: DatasetContext, extra_manifest: dict | None = None) -> EvalResult:
    """The human ceiling: each subject's fixations predicted by the other subjects' density
    (leave-one-subject-out), averaged over subjects. Distribution metrics (CC, SIM, KLD, IoU)
    compare the leave-one-out density with the held-out subject's own density."""
    from ..data.density import fixation_density, loso_densities

    settings = _settings(cfg, model_name=CEILING, provenance={"model_id": CEILING, "method": "leave-one-subject-out"},
                         attention="leave-one-subject-out", kind="ceiling", gaze=gaze, ctx=ctx)

    def compute(idx: list[int]) -> tuple[list[dict], list]:
        rows = []
        for i in idx:
            t0 = time.perf_counter()
            sid, fix = ctx.ids[i], ctx.fixations[i]
            w, h = ctx.sizes[i]
            per_subject = []
            for subj, loo in loso_densities(fix, (h, w), ctx.sigma_px):
                held = fix.subset(fix.subject == subj)
                if len(held) == 0:
                    continue
                held_density = fixation_density(held.x, held.y, (h, w), ctx.sigma_px)
                per_subject.append(score(loo, held, ctx, i, cfg.profile, cfg.seed, density=held_density))
            if per_subject:
                keys = per_subject[0].keys()
                scores = {k: float(np.nanmean([s[k] for s in per_subject])) for k in keys}
                rows.append(record.row(sid, "ok", None, scores, {}, {}, time.perf_counter() - t0, len(fix)))
            else:
                rows.append(record.row(sid, "failed", "fewer than two subjects", {}, {}, {},
                                       time.perf_counter() - t0, len(fix)))
        return rows, []

    return _run(cfg, settings, ctx, task_obj=None, label=CEILING, batch_size=max(cfg.batch_size, 16),
                compute=compute, extra_manifest=extra_manifest or {})


def reference_models() -> list[str]:
    """Baseline models registered with ``baseline=True``."""
    from ..plugins import get_registry

    return [s.name for s in get_registry().all("model") if s.get("baseline")]


def check_model_name(name: str) -> None:
    """A registered model name exists, else a one-line error with "did you mean"; ``hf:`` names
    are checked when loaded."""
    from ..plugins import get_registry

    if name != CEILING and not name.startswith("hf:"):
        get_registry().get("model", name)


def _skipped_note(gaze) -> dict[str, Any]:
    """Stimuli the dataset's conversion left out: said on stderr and recorded in every manifest."""
    skipped = list(getattr(gaze, "skipped", []) or [])
    if not skipped:
        return {}
    counts = {k.removeprefix("skipped_").replace("_", " "): int(v)
              for k, v in (getattr(gaze, "stats", {}) or {}).items() if k.startswith("skipped_") and v}
    common = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "see below"
    print(f"note: {gaze.name}: {len(skipped)} stimuli were skipped while converting the dataset and are not "
          f"scored ({common}); `harness datasets info {gaze.name}` lists them", file=sys.stderr)
    return {"dataset_skipped": skipped}


def run_eval(cfg: EvalConfig, *, references: bool = True, on_batch=None) -> list[EvalResult]:
    """Evaluate ``cfg.model``; unless told not to, also make sure the human ceiling and the
    baselines exist for the same dataset, limit and metric settings (computed once, then reused)."""
    from ..data import load_gaze_dataset
    from ..models import load_model
    from ..plugins import get_registry

    # user mistakes are reported before any long computation starts or any folder is made
    check_model_name(cfg.model)
    if Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise HarnessError(f"--output {cfg.output} is a file, not a folder")
    gaze, ds = load_gaze_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
    resolve_task(cfg.task, gaze)
    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    sizes = ds.select_columns(["width", "height"]).select(range(n))
    longest = max((max(int(w), int(h)) for w, h in zip(sizes["width"], sizes["height"])), default=0)
    sigma_px = blur_px(cfg, gaze, longest)
    model = load_model(cfg.model) if cfg.model != CEILING else None  # a checkpoint that cannot load fails now
    if cfg.attention is not None:
        get_registry().get("attention", cfg.attention)  # a typo gets "did you mean"
    if model is not None:
        if cfg.task not in model.tasks:
            raise HarnessError(f"model {cfg.model!r} does not do task {cfg.task!r}; it does: {', '.join(model.tasks)}")
        if cfg.attention is not None and cfg.attention not in model.attention_methods:
            raise HarnessError(f"model {cfg.model!r} does not support attention {cfg.attention!r}; "
                               f"it supports: {', '.join(model.attention_methods)}")
    writable_folder(Path(cfg.output), "--output")
    ctx = DatasetContext(gaze, ds, cfg.limit, sigma_px)
    extra = _skipped_note(gaze)
    results = []
    if references:
        results.append(evaluate_ceiling(cfg, gaze, ctx, extra_manifest=extra))
        for name in reference_models():
            if name != cfg.model:
                base_cfg = EvalConfig(**{**cfg.__dict__, "attention": None})
                results.append(evaluate_model(base_cfg, gaze, ctx, model_name=name, kind="baseline", gaze_only=True,
                                              extra_manifest=extra))
    if cfg.model != CEILING:
        results.append(evaluate_model(cfg, gaze, ctx, on_batch=on_batch, model=model, extra_manifest=extra))
    return results
