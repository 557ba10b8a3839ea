"""``harness eval``."""

from __future__ import annotations

from pathlib import Path

import click

from . import FOLDER
from ..cli import LazyHelpOption, main, task_help
from ..data.paths import DATA_DIR_HELP


@main.command("eval")
@click.option("--model", "-m", "models", required=True, multiple=True,
              help="Registered model name, hf:<checkpoint-or-folder>, or the folder of a model trained by "
                   "`harness align`; repeat to evaluate several.")
@click.option("--dataset", "-d", default="osie", show_default=True, help="Registered gaze dataset.")
@click.option("--task", "-t", default="free-viewing", show_default=True, cls=LazyHelpOption,
              help_fn=task_help("Task to evaluate and score the model on"))
@click.option("--attention", "-a", default=None, help="Attention method (default: the model's first).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N stimuli.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Stimuli per model batch (part of a model run's identity: a model's arithmetic depends on it).")
@click.option("--output", "-o", type=FOLDER, default=Path("runs"), show_default=True,
              help="Results folder: one run folder per model x attention x dataset x task x settings; an "
                   "unfinished run there is resumed.")
@click.option("--data-dir", type=FOLDER, default=None,
              help=DATA_DIR_HELP)
@click.option("--cache-dir", type=FOLDER, default=None,
              help="Cache root of the converted datasets (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--profile", type=click.Choice(["mit", "pysaliency"]), default="mit", show_default=True,
              help="Metric definitions to follow (see docs/metrics.md).")
# the bound is evaluation.config.SEED_MAX (not imported: the command line starts without the evaluator)
@click.option("--seed", type=click.IntRange(min=0, max=2**62), default=0, show_default=True,
              help="Seed of the randomised metrics (AUC tie-breaking and sampling), per stimulus; part of a run's "
                   "identity.")
@click.option("--sigma-deg", type=float, default=1.0, show_default=True,
              help="Blur of the human fixation density, in degrees of visual angle.")
@click.option("--sigma-px", type=float, default=None,
              help="Blur in pixels instead of --sigma-deg (for datasets whose viewing geometry is unknown); display "
                   "pixels, converted per image, on a dataset that declares each image's display scale.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True,
              help="Where models run; auto: a CUDA or Apple GPU when there is one (under torchrun/accelerate "
                   "launch, this process' GPU), else the CPU.")
@click.option("--score-workers", type=click.IntRange(min=0), default=None,
              help="Processes that score maps while the model runs (default: from the cores; 0: score inline).")
@click.option("--decode-workers", type=click.IntRange(min=0), default=None,
              help="Processes that decode images ahead of the model (default: from the cores; 0: inline).")
@click.option("--model-threads", type=click.IntRange(min=1), default=None,
              help="torch threads for a model on CPU (default 1: results then do not depend on the machine or "
                   "the number of processes; more is recorded in the run's settings). Scale with torchrun instead.")
@click.option("--model-copies", type=click.IntRange(min=1), default=None,
              help="Instances of a CPU model, each on its own threads, running batches side by side (default: "
                   "from the cores, for the built-in models, hf: checkpoints and plugins registered with "
                   "copies=True; else 1). The numbers are the same for any count: each batch is computed as "
                   "one instance computes it.")
@click.option("--in-sample", is_flag=True,
              help="For a model trained by `harness align` on this dataset: score all stimuli, its training ones "
                   "included (the run is marked in-sample). Default: only its held-out stimuli.")
@click.option("--scoring", type=click.Choice(["raw", "calibrated"]), default="raw", show_default=True,
              help="raw: score the attention maps as they are. calibrated: first turn each model's maps into a "
                   "fixation density with a calibration fitted by cross-validation on other stimuli (5 folds), "
                   "then score log-likelihood, information gain and each metric on its optimal map "
                   "(Kuemmerer et al., ECCV 2018; docs/metrics.md). Also makes the raw runs; a separate run id.")
@click.option("--no-references", is_flag=True, help="Skip the human ceiling and baselines.")
@click.option("--show/--no-show", default=True, show_default=True, help="Print the leaderboard afterwards.")
def eval_command(models, dataset, task, attention, limit, batch_size, output, data_dir, cache_dir, profile, seed,
                 sigma_deg, sigma_px, device, score_workers, decode_workers, model_threads, model_copies,
                 in_sample, scoring, no_references, show) -> None:
    """Evaluate models' attention against human gaze (and their task performance)."""
    from ..evaluation import EvalConfig, check_model_name, run_eval

    given = click.get_current_context().get_parameter_source("sigma_deg")
    if sigma_px is not None and given not in (None, click.core.ParameterSource.DEFAULT):
        # one of them would be dropped: the run recorded sigma_px alone, without a word
        raise click.UsageError("--sigma-deg and --sigma-px are two ways to give the one blur: give one of them")
    models = list(dict.fromkeys(models))
    for name in models:  # a typo in the last model fails before the first one runs
        check_model_name(name)
    from ..evaluation.parallel import launched

    if launched():  # a model only one rank was given: its barriers met nothing (found by QA)
        from ..evaluation.parallel import world

        world(None if device == "auto" else device).check_same(
            {"models": models, "references": not no_references, "scoring": scoring}, "models")
    results = []
    for i, model in enumerate(models):
        cfg = EvalConfig(model=model, dataset=dataset, task=task, attention=attention, limit=limit,
                         batch_size=batch_size, output=output, data_dir=data_dir, cache_dir=cache_dir,
                         profile=profile, seed=seed, sigma_deg=sigma_deg, sigma_px=sigma_px,
                         device=None if device == "auto" else device, score_workers=score_workers,
                         loader_workers=decode_workers, model_threads=model_threads, model_copies=model_copies,
                         in_sample=in_sample,
                         scoring=scoring)
        # the human ceiling and baselines once, with the first model
        results += run_eval(cfg, references=not no_references and i == 0)
    import os

    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun / accelerate launch, rank 0 reports for all
    from ..evaluation.scoring import plugin_metrics

    installed = [name for name, _ in plugin_metrics()]
    # `-m uniform -m center-bias`: a baseline asked for as a model after the references made it this
    # very command was reported twice, the second time as 'already complete, reused' (found by QA)
    seen: set[Path] = set()
    results = [r for r in results if not (Path(r.run_dir).resolve() in seen or seen.add(Path(r.run_dir).resolve()))]
    for r in results:
        s = r.summary
        if r.reused:
            note = ", already complete, reused"
            # a metric plugin installed since the run was made: its column is not in the reused run
            missing = [m for m in installed if m not in (s.get("metrics") or {})]
            if missing:
                note += (f" without metric{'s' if len(missing) > 1 else ''} {', '.join(missing)} (installed since; "
                         "evaluate into another --output to score it)")
        elif r.resumed_images:
            note = f", {r.resumed_images} reused from an earlier session, {r.computed_images} computed"
        else:
            note = ""
        failed = f", {s['n_failed']} failed" if s["n_failed"] else ""
        if s["n_failed"] and s.get("failures"):  # the first reason here; all of them in the summary
            first = s["failures"][0]
            why = " ".join(str(first.get("error")).split())
            failed += f" (the first, {first['stimulus_id']}: {why[:160]}{'...' if len(why) > 160 else ''})"
        degenerate = f", {s['n_degenerate']} constant maps" if s.get("n_degenerate") else ""
        nonfinite = {m: n for m, n in (s.get("nonfinite") or {}).items() if n}
        bad = ", non-finite values: " + ", ".join(f"{m} {n}" for m, n in nonfinite.items()) if nonfinite else ""
        scored = ", calibrated scoring" if s.get("scoring") == "calibrated" else ""
        click.echo(f"{s['model']} [{s['attention']}] on {s['dataset']}/{s['task']}{scored}: {s['n_images']} images"
                   f"{failed}{degenerate}{bad}{note} -> {r.run_dir}", err=True)
    # every stimulus failed: the run is kept (its failures say why) but the command failed, as a script
    # or CI job running it must be able to tell
    failed_all = [r for r in results if r.summary.get("kind") in ("model", "proxy")
                  and r.summary.get("n_images") and r.summary.get("n_failed") == r.summary.get("n_images")]
    if show:
        from ..leaderboard.table import render_table
        from ..results import load_runs

        # every run of this command (an aligned model's held-out run has fewer stimuli than the
        # others: not a reason to leave it out), and the folder's other runs that compare with them
        mine = {Path(r.run_dir).resolve() for r in results}
        counts = {r.summary["n_images"] for r in results}
        runs = [r for r in load_runs(output) if Path(r.path).resolve() in mine or (
                r.summary.get("dataset") == dataset and r.summary.get("n_images") in counts
                and r.summary.get("metric_profile") == profile
                and r.summary.get("task") == task and r.summary.get("scoring", "raw") == scoring)]
        click.echo(render_table(runs))
    if failed_all:
        from ..errors import HarnessError

        r = failed_all[0]
        n = r.summary["n_images"]
        raise HarnessError(f"every stimulus of {r.summary['model']} failed ({n} of {n}; the first reason is above, "
                           f"all of them in {r.run_dir}/summary.json)")
