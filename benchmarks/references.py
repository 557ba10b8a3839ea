"""Benchmark: the README's first command with the references beside the model run, against the
references first, side by side; and proof of identical results.

Run:  .venv/bin/python benchmarks/references.py [--limit 700] [--model efficientnet-lite0] [--repeat 1]

Variants, each in fresh processes into its own folder, one after the other:
- beside (what `harness eval --model M` does in one process): the human ceiling and the baselines
  are scored in a thread of their own, on the cores the model leaves idle, then on every core;
- first: `harness eval --model human-ceiling` (the ceiling and the baselines on every core), then
  `harness eval --model M --no-references` (the model alone): the references, then the model, as
  one process did before. Two commands, so one process start more (printed: its start, measured
  as `--model M --no-references --limit 8`).
Prints wall and CPU time (the processes and their children) and whether every per-stimulus row
(timings aside) and summary (finish time aside) is bitwise identical across the two.
``--repeat N``: N rounds of the three commands, one round after the other; every round is printed
and the figures are each variant's fastest round (a shared machine's other tenants only add time).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _eval(out: Path, args, model: str, *extra: str, limit: int | None = None) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "harness", "eval", "--model", model, "--dataset", "osie",
           "--limit", str(limit or args.limit), "--data-dir", str(Path(args.data_dir) / "osie"),
           "--output", str(out), "--no-show", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def same_runs(a: Path, b: Path) -> tuple[bool, str]:
    """Every run of folder a in folder b with the same rows (timings aside) and summary."""
    import json

    from harness.results import load_runs

    runs_a = {r.run_id: r for r in load_runs(a)}
    runs_b = {r.run_id: r for r in load_runs(b)}
    if sorted(runs_a) != sorted(runs_b):
        return False, f"runs differ: {sorted(runs_a)} vs {sorted(runs_b)}"
    for run_id, ra in runs_a.items():
        rb = runs_b[run_id]
        if not ra.per_image().drop(columns=["seconds"]).equals(rb.per_image().drop(columns=["seconds"])):
            return False, f"{run_id}: rows differ"
        sa, sb = ({k: v for k, v in r.summary.items() if k != "finished_at"} for r in (ra, rb))
        if json.dumps(sa, sort_keys=True) != json.dumps(sb, sort_keys=True):
            return False, f"{run_id}: summaries differ"
    return True, f"{len(runs_a)} runs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--limit", type=int, default=700)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; figures from each variant's fastest")
    args = parser.parse_args()
    from _machine import describe

    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _eval(tmp / "warm", args, args.model, limit=8)  # numba's kernels compiled and cached, files read once
        start, _ = _eval(tmp / "start", args, args.model, "--no-references", limit=8)
        rounds = []
        same, detail = True, ""
        for r in range(max(1, args.repeat)):
            d = tmp / f"round{r}"
            beside = _eval(d / "beside", args, args.model)
            refs = _eval(d / "first", args, "human-ceiling")
            model = _eval(d / "first", args, args.model, "--no-references")
            rounds.append((beside, refs, model))
            ok, why = same_runs(d / "beside", d / "first")
            if ok and r:
                ok, why = same_runs(d / "beside", tmp / "round0" / "beside")
            same, detail = same and ok, detail or ("" if ok else why)
            if args.repeat > 1:
                print(f"round {r + 1}: beside {beside[0]:.1f} s (CPU {beside[1]:.1f} s), references first "
                      f"{refs[0]:.1f} s then the model {model[0]:.1f} s (CPU {refs[1] + model[1]:.1f} s)", flush=True)
    (beside, beside_cpu) = min((r[0] for r in rounds))
    refs, refs_cpu, model, model_cpu = min(((r[1][0], r[1][1], r[2][0], r[2][1]) for r in rounds),
                                           key=lambda t: t[0] + t[2])
    first = refs + model
    which = f"; the fastest of {len(rounds)} rounds each" if len(rounds) > 1 else ""
    print(f"\n{args.model} on {args.limit} OSIE stimuli with the human ceiling and both baselines (wall, CPU{which})")
    print(f"references beside the model (one command)   {beside:7.1f} s   CPU {beside_cpu:6.1f} s")
    print(f"references first, then the model            {first:7.1f} s   CPU {refs_cpu + model_cpu:6.1f} s   "
          f"(references {refs:.1f} s, model {model:.1f} s; one process start more: {start:.1f} s "
          f"for --limit 8)")
    print(f"speed-up {first / beside:.2f}x ({(first - start) / beside:.2f}x without the second start)")
    print(f"per-stimulus rows and summaries bitwise identical: {same}{'' if same else ' - ' + detail}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
