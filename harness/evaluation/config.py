"""What a user asks ``harness eval`` for, checked before anything is computed or written."""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HarnessError

CEILING = "human-ceiling"
DEFAULT_SIGMA_DEG = 1.0  # Gaussian sigma of the human density, in degrees of visual angle
#: The density blur must lie in [MIN_SIGMA_PX, longest image side]: below half a pixel the
#: Gaussian is a single pixel (no blur at all), beyond the image it is flat (every map scores alike).
MIN_SIGMA_PX = 0.5
#: the largest --seed: stimulus i's metrics are seeded with seed + i, and the Hub table stores the seed as
#: a 64-bit integer (a larger one ran, then stopped `leaderboard publish` with an OverflowError)
SEED_MAX = 2**62


def check_seed(seed) -> None:
    """The metrics' seed: an integer in [0, SEED_MAX] (a negative one failed every stimulus' randomised
    metrics after the run folders were made)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= SEED_MAX:
        raise HarnessError(f"the seed must be an integer from 0 to 2**62, got {seed!r}")


def check_config(cfg: "EvalConfig") -> None:
    """What the command line's options check (click ranges and choices), for every caller of
    run_eval (the Python API passed limit=0, batch_size=0 or profile='bogus' through to a half-made
    run folder; found by QA): one line naming the setting."""
    def whole(name: str, low: int, none: bool = False) -> None:
        value = getattr(cfg, name)
        if value is None and none:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise HarnessError(f"{name} must be a whole number >= {low}{' or None' if none else ''}, got {value!r}")

    whole("limit", 1, none=True)
    whole("batch_size", 1)
    whole("save_maps", 0)
    whole("example_maps", 0)
    for name in ("score_workers", "loader_workers"):
        whole(name, 0, none=True)
    for name in ("model_threads", "model_copies"):
        whole(name, 1, none=True)
    from ..metrics.profiles import PROFILES

    if cfg.profile not in PROFILES:
        raise HarnessError(f"unknown metric profile {cfg.profile!r}; use one of {', '.join(PROFILES)}")
    if cfg.device not in (None, "auto", "cpu", "cuda", "mps") and not str(cfg.device).startswith("cuda:"):
        raise HarnessError(f"device must be cpu, cuda or mps (or None: the best available), got {cfg.device!r}")
    for name in ("sigma_deg", "sigma_px"):
        value = getattr(cfg, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise HarnessError(f"{name} must be a number, got {value!r}")
    for name in ("progress", "in_sample"):
        if not isinstance(getattr(cfg, name), bool):
            raise HarnessError(f"{name} must be True or False, got {getattr(cfg, name)!r}")


@dataclass
class EvalConfig:
    model: str
    dataset: str
    task: str = "free-viewing"
    attention: str | None = None
    limit: int | None = None
    batch_size: int = 8
    output: Path = Path("runs")
    data_dir: Path | None = None
    cache_dir: Path | None = None
    profile: str = "mit"
    seed: int = 0
    sigma_deg: float = DEFAULT_SIGMA_DEG
    sigma_px: float | None = None  # overrides sigma_deg x pixels per degree (datasets without geometry)
    save_maps: int = 3  # attention maps of the first N stimuli are kept for the leaderboard page
    example_maps: int = 12  # small maps kept of best, median, worst by NSS, ... (harness.results.examples)
    progress: bool = True
    device: str | None = None  # cpu, cuda, mps; None: the best available
    score_workers: int | None = None  # scoring processes; None: from the cores (threads.plan)
    loader_workers: int | None = None  # image-decoding processes; None: from the cores
    model_threads: int | None = None  # torch threads for a CPU model; None: 1 (results then do not
    # depend on the machine's size or the number of processes; see threads.plan)
    in_sample: bool = False  # an aligned model scored on its training stimuli too (marked in-sample)
    scoring: str = "raw"  # raw: the maps as they come; calibrated: as fixation densities (evaluation.calibrated)
    model_copies: int | None = None  # CPU: instances of the model, each on one thread, running batches
    # side by side in threads of this process (the same numbers as one: each batch is computed as
    # one instance computes it); None: from the cores (threads.plan)
    resolved_device: str = "cpu"  # set by run_eval: the device type the models run on
    resolved_threads: int = 1  # set by run_eval: the CPU model's threads
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class EvalResult:
    run_dir: Path
    summary: dict[str, Any]
    resumed_images: int
    computed_images: int
    #: the run was already complete: nothing was computed or rewritten
    reused: bool = False


@dataclass(frozen=True)
class Blur:
    """The human density's Gaussian sigma of every stimulus a run scores (pixels of each stored image).

    ``sigmas[i]``: stimulus i's sigma. ``params``: what the run's settings record under
    ``metric_params`` (so that the run id changes whenever any stimulus' blur changes).
    ``uniform``: one sigma for every stimulus, from the dataset-wide geometry or ``--sigma-px`` in
    image pixels (``params`` then has exactly the form runs had before per-stimulus geometry, so
    their ids are unchanged)."""

    sigmas: Any  # np.ndarray (n,), float64
    params: dict[str, Any]
    uniform: bool

    @property
    def sigma_px(self) -> float | None:
        """The one sigma of a uniform blur, else None."""
        return float(self.sigmas[0]) if self.uniform and len(self.sigmas) else None


#: where a stimulus' sigma came from (:func:`harness.data.density.stimulus_sigma_px`) when it is
#: the same for every stimulus of any dataset: the dataset-wide pixels per degree, or --sigma-px
#: on a stimulus without a display scale
_DATASET_WIDE = frozenset({"dataset", "image-px"})


def stimulus_blurs(cfg: EvalConfig, gaze, records) -> Blur:
    """Every stimulus' blur (``records``: the scored records, in order, without their images), or a
    one-line error when one is not a sane blur.

    Precedence, per stimulus (:func:`harness.data.density.stimulus_sigma_px`): ``--sigma-px`` first
    (display pixels, converted by the record's ``display_scale``, when it has one; image pixels
    otherwise), else ``--sigma-deg`` times the record's ``pixels_per_degree``, else times the
    dataset's ``display_pixels_per_degree`` / the record's ``display_scale``, else times the
    dataset's ``pixels_per_degree``. Every sigma must lie in [0.5 px, the longest image side of the
    scored stimuli]."""
    import hashlib
    from collections import Counter

    import numpy as np

    from ..data.density import stimulus_sigma_px
    from ..errors import DataError
    from ..schema import record_geometry

    records = list(records)
    degrees = float(cfg.sigma_deg)
    if cfg.sigma_px is None and not math.isfinite(degrees):
        raise HarnessError(f"the density blur --sigma-deg must be a finite number of degrees, got {cfg.sigma_deg}")
    if cfg.sigma_px is not None and not math.isfinite(float(cfg.sigma_px)):
        raise HarnessError(f"the density blur must be a finite number, got --sigma-px {cfg.sigma_px}")
    longest = max((max(int(r["width"]), int(r["height"])) for r in records), default=0)
    scaled = any(math.isfinite(record_geometry(r)[1]) for r in records)
    sigmas = np.empty(len(records), dtype=np.float64)
    sources: Counter = Counter()
    for i, rec in enumerate(records):
        try:
            sigma, source = stimulus_sigma_px(rec, gaze, degrees=degrees, sigma_px=cfg.sigma_px)
        except DataError:
            unit = ("display pixels, converted to each image by its display scale" if scaled else "pixels")
            raise HarnessError(
                f"dataset {gaze.name!r} has no known viewing geometry (pixels per degree) for stimulus "
                f"{rec.get('stimulus_id')!r}, so the human density blur cannot be set in degrees; pass "
                f"--sigma-px N to choose it in {unit}") from None
        except ValueError:
            raise HarnessError(f"the density blur --sigma-deg must be a finite, non-negative number of degrees, "
                               f"got {cfg.sigma_deg}") from None
        if not MIN_SIGMA_PX <= sigma <= max(longest, MIN_SIGMA_PX):
            if cfg.sigma_px is not None:
                given = f"--sigma-px {cfg.sigma_px}"
            else:
                # a blur of 0 degrees has no pixels per degree to show: only the blur (found by QA)
                given = (f"--sigma-deg {cfg.sigma_deg} ({sigma:g} px at {sigma / degrees:g} px/deg)"
                         if degrees and math.isfinite(sigma / degrees) else f"--sigma-deg {cfg.sigma_deg} ({sigma:g} px)")
            if source not in _DATASET_WIDE:
                given += f": {sigma:g} px on stimulus {rec.get('stimulus_id')!r} ({_SOURCE_WORDS[source]})"
            raise HarnessError(f"the density blur must lie between {MIN_SIGMA_PX} px and the longest image side "
                               f"({longest} px) of {gaze.name!r}, got {given}")
        sigmas[i] = sigma
        sources[source] += 1
    blur_deg = cfg.sigma_deg if cfg.sigma_px is None else None  # as given: these params name the run
    if set(sources) <= _DATASET_WIDE:
        sigma = float(sigmas[0]) if len(sigmas) else (float(cfg.sigma_px) if cfg.sigma_px is not None else math.nan)
        return Blur(sigmas, {"sigma_deg": blur_deg, "sigma_px": sigma}, uniform=True)
    digest = hashlib.sha256("\n".join(repr(float(v)) for v in sigmas).encode()).hexdigest()
    params = {
        "sigma_deg": blur_deg,
        # the number given with --sigma-px (display pixels where a stimulus has a display scale)
        "sigma_px": float(cfg.sigma_px) if cfg.sigma_px is not None else None,
        "sigma_per_stimulus": {"sources": dict(sorted(sources.items())), "min": float(sigmas.min()),
                               "max": float(sigmas.max()), "sha256": digest},
    }
    return Blur(sigmas, params, uniform=False)


_SOURCE_WORDS = {
    "record": "its record's pixels_per_degree",
    "display": "the dataset's display_pixels_per_degree / its display_scale",
    "display-px": "display pixels divided by its display_scale",
}


def geometry_rows(ds, n: int):
    """The first ``n`` records of ``ds`` with only what their blur depends on: id, size and the
    per-stimulus geometry columns the table has (no images, no fixations)."""
    from ..schema import GEOMETRY_FIELDS

    columns = ["stimulus_id", "width", "height", *(k for k in GEOMETRY_FIELDS if k in ds.column_names)]
    return ds.select_columns(columns).select(range(n))


def run_sigma_px(metric_params: dict[str, Any] | None, gaze, record: dict) -> float | None:
    """The sigma a run's human density used for ``record`` (pixels of its image), from the run's
    ``metric_params`` (see :class:`Blur`) and the dataset; None when it cannot be told."""
    from ..data.density import stimulus_sigma_px
    from ..errors import DataError

    params = metric_params or {}
    if "sigma_per_stimulus" not in params:
        sigma = params.get("sigma_px")
        if sigma is None and gaze is not None:
            sigma = float(gaze.pixels_per_degree) * float(params.get("sigma_deg") or DEFAULT_SIGMA_DEG)
        return None if sigma is None or not math.isfinite(float(sigma)) else float(sigma)
    if gaze is None:
        return None
    try:
        sigma, _ = stimulus_sigma_px(record, gaze, degrees=float(params.get("sigma_deg") or DEFAULT_SIGMA_DEG),
                                     sigma_px=params.get("sigma_px"))
    except (DataError, ValueError):
        return None
    return sigma


def blur_px(cfg: EvalConfig, gaze, longest_side: int) -> float:
    """One Gaussian sigma in pixels for the whole dataset from its dataset-wide ``pixels_per_degree``
    (or ``--sigma-px`` as image pixels), or a one-line error if it is not a sane blur. Ignores
    per-stimulus geometry: the evaluation uses :func:`stimulus_blurs`."""
    if cfg.sigma_px is not None:
        sigma, given = float(cfg.sigma_px), f"--sigma-px {cfg.sigma_px}"
    else:
        ppd = float(gaze.pixels_per_degree)
        if not math.isfinite(ppd):
            raise HarnessError(
                f"dataset {gaze.name!r} has no known viewing geometry (pixels per degree), so the human density "
                "blur cannot be set in degrees; pass --sigma-px N to choose it in pixels")
        if not math.isfinite(float(cfg.sigma_deg)):
            raise HarnessError(f"the density blur --sigma-deg must be a finite number of degrees, got {cfg.sigma_deg}")
        sigma, given = float(cfg.sigma_deg) * ppd, f"--sigma-deg {cfg.sigma_deg} ({float(cfg.sigma_deg) * ppd:g} px at {ppd:g} px/deg)"
    if not math.isfinite(sigma):
        raise HarnessError(f"the density blur must be a finite number, got {given}")
    if not MIN_SIGMA_PX <= sigma <= max(longest_side, MIN_SIGMA_PX):
        raise HarnessError(f"the density blur must lie between {MIN_SIGMA_PX} px and the longest image side "
                           f"({longest_side} px) of {gaze.name!r}, got {given}")
    return sigma
