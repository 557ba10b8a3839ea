"""Benchmark: the full metric suite on OSIE, ours (harness.metrics.compute_suite) against pysaliency.

    python benchmarks/metrics.py [--limit N] [--seed S]

For every image (streamed: one image, its maps and its density in memory at a time) it computes, on
the same saliency map (grey-level gradient magnitude of the image plus a centre bias):

- ours, ``profile="pysaliency"``: all nine metrics;
- pysaliency's model-level API, as the MIT/Tuebingen benchmark calls it (github.com/matthias-k/
  saliency-benchmarking, ``evaluation.py``): AUC, sAUC (every fixation on the other OSIE images),
  NSS, CC, SIM, KLDiv (MIT regularisation), information gain over a centre-bias baseline; only the
  metric calls are timed, not the building of pysaliency's Stimuli/Fixations/model objects;
- pysaliency's per-image kernels behind those calls (``general_roc``, ``NSS``, ``CC``, ``SIM``,
  ``MIT_KLDiv``, log densities): a lower bound on what pysaliency can do;
- ours, ``profile="mit"``: all nine metrics (timing only; no reference implementation in Python).

Ours runs compiled numba kernels: the first call compiles them (seconds; later runs load them from
numba's cache). That first call is timed and printed separately, not counted in the totals.

It prints the largest absolute difference per metric between ours and pysaliency, the total times,
the ratios, and the peak resident memory. Calls are interleaved image by image, so a busy machine
slows all of them alike. Human densities come from harness.data.density (not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

# single-threaded BLAS for pysaliency's sake: a threaded OpenBLAS ``dot`` spin-waits and becomes
# erratic (ms instead of 0.1 ms) when other processes hold the cores; ours uses no BLAS
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))

from harness.metrics import compute_suite  # noqa: E402

PYSALIENCY_METRICS = ["auc_judd", "sauc", "nss", "cc", "sim", "kld", "ig"]  # what pysaliency computes
PYSALIENCY_KLD = dict(minimum_value=0, log_regularization=2.2204e-16, quotient_regularization=2.2204e-16)


def import_pysaliency():
    if not hasattr(np, "trapz"):  # pysaliency calls np.trapz, which numpy 2 removed
        np.trapz = np.trapezoid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pysaliency
        from pysaliency.models import SaliencyMapNormalizingModel
    return pysaliency, SaliencyMapNormalizingModel


def centre_bias(h: int, w: int, scale: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-(((xx - (w - 1) / 2) / (scale * w)) ** 2 + ((yy - (h - 1) / 2) / (scale * h)) ** 2) / 2)


def saliency_map(image, centre: np.ndarray) -> np.ndarray:
    """Grey-level gradient magnitude (blurred, scaled to [0, 1]) plus half a centre bias: derived
    from the image, positive everywhere (so information gain is finite)."""
    from scipy.ndimage import gaussian_filter

    grey = np.asarray(image.convert("L"), dtype=np.float64)
    gy, gx = np.gradient(grey)
    g = gaussian_filter(np.hypot(gx, gy), 2.0)
    return g / g.max() + 0.5 * centre


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def make_pysaliency_runners(pysaliency, SaliencyMapNormalizingModel):
    from pysaliency.metrics import CC, NSS, SIM, MIT_KLDiv, convert_saliency_map_to_density
    from pysaliency.roc import general_roc

    class Precomputed(pysaliency.SaliencyMapModel):
        def __init__(self, stimuli, maps):
            super().__init__(caching=True)
            for sid, m in zip(stimuli.stimulus_ids, maps):
                self._cache[sid] = m

        def _saliency_map(self, stimulus):
            raise AssertionError("every map is precomputed")

    def prepare(img, smap, density, baseline, x, y, ox, oy):
        stimuli = pysaliency.Stimuli([img])
        zeros = np.zeros(x.size, dtype=int)
        return dict(
            stimuli=stimuli,
            fix=pysaliency.Fixations.create_without_history(x + 0.5, y + 0.5, zeros),
            nonfix=pysaliency.Fixations.create_without_history(ox + 0.5, oy + 0.5, np.zeros(ox.size, dtype=int)),
            model=Precomputed(stimuli, [smap]),
            gold=Precomputed(stimuli, [density]),
            base=SaliencyMapNormalizingModel(Precomputed(stimuli, [baseline])),
        )

    def api(p):
        st, fix, model, gold = p["stimuli"], p["fix"], p["model"], p["gold"]
        return {
            "auc_judd": model.AUC(st, fix, average="image"),
            "sauc": model.AUC(st, fix, nonfixations=p["nonfix"], average="image"),
            "nss": model.NSS(st, fix, average="image"),
            "cc": model.CC(st, gold),
            "sim": model.SIM(st, gold),
            "kld": model.image_based_kl_divergence(st, gold, **PYSALIENCY_KLD),
            "ig": SaliencyMapNormalizingModel(model).information_gain(st, fix, baseline_model=p["base"]),
        }

    def kernels(smap, density, baseline, x, y, ox, oy):
        xi, yi = (x + 0.5).astype(int), (y + 0.5).astype(int)
        pos = smap[yi, xi]
        logp = np.log(convert_saliency_map_to_density(smap))
        logb = np.log(convert_saliency_map_to_density(baseline))
        return {
            "auc_judd": general_roc(pos, smap.flatten())[0],
            "sauc": general_roc(pos, smap[(oy + 0.5).astype(int), (ox + 0.5).astype(int)])[0],
            "nss": NSS(smap, xi, yi).mean(),
            "cc": CC(smap, density),
            "sim": SIM(smap, density),
            "kld": MIT_KLDiv(smap, density),
            "ig": ((logp[yi, xi] - logb[yi, xi]) / np.log(2)).mean(),
        }

    return prepare, api, kernels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N images only (default: all 700)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the randomised MIT metrics")
    ap.add_argument("--ours-only", action="store_true", help="skip pysaliency (timing and memory of ours alone)")
    args = ap.parse_args(argv)

    from harness.data import load_gaze_dataset
    from harness.data.density import fixation_density, sigma_px
    from harness.schema import Fixations

    if not args.ours_only:
        pysaliency, SaliencyMapNormalizingModel = import_pysaliency()
        prepare, api, kernels = make_pysaliency_runners(pysaliency, SaliencyMapNormalizingModel)

    osie, ds = load_gaze_dataset("osie")
    n_images = len(ds) if args.limit is None else min(args.limit, len(ds))
    sigma = sigma_px(osie)
    # every fixation of the data set (small: ~100k points) for the shuffled AUC's negatives
    fix_all = [Fixations.from_record({"fixations": f}) for f in ds["fixations"]]
    all_x = np.concatenate([f.x for f in fix_all])
    all_y = np.concatenate([f.y for f in fix_all])
    all_n = np.concatenate([np.full(len(f), i) for i, f in enumerate(fix_all)])
    del fix_all
    print(f"OSIE: {n_images} of {len(ds)} images, {all_x.size} fixations in all; density sigma {sigma:g} px; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")

    names = PYSALIENCY_METRICS
    diff_api = {k: 0.0 for k in names}
    diff_kernels = {k: 0.0 for k in names}
    inf_mismatch = {k: 0 for k in names}
    t = {"ours_pysaliency": 0.0, "ours_mit": 0.0, "ours_same": 0.0, "pysaliency_api": 0.0, "pysaliency_kernels": 0.0}
    centres: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    rss_early = None
    tracemalloc_peak = 0

    for i, record in enumerate(ds.select(range(n_images))):
        h, w = int(record["height"]), int(record["width"])
        if (h, w) not in centres:
            centres[(h, w)] = (centre_bias(h, w, 0.2), centre_bias(h, w, 0.3))
        centre, baseline = centres[(h, w)]
        fix = Fixations.from_record(record)
        x, y = fix.x, fix.y
        others = all_n != i
        ox, oy = all_x[others], all_y[others]
        image = record["image"]
        smap = saliency_map(image, centre)
        density = fixation_density(x, y, (h, w), sigma)
        ctx = dict(density=density, baseline=baseline, other_x=ox, other_y=oy)

        if i == 0:  # numba's kernels load from its cache, or compile the first time: not timed below
            t0 = time.perf_counter()
            for profile in ("pysaliency", "mit"):
                compute_suite(smap, x, y, profile=profile, seed=args.seed, **ctx)
            first_call_s = time.perf_counter() - t0
            print(f"first calls (numba kernels compiled, or loaded from numba's cache): {first_call_s:.2f} s, "
                  "not counted in the times below", flush=True)
        if i == 0:  # the working memory of one suite, measured once (tracemalloc slows numpy down)
            tracemalloc.start()
            compute_suite(smap, x, y, profile="mit", seed=args.seed, **ctx)
            tracemalloc_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

        t0 = time.perf_counter()
        ours = compute_suite(smap, x, y, profile="pysaliency", **ctx)
        t1 = time.perf_counter()
        compute_suite(smap, x, y, profile="mit", seed=args.seed, **ctx)
        t2 = time.perf_counter()
        t["ours_pysaliency"] += t1 - t0
        t["ours_mit"] += t2 - t1
        # like for like: only the metrics pysaliency computes too (no AUC-Borji, no IoU)
        t0 = time.perf_counter()
        same = compute_suite(smap, x, y, profile="pysaliency", metrics=list(names), **ctx)
        t["ours_same"] += time.perf_counter() - t0
        assert all(same[k] == ours[k] or (np.isnan(same[k]) and np.isnan(ours[k])) for k in names)
        if i == 9:
            rss_early = rss_mib()
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} images", flush=True)
        if args.ours_only:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pysaliency multiplies np.empty by NaN
            prepared = prepare(np.asarray(image.convert("RGB")), smap, density, baseline, x, y, ox, oy)
            t3 = time.perf_counter()
            ref = api(prepared)
            t4 = time.perf_counter()
            ref_k = kernels(smap, density, baseline, x, y, ox, oy)
            t5 = time.perf_counter()
        t["pysaliency_api"] += t4 - t3
        t["pysaliency_kernels"] += t5 - t4
        del prepared

        for k in names:
            for store, r in ((diff_api, ref), (diff_kernels, ref_k)):
                a, b = float(ours[k]), float(r[k])
                if np.isfinite(a) and np.isfinite(b):
                    store[k] = max(store[k], abs(a - b))
                elif a != b:
                    inf_mismatch[k] += 1

    per = 1000.0 / n_images
    if args.ours_only:
        print(f"ours, pysaliency profile: {t['ours_pysaliency']:.2f} s ({t['ours_pysaliency'] * per:.2f} ms per image); "
              f"mit profile: {t['ours_mit']:.2f} s ({t['ours_mit'] * per:.2f} ms per image)")
        print(f"peak traced memory of one compute_suite call: {tracemalloc_peak / 2**20:.1f} MiB; peak RSS after "
              f"10 images {rss_early or 0:.0f} MiB, at the end {rss_mib():.0f} MiB")
        return 0
    print()
    print("max |ours (pysaliency profile) - pysaliency| per metric, over all images:")
    print(f"  {'metric':10s} {'vs model API':>14s} {'vs kernels':>14s}")
    for k in names:
        print(f"  {k:10s} {diff_api[k]:14.3e} {diff_kernels[k]:14.3e}")
    if any(inf_mismatch.values()):
        print(f"  non-finite disagreements: {inf_mismatch}")
    print()
    print(f"time for {n_images} images (ms per image in brackets):")
    rows = [
        ("ours, pysaliency profile (9 metrics)", t["ours_pysaliency"]),
        ("ours, mit profile (9 metrics)", t["ours_mit"]),
        (f"ours, pysaliency profile ({len(names)} metrics)", t["ours_same"]),
        ("pysaliency model API (7 metrics)", t["pysaliency_api"]),
        ("pysaliency kernels (7 metrics)", t["pysaliency_kernels"]),
    ]
    for label, secs in rows:
        print(f"  {label:40s} {secs:8.2f} s  ({secs * per:7.2f})")
    print(f"  speed-up over the pysaliency model API: {t['pysaliency_api'] / t['ours_pysaliency']:.1f}x "
          f"(mit profile: {t['pysaliency_api'] / t['ours_mit']:.1f}x)")
    print(f"  speed-up over the pysaliency kernels:   {t['pysaliency_kernels'] / t['ours_pysaliency']:.1f}x "
          f"(mit profile: {t['pysaliency_kernels'] / t['ours_mit']:.1f}x)")
    print(f"  same {len(names)} metrics on both sides: {t['pysaliency_api'] / t['ours_same']:.1f}x over the model API, "
          f"{t['pysaliency_kernels'] / t['ours_same']:.1f}x over the kernels")
    print()
    print(f"peak traced memory of one compute_suite call: {tracemalloc_peak / 2**20:.1f} MiB")
    if rss_early is not None:
        print(f"peak RSS after 10 images: {rss_early:.0f} MiB")
    print(f"peak RSS at the end:      {rss_mib():.0f} MiB (whole process: datasets, pysaliency, both suites)")
    worst = max(max(diff_api.values()), max(diff_kernels.values()))
    ok = worst <= 1e-4 and not any(inf_mismatch.values())
    print(f"agreement to 1e-4: {'yes' if ok else 'NO'} (worst {worst:.3e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
