"""Benchmark: 1 against 2 processes on the same work (torchrun, CPU), and proof of identical results.

Run:  .venv/bin/python benchmarks/scaling.py [--limit 200] [--batch-size 8] [--model efficientnet-lite0]
                                              [--repeat 1]

Variants, each a fresh `harness eval --no-references` into its own folder, one after the other:
- 1 process, single-thread: one copy of the model on one thread, scoring and decoding inline
  (--score-workers 0 --decode-workers 0 --model-copies 1);
- 2 processes (torchrun --nproc_per_node 2), each single-thread the same way;
- 1 process, default plan (on 2 cores: two copies of the model, one thread each, scoring between
  their batches; on more cores scoring and decoding in worker processes too).
Prints wall time, the speed-ups, and whether every per-stimulus row (timings aside) and every
summary (finish time aside) is bitwise identical across the three.

Whole commands include each process' start: Python imports (torch, datasets, numba), loading the
dataset and the model, and under torchrun the launcher's own start (it imports torch before it
starts the workers) and the process group. To separate that fixed cost from the work, the 1- and
2-process variants also run on 16 stimuli (one batch per rank); the difference to the full run is
the evaluation work, whose speed-up is printed too, with the whole-command speed-up the same
fixed costs and per-stimulus rates give for 10,000 stimuli (SALICON's size). The launcher alone is
timed too (torchrun starting two processes that do nothing): with it, the speed-up a perfect split
of the work could reach is printed beside the measured one (the launcher's start, then one
process' start, then half the work).

What two processes can gain on this machine at all is measured beside them, in every round: the
model's bare single-thread loop (``predict`` on the same batch of 8 stimuli, over and over: no
reading, scoring or writing) timed alone, then as two processes at once, each doing the same
number of batches; twice the time alone over the time of the pair is the throughput two
independent single-thread processes get here (2.00x on two free cores; less when the cores share a
physical core, caches or memory, or other tenants take a share). The evaluation's speed-up is to be
read against it.

``--repeat N`` runs the five commands N times, round after round (so a busy spell slows one round,
not one variant), prints every round and computes the figures from each variant's fastest round: on
a shared virtual machine other tenants only ever add time, so the minimum is the machine's figure.
Every round's rows must be identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: stimuli of the start-up runs: one batch of 8 per rank
START = 16
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _eval(prefix: list[str], out: Path, args, extra: list[str]) -> float:
    cmd = [*prefix, "-m", "harness", "eval", "--model", args.model, "--dataset", "osie", "--limit", str(args.limit),
           "--batch-size", str(args.batch_size), "--data-dir", str(Path(args.data_dir) / "osie"), "--output", str(out),
           "--no-references", "--no-show", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


#: the machine reference: the model's bare loop on one thread, started when every process is ready
REFERENCE = r"""
import sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from harness.data import load_gaze_dataset
from harness.models import load_model
_, ds = load_gaze_dataset("osie", data_dir=sys.argv[1])
images = [r["image"].convert("RGB") for r in ds.select(range(8))]
model = load_model(sys.argv[2])
method = model.attention_methods[0]
model.predict(images, task="free-viewing", attention=method)  # warm-up, not timed
ready, me, n = Path(sys.argv[4]), sys.argv[5], int(sys.argv[6])
(ready / me).touch()
while len(list(ready.iterdir())) < n:  # every process starts its timed loop at the same moment
    time.sleep(0.002)
t0 = time.perf_counter()
for _ in range(int(sys.argv[3])):
    model.predict(images, task="free-viewing", attention=method)
print("RESULT", time.perf_counter() - t0)
"""
REFERENCE_BATCHES = 10


def _reference(args, folder: Path, processes: int) -> float:
    """Seconds until the last of ``processes`` bare single-thread loops (started together) ends."""
    folder.mkdir(parents=True)
    cmd = [sys.executable, "-c", REFERENCE, str(Path(args.data_dir) / "osie"), args.model, str(REFERENCE_BATCHES),
           str(folder)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*cmd, str(k), str(processes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, env=env) for k in range(processes)]
    times = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"the reference loop failed:\n{err[-3000:]}")
        times.append(float([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1].split()[1]))
    return max(times)


def _launcher(torchrun: str, folder: Path) -> float:
    """Seconds of ``torchrun --nproc_per_node 2`` running a script that does nothing: the launcher's
    own start (it imports torch and starts a rendezvous before any rank runs)."""
    folder.mkdir(parents=True)
    script = folder / "nothing.py"
    script.write_text("")
    t0 = time.perf_counter()
    proc = subprocess.run([torchrun, "--nproc_per_node", "2", str(script)], capture_output=True, text=True,
                          cwd=folder)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"torchrun with an empty script failed:\n{proc.stderr[-3000:]}")
    return wall


def _fingerprint(folder: Path) -> str:
    from harness.results import load_runs

    (run,) = load_runs(folder)
    import hashlib
    import pickle

    frame = run.per_image().drop(columns=["seconds"])
    rows = hashlib.sha256(pickle.dumps([frame.columns.tolist(), [frame[c].tolist() for c in frame.columns]])).hexdigest()
    summary = {k: v for k, v in run.summary.items() if k != "finished_at"}
    return rows + json.dumps(summary, sort_keys=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", default="efficientnet-lite0")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the five commands; figures from the fastest")
    args = parser.parse_args()
    from _machine import describe

    print(describe())
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    inline = ["--score-workers", "0", "--decode-workers", "0", "--model-copies", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _eval([sys.executable], tmp / "warm", argparse.Namespace(**{**vars(args), "limit": 8}), inline)
        small = argparse.Namespace(**{**vars(args), "limit": START})
        rounds = []
        prints = {}
        for r in range(max(1, args.repeat)):
            d = tmp / f"round{r}"
            times = dict(one_start=_eval([sys.executable], d / "one-start", small, inline),
                         two_start=_eval([torchrun, "--nproc_per_node", "2"], d / "two-start", small, inline),
                         one=_eval([sys.executable], d / "one", args, inline),
                         two=_eval([torchrun, "--nproc_per_node", "2"], d / "two", args, inline),
                         default=_eval([sys.executable], d / "default", args, []),
                         ref_one=_reference(args, d / "ref-one", 1),
                         ref_two=_reference(args, d / "ref-two", 2),
                         launcher=_launcher(torchrun, d / "launcher"))
            rounds.append(times)
            prints.update({f"{name} (round {r + 1})": _fingerprint(d / name) for name in ("one", "two", "default")})
            if args.repeat > 1:
                print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()), flush=True)
        best = {k: min(t[k] for t in rounds) for k in rounds[0]}
        one_start, two_start, one, two, default = (best[k] for k in ("one_start", "two_start", "one", "two", "default"))
        ref_one, ref_two, launcher = best["ref_one"], best["ref_two"], best["launcher"]
    which = f"the fastest of {len(rounds)} rounds each" if len(rounds) > 1 else "one round"
    print(f"\n{args.model}, {args.limit} OSIE stimuli, batch {args.batch_size} (wall time of the whole command; "
          f"{which})")
    print(f"1 process, single-thread, inline       {one:8.2f} s")
    print(f"2 processes (torchrun), single-thread   {two:8.2f} s   speed-up {one / two:.2f}x")
    print(f"1 process, default plan                 {default:8.2f} s   2 processes vs this: {default / two:.2f}x")
    n = args.limit - START
    if n > 0:
        work1, work2 = one - one_start, two - two_start
        print(f"\nstart (the same commands on {START} stimuli): 1 process {one_start:.2f} s, "
              f"2 processes {two_start:.2f} s (torchrun's own start included)")
        print(f"evaluation work of the other {n} stimuli: 1 process {work1:.2f} s, 2 processes {work2:.2f} s: "
              f"speed-up {work1 / work2:.2f}x")
        perfect = launcher + one_start + work1 / 2
        print(f"torchrun's own start (two ranks that do nothing): {launcher:.2f} s; a perfect split of the work "
              f"after it and one process' start: {perfect:.2f} s, speed-up {one / perfect:.2f}x at most "
              f"(measured {one / two:.2f}x)")
        rate1, rate2 = work1 / n, work2 / n
        big = 10_000
        t1 = one_start + (big - START) * rate1
        t2 = two_start + (big - START) * rate2
        print(f"whole command on {big:,} stimuli from these figures (extrapolated): 1 process {t1:.0f} s, "
              f"2 processes {t2:.0f} s: speed-up {t1 / t2:.2f}x")
    print(f"\nthe machine itself: the model's bare single-thread loop ({REFERENCE_BATCHES} batches of 8) alone "
          f"{ref_one:.2f} s, as two processes at once {ref_two:.2f} s each: two independent processes get "
          f"{2 * ref_one / ref_two:.2f}x the throughput of one here (2.00x: two free cores)")
    same = len(set(prints.values())) == 1
    print(f"per-stimulus rows and summaries bitwise identical across the three"
          f"{' and every round' if len(rounds) > 1 else ''}: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
