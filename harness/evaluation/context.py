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
        from .scoring import contested_metrics, plugin_metrics

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
        #: metric names two plugins register: the built-in suite's value of one is not written either
        self.contested_metrics = contested_metrics()
        #: the fitted calibration while a calibrated run scores (evaluation.calibrated), else None
        self.calibration = None
        columns = self.meta.select_columns(["stimulus_id", "width", "height"]).with_format("arrow")[:] if n else None
        self.ids = [str(v) for v in columns["stimulus_id"].to_pylist()] if n else []
        sizes = list(zip(columns["width"].to_pylist(), columns["height"].to_pylist())) if n else []
        self.sizes = [(int(w), int(h)) for w, h in sizes]
        # Images of different sizes map pixel centre to pixel centre ((x + 0.5) / w, back as
        # p * w' - 0.5): a fixation on the last column of a large image lands inside the last column
        # of a smaller one (x / w * w' could land half a pixel beyond it, which the metrics refuse).
        # When every image has one size, x / w * w as ever.
        #: images of more than one size: the pool maps pixel centres (others() subtracts 0.5)
        self.centred = len(set(self.sizes)) > 1
        self._read_fixations()

    def _read_fixations(self) -> None:
        """The fixations from ``meta``'s Arrow file (memory-mapped: a scoring process reads the
        pages the parent has in the page cache instead of unpickling a copy)."""
        from ..data.fixation_table import FixationTable

        #: every scored stimulus' fixations, columnar (16 bytes a fixation; see FixationTable)
        self.fixations = FixationTable.from_dataset(self.meta)
        # the shuffled-AUC negatives of stimulus i are the other stimuli's fixations, as fractions of
        # their image scaled to image i: rows offsets[i]:offsets[i + 1] of the table are left out
        self.offsets = self.fixations.offsets
        #: the fractions, kept only when images differ in size (each fixation has its own divisor
        #: then); with one size they are computed per call from the table's float32 columns
        self.pool_x = self.pool_y = None
        if self.centred:
            counts = self.fixations.counts()
            widths = np.repeat(np.array([w for w, _ in self.sizes], np.float64), counts)
            heights = np.repeat(np.array([h for _, h in self.sizes], np.float64), counts)
            self.pool_x = (self.fixations.x.astype(np.float64) + 0.5) / widths
            self.pool_y = (self.fixations.y.astype(np.float64) + 0.5) / heights

    def __len__(self) -> int:
        return len(self.fixations)

    def _negatives(self) -> tuple[np.ndarray, np.ndarray, float, float, float]:
        """``(vx, vy, dx, dy, shift)``: the other stimuli's fixations in image ``(w, h)``'s pixels are
        ``vx / dx * w - shift`` and ``vy / dy * h - shift``. One size: the table's columns over that
        size (``x / w0 * w``); sizes that differ: the kept fractions of pixel centres, shifted back."""
        if self.centred:
            return self.pool_x, self.pool_y, 1.0, 1.0, 0.5  # v / 1 is v, exactly
        w0, h0 = self.sizes[0]
        return self.fixations.x, self.fixations.y, float(w0), float(h0), 0.0

    def others(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The fixations on every other stimulus, in stimulus i's pixel space (the shuffled-AUC
        negatives), in table order: the rows before stimulus i's fixations and after them, scaled
        into fresh arrays (no mask over the table: that took 3x as long, 0.11 ms on OSIE)."""
        w, h = self.sizes[i]
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        vx, vy, dx, dy, shift = self._negatives()
        x, y = self._scaled(vx, a, b, dx, w), self._scaled(vy, a, b, dy, h)
        if shift:
            x -= shift
            y -= shift
        return x, y

    def negatives(self, i: int) -> dict[str, np.ndarray]:
        """Stimulus i's shuffled-AUC negatives as :class:`harness.metrics.SharedInputs` takes them:
        ``other_x``/``other_y`` when a plugin metric is registered (plugin metrics get coordinates),
        else only their pixel indices, ``other_index`` (no float64 copy of every fixation)."""
        if self.extra_metrics:
            ox, oy = self.others(i)
            return {"other_x": ox, "other_y": oy}
        return {"other_index": self.other_pixels(i)}

    def other_pixels(self, i: int) -> np.ndarray:
        """The flat pixel indices of :meth:`others` (``harness.metrics.pixel_indices`` of them, to
        the bit) in one compiled pass over the table's columns, without the two float64 arrays
        (16 bytes per fixation of the whole dataset, per stimulus scored)."""
        from ..metrics.inputs import outside_error
        from ..metrics.kernels import scaled_pixel_indices

        w, h = self.sizes[i]
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        vx, vy, dx, dy, shift = self._negatives()
        out = np.empty(vx.size - (b - a), dtype=np.intp)
        bad = int(scaled_pixel_indices(vx, vy, a, b, dx, float(w), dy, float(h), shift, h, w, out))
        if bad >= 0:
            x, y = self.others(i)
            raise outside_error("other-image fixation", bad, x[bad], y[bad], (h, w))
        return out

    @staticmethod
    def _scaled(values: np.ndarray, a: int, b: int, divisor: float, factor: int) -> np.ndarray:
        """``values`` without ``values[a:b]``, in float64, ``float64(v) / divisor * factor``: as the
        fractions of the image were computed, then scaled."""
        out = np.empty(values.size - (b - a))
        for src, dst in ((values[:a], out[:a]), (values[b:], out[a:])):
            np.divide(src, divisor, out=dst, dtype=np.float64)  # dtype=: float32 / int divides in float32
            np.multiply(dst, factor, out=dst)
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
        """What a scoring process gets: everything but the images and the dataset plugin; the
        fixations it reads again from ``meta`` (a memory-mapped dataset pickles as its file's path:
        the parent does not build a pickle of every fixation, and the child shares the file's pages)."""
        state = dict(self.__dict__)
        state["ds"] = None
        state["gaze"] = None
        for key in ("fixations", "offsets", "pool_x", "pool_y"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._read_fixations()
