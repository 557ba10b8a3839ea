"""Benchmark: raw against calibrated scoring on real OSIE (harness.calibration, issue #12).

    python benchmarks/calibration.py [--limit N] [--folds K] [--seed S] [--factor F] [--profile mit|pysaliency]
                                     [--factors 4,16] [--gold-metrics M] [--gold-max-fit-maps G]

On the first N OSIE stimuli (default 100; 0: all 700), for the ``center-bias`` and ``uniform``
baselines, EfficientNet-Lite0's Grad-CAM and the leave-one-subject-out human density (the gold
standard):

1. raw scores, as ``harness eval`` computes them (``harness.evaluation.scoring.score``; the human
   ceiling by ``harness.evaluation.ceiling.ceiling_scores``);
2. a cross-validated calibration per model (``fit_calibration``: K folds by stimulus id, seeded;
   for the gold standard one map per (stimulus, subject)), with its time;
3. calibrated scores: ``calibrated_density`` with the parameters of the stimulus' fold (fitted on the
   other folds only), then ``score_calibrated`` (LL and IG on the density, the other metrics on the
   ECCV 2018 metric-specific maps); the gold standard by ``score_gold`` (its metrics other than LL/IG
   on the first M stimuli only, ``--gold-metrics``, default all: they cost a SIM map, a blur and a
   metric suite per subject);
4. the explained information gain ``100 * IG / IG_gold`` (raw: the raw IGs, calibrated: the
   calibrated ones);
5. the downsampling check: Grad-CAM refitted at the ``--factors`` (default 4 and 16) besides
   ``--factor`` (default 8), each scored on held-out stimuli at full resolution, and, per fold, the
   fit's log-likelihood (normaliser on the block grid) against the exact full-resolution one;
6. the checks of issue #12: calibrated centre bias IG ~ 0; every explained IG below 100 %; the
   uniform model's IG below 0 (raw, and calibrated without the prior mixture: the map alone).

Times are wall and CPU seconds of this process (BLAS on one thread; the machine's load is printed
at the top: on a shared machine wall time is not a measure of the code).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))

from _machine import describe  # noqa: E402

METRICS = ("ig", "auc_judd", "sauc", "nss", "cc", "kld", "sim")


class Timer:
    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c

    def __str__(self):
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s cpu"


def mean(rows, key):
    vals = [r[key] for r in rows if r is not None and key in r and math.isfinite(r[key])]
    return float(np.mean(vals)) if vals else float("nan")


def gradcam_maps(ctx, n: int) -> tuple[list[np.ndarray], float]:
    import torch

    from harness.evaluation.scoring import check_map
    from harness.models import load_model

    torch.set_num_threads(1)
    model = load_model("efficientnet-lite0")
    out = []
    t0 = time.perf_counter()
    for start in range(0, n, 8):
        images = [ctx.ds[i]["image"].convert("RGB") for i in range(start, min(n, start + 8))]
        for j, p in enumerate(model.predict(images, task="free-viewing", attention="grad-cam")):
            w, h = ctx.sizes[start + j]
            status, reason, smap = check_map(p.attention, h, w)
            if smap is None:
                raise SystemExit(f"Grad-CAM failed on stimulus {start + j}: {reason}")
            out.append(smap.astype(np.float32))
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="first N stimuli (default 100; 0: all 700)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factor", type=int, default=8, help="downsampling factor of the calibration (default 8)")
    ap.add_argument("--factors", default="4,16", help="other factors for the downsampling check ('' to skip)")
    ap.add_argument("--profile", default="mit", choices=["mit", "pysaliency"])
    ap.add_argument("--gold-metrics", type=int, default=None,
                    help="gold standard: metrics besides LL/IG on the first M stimuli only (default all)")
    ap.add_argument("--gold-max-fit-maps", type=int, default=None,
                    help="gold standard: fit each fold on at most this many (stimulus, subject) maps")
    ap.add_argument("--data-dir", default=None, help="the OSIE folder (default $HARNESS_DATA_DIR/osie)")
    args = ap.parse_args(argv)

    from harness.calibration import (calibrated_density, calibrated_log_density, explained_information_gain,
                                     fit_calibration, loso_inputs, score_calibrated, score_gold,
                                     shuffled_density)
    from harness.calibration.score import log_likelihood_bits
    from harness.data import load_gaze_dataset
    from harness.data.density import sigma_px
    from harness.evaluation.ceiling import ceiling_scores
    from harness.evaluation.context import DatasetContext
    from harness.evaluation.scoring import score
    from plugins.models.baselines import center_bias_map, uniform_map

    data_dir = args.data_dir or str(Path(os.environ["HARNESS_DATA_DIR"]) / "osie")
    gaze, ds = load_gaze_dataset("osie", data_dir=data_dir)
    ctx = DatasetContext(gaze, ds, args.limit or None, sigma_px(gaze))
    n = len(ctx)
    shapes = [(h, w) for (w, h) in ctx.sizes]
    sig = ctx.sigma_px
    print(describe())
    print(f"OSIE: {n} stimuli, {ctx.fixations.total} fixations ({ctx.fixations.total / n:.1f} per stimulus); profile "
          f"{args.profile}; human density sigma {sig:g} px; {args.folds} folds by stimulus id, seed {args.seed}; "
          f"factor {args.factor}")

    with Timer() as t_gc:
        gc, infer_s = gradcam_maps(ctx, n)
    print(f"efficientnet-lite0 Grad-CAM on {n} stimuli: {t_gc} (inference {infer_s:.1f} s)", flush=True)
    models = {
        "center-bias": lambda i: center_bias_map(*shapes[i]),
        "uniform": lambda i: uniform_map(*shapes[i]),
        "efficientnet-lite0 grad-cam": lambda i: gc[i].astype(np.float64),
    }

    # 1. raw scores ----------------------------------------------------------------------------
    raw: dict[str, list] = {}
    with Timer() as t_raw:
        for name, make in models.items():
            raw[name] = [score(make(i), ctx.fixations[i], ctx, i, args.profile, args.seed) for i in range(n)]
        raw["human (leave-one-subject-out)"] = [ceiling_scores(ctx, i, args.profile, args.seed) for i in range(n)]
    print(f"raw scores: {t_raw}", flush=True)

    # 2. calibrations --------------------------------------------------------------------------
    cals, fit_time = {}, {}
    for name, make in models.items():
        with Timer() as t:
            cals[name] = fit_calibration((make(i) for i in range(n)), ctx.fixations, ids=ctx.ids, folds=args.folds,
                                         seed=args.seed, factor=args.factor)
        fit_time[name] = t
        print(f"fit {name}: {t}", flush=True)
    gold = "human (leave-one-subject-out)"
    with Timer() as t_prep:
        prep = loso_inputs(ctx.fixations, shapes, ctx.ids, sig, factor=args.factor)
    with Timer() as t:
        cals[gold] = fit_calibration(prep, folds=args.folds, seed=args.seed, max_fit_maps=args.gold_max_fit_maps)
    fit_time[gold] = t
    print(f"fit {gold}: {len(prep)} maps (leave-one-out densities made and downsampled in {t_prep}); fit {t}",
          flush=True)
    with Timer() as t:
        uniform_alone = fit_calibration((uniform_map(*shapes[i]) for i in range(n)), ctx.fixations, ids=ctx.ids,
                                        folds=args.folds, seed=args.seed, factor=args.factor, prior_mixture=False)
    print(f"fit uniform without the prior mixture: {t}", flush=True)
    folds = cals["center-bias"].folds
    print(f"folds: {folds.to_json()}")
    for name, cal in cals.items():
        print(f"  {name}:")
        for f in cal.fits:
            p = f.params
            print(f"    fold {f.fold}: sigma {p.sigma_px:6.1f} px, prior weight {p.prior_weight:.3f}, "
                  f"{len(p.knots)} knots, g(1) = {sum(p.increments):5.2f} nats; fitted on {len(f.fit_ids)} stimuli "
                  f"({f.n_fit_maps} maps, {f.n_fit_fixations} fixations): LL {f.train_ll_bits:.4f} bits, "
                  f"{f.n_evaluations} blurs tried, {f.seconds:.1f} s")

    # 3. calibrated scores -----------------------------------------------------------------------
    cal_rows: dict[str, list] = {}
    with Timer() as t_cal:
        for name, make in models.items():
            rows = []
            for i in range(n):
                fit = cals[name].fit_for(ctx.ids[i])
                c = center_bias_map(*shapes[i])
                p = calibrated_density(make(i), fit.params, c)
                ox, oy = ctx.others(i)
                rows.append(score_calibrated(
                    p, ctx.fixations[i].x, ctx.fixations[i].y, sigma_px=sig, baseline=c,
                    human_density=ctx.density(i), other_x=ox, other_y=oy, shuffled=shuffled_density(fit, shapes[i]),
                    sim_fixations=int(round(fit.fixations_per_map)), profile=args.profile, seed=args.seed + i,
                    factor=args.factor))
            cal_rows[name] = rows
    print(f"calibrated scores of the models: {t_cal}", flush=True)
    m_gold = n if args.gold_metrics is None else min(args.gold_metrics, n)
    with Timer() as t_gold:
        rows = []
        for i in range(n):
            fit = cals[gold].fit_for(ctx.ids[i])
            ox, oy = ctx.others(i)
            rows.append(score_gold(ctx.fixations[i], shapes[i], fit.params, sigma_px=sig, other_x=ox, other_y=oy,
                                   shuffled=shuffled_density(fit, shapes[i]), profile=args.profile,
                                   seed=args.seed + i, metrics=None if i < m_gold else ()))
        cal_rows[gold] = rows
    print(f"calibrated gold standard ({m_gold} stimuli with every metric): {t_gold}", flush=True)
    uni_alone = [log_likelihood_bits(calibrated_density(uniform_map(*shapes[i]), uniform_alone.params_for(ctx.ids[i])),
                                     ctx.fixations[i].x, ctx.fixations[i].y, center_bias_map(*shapes[i]))
                 for i in range(n)]

    # 4. table ---------------------------------------------------------------------------------
    ig_gold_raw = [r["ig"] if r else float("nan") for r in raw[gold]]
    ig_gold_cal = [r["ig"] if r else float("nan") for r in cal_rows[gold]]
    print()
    print(f"OSIE, first {n} stimuli, profile {args.profile}; raw -> calibrated (held-out folds); IG in bits per "
          f"fixation over the centre bias (raw: the harness's IG; calibrated: every fixation counted);")
    print(f"explained IG = 100 * IG / IG of the human gold standard; LL: bits per fixation over uniform "
          f"(calibrated only); gold standard metrics other than LL/IG on the first {m_gold} stimuli")
    head = f"{'model':32s} {'IG':>17s} {'expl. IG %':>17s} {'LL':>7s}"
    for key in METRICS[1:]:
        head += f" {key:>15s}"
    head += f" {'fit s':>7s}"
    print(head)
    explained = {}
    for name in list(models) + [gold]:
        ig_r, ig_c = mean(raw[name], "ig"), mean(cal_rows[name], "ig")
        e_r = explained_information_gain([r["ig"] for r in raw[name]], ig_gold_raw)
        e_c = explained_information_gain([r["ig"] if r else float("nan") for r in cal_rows[name]], ig_gold_cal)
        explained[name] = e_c
        line = f"{name:32s} {ig_r:7.4f} -> {ig_c:7.4f} {e_r:7.1f} -> {e_c:7.1f} {mean(cal_rows[name], 'll'):7.4f}"
        for key in METRICS[1:]:
            line += f" {mean(raw[name], key):6.3f}->{mean(cal_rows[name], key):6.3f}"
        line += f" {fit_time[name].wall:7.1f}"
        print(line)
    print(f"{'uniform, no prior mixture':32s} {mean(raw['uniform'], 'ig'):7.4f} -> {np.mean(uni_alone):7.4f}")

    # 5. downsampling check ----------------------------------------------------------------------
    name = "efficientnet-lite0 grad-cam"
    factors = [args.factor] + [int(f) for f in args.factors.split(",") if f.strip()]
    print()
    print(f"downsampling check ({name}): held-out IG / LL at full resolution, by the fit's factor")
    for f in factors:
        with Timer() as t:
            cal = cals[name] if f == args.factor else fit_calibration(
                (models[name](i) for i in range(n)), ctx.fixations, ids=ctx.ids, folds=args.folds, seed=args.seed,
                factor=f)
        ll, ig = [], []
        for i in range(n):
            p = calibrated_density(models[name](i), cal.params_for(ctx.ids[i]))
            ll.append(log_likelihood_bits(p, ctx.fixations[i].x, ctx.fixations[i].y))
            ig.append(log_likelihood_bits(p, ctx.fixations[i].x, ctx.fixations[i].y, center_bias_map(*shapes[i])))
        sig_s = ", ".join(f"{fit.params.sigma_px:.0f}" for fit in cal.fits)
        print(f"  factor {f:2d}: IG {np.mean(ig):.4f}, LL {np.mean(ll):.4f} bits/fixation; sigma per fold {sig_s} px; "
              f"fit {t if f != args.factor else fit_time[name]}", flush=True)
    print(f"  fit objective (normaliser on the {args.factor}x block grid) against the exact full-resolution LL "
          f"on each fold's fit stimuli, bits/fixation:")
    cal = cals[name]
    for fit in cal.fits:
        fit_set = set(fit.fit_ids)
        lps, counts = [], []
        for i in range(n):
            if ctx.ids[i] in fit_set:
                lp = calibrated_log_density(models[name](i), fit.params)
                r = np.clip(np.floor(ctx.fixations[i].y + 0.5).astype(int), 0, shapes[i][0] - 1)
                cc = np.clip(np.floor(ctx.fixations[i].x + 0.5).astype(int), 0, shapes[i][1] - 1)
                lps.append((lp[r, cc] + math.log(shapes[i][0] * shapes[i][1])) / math.log(2))
        exact = float(np.mean(np.concatenate(lps)))
        print(f"    fold {fit.fold}: fit {fit.train_ll_bits:.5f}, exact {exact:.5f}, difference "
              f"{fit.train_ll_bits - exact:+.5f}")

    # 6. checks ----------------------------------------------------------------------------------
    print()
    cb = mean(cal_rows["center-bias"], "ig")
    models_explained = {k: v for k, v in explained.items() if k != gold}
    uni_raw = mean(raw["uniform"], "ig")
    checks = [
        (f"calibrated centre bias IG ~ 0 (|{cb:.4f}| < 0.02 bits)", abs(cb) < 0.02),
        (f"every model's explained IG below 100 % ({', '.join(f'{k}: {v:.1f}' for k, v in models_explained.items())})",
         all(v < 100 for v in models_explained.values())),
        (f"uniform IG < 0 against the centre bias (raw {uni_raw:.4f}; as a calibrated density without the prior "
         f"mixture {np.mean(uni_alone):.4f})", uni_raw < 0 and np.mean(uni_alone) < 0),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
