"""``harness align``: train a model toward human gaze (docs/alignment.md)."""

from __future__ import annotations

import click

from . import FOLDER
from ..cli import LazyHelpOption, main, registered_names
from ..data.paths import DATA_DIR_HELP


#: |--seed| at most 2**40: each epoch's batch order is seeded with seed * 100003 + epoch, which torch
#: takes as a 64-bit integer (a larger seed failed after the data was prepared, with a traceback)
SEED_LIMIT = 2**40


def _loss_help() -> str:
    names = registered_names("alignment-loss")
    listed = f"one of {', '.join(names)}" if names else "a registered alignment loss"
    return f"Alignment loss: {listed} (`harness alignment-losses` describes them)."


@main.command("align")
@click.option("--model", "-m", required=True, help="Registered model that can be trained (e.g. efficientnet-lite0).")
@click.option("--dataset", "-d", default="osie", show_default=True, help="Registered gaze dataset to train toward.")
@click.option("--loss", "-l", required=True, cls=LazyHelpOption, help_fn=_loss_help)
@click.option("--output", "-o", required=True, type=FOLDER,
              help="Folder of the aligned model (new or empty; an unfinished one with the same settings resumes). "
                   "`harness eval --model FOLDER` evaluates it.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Passes over the training stimuli.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="Stimuli per step.")
@click.option("--weight", type=float, default=None,
              help="Weight of the alignment term against the task term (default: the loss' own default).")
@click.option("--task-loss", type=click.Choice(["auto", "distill", "logit-mse", "cross-entropy"]), default="auto",
              show_default=True,
              help="How the task is kept: cross-entropy on the dataset's labels, or the original model's outputs "
                   "(distill: KL of the softmax; logit-mse: every logit); auto: labels when every training stimulus "
                   "has one the model knows, else distill.")
@click.option("--holdout", type=float, default=0.3, show_default=True,
              help="Share of the stimuli held out of training (split by stimulus id and --split-seed).")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--seed", type=click.IntRange(min=-SEED_LIMIT, max=SEED_LIMIT), default=0, show_default=True,
              help="Seed of the batch order and initialisation.")
@click.option("--limit", type=click.IntRange(min=2), default=None, help="Only the first N stimuli (split among them).")
@click.option("--name", default=None, help="Name of the aligned model in results (default: MODEL+LOSS).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where to train; auto: a GPU when there is one (under torchrun, this process' GPU), else the CPU.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads on CPU (default: the cores, shared among local processes).")
@click.option("--data-dir", type=FOLDER, default=None,
              help=DATA_DIR_HELP)
@click.option("--cache-dir", type=FOLDER, default=None,
              help="Cache root of the converted datasets (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--sigma-deg", type=float, default=1.0, show_default=True,
              help="Blur of the human fixation density, in degrees of visual angle.")
@click.option("--sigma-px", type=float, default=None, help="Blur in pixels instead (datasets without geometry).")
@click.option("--train-only", default="",
              help="Comma-separated parameter-name prefixes to train (e.g. _conv_head,_fc); default: every parameter.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def align_command(model, dataset, loss, output, epochs, lr, batch_size, weight, task_loss, holdout, split_seed, seed,
                  limit, name, device, threads, data_dir, cache_dir, sigma_deg, sigma_px, train_only, progress) -> None:
    """Train MODEL so that its attention moves toward human gaze on DATASET; evaluate the result with
    `harness eval --model OUTPUT` (its held-out stimuli) and compare with `harness report`."""
    from ..alignment.train import AlignConfig, run_align

    given = click.get_current_context().get_parameter_source("sigma_deg")
    if sigma_px is not None and given not in (None, click.core.ParameterSource.DEFAULT):
        # as eval refuses it: the degrees were dropped without a word (found by QA)
        raise click.UsageError("--sigma-deg and --sigma-px are two ways to give the one blur: give one of them")
    cfg = AlignConfig(model=model, dataset=dataset, loss=loss, output=output, epochs=epochs, lr=lr,
                      batch_size=batch_size, weight=weight, seed=seed, split_seed=split_seed, holdout=holdout,
                      limit=limit, task_loss=task_loss, name=name, device=None if device == "auto" else device,
                      data_dir=data_dir, cache_dir=cache_dir, sigma_deg=sigma_deg, sigma_px=sigma_px,
                      threads=threads, progress=progress,
                      train_only=tuple(p.strip() for p in train_only.split(",") if p.strip()))
    meta = run_align(cfg)
    import os

    if os.environ.get("RANK", "0") == "0":
        first, last = meta["history"][0], meta["history"][-1]

        def value(entry, key, digits=4):  # a missing value is "nan"; a real 0 is 0 (`x or nan` said nan)
            v = entry.get(key)
            return f"{float('nan') if v is None else v:.{digits}f}"

        click.echo(f"{meta['settings']['name']}: {meta['epochs_done']} epochs -> {output} "
                   f"(held-out: {meta['split']['n_held_out']} stimuli; AUC-Judd {value(first, 'held_out_auc_judd')}"
                   f" -> {value(last, 'held_out_auc_judd')}, NSS {value(first, 'held_out_nss')}"
                   f" -> {value(last, 'held_out_nss')}, top-1 agreement {value(last, 'held_out_top1_agreement', 3)})")
        import shlex

        # a bare folder name would be read as a registered model's name: ./ makes it a path
        where = str(output) if ("/" in str(output) or str(output).startswith(".")) else f"./{output}"
        click.echo(f"evaluate: harness eval --model {shlex.quote(where)} --dataset {dataset}", err=True)
