"""The dataset stage: what every stimulus' scoring needs from the dataset as a whole, computed once."""

from __future__ import annotations

import numpy as np


class DatasetContext:
    """Metadata, fixations and the shuffled-AUC pool of the stimuli a run scores."""

    def __init__(self, gaze, ds, limit: int | None, sigma_px: float):
        from ..schema import Fixations
        from .scoring import plugin_metrics

        self.gaze = gaze
        n = len(ds) if limit is None else min(limit, len(ds))
        self.ds = ds.select(range(n)) if n < len(ds) else ds
        self.meta = self.ds.remove_columns(["image"])
        self.sigma_px = float(sigma_px)
        self.extra_metrics = plugin_metrics()
        fixations = [Fixations.from_record(r) for r in self.meta]
        self.fixations = fixations
        self.ids = [str(r["stimulus_id"]) for r in self.meta]
        # normalised fixation pool for shuffled-AUC negatives (other images' fixations)
        sizes = [(int(r["width"]), int(r["height"])) for r in self.meta]
        self.sizes = sizes
        counts = np.array([len(f) for f in fixations])
        self.owner = np.repeat(np.arange(n), counts)
        self.pool_x = np.concatenate([f.x / w for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)
        self.pool_y = np.concatenate([f.y / h for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)

    def __len__(self) -> int:
        return len(self.fixations)

    def others(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        w, h = self.sizes[i]
        mask = self.owner != i
        return self.pool_x[mask] * w, self.pool_y[mask] * h

    def density(self, i: int) -> np.ndarray:
        from ..data.density import fixation_density

        w, h = self.sizes[i]
        f = self.fixations[i]
        return fixation_density(f.x, f.y, (h, w), self.sigma_px)

    def __getstate__(self) -> dict:
        """What a scoring process gets: everything but the images and the dataset plugin."""
        state = dict(self.__dict__)
        state["ds"] = None
        state["gaze"] = None
        return state
