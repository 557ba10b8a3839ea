"""What a user asks ``harness eval`` for, checked before anything is computed or written."""

from __future__ import annotations

import math
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
    progress: bool = True
    device: str | None = None  # cpu, cuda, mps; None: the best available
    score_workers: int | None = None  # scoring processes; None: from the cores (threads.plan)
    loader_workers: int | None = None  # image-decoding processes; None: from the cores
    model_threads: int | None = None  # torch threads for a CPU model; None: 1 (results then do not
    # depend on the machine's size or the number of processes; see threads.plan)
    in_sample: bool = False  # an aligned model scored on its training stimuli too (marked in-sample)
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


def blur_px(cfg: EvalConfig, gaze, longest_side: int) -> float:
    """The human density's Gaussian sigma in pixels, or a one-line error if it is not a sane blur."""
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
