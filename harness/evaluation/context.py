"""The dataset stage: what every stimulus' scoring needs from the dataset as a whole, computed once."""

from __future__ import annotations

import numpy as np


class DatasetContext:
    """Metadata, fixations and the shuffled-AUC pool of the stimuli a run scores.

    ``sigma_px``: the human density's blur, one number for every stimulus, or per stimulus (a
    sequence of the scored stimuli's sigmas, or a :class:`harness.evaluation.config.Blur`).
    :meth:`sigma` gives stimulus i's; the attribute ``sigma_px`` is the common value when every
    stimulus has the same blur and None otherwise (so code that assumes one blur fails loudly on a
    dataset with per-stimulus geometry instead of using a wrong one)."""

    def __init__(self, gaze, ds, limit: int | None, sigma_px):
        from ..schema import Fixations
        from .scoring import plugin_metrics

        self.gaze = gaze
        n = len(ds) if limit is None else min(limit, len(ds))
        self.ds = ds.select(range(n)) if n < len(ds) else ds
        self.meta = self.ds.remove_columns(["image"])
        sigmas = np.asarray(getattr(sigma_px, "sigmas", sigma_px), dtype=np.float64)
        if sigmas.ndim == 0:
            sigmas = np.full(n, float(sigmas))
        elif sigmas.shape != (n,):
            raise ValueError(f"{sigmas.size} density blurs for {n} stimuli")
        self.sigmas = sigmas
        #: the Blur this context was built with (its ``params`` go into the run settings), or None
        self.blur = sigma_px if hasattr(sigma_px, "params") else None
        if n == 0:
            self.sigma_px = float(sigma_px) if np.ndim(getattr(sigma_px, "sigmas", sigma_px)) == 0 else None
        else:
            self.sigma_px = float(sigmas[0]) if bool(np.all(sigmas == sigmas[0])) else None
        self.extra_metrics = plugin_metrics()
        #: the fitted calibration while a calibrated run scores (evaluation.calibrated), else None
        self.calibration = None
        fixations = [Fixations.from_record(r) for r in self.meta]
        self.fixations = fixations
        self.ids = [str(r["stimulus_id"]) for r in self.meta]
        # normalised fixation pool for shuffled-AUC negatives (other images' fixations)
        sizes = [(int(r["width"]), int(r["height"])) for r in self.meta]
        self.sizes = sizes
        counts = np.array([len(f) for f in fixations], dtype=np.int64)
        self.owner = np.repeat(np.arange(n), counts)
        # the pool holds the stimuli's fixations in stimulus order: stimulus i's are
        # pool[offsets[i]:offsets[i + 1]], so the others are the two slices around them
        self.offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        # Positions as fractions of the image. Images of different sizes map pixel centre to pixel
        # centre ((x + 0.5) / w, back as p * w' - 0.5): a fixation on the last column of a large
        # image lands inside the last column of a smaller one (x / w * w' could land half a pixel
        # beyond it, which the metrics refuse). When every image has one size, x / w * w as ever.
        #: images of more than one size: the pool maps pixel centres (others() subtracts 0.5)
        self.centred = len(set(sizes)) > 1
        c = 0.5 if self.centred else 0.0
        self.pool_x = np.concatenate([(f.x + c) / w for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)
        self.pool_y = np.concatenate([(f.y + c) / h for f, (w, h) in zip(fixations, sizes)]) if n else np.zeros(0)

    def __len__(self) -> int:
        return len(self.fixations)

    def others(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixations on every other stimulus, in stimulus i's pixel space (the shuffled-AUC
        negatives), in pool order: the pool before stimulus i's fixations and after them, scaled
        into fresh arrays (no mask over the pool: that took 3x as long, 0.11 ms on OSIE)."""
        w, h = self.sizes[i]
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        x, y = self._scaled(self.pool_x, a, b, w), self._scaled(self.pool_y, a, b, h)
        if self.centred:
            x -= 0.5
            y -= 0.5
        return x, y

    @staticmethod
    def _scaled(pool: np.ndarray, a: int, b: int, factor: int) -> np.ndarray:
        """``pool`` without ``pool[a:b]``, times ``factor`` (as ``pool[mask] * factor`` computes it)."""
        out = np.empty(pool.size - (b - a))
        np.multiply(pool[:a], factor, out=out[:a])
        np.multiply(pool[b:], factor, out=out[a:])
        return out

    def sigma(self, i: int) -> float:
        """Stimulus i's density blur, in pixels of its image."""
        return float(self.sigmas[i])

    def density(self, i: int) -> np.ndarray:
        from ..data.density import fixation_density

        w, h = self.sizes[i]
        f = self.fixations[i]
        return fixation_density(f.x, f.y, (h, w), self.sigma(i))

    def copy(self) -> "DatasetContext":
        """A shallow copy: the same dataset and arrays, its own attributes (``copy.copy`` would go
        through :meth:`__getstate__` and drop the images)."""
        other = object.__new__(DatasetContext)
        other.__dict__.update(self.__dict__)
        return other

    def __getstate__(self) -> dict:
        """What a scoring process gets: everything but the images and the dataset plugin."""
        state = dict(self.__dict__)
        state["ds"] = None
        state["gaze"] = None
        return state
