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
numba's cache). That first call is timed and printed separately, not counted in the totals; a
kernel first needed by a later image compiles inside the timed calls, so numba's compile events
are timed too and taken out of the figures (and printed).

It prints first what it runs under (CPU, usable cores, load, the thread pools of BLAS/OpenMP/torch
via threadpoolctl, numba's threading layer, thread variables): figures from different machines or
thread settings are not comparable. At the end (after the memory figures, which its test arrays
would distort) it prints numba's compile target, the cache sizes and the single-thread bandwidth of
one compiled pass over a map in cache and over data from memory: ours is a few passes over 4 MB
maps per image and runs near that bandwidth, pysaliency mostly sorts and follows the core's speed,
so the ratio between them depends on the machine's memory more than on its CPU's clock (on a
2-core Xeon VM: ~20 GB/s in cache, ~7.5 GB/s from memory; see :func:`memory_profile`). Then the largest absolute difference per metric between ours
and pysaliency, wall time, CPU time and page faults per image, the ratios, and the peak memory.
CPU time above wall time means other threads ran during the timed calls (a threaded BLAS spinning);
below it, that the process waited. Calls are interleaved image by image, so a busy machine slows all
of them alike. Human densities come from harness.data.density (not timed). BLAS runs on one thread
unless OPENBLAS_NUM_THREADS says otherwise (set before numpy loads).
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

sys.path.insert(0, str(REPO / "benchmarks"))
from _machine import describe  # noqa: E402

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


def memory_profile() -> str:
    """What explains figures that differ between machines more than the CPU's name does: numba's
    compile target (CPU name, vector features), the cache sizes, and the single-thread bandwidth of
    one compiled reading pass (:func:`harness.metrics.kernels.stats`, the pass every map needs) over
    a map-sized array (800x600 float64, 3.7 MiB) that is in cache, and over arrays too large for any
    cache. Ours is a few such passes per image, so it runs near the bandwidth of the pass (the last
    level cache's, or memory's when a map is not in cache); pysaliency mostly sorts, and its time
    follows the core's speed rather than memory's. A machine whose single core streams at a third of
    another's runs ours about three times slower while pysaliency slows far less."""
    parts = []
    try:
        import llvmlite.binding as llvm
        from numba.core import config

        target = config.CPU_NAME or llvm.get_host_cpu_name()
        features = config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
        flags = [f for f in ("avx2", "fma", "avx512f", "avx512dq", "avx512vl") if f"+{f}" in features.split(",")]
        parts.append(f"numba target {target} ({' '.join(flags) or 'no AVX2/AVX-512'})")
    except Exception as exc:  # pragma: no cover - numba internals moved
        parts.append(f"numba target unknown ({type(exc).__name__})")
    caches = []
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")) if base.exists() else []:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level} {size}")
    parts.append("caches " + (", ".join(caches) or "unknown"))
    try:
        from harness.metrics import kernels

        def gbps(a: np.ndarray, reps: int) -> float:
            kernels.stats(a)
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                kernels.stats(a)
                best = min(best, time.perf_counter() - t0)
            return a.nbytes / best / 1e9

        warm = np.random.default_rng(0).random(600 * 800)
        cold = [np.random.default_rng(i).random(16 << 20 >> 3) for i in range(16)]  # 16 x 16 MiB
        cold_gbps = 0.0
        for _ in range(3):  # each read once after the others pushed it out of the caches
            t0 = time.perf_counter()
            for a in cold:
                kernels.stats(a)
            cold_gbps = max(cold_gbps, sum(a.nbytes for a in cold) / (time.perf_counter() - t0) / 1e9)
        del cold
        warm_gbps = gbps(warm, 20)
        parts.append(f"one reading pass: {warm_gbps:.1f} GB/s over a map in cache ({warm.nbytes / warm_gbps / 1e6:.2f} ms "
                     f"per 800x600 map), {cold_gbps:.1f} GB/s from memory "
                     f"({warm.nbytes / cold_gbps / 1e6:.2f} ms per map)")
    except Exception as exc:  # pragma: no cover
        parts.append(f"bandwidth not measured ({type(exc).__name__}: {exc})")
    return "memory: " + "; ".join(parts)


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


class _CompileTimer:
    """Seconds numba spent compiling (or loading compiled kernels from its cache) so far."""

    def __init__(self) -> None:
        self.listener = None
        try:
            from numba.core import event

            self.listener = event.TimingListener()
            event.register("numba:compile", self.listener)
        except Exception:  # pragma: no cover - numba's event API moved
            pass

    def seconds(self) -> float:
        return getattr(self.listener, "_duration", 0.0) if self.listener is not None else 0.0


COMPILE = _CompileTimer()


class Clock:
    """Wall and CPU time of the timed sections, less the time numba spent compiling kernels inside
    them (a kernel first needed by a later image, or a new argument type, compiles then: seconds),
    with that compile time and the page faults counted apart. CPU time well below wall time means
    the process waited (other processes on its cores, a hypervisor's steal) and the wall figures
    are not the code's; CPU time well above it, that other threads ran (a threaded BLAS spinning)."""

    def __init__(self) -> None:
        self.wall = self.cpu = self.compile = 0.0
        self.faults = 0

    def __enter__(self) -> "Clock":
        self._t = (time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
                   COMPILE.seconds())
        return self

    def __exit__(self, *exc) -> None:
        w, c, f, k = self._t
        compiled = COMPILE.seconds() - k
        self.compile += compiled
        self.wall += time.perf_counter() - w - compiled
        self.cpu += time.process_time() - c - compiled
        self.faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f


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
    print(describe())
    print(f"OSIE: {n_images} of {len(ds)} images, {all_x.size} fixations in all; density sigma {sigma:g} px")

    names = PYSALIENCY_METRICS
    diff_api = {k: 0.0 for k in names}
    diff_kernels = {k: 0.0 for k in names}
    inf_mismatch = {k: 0 for k in names}
    t = {k: Clock() for k in ("ours_pysaliency", "ours_mit", "ours_same", "pysaliency_api", "pysaliency_kernels")}
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
            print(f"first calls: {first_call_s:.2f} s, of which numba compiling or loading kernels "
                  f"{COMPILE.seconds():.2f} s; not counted in the times below", flush=True)
        if i == 0:  # the working memory of one suite, measured once (tracemalloc slows numpy down)
            tracemalloc.start()
            compute_suite(smap, x, y, profile="mit", seed=args.seed, **ctx)
            tracemalloc_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

        with t["ours_pysaliency"]:
            ours = compute_suite(smap, x, y, profile="pysaliency", **ctx)
        with t["ours_mit"]:
            compute_suite(smap, x, y, profile="mit", seed=args.seed, **ctx)
        # like for like: only the metrics pysaliency computes too (no AUC-Borji, no IoU)
        with t["ours_same"]:
            same = compute_suite(smap, x, y, profile="pysaliency", metrics=list(names), **ctx)
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
            with t["pysaliency_api"]:
                ref = api(prepared)
            with t["pysaliency_kernels"]:
                ref_k = kernels(smap, density, baseline, x, y, ox, oy)
        del prepared

        for k in names:
            for store, r in ((diff_api, ref), (diff_kernels, ref_k)):
                a, b = float(ours[k]), float(r[k])
                if np.isfinite(a) and np.isfinite(b):
                    store[k] = max(store[k], abs(a - b))
                elif a != b:
                    inf_mismatch[k] += 1

    per = 1000.0 / n_images
    compiled = {k: round(c.compile, 2) for k, c in t.items() if c.compile}
    if compiled:  # pysaliency jits some of its own functions with numba too
        print(f"numba compiled kernels during the timed calls (s), taken out of the times below: {compiled}")
    if args.ours_only:
        for key, label in (("ours_pysaliency", "pysaliency profile"), ("ours_mit", "mit profile")):
            c = t[key]
            print(f"ours, {label}: {c.wall:.2f} s ({c.wall * per:.2f} ms per image, cpu {c.cpu * per:.2f} ms, "
                  f"{c.faults / n_images:.0f} page faults)")
        print(f"peak traced memory of one compute_suite call: {tracemalloc_peak / 2**10:.0f} KiB; peak RSS after "
              f"10 images {rss_early or 0:.0f} MiB, at the end {rss_mib():.0f} MiB")
        print(memory_profile())  # last: its 256 MiB of test arrays must not count in the peak RSS above
        return 0
    print()
    print("max |ours (pysaliency profile) - pysaliency| per metric, over all images:")
    print(f"  {'metric':10s} {'vs model API':>14s} {'vs kernels':>14s}")
    for k in names:
        print(f"  {k:10s} {diff_api[k]:14.3e} {diff_kernels[k]:14.3e}")
    if any(inf_mismatch.values()):
        print(f"  non-finite disagreements: {inf_mismatch}")
    print()
    print(f"time for {n_images} images (wall s; per image: wall ms, cpu ms, page faults):")
    rows = [
        ("ours, pysaliency profile (9 metrics)", t["ours_pysaliency"]),
        ("ours, mit profile (9 metrics)", t["ours_mit"]),
        (f"ours, pysaliency profile ({len(names)} metrics)", t["ours_same"]),
        ("pysaliency model API (7 metrics)", t["pysaliency_api"]),
        ("pysaliency kernels (7 metrics)", t["pysaliency_kernels"]),
    ]
    for label, c in rows:
        print(f"  {label:40s} {c.wall:8.2f} s  {c.wall * per:8.2f} {c.cpu * per:8.2f} {c.faults / n_images:8.0f}")
    api_s, kern_s = t["pysaliency_api"].wall, t["pysaliency_kernels"].wall
    print(f"  speed-up over the pysaliency model API: {api_s / t['ours_pysaliency'].wall:.1f}x "
          f"(mit profile: {api_s / t['ours_mit'].wall:.1f}x)")
    print(f"  speed-up over the pysaliency kernels:   {kern_s / t['ours_pysaliency'].wall:.1f}x "
          f"(mit profile: {kern_s / t['ours_mit'].wall:.1f}x)")
    print(f"  same {len(names)} metrics on both sides: {api_s / t['ours_same'].wall:.1f}x over the model API, "
          f"{kern_s / t['ours_same'].wall:.1f}x over the kernels")
    print()
    print(f"peak traced memory of one compute_suite call: {tracemalloc_peak / 2**10:.0f} KiB "
          "(numpy allocations; its work arrays are reused from call to call)")
    if rss_early is not None:
        print(f"peak RSS after 10 images: {rss_early:.0f} MiB")
    print(f"peak RSS at the end:      {rss_mib():.0f} MiB (whole process: datasets, pysaliency, both suites)")
    print(memory_profile())  # last: its 256 MiB of test arrays must not count in the peak RSS above
    worst = max(max(diff_api.values()), max(diff_kernels.values()))
    ok = worst <= 1e-4 and not any(inf_mismatch.values())
    print(f"agreement to 1e-4: {'yes' if ok else 'NO'} (worst {worst:.3e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
