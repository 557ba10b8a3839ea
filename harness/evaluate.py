"""``harness eval``: dataset → model → attention → metrics → results.

A run is identified by the settings that determine its numbers (model and weights hash, dataset
fingerprint, task, attention method, metric profile and parameters, limit, seed). The run folder's
name carries a hash of those settings, so different settings never reuse stale results, and the
same settings resume: finished batches are kept as Parquet shards and skipped on the next start.
"""

from __future__ import annotations

import functools
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as md
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .errors import HarnessError
from .results import (
    SCHEMA_VERSION,
    atomic_write_json,
    atomic_write_parquet,
    read_run,
    run_id_for,
    settings_hash,
)

CEILING = "human-ceiling"
DEFAULT_SIGMA_DEG = 1.0  # Gaussian sigma of the human density, in degrees of visual angle
PACKAGES = ("torch", "transformers", "datasets", "numpy", "scipy", "pyarrow", "pillow", "huggingface-hub")


@dataclass
class EvalConfig:
    model: str
    dataset: str
    task: str = "free-viewing"
    attention: str | None = None
    limit: int | None = None
    batch_size: int = 8
    output: Path = Path("runs")
    data_dir: Path | None = None
    cache_dir: Path | None = None
    profile: str = "mit"
    seed: int = 0
    sigma_deg: float = DEFAULT_SIGMA_DEG
    sigma_px: float | None = None  # overrides sigma_deg x pixels per degree (datasets without geometry)
    save_maps: int = 3  # attention maps of the first N stimuli are kept for the leaderboard page
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class EvalResult:
    run_dir: Path
    summary: dict[str, Any]
    resumed_images: int
    computed_images: int


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "gaze-harness": __version__}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


class DatasetContext:
    """What every image's scoring needs from the dataset as a whole, computed once."""

    def __init__(self, gaze, ds, limit: int | None, sigma_px: float):
        from .schema import Fixations

        self.gaze = gaze
        n = len(ds) if limit is None else min(limit, len(ds))
        self.ds = ds.select(range(n)) if n < len(ds) else ds
        self.meta = self.ds.remove_columns(["image"])
        self.sigma_px = float(sigma_px)
        self.extra_metrics = plugin_metrics()
        fixations = [Fixations.from_record(r) for r in self.meta]
        self.fixations = fixations
        # normalised fixation pool for shuffled-AUC negatives (other images' fixations)
        sizes = [(int(r["width"]), int(r["height"])) for r in self.meta]
        self.sizes = sizes
        counts = np.array([len(f) for f in fixations])
        self.owner = np.repeat(np.arange(n), counts)
        self.pool_x = np.concatenate([f.x / w for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)
        self.pool_y = np.concatenate([f.y / h for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)

    def __len__(self) -> int:
        return len(self.fixations)

    def others(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.sizes[i]
        mask = self.owner != i
        return self.pool_x[mask] * w, self.pool_y[mask] * h

    def density(self, i: int) -> np.ndarray:
        from .data.density import fixation_density

        w, h = self.sizes[i]
        f = self.fixations[i]
        return fixation_density(f.x, f.y, (h, w), self.sigma_px)


@functools.lru_cache(maxsize=8)
def _baseline_map(h: int, w: int) -> np.ndarray:
    """The information-gain baseline: the centre-bias prior (one per stimulus size, computed once)."""
    from plugins.models.baselines import center_bias_map

    m = center_bias_map(h, w)
    m.setflags(write=False)
    return m


def plugin_metrics() -> list[tuple[str, Callable[..., float]]]:
    """Registered metrics that the built-in suite does not compute (third-party plugins)."""
    from .metrics import METRICS
    from .plugins import get_registry

    return [(s.name, s.resolve()) for s in get_registry().in_order("metric") if s.name not in METRICS]


def _score(smap, fix, ctx: DatasetContext, i: int, profile: str, seed: int, density=None) -> dict[str, float]:
    from .metrics import compute_suite

    w, h = ctx.sizes[i]
    ox, oy = ctx.others(i)
    context = dict(
        density=ctx.density(i) if density is None else density,
        baseline=_baseline_map(h, w),
        other_x=ox,
        other_y=oy,
        profile=profile,
    )
    scores = compute_suite(smap, fix.x, fix.y, seed=seed + i, **context)
    for name, fn in ctx.extra_metrics:
        try:
            scores[name] = float(fn(smap, fix.x, fix.y, seed=seed + i, **context))
        except HarnessError:
            raise
        except Exception as exc:  # a broken third-party metric is named, not a traceback
            raise HarnessError(f"metric {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return scores


def check_map(smap: Any, h: int, w: int) -> str | None:
    """Why a model's map cannot be scored, or None if it can."""
    if smap is None:
        return "model returned no attention map"
    arr = np.asarray(smap)
    if arr.shape != (h, w):
        return f"attention map has shape {tuple(arr.shape)}, expected {(h, w)}"
    if not np.all(np.isfinite(arr)):
        return "attention map contains NaN or infinite values"
    return None


def _settings(cfg: EvalConfig, *, model_name, provenance, attention, kind, gaze, ctx) -> dict[str, Any]:
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


class _RunWriter:
    """Resumable writer of one run folder."""

    def __init__(self, root: Path, settings: dict[str, Any]):
        self.settings = settings
        self.dir = root / run_id_for(settings)
        existing = read_run(self.dir)
        if existing.settings and settings_hash(existing.settings) != settings_hash(settings):
            raise HarnessError(f"{self.dir}: settings.json does not match this run's settings; remove the folder")
        if not existing.settings:
            atomic_write_json(self.dir / "settings.json", settings)
        # every start of this run, so a resumed run's manifest says when it really began
        sessions_file = self.dir / "sessions.json"
        self.sessions = json.loads(sessions_file.read_text()) if sessions_file.is_file() else []
        self.sessions.append(_now())
        atomic_write_json(sessions_file, self.sessions)
        self.shards = self.dir / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)

    def done_ids(self) -> set[str]:
        import pyarrow.parquet as pq

        done: set[str] = set()
        for f in sorted(self.shards.glob("part-*.parquet")):
            done.update(pq.read_table(f, columns=["stimulus_id"]).column("stimulus_id").to_pylist())
        return done

    def write_shard(self, rows: list[dict[str, Any]]) -> None:
        import pyarrow as pa

        n = len(list(self.shards.glob("part-*.parquet")))
        # from_pylist takes its columns from the first row only; a failed row has no metric columns
        columns = list(dict.fromkeys(k for r in rows for k in r))
        table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
        atomic_write_parquet(self.shards / f"part-{n:06d}.parquet", table)

    def save_map(self, stimulus_id: str, smap: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.asarray(smap, dtype=np.float32))
        from .results import atomic_write_bytes

        atomic_write_bytes(self.dir / "maps" / f"{stimulus_id}.npy", buf.getvalue())


def _row(stimulus_id: str, status: str, error: str | None, scores: dict, task_scores: dict, output: dict, seconds: float, n_fix: int) -> dict:
    row: dict[str, Any] = {
        "stimulus_id": stimulus_id,
        "status": status,
        "error": error,
        "n_fixations": n_fix,
        "seconds": seconds,
        "output": json.dumps(output, default=_json_default) if output else None,
    }
    row.update({k: float(v) for k, v in scores.items()})
    row.update({f"task:{k}": float(v) for k, v in task_scores.items()})
    return row


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # a log file (CI, nohup) gets a line every 30 s instead of every redraw of the bar
    interactive = getattr(sys.stderr, "isatty", lambda: False)()
    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr,
                mininterval=0.1 if interactive else 30.0)


def served_tasks(gaze) -> list[str]:
    """The tasks a dataset can serve: free-viewing always (it needs only fixations, which every gaze
    dataset has), then the tasks its plugin declares."""
    return list(dict.fromkeys(["free-viewing", *gaze.tasks]))


def resolve_task(name: str, gaze) -> Any:
    from .plugins import get_registry

    spec = get_registry().get("task", name)
    served = served_tasks(gaze)
    if name not in served:
        raise HarnessError(f"dataset {gaze.name!r} cannot serve task {name!r}; it serves: {', '.join(served)}")
    task = spec.load()
    for key, value in _task_params(gaze, name).items():
        if hasattr(task, key):
            setattr(task, key, value)
    return task


def _finish(writer: _RunWriter, cfg: EvalConfig, settings: dict, *, task_obj, ctx: DatasetContext,
            extra_manifest: dict) -> dict[str, Any]:
    from .plugins import get_registry

    frame = read_run(writer.dir).per_image()
    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    reg = get_registry()
    metric_names = [s.name for s in reg.in_order("metric") if s.name in frame.columns]
    metrics = {m: float(np.nanmean(ok[m])) if len(ok) else math.nan for m in metric_names}
    directions = {m: "higher" if reg.get("metric", m).get("higher_is_better", True) else "lower" for m in metric_names}
    task_metrics: dict[str, float] = {}
    if task_obj is not None and getattr(task_obj, "primary", None) is not None:
        by_id = {r["stimulus_id"]: r for r in ctx.meta}
        rows = frame.to_dict("records")
        outputs = [json.loads(r["output"]) if isinstance(r.get("output"), str) else {} for r in rows]
        records = [by_id[r["stimulus_id"]] for r in rows]
        task_metrics = dict(task_obj.score_dataset(outputs, records))
    failed = frame[frame["status"] != "ok"] if len(frame) else frame
    summary = {
        "schema_version": SCHEMA_VERSION,
        "model": settings["model"],
        "kind": settings["kind"],
        "attention": settings["attention"],
        "dataset": settings["dataset"],
        "task": settings["task"],
        "metric_profile": settings["metric_profile"],
        "n_images": int(len(frame)),
        "n_failed": int(len(failed)),
        "failures": [{"stimulus_id": r["stimulus_id"], "error": r["error"]} for r in failed.head(20).to_dict("records")],
        "metrics": metrics,
        "metric_directions": directions,
        "task_metrics": task_metrics,
        "task_primary": getattr(task_obj, "primary", None),
        "finished_at": _now(),
    }
    if task_metrics:
        from .analysis import alignment_vs_task

        summary["alignment_vs_task"] = alignment_vs_task(
            frame, directions, seed=cfg.seed, score=getattr(task_obj, "per_image_score", None))
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "run_id": writer.dir.name,
        "settings_sha256": settings_hash(settings),
        "model": settings["model"],
        "model_provenance": settings["model_provenance"],
        "dataset": settings["dataset"],
        "dataset_fingerprint": settings["dataset_fingerprint"],
        "task": settings["task"],
        "attention": settings["attention"],
        "metric_profile": settings["metric_profile"],
        "metric_params": settings["metric_params"],
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "wall_time_s": float(frame["seconds"].sum()) if len(frame) else 0.0,
        "packages": package_versions(),
        "platform": platform.platform(),
        "command": cfg.command,
        "started_at": writer.sessions[0],
        "sessions": len(writer.sessions),
        "finished_at": summary["finished_at"],
        **extra_manifest,
    }
    atomic_write_json(writer.dir / "manifest.json", manifest)
    atomic_write_json(writer.dir / "summary.json", summary)
    return summary


def evaluate_model(cfg: EvalConfig, gaze, ctx: DatasetContext, *, model_name: str | None = None,
                   kind: str | None = None, on_batch: Callable[[int], None] | None = None,
                   gaze_only: bool = False, model=None) -> EvalResult:
    """Evaluate one model. ``gaze_only`` (the baselines): score alignment under the dataset's task
    without asking the model to solve it; the run is still filed under ``cfg.task``."""
    from .models import load_model
    from .plugins import get_registry

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
    writer = _RunWriter(Path(cfg.output), settings)
    done = writer.done_ids()
    todo = [i for i, r in enumerate(ctx.meta) if r["stimulus_id"] not in done]
    bar = _progress(len(todo), f"{model_name} on {cfg.dataset}", cfg.progress)
    for start in range(0, len(todo), cfg.batch_size):
        idx = todo[start:start + cfg.batch_size]
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
        rows = []
        for j, i in enumerate(idx):
            t1 = time.perf_counter()
            rec = ctx.meta[i]
            sid = rec["stimulus_id"]
            w, h = ctx.sizes[i]
            fix = ctx.fixations[i]
            pred = preds[j] if batch_error is None else None
            error = batch_error or check_map(pred.attention, h, w)
            scores, task_scores, output = {}, {}, {}
            if error is None:
                smap = np.asarray(pred.attention, dtype=np.float64)
                output = pred.output or {}
                try:
                    scores = _score(smap, fix, ctx, i, cfg.profile, cfg.seed)
                    if getattr(task_obj, "primary", None) is not None:
                        task_scores = task_obj.score_image(output, rec)
                except HarnessError as exc:
                    error = str(exc)
                    scores, task_scores = {}, {}
                if error is None and i < cfg.save_maps:
                    writer.save_map(sid, smap)
            status = "ok" if error is None else "failed"
            rows.append(_row(sid, status, error, scores, task_scores, output,
                             infer_s + time.perf_counter() - t1, len(fix)))
        writer.write_shard(rows)
        bar.update(len(idx))
        if on_batch is not None:
            on_batch(start // cfg.batch_size)
    bar.close()
    summary = _finish(writer, cfg, settings, task_obj=task_obj, ctx=ctx, extra_manifest={})
    return EvalResult(writer.dir, summary, len(done), len(todo))


def evaluate_ceiling(cfg: EvalConfig, gaze, ctx: DatasetContext) -> EvalResult:
    """The human ceiling: each subject's fixations predicted by the other subjects' density
    (leave-one-subject-out), averaged over subjects. Distribution metrics (CC, SIM, KLD, IoU)
    compare the leave-one-out density with the held-out subject's own density."""
    from .data.density import fixation_density, loso_densities

    settings = _settings(cfg, model_name=CEILING, provenance={"model_id": CEILING, "method": "leave-one-subject-out"},
                         attention="leave-one-subject-out", kind="ceiling", gaze=gaze, ctx=ctx)
    writer = _RunWriter(Path(cfg.output), settings)
    done = writer.done_ids()
    todo = [i for i, r in enumerate(ctx.meta) if r["stimulus_id"] not in done]
    bar = _progress(len(todo), f"{CEILING} on {cfg.dataset}", cfg.progress)
    for start in range(0, len(todo), max(cfg.batch_size, 16)):
        rows = []
        for i in todo[start:start + max(cfg.batch_size, 16)]:
            t0 = time.perf_counter()
            sid = ctx.meta[i]["stimulus_id"]
            w, h = ctx.sizes[i]
            fix = ctx.fixations[i]
            per_subject = []
            for subj, loo in loso_densities(fix, (h, w), ctx.sigma_px):
                held = fix.subset(fix.subject == subj)
                if len(held) == 0:
                    continue
                held_density = fixation_density(held.x, held.y, (h, w), ctx.sigma_px)
                per_subject.append(_score(loo, held, ctx, i, cfg.profile, cfg.seed, density=held_density))
            if per_subject:
                keys = per_subject[0].keys()
                scores = {k: float(np.nanmean([s[k] for s in per_subject])) for k in keys}
                rows.append(_row(sid, "ok", None, scores, {}, {}, time.perf_counter() - t0, len(fix)))
            else:
                rows.append(_row(sid, "failed", "fewer than two subjects", {}, {}, {}, time.perf_counter() - t0, len(fix)))
        writer.write_shard(rows)
        bar.update(len(rows))
    bar.close()
    summary = _finish(writer, cfg, settings, task_obj=None, ctx=ctx, extra_manifest={})
    return EvalResult(writer.dir, summary, len(done), len(todo))


def reference_models() -> list[str]:
    """Baseline models registered with ``baseline=True``."""
    from .plugins import get_registry

    return [s.name for s in get_registry().all("model") if s.get("baseline")]


def check_model_name(name: str) -> None:
    """A registered model name exists, else a one-line error with "did you mean"; ``hf:`` names
    are checked when loaded."""
    from .plugins import get_registry

    if name != CEILING and not name.startswith("hf:"):
        get_registry().get("model", name)


def run_eval(cfg: EvalConfig, *, references: bool = True, on_batch=None) -> list[EvalResult]:
    """Evaluate ``cfg.model``; unless told not to, also make sure the human ceiling and the
    baselines exist for the same dataset, limit and metric settings (computed once, then reused)."""
    from .data import load_gaze_dataset
    from .models import load_model

    from .plugins import get_registry

    # user mistakes are reported before any long computation starts
    check_model_name(cfg.model)
    gaze, ds = load_gaze_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
    resolve_task(cfg.task, gaze)
    if cfg.sigma_px is not None:
        sigma_px = float(cfg.sigma_px)
    elif math.isfinite(float(gaze.pixels_per_degree)):
        sigma_px = cfg.sigma_deg * float(gaze.pixels_per_degree)
    else:
        raise HarnessError(
            f"dataset {gaze.name!r} has no known viewing geometry (pixels per degree), so the human density "
            "blur cannot be set in degrees; pass --sigma-px N to choose it in pixels"
        )
    if not sigma_px > 0:
        raise HarnessError(f"the density blur must be positive, got sigma {sigma_px} px")
    ctx = DatasetContext(gaze, ds, cfg.limit, sigma_px)
    results = []
    # load the model before the references, so a checkpoint that cannot be loaded fails at once
    model = load_model(cfg.model) if cfg.model != CEILING else None
    if cfg.attention is not None:
        get_registry().get("attention", cfg.attention)  # a typo gets "did you mean"
    if model is not None:
        if cfg.task not in model.tasks:
            raise HarnessError(f"model {cfg.model!r} does not do task {cfg.task!r}; it does: {', '.join(model.tasks)}")
        if cfg.attention is not None and cfg.attention not in model.attention_methods:
            raise HarnessError(f"model {cfg.model!r} does not support attention {cfg.attention!r}; "
                               f"it supports: {', '.join(model.attention_methods)}")
    if references:
        results.append(evaluate_ceiling(cfg, gaze, ctx))
        for name in reference_models():
            if name != cfg.model:
                base_cfg = EvalConfig(**{**cfg.__dict__, "attention": None})
                results.append(evaluate_model(base_cfg, gaze, ctx, model_name=name, kind="baseline", gaze_only=True))
    if cfg.model != CEILING:
        results.append(evaluate_model(cfg, gaze, ctx, on_batch=on_batch, model=model))
    return results
