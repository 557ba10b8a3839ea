"""``harness eval``."""

from __future__ import annotations

from pathlib import Path

import click

from ..cli import main


@main.command("eval")
@click.option("--model", "-m", "models", required=True, multiple=True,
              help="Registered model name, or hf:<checkpoint-or-folder>; repeat to evaluate several.")
@click.option("--dataset", "-d", default="osie", show_default=True, help="Registered gaze dataset.")
@click.option("--task", "-t", default="free-viewing", show_default=True)
@click.option("--attention", "-a", default=None, help="Attention method (default: the model's first).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N stimuli.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help="Folder holding the dataset's files.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
@click.option("--profile", type=click.Choice(["mit", "pysaliency"]), default="mit", show_default=True,
              help="Metric definitions to follow (see docs/metrics.md).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sigma-deg", type=float, default=1.0, show_default=True,
              help="Blur of the human fixation density, in degrees of visual angle.")
@click.option("--sigma-px", type=float, default=None,
              help="Blur in pixels instead (for datasets whose viewing geometry is unknown).")
@click.option("--no-references", is_flag=True, help="Skip the human ceiling and baselines.")
@click.option("--show/--no-show", default=True, show_default=True, help="Print the leaderboard afterwards.")
def eval_command(models, dataset, task, attention, limit, batch_size, output, data_dir, cache_dir, profile, seed,
                 sigma_deg, sigma_px, no_references, show) -> None:
    """Evaluate models' attention against human gaze (and their task performance)."""
    from ..evaluation import EvalConfig, check_model_name, run_eval

    models = list(dict.fromkeys(models))
    for name in models:  # a typo in the last model fails before the first one runs
        check_model_name(name)
    results = []
    for i, model in enumerate(models):
        cfg = EvalConfig(model=model, dataset=dataset, task=task, attention=attention, limit=limit,
                         batch_size=batch_size, output=output, data_dir=data_dir, cache_dir=cache_dir,
                         profile=profile, seed=seed, sigma_deg=sigma_deg, sigma_px=sigma_px)
        # the human ceiling and baselines once, with the first model
        results += run_eval(cfg, references=not no_references and i == 0)
    for r in results:
        s = r.summary
        if r.reused:
            note = ", already complete, reused"
        elif r.resumed_images:
            note = f", {r.resumed_images} reused from an earlier session, {r.computed_images} computed"
        else:
            note = ""
        failed = f", {s['n_failed']} failed" if s["n_failed"] else ""
        degenerate = f", {s['n_degenerate']} constant maps" if s.get("n_degenerate") else ""
        nonfinite = {m: n for m, n in (s.get("nonfinite") or {}).items() if n}
        bad = ", non-finite values: " + ", ".join(f"{m} {n}" for m, n in nonfinite.items()) if nonfinite else ""
        click.echo(f"{s['model']} [{s['attention']}] on {s['dataset']}/{s['task']}: {s['n_images']} images"
                   f"{failed}{degenerate}{bad}{note} -> {r.run_dir}", err=True)
    if show:
        from ..leaderboard.table import render_table
        from ..results import load_runs

        runs = [r for r in load_runs(output) if r.summary.get("dataset") == dataset
                and r.summary.get("n_images") == results[-1].summary["n_images"]
                and r.summary.get("metric_profile") == profile
                and r.summary.get("task") == task]
        click.echo(render_table(runs))
