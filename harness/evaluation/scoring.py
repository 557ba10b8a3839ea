"""The scoring stage: is a map scorable, and its gaze metrics against the stimulus' fixations."""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np

from ..errors import HarnessError

#: Negative values down to this fraction of the map's largest magnitude are float round-off
#: (float32 resampling, FFT blurs) and are set to 0; anything below is a real negative value.
ROUNDOFF = 1e-6


@functools.lru_cache(maxsize=8)
def _baseline_map(h: int, w: int) -> np.ndarray:
    """The information-gain baseline: the centre-bias prior (one per stimulus size, computed once)."""
    from plugins.models.baselines import center_bias_map

    m = center_bias_map(h, w)
    m.setflags(write=False)
    return m


def plugin_metrics() -> list[tuple[str, Callable[..., float]]]:
    """Registered metrics that the built-in suite does not compute (third-party plugins)."""
    from ..metrics import METRICS
    from ..plugins import get_registry

    return [(s.name, s.resolve()) for s in get_registry().in_order("metric") if s.name not in METRICS]


def check_map(smap: Any, h: int, w: int, *, constant_expected: bool = False) -> tuple[str, str | None, np.ndarray | None]:
    """``(status, reason, map)`` for a model's attention map.

    ``failed``: nothing to score (no map, wrong shape, NaN/inf, real negative values: attention is a
    non-negative weight of where the model looks; a method with signed output must rectify or shift
    it itself, since the choice changes SIM, KLD and IG). ``degenerate``: a constant map (all zeros is
    the usual sign of a broken method), scored as the uniform prediction it is and counted; not for
    a reference that is constant by design (``constant_expected``: the ``uniform`` baseline).
    ``ok``: scorable; negative round-off is set to 0."""
    if smap is None:
        return "failed", "model returned no attention map", None
    arr = np.asarray(smap, dtype=np.float64)
    if arr.shape != (h, w):
        return "failed", f"attention map has shape {tuple(arr.shape)}, expected {(h, w)}", None
    if not np.all(np.isfinite(arr)):
        return "failed", "attention map contains NaN or infinite values", None
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0:
        if lo < -ROUNDOFF * max(abs(hi), abs(lo)):
            return "failed", (f"attention map has negative values (min {lo:.4g}, max {hi:.4g}); attention maps "
                              "must be non-negative"), None
        arr = np.maximum(arr, 0.0)
        lo = 0.0
    if lo == hi and not constant_expected:
        return "degenerate", f"constant attention map (every pixel {hi:.4g})", arr
    return "ok", None, arr


def score(smap, fix, ctx, i: int, profile: str, seed: int, density=None) -> dict[str, float]:
    """Every registered gaze metric of ``smap`` for stimulus ``i``."""
    from ..metrics import compute_suite

    w, h = ctx.sizes[i]
    ox, oy = ctx.others(i)
    context = dict(
        density=ctx.density(i) if density is None else density,
        baseline=_baseline_map(h, w),
        other_x=ox,
        other_y=oy,
        profile=profile,
    )
    scores = compute_suite(smap, fix.x, fix.y, seed=seed + i, **context)
    for name, fn in ctx.extra_metrics:
        try:
            scores[name] = float(fn(smap, fix.x, fix.y, seed=seed + i, **context))
        except HarnessError:
            raise
        except Exception as exc:  # a broken third-party metric is named, not a traceback
            raise HarnessError(f"metric {name!r} failed: {type(exc).__name__}: {exc}") from exc
    return scores
