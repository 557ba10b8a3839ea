"""OSIE (Object and Semantic Images and Eye-tracking): 700 natural images, 15 observers, free viewing.

Xu, Jiang, Wang, Kankanhalli, Zhao. "Predicting human gaze beyond pixels." Journal of Vision 14(1):28,
2014. Data: github.com/NUS-VIP/predicting-human-gaze-beyond-pixels, folder ``data/`` (MIT License):
``stimuli/1001.jpg`` ... ``stimuli/1700.jpg`` (800x600) and ``eye/fixations.mat``.

``eye/fixations.mat`` holds a (700, 1) cell ``fixations``; each entry has ``img`` (file name) and
``subjects``, a (15, 1) cell of structs with ``fix_x``, ``fix_y`` (pixels) and ``fix_duration`` (ms,
uint8/uint16; a subject with one fixation is stored as scalars, hence the ``np.atleast_1d``).

Coordinates are MATLAB 1-based pixel indices: the authors' own code indexes the fixation map with
them directly (``map(fix_y, fix_x) = 1`` after clamping to ``[1, w]``, src/dataset/computeFixationMaps.m),
and the data agree: the 98,321 values span x 1.2..799.2 and y 1.2..599.2, never below 1 nor above
800/600. They are converted to the canonical 0-indexed convention by subtracting 1 (the raw range is
kept in ``stats`` as ``source_x_range``/``source_y_range`` and checked by the tests).

OSIE has no fixation onset times; the durations exclude saccades, so onsets cannot be rebuilt by
summing durations: ``start_ms`` is NaN.

Pixels per degree: 24. Source: the authors' fixation maps blur with a Gaussian of sigma 24 px
(``params.eye.radius = 24`` in src/common/config.m), which is their 1 degree of visual angle. The
screen geometry in the paper could not be re-checked offline; see docs/schema.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

REPO = "https://github.com/NUS-VIP/predicting-human-gaze-beyond-pixels"


class OSIE(GazeDataset):
    name = "osie"
    pixels_per_degree = 24.0
    tasks = ("free-viewing",)
    converter_version = "1"
    source_url = REPO
    description = "OSIE: 700 natural images (800x600), 15 observers, 3 s free viewing (Xu et al. 2014)"

    #: raw files of the ``data/`` folder (branch master, as pysaliency's OSIE loader uses)
    download_base_url = "https://raw.githubusercontent.com/NUS-VIP/predicting-human-gaze-beyond-pixels/master/data/"
    #: harness.data.download.tree_digest over DATA_FILES; computed from a copy whose fixations.mat
    #: matches the MD5 published by pysaliency (8efdf6fe66f38b6e70f854c7ff45aa70)
    data_sha256 = "315774341a924a814e36e9a64424a0f17f98aa1dab8ab404d246f51159822b07"
    expected_size = (800, 600)
    mat_file = "eye/fixations.mat"

    @staticmethod
    def data_files() -> list[str]:
        return ["eye/fixations.mat"] + [f"stimuli/{i}.jpg" for i in range(1001, 1701)]

    def source_files(self, root: Path) -> list[Path]:
        return [root / self.mat_file, *sorted((root / "stimuli").glob("*.jpg"))]

    def download(self, dest: Path) -> None:
        from harness.data.download import fetch_tree, tree_digest

        files = self.data_files()
        fetch_tree(self.download_base_url, files, dest)
        digest = tree_digest(dest, files)
        if digest != self.data_sha256:
            raise DataError(
                f"download from {self.download_base_url}: sha256 of the files {digest} does not match "
                f"the expected {self.data_sha256}"
            )

    def convert(self, root: Path) -> Iterator[dict]:
        import numpy as np

        mat_path = root / self.mat_file
        stimuli = root / "stimuli"
        if not stimuli.is_dir():
            raise DataError(f"osie: stimulus folder {stimuli} does not exist")
        entries = _read_fixations_mat(mat_path)
        lo = np.array([np.inf, np.inf])
        hi = np.array([-np.inf, -np.inf])
        for i, entry in enumerate(entries):
            try:
                img = str(entry.img)
                subjects = np.atleast_1d(entry.subjects)
            except AttributeError as exc:
                raise DataError(f"osie: {mat_path}: fixations entry {i + 1} lacks img/subjects") from exc
            image_path = stimuli / img
            size = self.image_size(image_path, expected=self.expected_size)
            if size is None:
                continue
            width, height = size
            fixations: list[dict] = []
            for j, sub in enumerate(subjects):
                try:
                    # cast before arithmetic: durations are uint8/uint16, scalars for one fixation
                    x, y, d = (_real(getattr(sub, k), k) for k in ("fix_x", "fix_y", "fix_duration"))
                except (AttributeError, TypeError, ValueError) as exc:
                    raise DataError(f"osie: {mat_path}: entry {img}, subject {j + 1}: bad record ({exc})") from exc
                fx, fy = x[np.isfinite(x)], y[np.isfinite(y)]  # NaN ones are dropped and counted below
                if fx.size and fy.size:
                    lo = np.minimum(lo, [fx.min(), fy.min()])
                    hi = np.maximum(hi, [fx.max(), fy.max()])
                # MATLAB 1-based pixel index -> canonical 0-indexed pixel centre (see module doc)
                fixations += self.fixation_list(f"s{j + 1:02d}", x - 1.0, y - 1.0, width=width,
                                                height=height, duration_ms=d,
                                                where=f"{mat_path}: entry {img} ({image_path.name})")
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            yield {
                "stimulus_id": Path(img).stem,
                "image": str(image_path),
                "width": width,
                "height": height,
                "fixations": fixations,
            }
        if np.isfinite(lo).all():
            self.stats["source_x_range"] = [float(lo[0]), float(hi[0])]
            self.stats["source_y_range"] = [float(lo[1]), float(hi[1])]


def _read_fixations_mat(mat_path: Path):
    """The ``fixations`` cell of OSIE's .mat as a flat object array; DataError naming the file."""
    import numpy as np
    import scipy.io

    if not mat_path.is_file():
        raise DataError(f"osie: fixation file {mat_path} does not exist")
    try:
        mat = scipy.io.loadmat(str(mat_path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError, OSError, MatReadError... for damaged files
        raise DataError(f"osie: cannot read {mat_path} (truncated or not a MATLAB file?): {type(exc).__name__}: {exc}") from exc
    if "fixations" not in mat:
        raise DataError(f"osie: {mat_path} has no 'fixations' variable")
    return np.atleast_1d(mat["fixations"]).ravel()


@hookimpl
def register_datasets(register):
    register(
        "osie",
        "plugins.datasets.osie:OSIE",
        tasks=OSIE.tasks,
        description=OSIE.description,
        pixels_per_degree=OSIE.pixels_per_degree,
        licence="MIT",
        source=REPO,
    )


def _real(value, name: str):
    """A field as a flat float64 array; complex numbers or text are a TypeError (numpy would drop
    the imaginary part with a warning, or read digits)."""
    import numpy as np

    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} holds {a.dtype} values, not real numbers")
    return np.atleast_1d(a.astype(np.float64)).ravel()
