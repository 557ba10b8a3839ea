"""The canonical gaze schema, defined once.

Every gaze dataset plugin converts its source to exactly these features.

Coordinate convention
---------------------
``x`` is the column and ``y`` the row, in **0-indexed pixel coordinates of the stimulus image as
stored** (not of the eye-tracker's screen): the centre of the top-left pixel is (0, 0) and the centre
of the bottom-right pixel is (width - 1, height - 1). Coordinates are floats (sub-pixel precision
is kept); a metric that needs a pixel index rounds to the nearest pixel. Converters translate
1-indexed (MATLAB) or screen-space sources into this convention and drop fixations that fall outside
the image, counting them.

Times are in milliseconds; ``start_ms`` is relative to stimulus onset and is ``NaN`` when the source
does not record it.

Task fields are ``None`` when a dataset does not carry them:

- ``label``: class name for classification;
- ``objects``: list of ``{bbox: [x, y, w, h], category}`` in the same pixel coordinates (COCO style);
- ``captions``: reference captions;
- ``search_target``: the category searched for in visual search, and ``target_present``.

Viewing geometry per stimulus (optional columns, :data:`GEOMETRY`)
------------------------------------------------------------------
A dataset whose stimuli were all seen at one scale states its pixels per degree once, as the class
attribute ``GazeDataset.pixels_per_degree``. A dataset whose images have different sizes and were
each scaled to the screen has no single value; its converter adds, per record:

- ``pixels_per_degree`` (float64): pixels *of the stored image* per degree of visual angle for this
  stimulus; NaN (or absent) = not known per stimulus;
- ``display_scale`` (float64): display pixels per stored-image pixel, i.e. how much the image was
  enlarged (> 1) or reduced (< 1) on the screen; NaN (or absent) = not known.

Both are optional: a converter that never yields them produces a table without these columns
(and every cached table converted before they existed keeps working, read as "not known");
:func:`features_for` adds them to the table's features when any record carries one. How they set
the density blur of each stimulus (and how ``--sigma-px`` and ``--sigma-deg`` use them) is
:func:`harness.data.density.stimulus_sigma_px`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasets import Features, Image, List, Value

FIXATION = {
    "subject": Value("string"),
    "x": Value("float32"),
    "y": Value("float32"),
    "start_ms": Value("float32"),
    "duration_ms": Value("float32"),
}

OBJECT = {"bbox": List(Value("float32"), length=4), "category": Value("string")}

FEATURES = Features(
    {
        "stimulus_id": Value("string"),
        "image": Image(),
        "width": Value("int32"),
        "height": Value("int32"),
        "fixations": List(FIXATION),
        "label": Value("string"),
        "objects": List(OBJECT),
        "captions": List(Value("string")),
        "search_target": Value("string"),
        "target_present": Value("bool"),
    }
)

TASK_FIELDS = ("label", "objects", "captions", "search_target", "target_present")

#: optional per-record viewing geometry (see the module doc); NaN = not known for this record
GEOMETRY = {
    "pixels_per_degree": Value("float64"),
    "display_scale": Value("float64"),
}
GEOMETRY_FIELDS = tuple(GEOMETRY)


def features_for(records) -> Features:
    """:data:`FEATURES`, plus the :data:`GEOMETRY` columns when any of ``records`` (dicts) has one.

    The fingerprint of a converted table covers :data:`FEATURES` and the converter version, not the
    optional columns: a converter that starts to yield them bumps its ``converter_version``."""
    if not any(k in rec for rec in records for k in GEOMETRY_FIELDS):
        return FEATURES
    return Features({**FEATURES, **GEOMETRY})


def record_geometry(record: dict) -> tuple[float, float]:
    """``(pixels_per_degree, display_scale)`` of one record; NaN for what the record does not say
    (also for a table without the columns)."""
    out = []
    for key in GEOMETRY_FIELDS:
        value = record.get(key)
        try:
            value = float(value) if value is not None else float("nan")
        except (TypeError, ValueError):
            value = float("nan")
        out.append(value)
    return out[0], out[1]


def empty_task_fields() -> dict:
    return {k: None for k in TASK_FIELDS}


@dataclass(frozen=True)
class Fixations:
    """Fixations of one stimulus as arrays (0-indexed pixel coordinates, see module doc)."""

    x: np.ndarray
    y: np.ndarray
    subject: np.ndarray  # integer subject index, stable within one stimulus
    duration_ms: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def from_record(cls, record: dict) -> "Fixations":
        fix = record["fixations"] or []
        # datasets may hand back a list of dicts or a dict of lists, depending on format
        if isinstance(fix, dict):
            xs, ys, subj, dur = fix["x"], fix["y"], fix["subject"], fix["duration_ms"]
        else:
            xs = [f["x"] for f in fix]
            ys = [f["y"] for f in fix]
            subj = [f["subject"] for f in fix]
            dur = [f["duration_ms"] for f in fix]
        names = sorted(set(subj))
        index = {n: i for i, n in enumerate(names)}
        return cls(
            x=np.asarray(xs, dtype=np.float64),
            y=np.asarray(ys, dtype=np.float64),
            subject=np.asarray([index[s] for s in subj], dtype=np.int64),
            duration_ms=np.asarray(dur, dtype=np.float64),
        )

    def subset(self, mask: np.ndarray) -> "Fixations":
        return Fixations(self.x[mask], self.y[mask], self.subject[mask], self.duration_ms[mask])

    @property
    def n_subjects(self) -> int:
        return int(np.unique(self.subject).size)
