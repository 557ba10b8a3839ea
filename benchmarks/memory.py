"""Benchmark: peak memory of `harness eval` against dataset size (50, 700 and 5,000 stimuli).

Run:  .venv/bin/python benchmarks/memory.py [--sizes 50,700,5000] [--model center-bias]

The 5,000-stimulus dataset is OSIE repeated (`osie-x<k>`: the 700 stimuli and their fixations
again under new ids), a dataset plugin registered by this benchmark only, converted once into a
temporary cache. Each size is evaluated in a fresh process (`--no-references`, the default plan:
scoring processes included) and the peak resident memory of the main process and of its largest
child is printed; memory must stay flat in dataset size (within 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

REPEATED = textwrap.dedent('''
    from plugins.datasets.osie import OSIE

    class RepeatedOSIE(OSIE):
        """OSIE's stimuli and fixations repeated under new ids (benchmarks only)."""

        name = "osie-repeated"
        repeats = 8
        converter_version = "osie-x8"

        def convert(self, root):
            records = list(super().convert(root))
            for k in range(self.repeats):
                for rec in records:
                    yield {**rec, "stimulus_id": f"{rec['stimulus_id']}-r{k}"}
''')

CHILD = textwrap.dedent('''
    import json, resource, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[5])
    from harness.hookspecs import hookimpl
    from harness.plugins import pm
    import repeated_osie

    class Plugin:
        @hookimpl
        def register_datasets(self, register):
            register("osie-repeated", repeated_osie.RepeatedOSIE, tasks=("free-viewing",), description="bench")

    pm.register(Plugin(), name="osie-repeated-bench")
    from harness.evaluation import EvalConfig, run_eval
    cfg = EvalConfig(model=sys.argv[1], dataset="osie-repeated", limit=int(sys.argv[2]), output=Path(sys.argv[3]),
                     data_dir=Path(sys.argv[4]), progress=False)
    t0 = time.perf_counter()
    run_eval(cfg, references=False)
    wall = time.perf_counter() - t0
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print("RESULT " + json.dumps({"wall": wall, "self_mb": s.ru_maxrss / 1024, "child_mb": c.ru_maxrss / 1024}))
''')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--sizes", default="50,700,5000")
    parser.add_argument("--model", default="center-bias")
    args = parser.parse_args()
    from _machine import describe

    print(describe())
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "repeated_osie.py").write_text(REPEATED)
        env = {**os.environ, "PYTHONPATH": str(REPO), "HARNESS_CACHE_DIR": str(tmp / "cache")}
        results = []
        for n in [8, *sizes]:  # the first converts the dataset into the cache, not timed
            proc = subprocess.run([sys.executable, "-c", CHILD, args.model, str(n), str(tmp / f"runs-{n}"),
                                   str(Path(args.data_dir) / "osie"), str(tmp)], capture_output=True, text=True,
                                  cwd=REPO, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"size {n} failed:\n{proc.stderr[-3000:]}")
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
            results.append((n, json.loads(line[len("RESULT "):])))
    results = results[1:]
    print(f"\n{args.model}, harness eval --no-references, default plan; peak resident memory")
    print(f"{'stimuli':>8s} {'wall s':>8s} {'main MB':>8s} {'largest child MB':>17s}")
    for n, r in results:
        print(f"{n:8d} {r['wall']:8.1f} {r['self_mb']:8.0f} {r['child_mb']:17.0f}")
    first, last = results[0][1], results[-1][1]
    print(f"\nmain process: {last['self_mb'] / first['self_mb']:.2f}x from {results[0][0]} to {results[-1][0]} stimuli; "
          f"largest child: {last['child_mb'] / max(first['child_mb'], 1):.2f}x")


if __name__ == "__main__":
    main()
