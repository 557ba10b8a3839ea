"""Benchmark: the human ceiling on OSIE, the per-subject computation against ceiling_scores.

    python benchmarks/ceiling.py [--limit N] [--profile mit|pysaliency] [--seed S] [--lite0 [--torch-threads T]]

On the same N stimuli (default 100; a run's context with ``--limit N``: other-image fixations
from those N), side by side and interleaved stimulus by stimulus (a busy machine slows both alike):

- "per subject": the ceiling as ``evaluate_ceiling`` computed it before
  ``harness.evaluation.ceiling``: for each subject the leave-one-out density
  (``loso_densities``), the subject's own density (``fixation_density``, blurred again) and one
  ``harness.evaluation.scoring.score`` call (which slices the other-image fixations, validates the
  baseline and converts everything again);
- "ceiling_scores": ``harness.evaluation.ceiling.ceiling_scores``.

Both run the library as it is (the metric kernels and ``loso_densities`` serve both), so the ratio
is what sharing the work saves. Every stimulus' scores are compared: they must be equal to the bit.
The first stimulus is computed once before timing (numba compiles or loads its kernels, buffers
are made); the figures exclude it. ``--lite0``: also EfficientNet-Lite0 (inference with its default
attention, torch on one thread as the harness runs a CPU model, and the metric suite) on the first
24 of the stimuli, for comparison. BLAS runs on one thread unless OPENBLAS_NUM_THREADS says
otherwise; the thread pools are printed at the top.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

# one thread for BLAS (before numpy loads it), as in the harness' scoring processes: a second
# OpenBLAS thread spin-waits after every product and doubles the CPU time (see docs/metrics.md)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))

from _machine import describe  # noqa: E402
from metrics import Clock  # noqa: E402


def same(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return list(a) == list(b) and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def lite0_ms(ctx, n: int, profile: str, seed: int, threads: int) -> tuple[float, float]:
    """EfficientNet-Lite0 on the first n stimuli in batches of 8 (the default), torch on
    ``threads`` threads: ms per stimulus of inference (default attention) and of scoring its maps."""
    from harness.evaluation.scoring import check_map, score
    from harness.models import load_model

    import torch

    torch.set_num_threads(threads)
    model = load_model("efficientnet-lite0")
    attention = model.attention_methods[0]
    images = [r["image"].convert("RGB") for r in ctx.ds.select(range(n))]
    model.predict(images[:1], task="free-viewing", attention=attention)  # warm-up
    infer = scoring = 0.0
    for start in range(0, n, 8):
        t0 = time.perf_counter()
        preds = model.predict(images[start:start + 8], task="free-viewing", attention=attention)
        t1 = time.perf_counter()
        for j, p in enumerate(preds):
            i = start + j
            w, h = ctx.sizes[i]
            _, _, smap = check_map(p.attention, h, w)
            if smap is not None:
                score(smap, ctx.fixations[i], ctx, i, profile, seed)
        infer += t1 - t0
        scoring += time.perf_counter() - t1
    return infer / n * 1000, scoring / n * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="first N stimuli (default 100; 0: all 700)")
    ap.add_argument("--profile", default="mit", choices=["mit", "pysaliency"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lite0", action="store_true", help="also time EfficientNet-Lite0 on 24 of the stimuli")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch threads for --lite0 (default 1, as the harness runs a CPU model)")
    args = ap.parse_args(argv)

    from harness.data import load_gaze_dataset
    from harness.data.density import sigma_px
    from harness.evaluation.ceiling import ceiling_per_subject as per_subject, ceiling_scores
    from harness.evaluation.context import DatasetContext

    gaze, ds = load_gaze_dataset("osie")
    ctx = DatasetContext(gaze, ds, args.limit or None, sigma_px(gaze))
    n = len(ctx)
    subjects = sum(int(np.unique(f.subject).size) for f in ctx.fixations)
    print(describe())
    print(f"OSIE: {n} stimuli, {subjects / n:.1f} subjects per stimulus, {ctx.fixations.total} fixations; "
          f"profile {args.profile}; sigma {ctx.sigma_px:g} px")

    t0 = time.perf_counter()
    first = ceiling_scores(ctx, 0, args.profile, args.seed)
    assert same(first, per_subject(ctx, 0, args.profile, args.seed))
    print(f"first stimulus, both ways (numba kernels compiled or loaded, buffers made): "
          f"{time.perf_counter() - t0:.2f} s, not counted below", flush=True)

    old, new = Clock(), Clock()
    equal = 0
    for i in range(1, n):
        pair = ((old, per_subject), (new, ceiling_scores))
        results = {}
        for clock, fn in (pair if i % 2 else pair[::-1]):  # alternate who goes first
            with clock:
                results[fn] = fn(ctx, i, args.profile, args.seed)
        equal += same(results[per_subject], results[ceiling_scores])
    timed = n - 1
    print()
    print(f"human ceiling, {timed} stimuli ({args.profile} profile), ms per stimulus:")
    print(f"  {'':28s} {'wall':>8s} {'cpu':>8s} {'faults':>8s}")
    for label, c in (("per subject", old), ("ceiling_scores", new)):
        print(f"  {label:28s} {c.wall / timed * 1000:8.1f} {c.cpu / timed * 1000:8.1f} {c.faults / timed:8.0f}")
    print(f"  speed-up: {old.wall / new.wall:.2f}x wall, {old.cpu / new.cpu:.2f}x cpu")
    print(f"  equal to the bit: {equal} of {timed} stimuli")
    if args.lite0:
        m = min(24, n)
        infer, scoring = lite0_ms(ctx, m, args.profile, args.seed, args.torch_threads)
        print(f"efficientnet-lite0 on {m} stimuli, {args.torch_threads} torch thread(s): {infer + scoring:.1f} ms "
              f"per stimulus "
              f"(inference {infer:.1f}, scoring {scoring:.1f}); ceiling_scores: {new.wall / timed * 1000:.1f}")
    return 0 if equal == timed else 1


if __name__ == "__main__":
    sys.exit(main())
