"""Benchmark: OSIE conversion vs cached load, and fixation density maps for all 700 images.

Run:  .venv/bin/python benchmarks/density.py [--data-dir DIR] [--sample N]

Prints wall-clock figures for
- converting OSIE to Arrow into a fresh temporary cache, and loading it again from the cache
  (the second load must not parse the .mat: it is timed with scipy.io.loadmat made to raise);
- all 700 density maps at sigma = 1 degree (24 px) with harness.data.density (separable Gaussian as
  one matrix product), against scipy.ndimage.gaussian_filter on the histogram (truncate 4, its
  default, and 8) on a sample, extrapolated to 700;
- leave-one-subject-out maps (15 per image) on a sample, extrapolated to 700.
Timings depend on machine load: BLAS threads compete with other processes (try
OPENBLAS_NUM_THREADS=1 on a busy machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _t(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")),
                        help="folder holding osie/ (default $HARNESS_DATA_DIR or ../shared/data)")
    parser.add_argument("--sample", type=int, default=30, help="images timed for the slower variants")
    args = parser.parse_args()
    osie_dir = Path(args.data_dir) / "osie"

    import scipy.io
    from scipy.ndimage import gaussian_filter

    from harness.data.density import fixation_density, loso_densities, sigma_px
    from harness.schema import Fixations
    from plugins.datasets.osie import OSIE

    with tempfile.TemporaryDirectory() as cache:
        obj = OSIE(data_dir=osie_dir, cache_dir=cache)
        _, t_fp = _t(obj.fingerprint)
        ds, t_convert = _t(obj.load)
        real_loadmat = scipy.io.loadmat

        def refuse(*a, **k):
            raise AssertionError("cached load parsed the .mat")

        scipy.io.loadmat = refuse
        try:
            again = OSIE(data_dir=osie_dir, cache_dir=cache)
            ds2, t_cached = _t(again.load)
        finally:
            scipy.io.loadmat = real_loadmat
        print(f"OSIE fingerprint (hash 50 MB of sources): {t_fp:8.3f} s")
        print(f"OSIE conversion to Arrow (700 images):    {t_convert:8.3f} s")
        print(f"OSIE load from cache (fingerprint + mmap): {t_cached:8.3f} s  ({t_convert / t_cached:.0f}x faster)")
        assert len(ds) == len(ds2) == 700

        cols = ds.select_columns(["fixations", "width", "height"])[:]
        fixs = [Fixations.from_record({"fixations": f}) for f in cols["fixations"]]
        shape = (int(cols["height"][0]), int(cols["width"][0]))
        sigma = sigma_px(OSIE)
        n = len(fixs)
        k = min(args.sample, n)
        print(f"\ndensity maps: {n} images of {shape[1]}x{shape[0]}, sigma = {sigma} px (1 degree), float64")

        fixation_density(fixs[0].x, fixs[0].y, shape, sigma)  # warm-up
        def build_all():  # keep only the sample: 700 float64 maps would hold 2.5 GB
            kept = []
            for i, f in enumerate(fixs):
                m = fixation_density(f.x, f.y, shape, sigma)
                if i < k:
                    kept.append(m)
            return kept

        maps, t_all = _t(build_all)
        print(f"  harness (matrix product), all {n}:       {t_all:8.3f} s  ({t_all / n * 1e3:.2f} ms/map)")

        def hist(f):
            h = np.zeros(shape)
            np.add.at(h, (np.floor(f.y + 0.5).astype(int), np.floor(f.x + 0.5).astype(int)), 1)
            return h

        for trunc in (4.0, 8.0):
            ref, t_ref = _t(lambda: [gaussian_filter(hist(f), sigma, mode="constant", truncate=trunc) for f in fixs[:k]])
            err = max(np.abs(r / r.sum() - m).max() / m.max() for r, m in zip(ref, maps[:k]))
            print(f"  scipy gaussian_filter truncate={trunc:.0f}, {k}:    {t_ref:8.3f} s  "
                  f"(-> {t_ref / k * n:6.1f} s for {n}; max rel. diff to harness {err:.1e})")

        loso, t_loso = _t(lambda: [loso_densities(f, shape, sigma) for f in fixs[:k]])
        print(f"  leave-one-subject-out, {k} images x {len(loso[0])}:  {t_loso:8.3f} s  "
              f"(-> {t_loso / k * n:6.1f} s for {n}; {t_loso / k * 1e3:.1f} ms/image)")
        f32 = [m.astype(np.float32) for m in maps[:k]]
        print(f"  memory per map: float64 {maps[0].nbytes / 2**20:.2f} MiB (float32 would be "
              f"{f32[0].nbytes / 2**20:.2f} MiB; smallest non-zero float64 value in the maps "
              f"{min(m[m > 0].min() for m in maps[:k]):.1e}, below float32's range for "
              f"{sum(int(((m > 0) & (m < np.finfo(np.float32).tiny)).sum()) for m in maps[:k])} pixels)")


if __name__ == "__main__":
    main()
