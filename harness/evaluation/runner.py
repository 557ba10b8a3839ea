"""``harness eval``: dataset -> model -> attention -> metrics -> results, one run folder per model.

A run is identified by the settings that determine its numbers (model and weights hash, dataset
fingerprint, task, attention method, metric profile and parameters, limit, seed). The run folder's
name carries a hash of those settings, so different settings never reuse stale results, and the
same settings resume: finished batches are kept as Parquet shards and skipped on the next start.
One process at a time computes a run (:class:`harness.results.writer.RunWriter` holds its lock);
another process asking for the same run waits, then reuses it.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import HarnessError, interrupt_in
from ..results import read_run, run_id_for
from ..results.store import shard_files
from ..results.verify import manifest_disagreements
from ..results.examples import EXAMPLE_SIDE, keep_examples, save_candidate
from ..results.writer import RunFollower, RunWriter, environment_differences, read_environment, writable_folder
from . import calibrated, record
from .config import CEILING, EvalConfig, EvalResult, check_config, check_seed, geometry_rows, stimulus_blurs
from .context import DatasetContext
from .loader import batches, decoder_died, worker_died
from .parallel import CUDA_KERNELS, World, deterministic_kernels, world as find_world
from .scoring import Job, RunSpec, Scorer
from .threads import check_not_starting_worker, cores, keep_heap, limit_this_process, plan

#: the chunk (shard) size of the references, whose numbers do not depend on any batch
REFERENCE_CHUNK = 16


def _settings(cfg: EvalConfig, *, model_name, provenance, attention, kind, gaze, ctx,
              batch_size: int | None = None, stimuli: dict[str, Any] | None = None) -> dict[str, Any]:
    from ..results import SCHEMA_VERSION

    task_params = _task_params(gaze, cfg.task)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": model_name,
        "kind": kind,
        "model_provenance": provenance,
        "dataset": cfg.dataset,
        "dataset_fingerprint": gaze.fingerprint(),
        "n_images": int(stimuli["n"]) if stimuli else len(ctx),
        "limit": cfg.limit,
        # which stimuli, when not all of the dataset's (an aligned model's held-out ones), or all of
        # them for an aligned model evaluated on its training stimuli too (in-sample)
        **({"stimuli": stimuli} if stimuli else {}),
        "task": cfg.task,
        "attention": attention,
        "metric_profile": cfg.profile,
        # the blur: one sigma (as ever), or per stimulus (then a digest of them all; config.Blur)
        "metric_params": {**(ctx.blur.params if getattr(ctx, "blur", None) is not None else
                             {"sigma_deg": cfg.sigma_deg if cfg.sigma_px is None else None, "sigma_px": ctx.sigma_px}),
                          "ig_baseline": "center-bias"},
        "seed": cfg.seed,
        # only when present, so runs without them keep their ids
        **({"task_params": task_params} if task_params else {}),
        # a model's floating-point output depends on which stimuli share its batch (measured: Grad-CAM
        # maps of EfficientNet-Lite0 differ by ~1e-7 between batches of 1 and 8 on CPU), on the device
        # and, on CPU, on the number of threads, so a model run is one of each; references depend on none
        **({"batch_size": batch_size, "device": cfg.resolved_device,
            **({"model_threads": cfg.resolved_threads} if cfg.resolved_device == "cpu" and cfg.resolved_threads != 1
               else {}),
            # CUDA runs made before the kernels were pinned (TF32 convolutions) computed other numbers
            **({"cuda_kernels": CUDA_KERNELS} if cfg.resolved_device == "cuda" else {})}
           if batch_size is not None else {}),
    }


def _task_params(gaze, task: str) -> dict[str, Any]:
    """What changes the task's numbers besides the model: the version of its scoring (a task class'
    ``version``, when it has one: runs scored otherwise before are not reused nor compared) and what
    the dataset tells it about its labels."""
    from ..plugins import get_registry

    params: dict[str, Any] = {}
    version = getattr(get_registry().get("task", task).resolve(), "version", None)
    if version is not None:
        params["version"] = str(version)
    if task in ("classification", "detection") and _aliases(gaze, task):
        params["label_aliases"] = _aliases(gaze, task)
    if task == "detection" and not getattr(gaze, "objects_exhaustive", True):
        params["objects_exhaustive"] = False
    return params


def _aliases(gaze, task: str = "classification") -> dict[str, list[str]]:
    """The dataset's class -> model-label aliases (``GazeDataset.label_aliases``; for detection with
    ``GazeDataset.detection_aliases`` after them)."""
    merged: dict[str, list[str]] = {}
    sources = ("label_aliases", "detection_aliases") if task == "detection" else ("label_aliases",)
    for source in sources:
        for k, vs in (getattr(gaze, source, None) or {}).items():
            names = merged.setdefault(str(k), [])
            names += [str(v) for v in vs if str(v) not in names]
    return {k: merged[k] for k in sorted(merged)}


def _progress(total: int, desc: str, enabled: bool, position: int = 0):
    from ..progress import progress

    return progress(total, desc, "img", enabled, position)


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
        if key != "version" and hasattr(task, key):
            setattr(task, key, value)
    return task


def _listed_shards(manifest: dict) -> dict:
    """The shard files a run's manifest lists (none when it is missing or garbled)."""
    shards = (manifest or {}).get("shards")
    return shards if isinstance(shards, dict) else {}


def _same(a: dict, b: dict) -> bool:
    """Equal as JSON documents (NaN equals NaN), ``finished_at`` aside."""
    def norm(d):
        return json.dumps({k: v for k, v in d.items() if k != "finished_at"}, sort_keys=True, default=str)
    return norm(a) == norm(b)


def chunks_of(n: int, size: int) -> list[list[int]]:
    """The run's stimuli, in canonical order, cut into batches: chunk k holds [k*size, (k+1)*size)."""
    return [list(range(start, min(start + size, n))) for start in range(0, n, size)]


#: a model's function from a chunk (stimulus indices, their images) to its jobs
Infer = Callable[[list[int], list[Any]], list[Job]]


class ModelThreads:
    """Several instances of one model, each running whole chunks in a thread of its own.

    :meth:`submit` hands a chunk to a free instance (first waiting for the oldest chunk when as
    many run as are allowed) and returns the chunks that are done, in the order they were
    submitted (so shards are written in order); :meth:`finish` waits for the rest. A chunk is
    computed by one instance from start to end, as a single instance computes it: the numbers do
    not depend on how many run (on CPU each is on its own torch thread; torch releases the GIL in
    its kernels, so they overlap). An exception in a chunk is raised in the caller's thread when
    that chunk is collected."""

    def __init__(self, infers: Sequence[Infer], allowed: Callable[[], int] | None = None):
        """``allowed``: how many instances may run chunks now (default all), asked at each chunk:
        one leaves a core to the references while they run beside the model."""
        import queue
        from concurrent.futures import ThreadPoolExecutor

        self._allowed = allowed
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for f in infers:
            self._free.put(f)
        self.size = len(infers)
        self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="harness-model",
                                        initializer=_torch_threads_here)
        self._inflight: list[tuple[int, list[int], Any]] = []

    def _one(self, idx: list[int], images: list[Any]) -> list[Job]:
        infer = self._free.get()
        try:
            return infer(idx, images)
        finally:
            self._free.put(infer)

    def submit(self, k: int, idx: list[int], images: list[Any]) -> list[tuple[int, list[int], list[Job]]]:
        limit = self.size if self._allowed is None else max(1, min(self.size, self._allowed()))
        out = []
        while len(self._inflight) >= limit or (self._inflight and self._inflight[0][2].done()):
            k0, idx0, future = self._inflight.pop(0)
            out.append((k0, idx0, future.result()))
        self._inflight.append((k, idx, self._pool.submit(self._one, idx, images)))
        return out

    def finish(self) -> list[tuple[int, list[int], list[Job]]]:
        out = [(k, idx, future.result()) for k, idx, future in self._inflight]
        self._inflight = []
        return out

    def close(self) -> None:
        """Stop: chunks not started are dropped, those running finish (a second or so)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._inflight = []


class ModelCopies:
    """``count`` more instances of a model, loaded by ``factory`` when :meth:`load` is first
    called: by a run that has chunks to compute, not by one found complete (rerunning a finished
    sweep loaded every copy's weights for nothing: ~1 s each for EfficientNet-Lite0, more for a
    large Hugging Face model)."""

    def __init__(self, factory: Callable[[], Any], count: int):
        self._factory, self._count = factory, count
        self._loaded: list[Any] | None = None

    def __len__(self) -> int:
        return self._count

    def load(self) -> list[Any]:
        if self._loaded is None:
            self._loaded = [self._factory() for _ in range(self._count)]
        return self._loaded


def _torch_threads_here() -> None:
    """Give this new thread the process' torch thread count: OpenMP keeps the count per thread, and
    a thread's first kernel (a convolution through oneDNN, say) could otherwise run on every core,
    with other numbers and threads fighting over the cores."""
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(torch.get_num_threads())


@dataclass
class Stage:
    """The processes and settings one invocation of ``harness eval`` shares between its runs."""

    world: World
    scorer: Scorer
    loader_workers: int = 0
    bar_position: int = 0  # the references' bar sits below the model's while both run
    copies_now: Callable[[], int] | None = None  # model instances that may run now (ModelThreads)


def _run(cfg: EvalConfig, settings: dict[str, Any], ctx: DatasetContext, stage: Stage, *, spec: RunSpec,
         label: str, batch_size: int,
         infer: Infer | None,
         copies: Callable[[], list[Infer]] | None = None,
         pixels: bool = True, extra_manifest: dict[str, Any],
         on_batch: Callable[[int], None] | None = None, subset: list[int] | None = None,
         make_jobs: Callable[[list[int]], list[Job]] | None = None) -> EvalResult:
    """Fill one run folder. Rank 0 owns it (lock, damaged files, summary); every rank computes the
    chunks it owns that are not done yet. A complete run is reused untouched. ``subset``: the
    stimuli (indices into ``ctx``, in order) the run scores, when not all (an aligned model's
    held-out stimuli); the context (shuffled-AUC pool, neighbours) stays the whole dataset's, so a
    stimulus scores the same in a subset run as in a full one. ``infer``: the model's function from
    a chunk to its jobs; ``copies``: the same for more instances of the model, made only if there
    are two chunks or more to compute, which then run chunks side by side in threads, each chunk
    whole on one instance. ``make_jobs``: the jobs of a chunk
    when there is no model (default: the bare stimuli). With ``spec.blocks_factor`` a chunk is also
    computed again when its maps' block means are missing (a raw run made before a calibrated one
    asked for them): same batch, same maps; only the block means are written then."""
    world = stage.world
    plugins = record.plugin_versions(settings, [name for name, _ in ctx.extra_metrics])
    environment = record.environment(settings.get("device", "cpu"), plugins, spec.kind)
    world.check_same(settings, "settings")  # before any folder is made
    writer = RunWriter(Path(cfg.output), settings) if world.main else None
    scored = list(range(len(ctx))) if subset is None else list(subset)
    try:
        chunks = [scored[k:k + batch_size] for k in range(0, len(scored), batch_size)]
        run_dir = Path(cfg.output) / run_id_for(settings)

        def lacking(done_rows: set[str]) -> set[str]:
            """Stimuli to compute: without a row, or (blocks wanted) without block means."""
            need = {sid for sid in (ctx.ids[i] for i in scored) if sid not in done_rows}
            if spec.blocks_factor > 0:
                have = calibrated.blocks_done(run_dir)
                need |= {ctx.ids[i] for i in scored if ctx.ids[i] not in have}
            return need

        if writer is not None:
            done = writer.done_ids()
            need = lacking(done)
            missing = [k for k, idx in enumerate(chunks) if any(ctx.ids[i] in need for i in idx)]
            reuse = not missing and writer.finished
            if reuse:
                fresh = record.summarize(read_run(writer.dir).per_image(), settings, task_obj=spec.task, ctx=ctx,
                                         seed=cfg.seed, previous=writer.summary)
                if not _same(fresh, writer.summary):
                    writer.note(f"warning: {writer.dir / 'summary.json'}: not the summary its shards give "
                                "(edited, or written by an older version); written again")
                    reuse = False
                elif set(_listed_shards(writer.manifest)) != {p.name for p in shard_files(writer.dir)}:
                    # every reader checks the shards against the manifest and would leave the run out
                    writer.note(f"warning: {writer.dir / 'manifest.json'}: does not list the run's shards (missing, "
                                "edited, or another shard added); written again")
                    reuse = False
                elif (off := manifest_disagreements(writer.manifest or {}, settings, writer.summary or {})):
                    writer.note(f"warning: {writer.dir / 'manifest.json'}: {off[0].split(': ', 1)[1]} (edited); "
                                "written again")
                    reuse = False
            if reuse:  # the plugins that computed it may have changed since (the harness' own code: docs)
                recorded = read_environment(writer.dir)
                changed = (environment_differences(recorded, environment, keys=("plugins", "plugin sources"))
                           if recorded is not None else [])
                if changed:
                    writer.note(f"note: {writer.dir}: reused as it is finished, but it was computed with "
                                f"{'; '.join(changed)}: remove the run folder or write to another --output to "
                                "compute it with this code")
            if missing:
                writer.begin_session(environment)
                if spec.kind != "model" and cfg.progress:
                    writer.note(f"{label}: a reference, computed once for this dataset, limit and metric "
                                "settings and reused by every later model run")
        # rank 0 holds the lock and has set damaged shards aside; what is left to compute is its
        # decision (rank 1 checked the environment of a finished run rank 0 reuses: found by QA)
        decided = world.broadcast(sorted(need) if writer is not None else None)
        if writer is None:
            need = set(decided)
            writer = RunFollower(run_dir, environment if need else None, settings)
            done = writer.done_ids()
        mine = [(k, [i for i in idx if ctx.ids[i] in need]) for k, idx in enumerate(chunks) if world.owns(k)]
        mine = [(k, idx) for k, idx in mine if idx]
        # under a launcher the bar is rank 0's, which counts its own share (found by QA: '/24' of 40)
        share = f" (rank 0's share of {world.size} processes)" if world.size > 1 else ""
        bar = _progress(sum(len(idx) for _, idx in mine), f"{label} on {cfg.dataset}{share}",
                        cfg.progress and world.main, stage.bar_position)
        pending: list[tuple[int, list[int], Any]] = []

        def drain(keep: int) -> None:
            while len(pending) > keep:
                k, idx, handle = pending.pop(0)
                results = handle.result()
                fresh = [ctx.ids[i] not in done for i in idx]  # False: only its block means were missing
                for (_, kept), i, new in zip(results, idx, fresh):
                    if kept is not None and new:  # before the shard: a shard on disk implies its maps are there
                        if kept.full is not None:
                            writer.save_map(ctx.ids[i], kept.full)
                        if kept.small is not None:  # an example candidate (results.examples)
                            save_candidate(writer.dir, ctx.ids[i], kept.small)
                if spec.blocks_factor > 0:  # every stimulus of the chunk listed, a failed one without blocks
                    calibrated.save_blocks(writer.dir, idx[0], [ctx.ids[i] for i in idx],
                                           [kept.blocks if kept is not None else None for _, kept in results],
                                           [bool(kept is not None and kept.constant) for _, kept in results])
                rows = [r for (r, _), new in zip(results, fresh) if new]
                if rows:
                    writer.write_shard(rows, idx[0])
                bar.update(len(idx))
                if on_batch is not None:
                    on_batch(k)

        infers = [infer] if infer is not None else []
        if copies is not None and len(mine) > 1:  # more instances, loaded only for chunks to share out
            infers += copies()
        models = ModelThreads(infers, stage.copies_now) if len(infers) > 1 else None
        try:
            for k, idx, images in batches(ctx, mine, pixels=pixels and bool(infers),
                                          workers=stage.loader_workers if infers else 0):
                if models is not None:  # to a free instance; the chunks done come back in order
                    for done_k, done_idx, jobs in models.submit(k, idx, images):
                        pending.append((done_k, done_idx, stage.scorer.submit(spec, jobs)))
                        drain(keep=stage.scorer.backlog)
                    continue
                jobs = (infers[0](idx, images) if infers else
                        make_jobs(idx) if make_jobs is not None else [Job(i) for i in idx])
                pending.append((k, idx, stage.scorer.submit(spec, jobs)))
                # one batch scored while the next is read and run through the model
                drain(keep=stage.scorer.backlog)
            for done_k, done_idx, jobs in models.finish() if models is not None else ():
                pending.append((done_k, done_idx, stage.scorer.submit(spec, jobs)))
                drain(keep=stage.scorer.backlog)
            drain(keep=0)
        except RuntimeError as exc:  # torch's SIGCHLD handler raises wherever this thread was
            if worker_died(exc):
                raise decoder_died(exc) from exc
            raise
        finally:
            # closed before the error is printed, which otherwise lands on the bar's line (found by QA)
            bar.close()
            if models is not None:
                models.close()
        world.barrier()  # every rank's shards are on disk
        if world.main:
            if reuse:
                summary = writer.summary
                result = EvalResult(writer.dir, summary, len(scored), 0, reused=True)
            else:
                short = lacking(writer.recheck())
                if short:  # rows set aside just now: another process wrote some of the same stimuli
                    raise HarnessError(f"{writer.dir}: {len(short)} stimuli lost their rows when shards written by "
                                       f"another process meanwhile were set aside (e.g. {min(short)!r}); run the same "
                                       "command again to compute them")
                frame = read_run(writer.dir).per_image()  # in stimulus-id order
                summary = record.summarize(frame, settings, task_obj=spec.task, ctx=ctx, seed=cfg.seed,
                                           previous=writer.summary)
                summary["finished_at"] = record.now()
                for line in _task_notes(spec.task, frame, ctx):
                    writer.note(line)
                if spec.example_side > 0:  # the example maps of the page: best, median, worst by NSS, ...
                    keep_examples(writer.dir, frame, cfg.example_maps)
                # the instances that computed this process' chunks this session (one when it had a
                # single chunk or none: the copies are loaded only to share out two or more)
                used = {"model_copies": len(infers)} if spec.kind == "model" and infers else {}
                writer.finish(record.manifest(writer, cfg, settings, frame, summary["finished_at"],
                                              {**extra_manifest, "processes": world.size, **used}, plugins), summary)
                n_done = sum(1 for i in scored if ctx.ids[i] in done)
                result = EvalResult(writer.dir, summary, n_done, len(scored) - n_done)
        world.barrier()  # the summary is written
        if not world.main:
            run = read_run(run_dir)
            n_done = sum(1 for i in scored if ctx.ids[i] in done)
            result = EvalResult(run_dir, run.summary, n_done, len(scored) - n_done)
        return result
    finally:
        if isinstance(writer, RunWriter):
            writer.close()


def evaluate_model(cfg: EvalConfig, gaze, ctx: DatasetContext, stage: Stage, *, model_name: str | None = None,
                   kind: str | None = None, on_batch: Callable[[int], None] | None = None,
                   gaze_only: bool = False, model=None, extra_manifest: dict | None = None,
                   subset: list[int] | None = None, stimuli: dict[str, Any] | None = None,
                   replicas: Sequence[Any] | ModelCopies = ()) -> EvalResult:
    """Evaluate one model. ``gaze_only`` (the baselines): score alignment under the dataset's task
    without asking the model to solve it; the run is still filed under ``cfg.task``. ``replicas``:
    more instances of ``model`` (the same weights), which run batches beside it in threads (a
    :class:`ModelCopies` loads them only if the run has stimuli to compute)."""
    from ..models import checked_model, is_model_path, load_model
    from ..plugins import get_registry

    model_name = model_name or cfg.model
    reg = get_registry()
    if model is None and not model_name.startswith("hf:") and not is_model_path(model_name):
        reg.get("model", model_name)  # unknown name: "did you mean" before anything heavy loads
    task_obj = None if gaze_only else resolve_task(cfg.task, gaze)
    predict_task = "free-viewing" if gaze_only else cfg.task
    model = model if model is not None else load_model(model_name)
    provenance = checked_model(model, model_name)
    if predict_task not in model.tasks:
        raise HarnessError(f"model {model_name!r} does not do task {predict_task!r}; it does: {', '.join(model.tasks)}")
    attention = cfg.attention if (cfg.attention and model_name == cfg.model) else model.attention_methods[0]
    if is_model_path(model_name):  # an aligned model's folder: results carry the name it was trained under
        model_name = model.name
    if attention not in model.attention_methods:
        raise HarnessError(
            f"model {model_name!r} does not support attention {attention!r}; it supports: {', '.join(model.attention_methods)}"
        )
    if kind is None:
        registered = reg.get("model", model_name) if ("model", model_name) in reg else None
        kind = ("baseline" if registered is not None and registered.get("baseline") else
                "proxy" if registered is not None and registered.get("proxy") else "model")
    batch_size = REFERENCE_CHUNK if kind == "baseline" else cfg.batch_size
    settings = _settings(cfg, model_name=model_name, provenance=provenance, attention=attention,
                         kind=kind, gaze=gaze, ctx=ctx, batch_size=None if kind == "baseline" else batch_size,
                         stimuli=stimuli)
    spec = RunSpec(kind=kind, profile=cfg.profile, seed=cfg.seed,
                   task=task_obj if getattr(task_obj, "primary", None) is not None else None,
                   save_maps=cfg.save_maps, example_side=EXAMPLE_SIDE if cfg.example_maps > 0 else 0)

    def infer(idx: list[int], images: list[Any], model=model) -> list[Job]:
        t0 = time.perf_counter()
        try:
            preds = model.predict(images, task=predict_task, attention=attention)
            if not isinstance(preds, (list, tuple)):
                preds = list(preds)  # a generator is fine; None or a single Prediction is not (TypeError)
            error = None if len(preds) == len(images) else f"model returned {len(preds)} predictions for {len(images)} images"
        except HarnessError:
            raise
        except Exception as exc:  # a model crash on one batch is recorded, the run goes on
            if interrupt_in(exc) is not None:  # Ctrl-C inside compiled code: not the model's failure
                raise
            if worker_died(exc):  # a decoding process died while the model ran: not the model's failure
                raise decoder_died(exc) from exc
            preds, error = [None] * len(images), f"{type(exc).__name__}: {exc}"
        infer_s = (time.perf_counter() - t0) / max(len(images), 1)
        if error is not None:
            return [Job(i, error=error, infer_s=infer_s) for i in idx]
        return [_job(i, p, infer_s) for i, p in zip(idx, preds)]

    if cfg.scoring == "calibrated":
        spec = replace(spec, blocks_factor=calibrated.FACTOR)

    def copies() -> list[Infer]:
        load = getattr(replicas, "load", None)
        return [functools.partial(infer, model=r) for r in (load() if load is not None else replicas)]

    result = _run(cfg, settings, ctx, stage, spec=spec, label=model_name, batch_size=batch_size, infer=infer,
                  copies=copies if len(replicas) else None, pixels=getattr(model, "needs_pixels", True),
                  extra_manifest=extra_manifest or {}, on_batch=on_batch,
                  subset=subset)
    if cfg.scoring != "calibrated":
        return result
    return _calibrated_run(cfg, ctx, stage, raw=result, raw_settings=settings, spec=spec, label=model_name,
                           subset=subset, extra_manifest=extra_manifest or {})


def _job(i: int, pred: Any, infer_s: float) -> Job:
    """Stimulus ``i``'s job from what the model returned for it: its map as a numpy array (see
    :func:`.scoring.as_array`), or the reason it has none, recorded as that stimulus' failure."""
    from .scoring import as_array

    if not hasattr(pred, "attention"):
        return Job(i, error=f"model returned a {type(pred).__name__}, not a harness.models.Prediction", infer_s=infer_s)
    attention, why = as_array(pred.attention)
    return Job(i, attention=attention, output=getattr(pred, "output", None), error=why, infer_s=infer_s)


def _calibrated_run(cfg: EvalConfig, ctx: DatasetContext, stage: Stage, *, raw: EvalResult,
                    raw_settings: dict[str, Any], spec: RunSpec, label: str, subset: list[int] | None,
                    extra_manifest: dict[str, Any]) -> EvalResult:
    """The calibrated run of a finished raw run (see :mod:`.calibrated`): fit on rank 0 (or read the
    fit an earlier session stored), then score every stimulus with its own fold's calibration."""
    from ..results.files import sha256_file

    world = stage.world
    settings = {**raw_settings, "scoring": "calibrated", "calibration": calibrated.settings(cfg, spec.kind)}
    run_dir = Path(cfg.output) / run_id_for(settings)
    scored = list(range(len(ctx))) if subset is None else list(subset)
    ids = [ctx.ids[i] for i in scored]
    if spec.kind == "ceiling":
        blocks, rows = None, {}
    else:
        rows = {str(r["stimulus_id"]): r for r in read_run(raw.run_dir).per_image().to_dict("records")}
        blocks = calibrated.read_blocks(raw.run_dir, set(ids))
    inputs = calibrated.inputs_sha256(blocks, ids)
    cal = None
    if world.main:
        stored = calibrated.stored_inputs(run_dir)
        if stored == "":
            raise HarnessError(f"{run_dir / 'calibration.json'}: unreadable (damaged or edited); its shards were "
                               f"scored with it: remove {run_dir} and run again")
        if stored is None and shard_files(run_dir):
            # a refit would not be the file the shards (and the manifest) were made with
            raise HarnessError(f"{run_dir / 'calibration.json'}: missing, but the run's shards were scored with it: "
                               f"remove {run_dir} and run again")
        if stored not in (None, inputs):
            # its shards were scored with that calibration: refitting under them would mix two
            raise HarnessError(f"{run_dir / 'calibration.json'}: fitted on other block means than the raw run "
                               f"{raw.run_dir.name} now holds; remove {run_dir} and run again")
        cal = calibrated.load(run_dir, inputs)
        if cal is None:
            if cfg.progress:
                print(f"{label}: fitting the calibration ({calibrated.FOLDS} folds by stimulus) on {cfg.dataset}",
                      file=sys.stderr, flush=True)
            cal = (calibrated.fit_gold(ctx, scored, cfg.seed) if spec.kind == "ceiling" else
                   calibrated.fit_model(ctx, scored, blocks, cfg.seed, label))
            # only now: a fit refused (too few stimuli) leaves no empty run folder behind
            run_dir.mkdir(parents=True, exist_ok=True)
            calibrated.store(cal, run_dir, inputs)
        thin = calibrated.thin_folds(cal)
        # once a command, for the run asked for (its references are fitted on the same stimuli)
        if thin and (spec.kind == "model" or cfg.model == label):
            print(f"warning: {label}: {thin}", file=sys.stderr)
    world.barrier()  # the calibration is on disk
    if cal is None:
        cal = calibrated.load(run_dir, inputs)
        if cal is None:
            raise HarnessError(f"{run_dir}: rank 0 wrote no calibration for these inputs")
    calibrated.leak_check(cal, run_dir)
    cspec = replace(spec, calibrated=True, save_maps=0, example_side=0, blocks_factor=0)

    def make_jobs(idx: list[int]) -> list[Job]:
        jobs = []
        for i in idx:
            b = blocks.get(ctx.ids[i]) if blocks is not None else None
            jobs.append(Job(i, blocks=None if b is None else b[0], constant=bool(b is not None and b[1]),
                            raw=_plain(rows.get(ctx.ids[i]))))
        return jobs

    refs = plan(local_processes=world.local_size, device="cpu", n_stimuli=len(scored) // world.size, model=False,
                score_workers=cfg.score_workers, loader_workers=0)
    ctx.calibration = cal  # what the scoring processes need besides the jobs (sent once, with the context)
    try:
        with Scorer(ctx, refs.score_workers, gate=stage.scorer.gate) as scorer:
            manifest = {**extra_manifest, "raw_run": raw.run_dir.name,
                        "calibration_sha256": sha256_file(run_dir / "calibration.json")}
            return _run(cfg, settings, ctx, replace(stage, scorer=scorer), spec=cspec, label=f"{label} (calibrated)",
                        batch_size=REFERENCE_CHUNK, infer=None, pixels=False, extra_manifest=manifest,
                        subset=subset, make_jobs=make_jobs)
    finally:
        ctx.calibration = None


def _plain(r: dict | None) -> dict | None:
    """A raw row as plain Python values (pandas gives NaN for a missing text)."""
    if r is None:
        return None
    out = {}
    for k, v in r.items():
        if isinstance(v, float) and v != v and k in ("error", "output"):
            v = None
        out[k] = v.item() if hasattr(v, "item") else v
    return out


def evaluate_ceiling(cfg: EvalConfig, gaze, ctx: DatasetContext, stage: Stage,
                     extra_manifest: dict | None = None) -> EvalResult:
    """The human ceiling: each subject's fixations predicted by the other subjects' density
    (leave-one-subject-out), averaged over subjects. Distribution metrics (CC, SIM, KLD, IoU)
    compare the leave-one-out density with the held-out subject's own density."""
    settings = _settings(cfg, model_name=CEILING, provenance={"model_id": CEILING, "method": "leave-one-subject-out"},
                         attention="leave-one-subject-out", kind="ceiling", gaze=gaze, ctx=ctx)
    spec = RunSpec(kind="ceiling", profile=cfg.profile, seed=cfg.seed)
    result = _run(cfg, settings, ctx, stage, spec=spec, label=CEILING, batch_size=REFERENCE_CHUNK, infer=None,
                  extra_manifest=extra_manifest or {})
    if cfg.scoring != "calibrated":
        return result
    return _calibrated_run(cfg, ctx, stage, raw=result, raw_settings=settings, spec=spec, label=CEILING,
                           subset=None, extra_manifest=extra_manifest or {})


def reference_models() -> list[str]:
    """Baseline models registered with ``baseline=True``."""
    from ..plugins import get_registry

    return [s.name for s in get_registry().all("model") if s.get("baseline")]


def check_model_name(name: str) -> None:
    """A registered model name exists, else a one-line error with "did you mean"; ``hf:`` names
    are checked when loaded."""
    from ..plugins import get_registry

    from ..models import is_model_path

    if name == "hf":  # the Hugging Face loader's registration, not a model (found by QA)
        raise HarnessError("--model hf needs a checkpoint: hf:<Hub id or folder>[@revision][?options] "
                           "(docs/huggingface.md)")
    if name != CEILING and not name.startswith("hf:") and not is_model_path(name):
        reg = get_registry()
        if ("model", name) not in reg and is_model_path(f"./{name}"):  # a bare folder name (found by QA)
            raise HarnessError(f"--model {name}: no registered model of that name; the folder {name} here was "
                               f"written by `harness align`: give it as ./{name}")
        if ("model", name) not in reg and ("/" in name or name.startswith(".")):  # meant as a folder
            folder = Path(name)
            if not folder.exists():
                raise HarnessError(f"--model {name}: no such folder (and no registered model of that name)")
            raise HarnessError(f"--model {name}: not a model folder written by `harness align` (no align.json)")
        reg.get("model", name)


def _task_notes(task: Any, frame, ctx: DatasetContext) -> list[str]:
    """What a task has to say about a finished run's outputs as a whole (its optional ``notes``:
    e.g. classification's labels that never name a dataset class), as warning lines."""
    notes = getattr(task, "notes", None)
    if notes is None or "output" not in frame:
        return []
    try:
        return [f"warning: {line}" for line in notes(*record.scored_outputs(frame, ctx))]
    except Exception:  # a plugin's notes are advice: never the reason a run fails
        return []


def _check_registered_task(name: str, task: str) -> None:
    """A built-in model (``registry.yaml``: its listing is tested against its object) that does not
    list ``task`` is refused before anything is downloaded or loaded (a checkpoint that cannot be
    fetched, data the model needs, would otherwise be the error a user sees first). A third-party
    plugin's listing is not trusted that far: its object decides (:func:`_check_listing` warns)."""
    from ..plugins import builtin_catalogue, get_registry

    reg = get_registry()
    if ("model", name) not in reg:
        return
    spec = reg.get("model", name)
    if spec.plugin not in {str(e.get("name")) for e in builtin_catalogue() if isinstance(e, dict)}:
        return
    listed = [str(v) for v in (spec.get("tasks") or ())]
    if listed and task not in listed:
        raise HarnessError(f"model {name!r} does not do task {task!r}; it does: {', '.join(listed)}")


def _check_listing(name: str, model: Any) -> None:
    """A warning when what a model plugin registered (what ``harness models`` lists, without
    importing it) is not what its object offers: the object's tasks and attention methods are used,
    and a listing that names others (a typo, a renamed method) would otherwise mislead in silence."""
    from ..plugins import get_registry

    reg = get_registry()
    if ("model", name) not in reg:
        return
    spec = reg.get("model", name)
    for key, attr in (("tasks", "tasks"), ("attention", "attention_methods")):
        listed = [str(v) for v in (spec.get(key) or ())]
        offered = [str(v) for v in getattr(model, attr)]
        absent = [v for v in listed if v not in offered]
        if absent:
            print(f"warning: model {name!r} (plugin {spec.plugin!r}) is registered with {key} "
                  f"{', '.join(absent)}, which its object does not offer ({attr}: {', '.join(offered)}); "
                  "`harness models` lists it wrongly, and the object's are used", file=sys.stderr)


#: fixations a conversion drops because the data is wrong (not by the dataset's protocol, such as
#: COCO-FreeView's initial central fixation): said on stderr at every evaluation
_DATA_DROPS = ("dropped_out_of_bounds", "dropped_invalid")


def _skipped_note(gaze, cfg: EvalConfig | None = None) -> dict[str, Any]:
    """Stimuli and fixations the dataset's conversion left out: said on stderr (the fixations only
    where the data was wrong: out of the image, not finite) and recorded in every manifest. The
    `datasets info` command it points to carries the command's --data-dir and --cache-dir (without
    them it looked elsewhere: found by QA)."""
    import shlex

    info = f"harness datasets info {gaze.name}"
    for option, value in (("--data-dir", getattr(cfg, "data_dir", None)), ("--cache-dir", getattr(cfg, "cache_dir", None))):
        if value is not None:
            info += f" {option} {shlex.quote(str(value))}"
    stats = getattr(gaze, "stats", {}) or {}
    dropped = {k.removeprefix("dropped_"): int(v) for k, v in sorted(stats.items())
               if k.startswith("dropped_") and isinstance(v, (int, float)) and v}
    wrong = {k.removeprefix("dropped_").replace("_", " "): int(stats[k]) for k in _DATA_DROPS if stats.get(k)}
    if wrong:
        print(f"note: {gaze.name}: {sum(wrong.values())} fixations were dropped while converting the dataset "
              f"({', '.join(f'{n} {why}' for why, n in wrong.items())}); `{info}` says more", file=sys.stderr)
    out: dict[str, Any] = {"dataset_dropped": dropped} if dropped else {}
    skipped = list(getattr(gaze, "skipped", []) or [])
    if not skipped:
        return out
    counts = {k.removeprefix("skipped_").replace("_", " "): int(v)
              for k, v in (getattr(gaze, "stats", {}) or {}).items() if k.startswith("skipped_") and v}
    common = ", ".join(f"{n} {r}" for r, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "see below"
    print(f"note: {gaze.name}: {len(skipped)} stimuli were skipped while converting the dataset and are not "
          f"scored ({common}); `{info}` lists them", file=sys.stderr)
    return {**out, "dataset_skipped": skipped}


def run_eval(cfg: EvalConfig, *, references: bool = True, on_batch=None, model=None) -> list[EvalResult]:
    """Evaluate ``cfg.model``; unless told not to, also make sure the human ceiling and the
    baselines exist for the same dataset, limit and metric settings (computed once, then reused).
    Under torchrun / accelerate launch every process calls this; each computes its share."""
    from ..data import get_gaze_dataset
    from ..models import copies_allowed

    check_not_starting_worker()  # a script without a __main__ guard, re-run in a worker: stop, do not hang
    # user mistakes are reported before any long computation starts or any folder is made
    given = model  # a model object (harness.evaluate), used as is
    if cfg.scoring not in calibrated.SCORINGS:
        raise HarnessError(f"unknown scoring {cfg.scoring!r}; use one of {', '.join(calibrated.SCORINGS)}")
    check_seed(cfg.seed)
    check_config(cfg)
    if given is None:
        check_model_name(cfg.model)
    if Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise HarnessError(f"--output {cfg.output} is a file, not a folder")
    gaze = get_gaze_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
    resolve_task(cfg.task, gaze)  # before a download or conversion that could not serve the task anyway
    if given is None and cfg.model != CEILING:
        _check_registered_task(cfg.model, cfg.task)  # before the dataset and the model are fetched
    ds = gaze.load()
    if cfg.limit is not None and cfg.limit >= len(ds):
        # every stimulus: the same run as no --limit (a limit above the size named runs apart)
        cfg = replace(cfg, limit=None)
    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    sigma_px = stimulus_blurs(cfg, gaze, geometry_rows(ds, n))  # one blur per stimulus (config.Blur)
    world = find_world(cfg.device)
    work = plan(local_processes=world.local_size, device=world.device, n_stimuli=n // world.size,
                score_workers=cfg.score_workers, loader_workers=cfg.loader_workers, model_threads=cfg.model_threads,
                model_copies=cfg.model_copies,
                copies_ok=given is None and cfg.model != CEILING and copies_allowed(cfg.model))
    cfg.resolved_device = world.device.split(":")[0]
    cfg.resolved_threads = work.model_threads
    # process-wide settings for the evaluation, put back after it (a notebook keeps its own)
    undo = [limit_this_process(work.model_threads),
            deterministic_kernels(world.device)]  # on GPUs: the same numbers for any number of them
    try:
        return _run_eval_in(cfg, world, work, gaze, ds, n, sigma_px, given, references, on_batch)
    finally:
        for restore in reversed(undo):
            restore()


def _run_eval_in(cfg: EvalConfig, world: World, work, gaze, ds, n: int, sigma_px, given, references: bool,
                 on_batch) -> list[EvalResult]:
    """:func:`run_eval` once the dataset is loaded and this process' place and threads are set."""
    from ..models import checked_model, data_kwargs, device_kwargs, load_model
    from ..plugins import get_registry

    keep_heap()  # each stimulus' maps reuse the same pages (threads.keep_heap)
    if given is not None:
        model = given
    else:
        model = (load_model(cfg.model, **device_kwargs(cfg.model, world.device),
                            **data_kwargs(cfg.model, cfg.dataset, cfg.data_dir)) if cfg.model != CEILING else None)
    if cfg.attention is not None:
        get_registry().get("attention", cfg.attention)  # a typo gets "did you mean"
    replicas: Sequence[Any] | ModelCopies = []
    if model is not None and given is None and work.model_copies > 1:
        # more instances of the same model, each running its own batches on its own thread
        replicas = ModelCopies(lambda: load_model(cfg.model, **device_kwargs(cfg.model, world.device),
                                                  **data_kwargs(cfg.model, cfg.dataset, cfg.data_dir)),
                               work.model_copies - 1)
    if model is not None:
        # a plugin's object is not trusted to be a model; its provenance is asked for now (hashes are
        # memoised), so that a failing one stops the command before the references start beside it
        checked_model(model, cfg.model)
        if given is None and world.main:
            _check_listing(cfg.model, model)
        if cfg.task not in model.tasks:
            raise HarnessError(f"model {cfg.model!r} does not do task {cfg.task!r}; it does: {', '.join(model.tasks)}")
        if cfg.attention is not None and cfg.attention not in model.attention_methods:
            raise HarnessError(f"model {cfg.model!r} does not support attention {cfg.attention!r}; "
                               f"it supports: {', '.join(model.attention_methods)}")
        unused = getattr(model, "options_unused_by", None)  # optional: options one method never reads
        unused = unused(cfg.attention or model.attention_methods[0]) if callable(unused) else []
        if unused:
            raise HarnessError(f"model {cfg.model!r}: option {', '.join(unused)} does not apply to attention "
                               f"{cfg.attention or model.attention_methods[0]!r} (it would name a run of its own "
                               "with the same maps)")
    writable_folder(Path(cfg.output), "--output")
    ctx = DatasetContext(gaze, ds, cfg.limit, sigma_px)
    extra = _skipped_note(gaze, cfg) if world.main else {}
    refs = plan(local_processes=world.local_size, device="cpu", n_stimuli=n // world.size, model=False,
                score_workers=cfg.score_workers, loader_workers=0)

    def reference_runs(stage: Stage, rctx: DatasetContext) -> list[EvalResult]:
        out = [evaluate_ceiling(cfg, gaze, rctx, stage, extra_manifest=extra)]
        for name in reference_models():
            if name != cfg.model:
                base_cfg = EvalConfig(**{**cfg.__dict__, "attention": None})
                out.append(evaluate_model(base_cfg, gaze, rctx, stage, model_name=name, kind="baseline",
                                          gaze_only=True, extra_manifest=extra))
        return out

    if cfg.model == CEILING or not references or world.size > 1:
        # under a launcher the references come first: every rank must meet the same barriers in the
        # same order, which two threads of one process would not guarantee
        results = []
        if references:
            with Scorer(ctx, refs.score_workers) as scorer:
                results += reference_runs(Stage(world, scorer), ctx)
        if cfg.model == CEILING:
            return results
        return results + [_model_run(cfg, gaze, ctx, world, work, model, replicas, extra, on_batch)]
    # One process: the references are scored beside the model run, on the cores the model leaves
    # idle, then on every core once the model is done (measured on 2 cores: the model leaves one
    # idle, and the README's first command took ceiling + baselines + model one after the other)
    # the model runs one copy fewer while the references run (copies_now below), at least one
    idle = max(1, cores() // max(1, world.local_size) - work.model_threads * max(1, len(replicas))
               - work.score_workers - work.loader_workers)
    beside = Beside(reference_runs, ctx, world, refs.score_workers, idle)
    beside.start()
    try:
        def batch_done(k: int) -> None:
            beside.check()  # a reference that failed ends the model run too
            if on_batch is not None:
                on_batch(k)

        # while the references run, one copy of the model fewer: they have the core it leaves
        # (measured on 2 cores: two copies beside them cost 10% more wall and CPU than one)
        result = _model_run(cfg, gaze, ctx, world, work, model, replicas, extra, batch_done,
                            copies_now=lambda: len(replicas) + (0 if beside.running() else 1))
        return beside.finish() + [result]
    except BaseException:
        beside.stop()
        raise


def _model_run(cfg: EvalConfig, gaze, ctx: DatasetContext, world: World, work, model, replicas, extra,
               on_batch, copies_now: Callable[[], int] | None = None) -> EvalResult:
    subset, stimuli = _aligned_subset(cfg, model, gaze, ctx, world.main)
    with Scorer(ctx, work.score_workers) as scorer:
        stage = Stage(world, scorer, loader_workers=work.loader_workers, copies_now=copies_now)
        return evaluate_model(cfg, gaze, ctx, stage, on_batch=on_batch, model=model, replicas=replicas,
                              extra_manifest=extra, subset=subset, stimuli=stimuli)


class Beside:
    """The references, computed in a thread of this process while the model runs in the main one.

    The thread only hands batches to its own scoring processes and writes their shards; a
    :class:`~.scoring.Gate` lets ``idle`` of those processes work while the model runs (the cores
    it leaves idle) and all of them once :meth:`finish` is called. The rows are the same as when
    the references run first (they depend on no schedule). The thread scores a shallow copy of the
    dataset context: a calibrated run sets an attribute on it (``calibration``)."""

    def __init__(self, runs: Callable[[Stage, DatasetContext], list[EvalResult]], ctx: DatasetContext,
                 world: World, workers: int, idle: int):
        import threading

        from .scoring import Gate

        self.gate = Gate(min(idle, workers) if workers else None)
        self._runs, self._ctx, self._world = runs, ctx.copy(), world
        # made here, so that stop() always finds it (its processes start with the first batch)
        self._scorer = Scorer(self._ctx, workers, gate=self.gate)
        self._results: list[EvalResult] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="harness-references", daemon=True)

    def _main(self) -> None:
        try:
            with self._scorer as scorer:
                self._results = self._runs(Stage(self._world, scorer, bar_position=1), self._ctx)
        except BaseException as exc:  # handed to the main thread
            self._error = exc

    def start(self) -> None:
        self._thread.start()

    def running(self) -> bool:
        """Whether the references are still being computed (or waiting to be)."""
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise a reference's error in the calling (main) thread."""
        if self._error is not None:
            raise self._error

    def finish(self) -> list[EvalResult]:
        """Open every process to the references, wait for them, and return their results."""
        self.gate.lanes = None
        self._thread.join()
        self.check()
        return self._results

    def stop(self) -> None:
        """The model run failed or was interrupted: drop the references' queued work (finished
        shards stay) and wait for the thread."""
        self._scorer.stop()
        self._thread.join(timeout=60)


def _aligned_subset(cfg: EvalConfig, model, gaze, ctx: DatasetContext,
                    main: bool) -> tuple[list[int] | None, dict[str, Any] | None]:
    """An aligned model on the dataset it was trained on scores only the stimuli its training never
    saw, and says so; ``--in-sample`` scores all of them and marks the run in-sample."""
    held_out_ids = getattr(model, "held_out_ids", None)
    if not callable(held_out_ids):
        if cfg.in_sample:
            raise HarnessError("--in-sample applies to aligned models (folders written by `harness align`) only")
        return None, None
    held = held_out_ids(cfg.dataset, gaze.fingerprint())
    if held is None:  # another dataset: none of its stimuli were trained on
        if cfg.in_sample:
            raise HarnessError(f"--in-sample: {cfg.model} was not trained on {cfg.dataset!r}, so no stimulus is in-sample")
        return None, None
    sha = model.split.sha256
    # never seen in training: its held-out stimuli and any beyond an `align --limit` (a model trained on
    # 4 stimuli was scored on its 1 held-out one, and "699 of 700 seen in training" with --in-sample;
    # found by QA)
    trained = set(model.split.train)
    if cfg.in_sample:
        if main:
            print(f"note: {cfg.model}: scoring all {len(ctx)} stimuli, {sum(s in trained for s in ctx.ids)} "
                  "of them seen in training; the run is marked in-sample", file=sys.stderr)
        return None, {"subset": "all", "in_sample": True, "n": len(ctx), "split_sha256": sha}
    subset = [i for i, sid in enumerate(ctx.ids) if sid not in trained]
    if not subset:
        raise HarnessError(f"{cfg.model}: none of its held-out stimuli is among the {len(ctx)} scored "
                           "(raise --limit, or pass --in-sample to score training stimuli)")
    if main:
        print(f"note: {cfg.model}: scoring its {len(subset)} held-out stimuli of {len(ctx)} (never seen in "
              "training); --in-sample scores all", file=sys.stderr)
    return subset, {"subset": "held-out", "n": len(subset), "split_sha256": sha}
