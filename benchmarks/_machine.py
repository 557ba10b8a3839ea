"""What a benchmark runs under, printed at its top: figures are only comparable on the same ground."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def describe() -> str:
    """One paragraph: CPU, cores, load, thread settings of torch/BLAS/numba, relevant env."""
    from harness.evaluation.threads import cores

    lines = [f"machine: {cpu_model()}; {cores()} usable cores; load average {load_average()}; "
             f"python {platform.python_version()}"]
    try:
        from threadpoolctl import threadpool_info

        pools = ", ".join(f"{p.get('internal_api')} {p.get('num_threads')} threads"
                          for p in threadpool_info())
        lines.append(f"thread pools in this process: {pools or 'none loaded'}")
    except ImportError:
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "NUMBA_NUM_THREADS", "OPENBLAS_CORETYPE") if k in os.environ}
    lines.append(f"environment: {env or 'no thread variables set'}")
    return "\n".join(lines)
