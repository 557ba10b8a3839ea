"""``harness align``: fine-tune a model so that its attention moves toward human gaze.

One run: split the dataset by stimulus (:mod:`.split`), precompute what every epoch reuses (model
inputs, human densities on the input grid, the original model's logits and targets), then per epoch
shuffle the training stimuli (seeded by seed and epoch, so a resumed run draws the same batches),
minimise ``task term + weight * alignment term`` with Adam, score the held-out stimuli, and write the
checkpoint (:mod:`.checkpoint`).

The task term keeps what the model was for: with labels (a classification dataset whose labels name
the model's classes) cross-entropy; without (free viewing, e.g. OSIE) distillation from the frozen
original model, KL(softmax(original logits) || softmax(logits)) (Hinton et al. 2015, temperature 1),
or (``logit-mse``) the mean squared difference of all logits (logit matching, Ba & Caruana 2014),
which holds the unlikely classes too.

Data-parallel under ``torchrun``/``accelerate launch`` like evaluation: every rank takes its share
of each batch (positions ``rank, rank + N, ...``), gradients are summed across ranks after scaling
each rank's loss by its share, so a step is the same step on 1 or N processes up to floating-point
summation order. Rank 0 scores the held-out stimuli and writes the checkpoint.
"""

from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HarnessError, interrupt_in
from ..results.files import jsonable as _jsonable

TASK_LOSSES = ("auto", "distill", "logit-mse", "cross-entropy")
#: held-out alignment reported per epoch (quick: two metrics on the model's evaluation attention)
HELD_OUT_METRICS = ("auc_judd", "nss")


@dataclass
class AlignConfig:
    model: str
    dataset: str
    loss: str
    output: Path
    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 8
    weight: float | None = None  # the alignment term's weight; None: the loss plugin's default_weight
    seed: int = 0
    split_seed: int = 0
    holdout: float = 0.3
    limit: int | None = None
    task_loss: str = "auto"
    name: str | None = None
    device: str | None = None
    data_dir: Path | None = None
    cache_dir: Path | None = None
    sigma_deg: float = 1.0
    sigma_px: float | None = None
    threads: int | None = None
    train_only: tuple[str, ...] = ()  # parameter-name prefixes to train; empty: every parameter
    progress: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


def _checked_alignment(value: Any, loss: str, plugin: str, *, epoch: int, untrained: bool):
    """A loss plugin's value, as a 0-d tensor, or a one-line error naming the loss and its plugin:
    it must be a floating-point torch scalar that depends on the trained parameters (a detached value,
    or one computed from constants, would train nothing through the loss while the run reported
    success) and, before any update, finite (a non-finite value then is the loss's, not the
    learning rate's)."""
    import torch

    who = f"alignment loss {loss!r} (plugin {plugin!r})"
    if not isinstance(value, torch.Tensor):
        raise HarnessError(f"{who} returned {type(value).__name__}, not a scalar torch tensor computed from the "
                           "batch (docs/alignment.md)")
    if value.numel() != 1:
        raise HarnessError(f"{who} returned a tensor of shape {tuple(value.shape)}, not a scalar: reduce it over "
                           "the batch (the built-in losses take the mean)")
    if not value.is_floating_point():
        raise HarnessError(f"{who} returned a {value.dtype} tensor, not a floating-point one: it has no gradient")
    if not value.requires_grad:
        raise HarnessError(f"{who} returned a value with no gradient (detached, computed from constants, or from "
                           "nothing --train-only trains): training would change nothing through it")
    value = value.reshape(())
    if untrained and not bool(torch.isfinite(value)):
        raise HarnessError(f"{who} gave {float(value.detach())} at epoch {epoch} before any update: it computes a "
                           "non-finite value from the model as it is")
    return value


def _check(cfg: AlignConfig) -> None:
    if cfg.epochs < 1:
        raise HarnessError(f"--epochs must be at least 1, got {cfg.epochs}")
    if cfg.batch_size < 1:
        raise HarnessError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if not (math.isfinite(cfg.lr) and cfg.lr > 0):
        raise HarnessError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.weight is not None and not (math.isfinite(cfg.weight) and cfg.weight >= 0):
        raise HarnessError(f"--weight must be a non-negative number, got {cfg.weight}")
    if cfg.task_loss not in TASK_LOSSES:
        raise HarnessError(f"--task-loss must be one of {', '.join(TASK_LOSSES)}, got {cfg.task_loss!r}")
    if Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise HarnessError(f"--output {cfg.output} is a file, not a folder")


def _labels(gaze, ds, indices: list[int], class_names) -> list[int] | None:
    """Class indices of the dataset's labels, or None when some stimulus has no label the model knows."""
    if "label" not in ds.column_names or not class_names:
        return None
    index = {str(c): k for k, c in enumerate(class_names)}
    aliases = getattr(gaze, "label_aliases", None) or {}
    labels = ds.select_columns(["label"])
    out = []
    for i in indices:
        label = labels[i]["label"]
        names = [str(label), *map(str, aliases.get(label, ()))] if label is not None else []
        hit = next((index[n] for n in names if n in index), None)
        if hit is None:
            return None
        out.append(hit)
    return out


def run_align(cfg: AlignConfig) -> dict[str, Any]:
    """Train (or resume, or reuse) the checkpoint ``cfg.output``; returns its metadata. On a CUDA
    device with deterministic kernels (:func:`harness.evaluation.parallel.deterministic_kernels`:
    without them two trainings, or a resumed one, need not give the same weights), put back as
    they were afterwards."""
    undo: list = []
    try:
        return _run_align(cfg, undo)
    finally:
        for restore in reversed(undo):
            restore()


#: the lock file of a model folder (never deleted: a process waiting on it would race a third)
LOCK_FILE = ".lock"
#: an epoch's files (harness.alignment.checkpoint.write_epoch), written before the align.json naming them
_EPOCH_FILE = re.compile(r"(weights|state)-e\d{3}\.pt")


def _orphans_only(out: Path) -> bool:
    """``out`` holds, besides the lock, only epoch files that no align.json names (and at least
    one): a training killed between writing its first epoch's files and its align.json. Such a
    folder starts again; anything else in it is the user's."""
    names = [p.name for p in out.iterdir() if p.name != LOCK_FILE]
    return bool(names) and all(_EPOCH_FILE.fullmatch(n) and (out / n).is_file() and not (out / n).is_symlink()
                               for n in names)


def _lock_output(out: Path):
    """Take ``out``'s lock (made if missing; waiting, with a line on stderr, while another process
    trains into it) and remove the hidden temporary files a killed training left (the first epoch's
    weights, half-written: they made the folder look foreign). Returns the release function."""
    from filelock import FileLock, Timeout

    from ..data.download import remove_leftovers
    from ..results.writer import writable_folder

    writable_folder(out, "--output")
    lock = FileLock(str(out / LOCK_FILE))
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"{out}: another harness align is training into this folder; waiting for it", file=sys.stderr)
            lock.acquire()
    except OSError as exc:
        raise HarnessError(f"--output {out}: cannot lock the folder ({exc.strerror or exc})") from exc
    left = remove_leftovers(out, lambda name: name.startswith(".") and name.endswith(".tmp"))
    if left:
        print(f"{out}: removed {left} temporary file(s) an interrupted training left", file=sys.stderr)
    return lock.release


def _run_align(cfg: AlignConfig, undo: list) -> dict[str, Any]:
    import torch

    from ..data import load_gaze_dataset
    from ..evaluation.config import geometry_rows, stimulus_blurs
    from ..evaluation.parallel import CUDA_KERNELS, deterministic_kernels
    from ..evaluation.parallel import world as find_world
    from ..evaluation.threads import cores
    from ..models import device_kwargs, load_model
    from ..plugins import get_registry
    from ..schema import Fixations
    from .batch import AlignmentBatch, density_on_grid
    from .checkpoint import is_checkpoint, read_checkpoint, write_epoch
    from .split import split_stimuli

    from ..models import canonical_model_name

    _check(cfg)
    reg = get_registry()
    loss_spec = reg.get("alignment-loss", cfg.loss)
    hf = cfg.model.startswith("hf:") and ("model", cfg.model) not in reg  # any transformers checkpoint
    model_spec = reg.get("model", "hf" if hf else cfg.model)
    if model_spec.get("baseline"):
        raise HarnessError(f"model {cfg.model!r} is a baseline with no parameters to train")
    loss_fn = loss_spec.resolve()
    needs = tuple(loss_spec.get("needs", ()) or ())
    weight = float(cfg.weight if cfg.weight is not None else loss_spec.get("default_weight", 1.0))

    gaze, ds = load_gaze_dataset(cfg.dataset, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
    n = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    ds = ds.select(range(n)) if n < len(ds) else ds
    meta_rows = ds.remove_columns(["image"])
    ids = [str(r["stimulus_id"]) for r in meta_rows]
    sizes = [(int(r["width"]), int(r["height"])) for r in meta_rows]
    blur = stimulus_blurs(cfg, gaze, geometry_rows(ds, n))  # per stimulus where the dataset's geometry is
    split = split_stimuli(ids, cfg.holdout, cfg.split_seed)
    world = find_world(cfg.device)
    undo.append(deterministic_kernels(world.device))
    torch.manual_seed(cfg.seed)
    threads = cfg.threads or max(1, cores() // max(world.local_size, 1))
    torch.set_num_threads(threads)

    model = load_model(cfg.model, **device_kwargs(cfg.model, world.device))
    if not callable(getattr(model, "trainable", None)):
        raise HarnessError(f"model {cfg.model!r} cannot be trained by `harness align`: it has no trainable() "
                           "(docs/alignment.md: the protocol a model plugin implements to opt in)")
    trainable = model.trainable()
    if cfg.train_only:  # before the output folder is made and locked, and before the held-out scoring
        named = dict(trainable.module.named_parameters())
        unknown = [p for p in cfg.train_only if not any(n.startswith(p) for n in named)]
        if unknown:
            raise HarnessError(f"--train-only {', '.join(unknown)}: no parameter of {cfg.model!r} has that name prefix "
                               f"(first parameters: {', '.join(list(named)[:4])}, ...)")
    device = torch.device(world.device)
    position = {sid: i for i, sid in enumerate(ids)}
    train_idx = [position[s] for s in split.train]
    held_idx = [position[s] for s in split.held_out]
    labels = _labels(gaze, ds, train_idx, trainable.class_names)
    task_loss = cfg.task_loss
    if task_loss == "auto":
        task_loss = "cross-entropy" if labels is not None else "distill"
    elif task_loss == "cross-entropy" and labels is None:
        raise HarnessError(f"--task-loss cross-entropy: dataset {cfg.dataset!r} has no labels naming the classes of "
                           f"{cfg.model!r}; use --task-loss distill")

    settings = {
        "name": cfg.name or f"{cfg.model}+{cfg.loss}",
        "base_model": cfg.model,
        "dataset": cfg.dataset,
        "dataset_fingerprint": gaze.fingerprint(),
        "limit": cfg.limit,
        # one number as before, or the per-stimulus blur's record (evaluation.config.Blur)
        "sigma_px": blur.sigma_px if blur.uniform else blur.params,
        "loss": cfg.loss,
        "loss_plugin": loss_spec.plugin,
        "weight": weight,
        "task_loss": task_loss,
        "epochs": int(cfg.epochs),
        "lr": float(cfg.lr),
        "optimizer": "Adam",
        "batch_size": int(cfg.batch_size),
        "seed": int(cfg.seed),
        "split_seed": int(cfg.split_seed),
        "holdout": float(cfg.holdout),
        "split_sha256": split.sha256,
        "train_only": sorted(cfg.train_only),
        "processes": world.size,
        "device": device.type,
    }
    if device.type == "cuda":  # as a CUDA evaluation's id does: the kernels its numbers come from
        settings["kernels"] = CUDA_KERNELS
    else:  # on a CPU, torch's thread count changes the sums' order, so the weights (a resume on
        # another count continued other numbers without a word; the default follows the machine's cores)
        settings["threads"] = int(threads)
    world.check_same(settings, "settings")  # before the folder is made (as an evaluation's)
    out = Path(cfg.output)
    if world.main:  # one training per folder at a time; the others wait, then resume or are refused
        undo.append(_lock_output(out))
    world.barrier()
    previous = None
    if is_checkpoint(out):
        previous = read_checkpoint(out)
        old = {k: v for k, v in previous.meta["settings"].items() if k != "epochs"}
        new = {k: v for k, v in settings.items() if k != "epochs"}
        if old != new:
            differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise HarnessError(f"--output {out} holds a model aligned with other settings (differs in: "
                               f"{', '.join(differ)}); choose another --output")
        if previous.epochs_done >= cfg.epochs:
            if world.main:
                print(f"{out}: already trained for {previous.epochs_done} epochs; reused", file=sys.stderr)
            return previous.meta
    elif world.main and _orphans_only(out):
        # killed during its first epoch's writes, before align.json named them: nothing to resume
        orphans = [p for p in out.iterdir() if p.name != LOCK_FILE]
        for p in orphans:
            p.unlink()
        print(f"{out}: removed {len(orphans)} file(s) of a first epoch an interrupted training left unfinished",
              file=sys.stderr)
    elif world.main and any(p.name != LOCK_FILE for p in out.iterdir()):
        # rank 0 alone looks (the others would race its own files: the lock's write probe); when it
        # refuses, the launcher stops the other ranks. _lock_output made the folder and probed it
        raise HarnessError(f"--output {out} is a folder that holds other files; give a new or empty folder")

    # what every epoch reuses
    images = ds.select_columns(["image"])
    fixations = [Fixations.from_record(r) for r in meta_rows]
    from ..data.density import fixation_density

    def inputs_of(indices: list[int]) -> torch.Tensor:
        parts = [trainable.preprocess([images[i]["image"] for i in indices[k:k + 32]])
                 for k in range(0, len(indices), 32)]
        return torch.cat(parts) if parts else torch.zeros(0)

    t0 = time.perf_counter()
    x_train = inputs_of(train_idx)
    human = torch.stack([density_on_grid(fixation_density(fixations[i].x, fixations[i].y,
                                                          (sizes[i][1], sizes[i][0]), float(blur.sigmas[i])),
                                         trainable.input_size) for i in train_idx])
    module = trainable.module
    module.eval()  # see the model's trainable(): BatchNorm statistics stay those of the original
    module.requires_grad_(False)
    with torch.no_grad():
        teacher = torch.cat([trainable.logits(x_train[k:k + 32].to(device)).float().cpu()
                             for k in range(0, len(train_idx), 32)])
    targets = torch.tensor(labels, dtype=torch.long) if labels is not None else teacher.argmax(dim=1)
    base_held = _held_out(model, images, fixations, held_idx, cfg.batch_size, base_labels=None)
    base_provenance = model.provenance()
    prepared_s = time.perf_counter() - t0

    named = dict(module.named_parameters())
    chosen = [n for n in named if not cfg.train_only or any(n.startswith(p) for p in cfg.train_only)]
    for n in chosen:
        named[n].requires_grad_(True)
    params = [named[n] for n in chosen]
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    history: list[dict[str, Any]] = [{"epoch": 0, **{f"held_out_{k}": v for k, v in base_held["scores"].items()},
                                      "held_out_top1_agreement": 1.0}]
    start = 1
    if previous is not None:
        module.load_state_dict(previous.weights())
        state = previous.train_state()
        optimizer.load_state_dict(state["optimizer"])
        history = list(previous.meta.get("history", history))
        start = previous.epochs_done + 1
        if world.main:
            print(f"{out}: resuming after epoch {previous.epochs_done} of {cfg.epochs}", file=sys.stderr)

    meta = {
        "settings": settings,
        # the name as given (the runs of the base are named so); where to load it from any working
        # folder when that name is a relative hf: folder (hf:./x)
        "base": {"model": cfg.model, "provenance": base_provenance,
                 **({"load_as": canonical_model_name(cfg.model)} if canonical_model_name(cfg.model) != cfg.model
                    else {})},
        "split": split.to_json(),
        "loss": {"name": cfg.loss, "needs": list(needs), "description": loss_spec.get("description", ""),
                 "citation": loss_spec.get("citation", "")},
        "command": cfg.command,
        "prepared_seconds": round(prepared_s, 2),
    }
    n_train = len(train_idx)
    untrained = previous is None  # no update yet: a non-finite loss is the loss', not the learning rate's
    for epoch in range(start, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        order = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        steps = [order[k:k + cfg.batch_size] for k in range(0, n_train, cfg.batch_size)]
        sums = {"task": 0.0, "align": 0.0, "total": 0.0}
        bar = _bar(len(steps), f"align {settings['name']} epoch {epoch}/{cfg.epochs}", cfg.progress and world.main)
        try:  # closed before an error is printed, which otherwise lands on the bar's line
            for step in steps:
                mine = step[world.rank::world.size]
                share = len(mine) / len(step)
                optimizer.zero_grad(set_to_none=True)
                if len(mine):
                    x = x_train[mine].to(device)
                    batch = AlignmentBatch(trainable, x, human[mine].to(device), targets[mine].to(device), needs=needs)
                    logits = batch.logits()
                    if task_loss == "distill":
                        t_logp = torch.log_softmax(teacher[mine].to(device), dim=1)
                        task = torch.nn.functional.kl_div(torch.log_softmax(logits, dim=1), t_logp, log_target=True,
                                                          reduction="batchmean")
                    elif task_loss == "logit-mse":  # every logit held, not only the likely classes
                        task = torch.nn.functional.mse_loss(logits, teacher[mine].to(device).to(logits.dtype))
                    else:
                        task = torch.nn.functional.cross_entropy(logits, targets[mine].to(device))
                    try:
                        align = loss_fn(batch)
                    except MemoryError:
                        raise
                    except Exception as exc:  # a plugin's bug: one line naming it, not torch's traceback
                        if interrupt_in(exc) is not None:  # Ctrl-C or SIGTERM inside torch's code
                            raise
                        raise HarnessError(f"alignment loss {cfg.loss!r} (plugin {loss_spec.plugin!r}) raised "
                                           f"{type(exc).__name__}: {exc}") from exc
                    align = _checked_alignment(align, cfg.loss, loss_spec.plugin, epoch=epoch, untrained=untrained)
                    total = task + weight * align
                    if not torch.isfinite(total):
                        raise HarnessError(f"alignment loss {cfg.loss!r} gave a non-finite value at epoch {epoch}; "
                                           "lower --lr or --weight")
                    (total * share).backward()
                    values = torch.stack([task.detach(), align.detach(), total.detach()]).double().cpu() * share
                else:
                    values = torch.zeros(3, dtype=torch.float64)
                if world.size > 1:
                    import torch.distributed as dist

                    for p in params:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        dist.all_reduce(p.grad)
                    dist.all_reduce(values)
                optimizer.step()
                untrained = False
                for key, v in zip(("task", "align", "total"), values.tolist()):
                    sums[key] += v * len(step)
                bar.set_postfix(task=f"{values[0]:.4f}", align=f"{values[1]:.4f}")
                bar.update(1)
        finally:
            bar.close()
        train_s = time.perf_counter() - t_epoch
        entry = {"epoch": epoch, **{f"train_{k}": v / n_train for k, v in sums.items()}, "train_seconds": round(train_s, 2)}
        if world.main:
            held = _held_out(model, images, fixations, held_idx, cfg.batch_size, base_labels=base_held["labels"])
            entry.update({f"held_out_{k}": v for k, v in held["scores"].items()})
            entry["held_out_top1_agreement"] = held["agreement"]
            history.append(entry)
            meta = write_epoch(out, _jsonable({**meta, "history": history}),
                               {k: v.detach().cpu() for k, v in module.state_dict().items()},
                               {"optimizer": optimizer.state_dict(), "epoch": epoch}, epoch)
            print(_epoch_line(entry), file=sys.stderr)
        world.barrier()
    module.requires_grad_(False)
    return read_checkpoint(out).meta


def _bar(total: int, desc: str, enabled: bool):
    from ..progress import progress

    return progress(total, desc, "step", enabled)


def _epoch_line(e: dict[str, Any]) -> str:
    parts = [f"epoch {e['epoch']}: loss task {e['train_task']:.4f} align {e['train_align']:.4f}"]
    parts += [f"held-out {k} {e[f'held_out_{k}']:.4f}" for k in HELD_OUT_METRICS if e.get(f"held_out_{k}") is not None]
    parts.append(f"top-1 agreement with the original {e['held_out_top1_agreement']:.3f}")
    s = e["train_seconds"]
    parts.append(f"{s:.0f} s" if s >= 10 else f"{s:.1f} s")  # a short epoch printed '0 s'
    return ", ".join(parts)


def _held_out(model, images, fixations, indices: list[int], batch_size: int, *, base_labels) -> dict[str, Any]:
    """Mean AUC-Judd and NSS of the model's evaluation attention on the held-out stimuli, and its
    top-1 labels (with their agreement with ``base_labels``)."""
    import numpy as np

    from ..metrics import auc_judd, nss

    scores = {k: [] for k in HELD_OUT_METRICS}
    labels: list[str | None] = []
    for k in range(0, len(indices), batch_size):
        chunk = indices[k:k + batch_size]
        preds = model.predict([images[i]["image"] for i in chunk], task="free-viewing",
                              attention=model.attention_methods[0])
        for i, p in zip(chunk, preds):
            f = fixations[i]
            scores["auc_judd"].append(auc_judd(p.attention, f.x, f.y, seed=i))
            scores["nss"].append(nss(p.attention, f.x, f.y))
            labels.append(p.output.get("label"))
    agreement = None
    if base_labels is not None and labels:
        agreement = float(np.mean([a == b for a, b in zip(labels, base_labels)]))
    return {"scores": {k: float(np.nanmean(v)) if v else float("nan") for k, v in scores.items()},
            "labels": labels, "agreement": agreement}
