"""The alignment experiment on OSIE: efficientnet-lite0 trained toward human gaze with each built-in
loss, before/after on the held-out stimuli; writes leaderboard/alignment-osie.md.

Run:  .venv/bin/python benchmarks/alignment_osie.py [--work /tmp/align-osie] [--losses harmonization rrr density-kl]
          [--epochs 3] [--lr 3e-5] [--weight density-kl=1 rrr=1e-7 ...] [--write leaderboard/alignment-osie.md]

For each loss: `harness align` (70/30 split by stimulus, split seed 0), then `harness eval` of the
base model on all 700 stimuli and of each aligned model on its 210 held-out stimuli, then the paired
comparison of `harness report` (harness.alignment.compare.pair): base → aligned and centre-bias →
aligned on the same stimuli, with 95% paired-bootstrap CIs; the top-1 agreement with the base model on
the held-out stimuli; the top-1 accuracy on the 12 hand-labelled OSIE stimuli
(tests/data/imagenet_osie_labels.json) before and after; training time. A benchmark, not a test:
it trains for minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

METRICS = ("auc_judd", "nss", "cc", "sauc")
LABELS_FILE = REPO / "tests" / "data" / "imagenet_osie_labels.json"


def _harness(*args: str) -> float:
    cmd = [sys.executable, "-m", "harness", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _labelled_top1(model_name: str, data_dir: str) -> dict[str, bool]:
    """Top-1 correctness of the model on the 12 hand-labelled OSIE stimuli, by stimulus id."""
    from harness.data import load_gaze_dataset
    from harness.models import load_model

    labels = {sid: v["wnid"] for sid, v in json.loads(LABELS_FILE.read_text())["labels"].items()}
    _, ds = load_gaze_dataset("osie", data_dir=Path(data_dir) / "osie")
    ids = [str(s) for s in ds["stimulus_id"]]
    rows = [ids.index(sid) for sid in labels]
    model = load_model(model_name)
    images = [ds[i]["image"] for i in rows]
    preds = model.predict(images, task="free-viewing", attention=model.attention_methods[0])
    return {ids[i]: p.output["label"] == labels[ids[i]] for i, p in zip(rows, preds)}


def _fmt(e: dict) -> str:
    mark = {True: " ▲", False: " ▼", None: ""}[e.get("better")]
    return f"{e['diff']:+.4f} [{e['lo']:+.4f}, {e['hi']:+.4f}]{mark}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--work", default="/tmp/align-osie", help="Folder for checkpoints and runs.")
    parser.add_argument("--losses", nargs="+", default=["harmonization", "rrr", "density-kl"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--weight", nargs="*", default=[], help="LOSS=W overrides of the loss' default weight.")
    parser.add_argument("--args", nargs="*", default=[], metavar="LOSS=ARGS",
                        help="Extra `harness align` arguments for one loss, e.g. 'rrr=--epochs 2 --train-only _fc'.")
    parser.add_argument("--write", default=None, help="Write the Markdown report here (e.g. leaderboard/alignment-osie.md).")
    args = parser.parse_args()
    os.environ["HARNESS_DATA_DIR"] = args.data_dir
    from _machine import describe

    from harness.alignment.compare import pair
    from harness.results import load_runs

    work = Path(args.work)
    runs_dir = work / "runs"
    weights = dict(w.split("=", 1) for w in args.weight)
    import shlex

    extra = {k: shlex.split(v) for k, v in (a.split("=", 1) for a in args.args)}
    print(describe())
    trained: dict[str, dict] = {}
    for loss in args.losses:
        out = work / f"lite0-{loss}"
        given = set(extra.get(loss, []))
        cmd = ["align", "--model", "efficientnet-lite0", "--dataset", "osie", "--loss", loss, "--output", str(out),
               *(["--epochs", str(args.epochs)] if "--epochs" not in given else []),
               *(["--lr", str(args.lr)] if "--lr" not in given else []),
               "--batch-size", str(args.batch_size), "--no-progress"]
        if loss in weights:
            cmd += ["--weight", weights[loss]]
        cmd += extra.get(loss, [])
        seconds = _harness(*cmd)
        meta = json.loads((out / "align.json").read_text())
        shown = [c for c in cmd if c != "--no-progress"]
        trained[loss] = {"folder": out, "seconds": seconds, "meta": meta, "command": "harness " + " ".join(
            c if not c.startswith(str(work)) else f"ckpt/{Path(c).name}" for c in shown)}
        print(f"{loss}: trained in {seconds:.0f} s; history {meta['history'][-1]}", flush=True)
    _harness("eval", "--model", "efficientnet-lite0", *[a for l in args.losses for a in ("--model", str(work / f"lite0-{l}"))],
             "--dataset", "osie", "--output", str(runs_dir), "--no-show")
    runs = load_runs(runs_dir)
    base = next(r for r in runs if r.summary["model"] == "efficientnet-lite0")
    center = next(r for r in runs if r.summary["model"] == "center-bias")
    before_labels = _labelled_top1("efficientnet-lite0", args.data_dir)

    lines = []
    table = []
    for loss in args.losses:
        t = trained[loss]
        name = t["meta"]["settings"]["name"]
        run = next(r for r in runs if r.summary["model"] == name)
        frame = run.per_image()
        directions = run.summary.get("metric_directions")
        vs_base = pair(base.settings, base.per_image(), run.settings, frame, metrics=list(METRICS), directions=directions)
        vs_center = pair(center.settings, center.per_image(), run.settings, frame, metrics=list(METRICS),
                         directions=directions)
        after_labels = _labelled_top1(str(t["folder"]), args.data_dir)
        held = set(t["meta"]["split"]["held_out"])
        row = {"loss": loss, "weight": t["meta"]["settings"]["weight"], "n": vs_base["n_paired"],
               "seconds": t["seconds"], "top1_agreement": vs_base["top1_agreement"],
               "labelled_before": sum(before_labels.values()), "labelled_after": sum(after_labels.values()),
               "labelled_held_out": sum(1 for s in before_labels if s in held),
               "labelled_held_out_before": sum(v for s, v in before_labels.items() if s in held),
               "labelled_held_out_after": sum(v for s, v in after_labels.items() if s in held)}
        for m in METRICS:
            row[m] = (vs_base["metrics"][m], vs_center["metrics"][m])
        table.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in METRICS}), flush=True)
        for m in METRICS:
            b, c = row[m]
            print(f"  {m}: base {b['before']:.4f} -> aligned {b['after']:.4f} ({_fmt(b)}); centre-bias {c['before']:.4f}"
                  f" (aligned - centre-bias {_fmt(c)})")

    if args.write:
        first = trained[args.losses[0]]["meta"]
        lines += ["# Alignment training on OSIE: efficientnet-lite0 before and after", ""]
        lines += [f"efficientnet-lite0 (real ImageNet weights) trained toward the human fixation density of OSIE with "
                  f"each built-in loss of `harness align` ([docs/alignment.md](../docs/alignment.md)), split 70/30 "
                  f"by stimulus (split seed 0: {first['split']['n_train']} training, {first['split']['n_held_out']} "
                  "held-out stimuli), Adam, the task kept by the original model's outputs (OSIE has no labels; "
                  "settings per loss in the commands and the table below). Every number below is on the held-out "
                  "stimuli only. Produced by `benchmarks/alignment_osie.py` on a 2-core CPU, no GPU:", ""]
        lines += ["```bash", "export HARNESS_DATA_DIR=../shared/data"]
        lines += [trained[l]["command"] for l in args.losses]
        lines += ["harness eval --model efficientnet-lite0 " + " ".join(f"--model ckpt/lite0-{l}" for l in args.losses)
                  + " --dataset osie --output runs/", "harness report --results runs/", "```", ""]
        lines += ["Difference aligned − base, and aligned − centre-bias baseline, on the same held-out stimuli: mean "
                  "[paired bootstrap 95% CI over stimuli, 10,000 resamples]; ▲/▼ where the CI excludes 0 and the paired "
                  "sign-flip test's p < 0.05.", ""]
        head = "| loss (weight) | metric | base | aligned | aligned − base | centre-bias | aligned − centre-bias |"
        lines += [head, "|---|---|---|---|---|---|---|"]
        for row in table:
            for m in METRICS:
                b, c = row[m]
                lines.append(f"| {row['loss']} ({row['weight']:g}) | {m} | {b['before']:.4f} | {b['after']:.4f} | {_fmt(b)} | "
                             f"{c['before']:.4f} | {_fmt(c)} |")
        lines += ["", "| loss | settings | top-1 agreement with the base model (held-out) | 12 hand-labelled stimuli: top-1 "
                  "correct before → after (of them held out: before → after) | training time |", "|---|---|---|---|---|"]
        for row in table:
            st = trained[row["loss"]]["meta"]["settings"]
            setting = (f"{st['epochs']} epochs, lr {st['lr']:g}, batch {st['batch_size']}, weight {st['weight']:g}, "
                       f"task {st['task_loss']}, trains {', '.join(st.get('train_only') or []) or 'all parameters'}")
            lines.append(f"| {row['loss']} | {setting} | {row['top1_agreement']:.1%} of {row['n']} | {row['labelled_before']}/12 → "
                         f"{row['labelled_after']}/12 ({row['labelled_held_out_before']}/{row['labelled_held_out']} → "
                         f"{row['labelled_held_out_after']}/{row['labelled_held_out']}) | {row['seconds'] / 60:.1f} min |")
        lines += ["", "Per-epoch held-out figures (AUC-Judd, NSS, top-1 agreement; epoch 0 is the base model) from each "
                  "folder's `align.json`:", ""]
        for loss in args.losses:
            hist = trained[loss]["meta"]["history"]
            lines.append(f"- {loss}: " + "; ".join(
                f"{h['epoch']}: {h.get('held_out_auc_judd', float('nan')):.3f} / {h.get('held_out_nss', float('nan')):.3f}"
                f" / {h.get('held_out_top1_agreement', float('nan')):.2f}" for h in hist))
        lines.append("")
        Path(args.write).write_text("\n".join(lines))
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
