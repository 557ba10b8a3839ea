"""What a benchmark runs under, printed at its top: figures are only comparable on the same ground."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def describe() -> str:
    """CPU, usable cores, load, the thread pools loaded in this process (threadpoolctl), numba's
    threading layer, torch's threads and the thread variables. Figures from different machines,
    loads or thread settings are not comparable (see docs/metrics.md)."""
    import numpy as np

    from harness.evaluation.record import hardware

    machine = hardware(None)  # what a run's manifest records: the CPU's model name, usable cores
    model, cores = machine["cpu"] or "?", machine["cores"]
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    lines = [f"machine: {model}, {cores} usable cores (of {os.cpu_count()}), load average {load}, "
             f"python {platform.python_version()}, numpy {np.__version__}"]
    try:
        from threadpoolctl import threadpool_info

        pools = "; ".join(f"{p.get('internal_api')} {p.get('version', '')} {p.get('num_threads')} threads"
                          + (f" ({p['architecture']})" if p.get("architecture") else "")
                          for p in threadpool_info())
        lines.append(f"thread pools: {pools or 'none loaded'}")
    except ImportError:
        lines.append("thread pools: threadpoolctl not installed")
    try:
        import numba

        layer = numba.config.THREADING_LAYER
        try:
            layer = numba.threading_layer()  # only known once a parallel kernel has run
        except ValueError:
            layer += " (no parallel kernel run; ours are single-threaded)"
        lines.append(f"numba {numba.__version__}: NUMBA_NUM_THREADS {numba.config.NUMBA_NUM_THREADS}, "
                     f"threading layer {layer}")
    except ImportError:
        pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        lines.append(f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads")
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "NUMBA_NUM_THREADS", "OPENBLAS_CORETYPE") if k in os.environ}
    lines.append(f"environment: {env or 'no thread variables set'}")
    return "\n".join(lines)
