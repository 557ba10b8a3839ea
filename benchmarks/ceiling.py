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
attention, torch on one thread as the harness runs a CPU model, and the metric suite on its maps)
on the same stimuli, in the harness' batches of 8, each batch interleaved with the ceiling of the
same 8 stimuli (who goes first alternates), so that the ratio the scaling issue asks about (the
ceiling below the model on the same stimuli) is measured side by side, not in two stretches of a
machine whose speed drifts; the images are decoded before timing. BLAS runs on one thread unless
OPENBLAS_NUM_THREADS says otherwise; the thread pools are printed at the top.
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


class Lite0:
    """EfficientNet-Lite0 as ``harness eval`` runs it on a CPU (torch on ``threads`` threads, its
    default attention), timed batch by batch: inference and the scoring of its maps."""

    def __init__(self, ctx, profile: str, seed: int, threads: int) -> None:
        from harness.models import load_model

        import torch

        torch.set_num_threads(threads)
        self.ctx, self.profile, self.seed = ctx, profile, seed
        self.model = load_model("efficientnet-lite0")
        self.attention = self.model.attention_methods[0]
        self.infer, self.scoring = Clock(), Clock()
        self.run([0])  # warm-up (not timed: the clocks are reset)
        self.infer, self.scoring = Clock(), Clock()

    def run(self, stimuli: list[int]) -> None:
        from harness.evaluation.scoring import check_map, score

        images = [self.ctx.ds[i]["image"].convert("RGB") for i in stimuli]  # decoded before timing
        with self.infer:
            preds = self.model.predict(images, task="free-viewing", attention=self.attention)
        with self.scoring:
            for i, p in zip(stimuli, preds):
                w, h = self.ctx.sizes[i]
                _, _, smap = check_map(p.attention, h, w)
                if smap is not None:
                    score(smap, self.ctx.fixations[i], self.ctx, i, self.profile, self.seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="first N stimuli (default 100; 0: all 700)")
    ap.add_argument("--profile", default="mit", choices=["mit", "pysaliency"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lite0", action="store_true",
                    help="also time EfficientNet-Lite0 on the same stimuli, interleaved with the ceiling")
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

    lite0 = Lite0(ctx, args.profile, args.seed, args.torch_threads) if args.lite0 else None
    old, new = Clock(), Clock()
    equal = 0
    for b, first in enumerate(range(1, n, 8)):  # the harness' batches of 8
        batch = list(range(first, min(first + 8, n)))
        if lite0 is not None and b % 2:
            lite0.run(batch)
        for i in batch:
            pair = ((old, per_subject), (new, ceiling_scores))
            results = {}
            for clock, fn in (pair if i % 2 else pair[::-1]):  # alternate who goes first
                with clock:
                    results[fn] = fn(ctx, i, args.profile, args.seed)
            equal += same(results[per_subject], results[ceiling_scores])
        if lite0 is not None and not b % 2:
            lite0.run(batch)
    timed = n - 1
    print()
    print(f"human ceiling, {timed} stimuli ({args.profile} profile), ms per stimulus:")
    print(f"  {'':28s} {'wall':>8s} {'cpu':>8s} {'faults':>8s}")
    for label, c in (("per subject", old), ("ceiling_scores", new)):
        print(f"  {label:28s} {c.wall / timed * 1000:8.1f} {c.cpu / timed * 1000:8.1f} {c.faults / timed:8.0f}")
    print(f"  speed-up: {old.wall / new.wall:.2f}x wall, {old.cpu / new.cpu:.2f}x cpu")
    print(f"  equal to the bit: {equal} of {timed} stimuli")
    if lite0 is not None:
        infer, scoring = lite0.infer.wall / timed * 1000, lite0.scoring.wall / timed * 1000
        cpu = (lite0.infer.cpu + lite0.scoring.cpu) / timed * 1000
        print(f"efficientnet-lite0 on the same {timed} stimuli, interleaved batch by batch, {args.torch_threads} torch "
              f"thread(s): {infer + scoring:.1f} ms per stimulus wall, {cpu:.1f} cpu (inference {infer:.1f}, "
              f"scoring {scoring:.1f})")
        wall_s, cpu_s = lite0.infer.wall + lite0.scoring.wall, lite0.infer.cpu + lite0.scoring.cpu
        print(f"  the human ceiling (ceiling_scores) / efficientnet-lite0: {new.wall / wall_s:.2f}x wall, "
              f"{new.cpu / cpu_s:.2f}x cpu (goal: below 1x)")
    return 0 if equal == timed else 1


if __name__ == "__main__":
    sys.exit(main())
