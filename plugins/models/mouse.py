"""Mouse tracking as a model of eye fixations: ``mouse-amt`` ("mouse (crowdsourced)") and
``mouse-lab`` ("mouse (lab)") on OSIE.

SALICON's premise is that where people move a mouse over a blurred image is a cheap proxy for
where they look. OSIE ships mouse-tracking data of its own 700 images next to the eye-tracking
data, so the premise can be measured: each model's "attention" for an OSIE stimulus is the real
mouse data of that image, blurred into a map the way the authors build their mouse maps, and
scored against the 15 observers' eye fixations like any model, beside the human ceiling and the
baselines (``harness eval --model mouse-amt --model mouse-lab --dataset osie``).

The data
--------
Xu, Jiang, Wang, Kankanhalli, Zhao. "Predicting human gaze beyond pixels." Journal of Vision
14(1):28, 2014; github.com/NUS-VIP/predicting-human-gaze-beyond-pixels, ``data/mouse_amt/<id>.mat``
("sample points collected with crowdsourcing") and ``data/mouse_lab/<id>.mat`` ("collected in
lab"), one MATLAB file per stimulus ``stimuli/<id>.jpg`` (MIT License). Each holds one 1x1 struct
``fixations`` with three fields of one row per mouse sample:

- ``coord`` (N, 2) uint16: ``[row, column]``, MATLAB 1-based pixel indices of the 800x600 image;
- ``subj`` (N, 1) uint8/uint16: the participant (AMT: 88-122 workers per image; lab: 10-16);
- ``order`` (N, 1) uint8/uint16: the sample's position in that participant's trace, 1, 2, ...
  (AMT: a worker who saw an image twice has two traces, the count restarts at 1).

There is no time stamp or duration column. The real files (checked on all 700 of each, and by
``tests/test_mouse.py``): column 1 spans 1..600 and column 2 1..800 in both folders; AMT has
8,631-18,195 samples per image, lab 757-2,107; every lab trace starts at ``[300, 400]``, the image
centre as ``[row, column]`` (where the cursor was placed; transposed it would be (x 300, y 400)).
``scipy.io.loadmat`` returns the fields as uint8/uint16 (and a one-sample file's fields as
scalars), so they are cast to float64 / int64 before any arithmetic.

The authors' reader (``src/dataset/computeMouseFixationMaps.m``, same repository)::

    [h w ~] = size(img);
    map = zeros([h w]);
    load(fullfile(inputPath, filename(1:end-4)));
    ptInd = sub2ind([h w], fixations.coord(:,1), fixations.coord(:,2));
    map(unique(ptInd)) = 1;
    map = imfilter(map, params.eye.gaussian, 0);
    map = normalise(map);

``sub2ind([h w], row, col)``: column 1 of ``coord`` is the row, column 2 the column, both 1-based
(``sub2ind`` fails on 0 or on a row above ``h``). Conventions followed here:

- every sample is kept (all participants, no filtering by ``order``), as ``ptInd`` takes all rows;
- each *distinct* pixel counts once (``map(unique(ptInd)) = 1``): a binary map of visited
  pixels, so dwelling does not add weight;
- canonical coordinates (``docs/schema.md``): ``x = column - 1``, ``y = row - 1``; a point
  outside the stimulus (row > height or column > width, or below 1) is an error naming the file,
  as ``sub2ind`` would raise;
- the blur is the eye maps' own Gaussian, ``params.eye.gaussian`` = ``fspecial('gaussian',
  ceil(24 * 7), params.eye.radius = 24)`` (``src/common/config.m``), with zero padding
  (``imfilter(..., 0)``). OSIE's 24 px is its 1 degree (``plugins/datasets/osie.py``), so the map
  is :func:`harness.data.density.fixation_density` of the distinct pixels with sigma 24 px: the
  same blur (zero padding, untruncated) the harness gives the human eye densities. Two differences
  from the MATLAB output: its kernel is cut to a 168x168 window (3.5 sigma, and even-sized, so
  centred half a pixel off) while this one is not truncated, and this map sums to 1 instead of
  ``normalise``'s [0, 1] (the metrics normalise any scale). Measured on the first 20 OSIE images
  (AMT data, against the eye fixations): a 168x168-window map scores mean NSS 2.7308 and
  AUC-Judd 0.9116, this one 2.7299 and 0.9116.

The model finds the data as the OSIE dataset plugin does (``harness/data/paths.py``): the
``data_dir`` factory argument (the OSIE folder, which holds ``mouse_amt/`` and ``mouse_lab/``),
else ``$HARNESS_DATA_DIR/osie``, else a downloaded copy under the cache root. (The OSIE download
fetches only ``eye/`` and ``stimuli/``, so the mouse data must be there locally.) It reads one
file per stimulus by the id the evaluator passes (``StimulusSize.stimulus_id``): it only works on
OSIE, and a stimulus without a file is a one-line error naming the file.

Provenance: the SHA-256 of the folder's files (``harness.data.download.tree_digest`` over every
``<id>.mat``; also given as ``weights_sha256``, this model's only "weights", so the leaderboard
shows it), the reader version and the blur.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.hookspecs import hookimpl

TASKS = ("free-viewing",)
ATTENTION = ("mouse-map",)
#: bump when the reading or the map changes: it is part of the runs' provenance (their ids)
READER_VERSION = "1"
#: the authors' eye-map Gaussian, params.eye.radius = 24 (src/common/config.m): OSIE's 1 degree
SIGMA_PX = 24.0
#: source -> (folder under the OSIE data folder, label)
SOURCES = {"amt": ("mouse_amt", "crowdsourced"), "lab": ("mouse_lab", "lab")}
REPO = "https://github.com/NUS-VIP/predicting-human-gaze-beyond-pixels"


@dataclass(frozen=True)
class MousePoints:
    """One stimulus' mouse samples in canonical coordinates (0-indexed pixels: x column, y row),
    in file order, with the participant and the position in that participant's trace."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    order: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)

    def distinct_pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of each visited pixel once (the authors' ``unique(ptInd)``), sorted row-major."""
        width = int(self.x.max()) + 1 if self.x.size else 1
        keys = np.unique(self.y.astype(np.int64) * width + self.x.astype(np.int64))
        y, x = np.divmod(keys, width)
        return x.astype(np.float64), y.astype(np.float64)


def read_mouse_mat(path: str | Path, *, width: int, height: int, who: str = "mouse") -> MousePoints:
    """The samples of one ``mouse_amt``/``mouse_lab`` file, checked against a ``width`` x
    ``height`` stimulus. ``DataError`` (one line, naming the file) for a missing, unreadable or
    malformed file, or for a point outside the stimulus (what ``sub2ind`` would refuse)."""
    import scipy.io

    from harness.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{who}: mouse-tracking file {path} does not exist")
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises ValueError, OSError, MatReadError... for damaged files
        raise DataError(f"{who}: cannot read {path} (truncated or not a MATLAB file?): "
                        f"{type(exc).__name__}: {exc}") from exc
    if "fixations" not in mat:
        raise DataError(f"{who}: {path} has no 'fixations' variable")
    rec = mat["fixations"]
    try:
        # cast before arithmetic: uint8/uint16 fields, scalars for a one-sample file
        coord = np.asarray(rec.coord, dtype=np.float64).reshape(-1, 2)
        subject = np.atleast_1d(np.asarray(rec.subj, dtype=np.int64)).ravel()
        order = np.atleast_1d(np.asarray(rec.order, dtype=np.int64)).ravel()
    except (AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{who}: {path}: expected a struct 'fixations' with coord (N x 2), subj and order "
                        f"({type(exc).__name__}: {exc})") from exc
    n = coord.shape[0]
    if n == 0:
        raise DataError(f"{who}: {path} holds no mouse samples")
    if subject.size != n or order.size != n:
        raise DataError(f"{who}: {path}: coord has {n} rows but subj {subject.size} and order {order.size}")
    row, col = coord[:, 0], coord[:, 1]  # sub2ind([h w], coord(:,1), coord(:,2)): [row, column], 1-based
    if not (np.isfinite(coord).all() and (coord == np.round(coord)).all()):
        raise DataError(f"{who}: {path}: coordinates are not whole pixel indices")
    bad = (row < 1) | (row > height) | (col < 1) | (col > width)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{who}: {path}: {int(bad.sum())} sample(s) outside the {width}x{height} stimulus, e.g. "
                        f"[row, column] = [{row[i]:g}, {col[i]:g}] (1-based); not this stimulus' mouse data?")
    return MousePoints(x=col - 1.0, y=row - 1.0, subject=subject, order=order)


def mouse_map(points: MousePoints, shape: Sequence[int], sigma_px: float = SIGMA_PX) -> np.ndarray:
    """The ``mouse-map`` attention method: the distinct visited pixels of ``points``, blurred by a
    Gaussian of ``sigma_px`` with zero padding (:func:`harness.data.density.fixation_density`);
    float64 of ``shape`` (height, width), non-negative, summing to 1."""
    from harness.data.density import fixation_density

    x, y = points.distinct_pixels()
    return fixation_density(x, y, (int(shape[0]), int(shape[1])), float(sigma_px))


def find_mouse_folder(source: str, data_dir: str | Path | None = None,
                      cache_dir: str | Path | None = None, who: str = "mouse") -> Path:
    """``<OSIE folder>/mouse_<source>``: ``data_dir`` (the OSIE folder) if given, else the first of
    ``$HARNESS_DATA_DIR/osie`` and the cache's ``data/osie`` that holds it (as the OSIE dataset
    plugin looks); ``DataError`` saying where it looked."""
    from harness.data import paths
    from harness.errors import DataError

    sub = SOURCES[source][0]
    if data_dir is not None:
        folder = Path(data_dir).expanduser() / sub
        if not folder.is_dir():
            raise DataError(f"{who}: mouse-tracking folder {folder} does not exist (data_dir must be the OSIE "
                            f"folder holding {sub}/)")
        return folder
    candidates = paths.candidate_data_dirs("osie", cache_dir)
    for root, _origin in candidates:
        if (root / sub).is_dir():
            return root / sub
    looked = ", ".join(f"{root / sub} ({origin}/{sub})" for root, origin in candidates)
    raise DataError(f"{who}: mouse-tracking data not found (looked in {looked}); get data/{sub} from {REPO} "
                    f"and set ${paths.DATA_ENV} to the folder holding osie/")


class MouseModel:
    """OSIE's real mouse-tracking data of each stimulus as its attention map (no image needed)."""

    tasks: Sequence[str] = TASKS
    attention_methods: Sequence[str] = ATTENTION
    needs_pixels = False  # reads each stimulus' size and id only: the evaluator skips decoding

    def __init__(self, source: str = "amt", data_dir: str | Path | None = None,
                 cache_dir: str | Path | None = None, sigma_px: float = SIGMA_PX) -> None:
        from harness.errors import PluginError

        if source not in SOURCES:
            raise PluginError(f"plugin 'mouse' has no source {source!r} (only {', '.join(SOURCES)})")
        sigma_px = float(sigma_px)
        if not (np.isfinite(sigma_px) and sigma_px >= 0):
            raise PluginError(f"plugin 'mouse': sigma_px must be a finite non-negative number, got {sigma_px}")
        self.source = source
        self.name = f"mouse-{source}"
        self.label = f"mouse ({SOURCES[source][1]})"
        self.sigma_px = sigma_px
        self.folder = find_mouse_folder(source, data_dir, cache_dir, who=self.name)
        self._digest: str | None = None

    def data_files(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("*.mat") if p.is_file())

    def data_sha256(self) -> str:
        """``tree_digest`` of every ``<id>.mat`` of the folder (computed once)."""
        if self._digest is None:
            from harness.data.download import tree_digest

            self._digest = tree_digest(self.folder, self.data_files())
        return self._digest

    def provenance(self) -> dict[str, Any]:
        digest = self.data_sha256()
        return {
            "model_id": f"osie/{SOURCES[self.source][0]}",
            "revision": f"mouse reader {READER_VERSION}",
            "weights_sha256": digest,  # the data files are this model's weights
            "data_sha256": digest,
            "data_files": f"{SOURCES[self.source][0]}/*.mat ({len(self.data_files())} files)",
            "source": f"{REPO} data/{SOURCES[self.source][0]}",
            "parameters": {"reader_version": READER_VERSION, "points": "all samples, each distinct pixel once",
                           "blur": "gaussian, zero padding", "sigma_px": self.sigma_px},
        }

    def points(self, stimulus_id: str, width: int, height: int) -> MousePoints:
        from harness.errors import DataError

        sid = str(stimulus_id)
        if not sid or sid in (".", "..") or "/" in sid or "\\" in sid:
            raise DataError(f"{self.name}: stimulus id {sid!r} cannot name a file in {self.folder}")
        return read_mouse_mat(self.folder / f"{sid}.mat", width=width, height=height, who=self.name)

    def predict(self, images: Sequence[Any], *, task: str, attention: str) -> list:
        from harness.errors import HarnessError
        from harness.models import Prediction, check_request

        check_request(self, task, attention)
        out = []
        for image in images:
            sid = getattr(image, "stimulus_id", None)
            if sid is None:
                raise HarnessError(f"{self.name}: needs each stimulus' id (objects with .stimulus_id, as "
                                   "`harness eval` passes them); it only has maps for OSIE's stimuli")
            width, height = image.size  # PIL order: (width, height)
            pts = self.points(sid, width, height)
            out.append(Prediction(attention=mouse_map(pts, (height, width), self.sigma_px), output={}))
        return out


def mouse_amt(data_dir: str | Path | None = None, **kwargs: Any) -> MouseModel:
    # data_dir named: `harness eval --data-dir` reaches factories that take it (harness.models.data_kwargs)
    return MouseModel("amt", data_dir=data_dir, **kwargs)


def mouse_lab(data_dir: str | Path | None = None, **kwargs: Any) -> MouseModel:
    return MouseModel("lab", data_dir=data_dir, **kwargs)


@hookimpl
def register_models(register):
    register(
        "mouse-amt",
        "plugins.models.mouse:mouse_amt",
        tasks=TASKS,
        attention=ATTENTION,
        datasets=("osie",),
        proxy=True,  # human data standing in for eye tracking: its own kind of leaderboard row
        copies=True,  # instances share nothing: several may run batches side by side (--model-copies)
        description=("mouse (crowdsourced): OSIE's mouse-tracking data of each image (AMT workers, "
                     "data/mouse_amt), blurred like the eye maps; OSIE only."),
    )
    register(
        "mouse-lab",
        "plugins.models.mouse:mouse_lab",
        tasks=TASKS,
        attention=ATTENTION,
        datasets=("osie",),
        proxy=True,
        copies=True,
        description=("mouse (lab): OSIE's mouse-tracking data of each image collected in the lab "
                     "(data/mouse_lab), blurred like the eye maps; OSIE only."),
    )


@hookimpl
def register_attention_methods(register):
    register(
        "mouse-map",
        "plugins.models.mouse:mouse_map",
        description=("Real mouse-tracking samples of the stimulus, each visited pixel once, blurred by the "
                     "eye maps' Gaussian (sigma 24 px = 1 degree on OSIE), as the OSIE authors' "
                     "computeMouseFixationMaps.m builds mouse maps."),
        citation="Xu, Jiang, Wang, Kankanhalli, Zhao 2014, Journal of Vision 14(1):28",
        applies_to="mouse-amt, mouse-lab",
    )
