"""POET: PASCAL Objects Eye Tracking, gaze of people deciding which of two classes an image shows.

Papadopoulos, Clarke, Keller, Ferrari. "Training object class detectors from eye tracking data."
ECCV 2014; dataset page http://calvin.inf.ed.ac.uk/datasets/poet-dataset/ (also listed as
groups.inf.ed.ac.uk/calvin/eyetrackdataset/). 6,270 images of the trainval part of 10 PASCAL VOC 2012
classes, 5 observers each; observers saw each image with a random offset on the screen and decided
which class of a pair was present (cat/dog, bicycle/motorbike, horse/cow, boat/aeroplane,
sofa/diningtable; Clarke et al., i-Perception 5(5):488, 2014).

No README or reader from the authors could be reached (the dataset page is not mirrored anywhere
this project can read). The layout and field meanings below are those of the only public readers of
the release, all third-party, which agree on every point they share:
github.com/martinaegidius/eyeFormer (``load_POET.py``, ``EDA_class.py``) and its successor
``eyeFormer_ViT`` (``timm_scripts/load_POET_timm.py``, ``handle_pascal.py``), and
github.com/nvinden/SequentialSalientGazePath (``create_best_md.py``, ``draw_data.py``)::

    POETdataset/etData/etData_<class>.mat      # loadmat(..., squeeze_me=True, struct_as_record=False)["etData"]
    POETdataset/PascalImages/<class>_<filename>.jpg

``etData`` is a struct array, one element per image of that class, with ``filename`` (the VOC id,
e.g. ``2008_003475``), ``dimensions`` (``[height width]``, some classes ``[height width 3]``:
MATLAB's ``size(img)``; eyeFormer: "image-format is stored as height, width"), ``gtbb`` (the
class's ground-truth boxes ``[x1 y1 x2 y2]``, a 4-vector or one row per instance) and
``fixations`` (5 elements, one per observer) whose ``imgCoord.fixL.pos`` / ``imgCoord.fixR.pos``
are N x 2 ``[x y]`` fixation positions of the left / right eye in pixels of the original image
(both readers plot them straight onto the JPEG). Entries can be empty (shape (0, 2) or (2, 0)),
NaN, negative or beyond the image, and some arrays are uint16 (eyeFormer drops the invalid ones;
here they are dropped and counted). No reader uses any time field, so onsets and durations are NaN.

Choices where the sources are silent (each would matter less than the 1-degree blur, but they are
choices, and ``harness datasets info poet`` lists the fields the converter actually met so that a
user with the files can check them):

- **eye**: the left eye's fixations (``eye = "left"``). The readers disagree (eyeFormer pools both
  eyes, double-counting every fixation; SequentialSalientGazePath pairs rows, which eyeFormer shows
  do not always pair); one eye per observer keeps each fixation once.
- **index base of ``pos``**: taken as 0-based image pixels (unchanged), like the screen coordinates
  of the EyeLink/Psychtoolbox set-ups of the time with the image offset subtracted (compare
  MIT1003). If it were MATLAB 1-based, every point would be 1 pixel off.
- **column order**: both readers use ``[x y]``; a class file in which more than 20% of the points
  fall outside the image as ``[x y]`` but under 2% as ``[y x]`` is refused (``DataError``) rather
  than silently read transposed.
- **``gtbb``**: VOC ground truth, 1-based inclusive ``[x1 y1 x2 y2]``, becomes the COCO box
  ``[x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1]``; a box starting at 0 or ending beyond the image
  contradicts this and is refused.
- **subjects**: the observer's position ``1``..``5`` in ``fixations``; whether position k is the
  same person in every image is not documented (the leave-one-subject-out ceiling is per image, so
  it does not depend on it).

Records: one per (class, image), id ``<class>_<filename>`` as the image file is named; ``label``
the class; ``objects`` the class's boxes (other objects in the image are not annotated in the
release, so ``objects_exhaustive = False``: detection scores each image's predictions of its class
only). ``dimensions`` must match the JPEG, else the image is skipped and counted.

Classification with ImageNet classifiers: ``label_aliases`` maps each VOC class to the ImageNet-1k
classes that are instances of it (cat: the five domestic cats 281-285; dog: the 118 breeds 151-268;
aeroplane: airliner, warplane; bicycle: tandem, mountain bike; boat: the fourteen boats and ships;
cow: ox, water buffalo, bison; horse: sorrel; motorbike: moped, motor scooter; diningtable: dining
table; sofa: studio couch), so a prediction of e.g. ``n02123045`` (tabby) counts as ``cat``. This
is this project's reading of the WordNet hierarchy, checked by name in the tests, and it is stored
in each classification run's settings. Detection: ``detection_aliases`` give the COCO name of the
four classes COCO names otherwise (aeroplane: airplane, diningtable: dining table, motorbike:
motorcycle, sofa: couch), so a COCO detector's boxes of them count; stored in each detection run's
settings.

Pixels per degree: NaN: the screen, resolution and viewing distance were not found in any reachable
source. There is no download path: the archive's address on the dataset page could not be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import float_array, load_mat

SOURCE = "http://calvin.inf.ed.ac.uk/datasets/poet-dataset/"
CLASSES = ("aeroplane", "bicycle", "boat", "cat", "cow", "diningtable", "dog", "horse", "motorbike", "sofa")
EYES = {"left": "fixL", "right": "fixR"}
# ImageNet-1k class indices that are instances of each VOC class (names checked in the tests)
IMAGENET = {
    "aeroplane": [404, 895],
    "bicycle": [444, 671],
    "boat": [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914],
    "cat": list(range(281, 286)),
    "cow": [345, 346, 347],
    "diningtable": [532],
    "dog": list(range(151, 269)),
    "horse": [339],
    "motorbike": [665, 670],
    "sofa": [831],
}
SWAP_OUTSIDE, SWAP_INSIDE = 0.20, 0.02


def _fields(struct) -> tuple[str, ...]:
    return tuple(getattr(struct, "_fieldnames", ()) or ())


class POET(GazeDataset):
    name = "poet"
    pixels_per_degree = float("nan")
    tasks = ("classification", "detection")
    converter_version = "1"
    source_url = SOURCE
    description = "POET: gaze of 5 observers deciding which of two PASCAL VOC classes an image shows, 10 classes (Papadopoulos et al. 2014)"

    eye = "left"
    objects_exhaustive = False  # gtbb holds the file's class only

    @property
    def label_aliases(self) -> dict[str, list[str]]:
        from harness.imagenet_classes import WNIDS

        return {cls: [WNIDS[i] for i in indices] for cls, indices in IMAGENET.items()}

    #: detection: the COCO name of the four classes COCO names otherwise (a COCO detector's boxes of them)
    detection_aliases = {cls: list(names) for cls, names in sorted({
        "aeroplane": ["airplane"], "diningtable": ["dining table"], "motorbike": ["motorcycle"], "sofa": ["couch"],
    }.items())}

    @staticmethod
    def _base(root: Path) -> Path:
        return root / "POETdataset" if (root / "POETdataset" / "etData").is_dir() else root

    def _class_files(self, root: Path) -> list[tuple[str, Path]]:
        base = self._base(root)
        found = [(c, base / "etData" / f"etData_{c}.mat") for c in CLASSES]
        found = [(c, p) for c, p in found if p.is_file()]
        if not found:
            raise DataError(f"{self.name}: no etData/etData_<class>.mat under {base} "
                            f"(classes: {', '.join(CLASSES)})")
        return found

    def source_files(self, root: Path) -> list[Path]:
        base = self._base(root)
        files = [p for _, p in self._class_files(root)]
        return files + sorted((base / "PascalImages").glob("*.jpg"))

    def _note_fields(self, level: str, struct) -> None:
        """Remember the struct fields met at each level: ``harness datasets info poet`` shows them,
        so a user can see whether the release holds more (e.g. timing) than this reader uses."""
        key = f"fields {level}"
        names = set(filter(None, str(self.stats.get(key, "")).split(", "))) | set(_fields(struct))
        if names:
            self.stats[key] = ", ".join(sorted(names))

    def _field(self, struct, name: str, where: str):
        """A struct field the reader relies on; its absence means another layout than the one read
        here, which must not pass as "no fixations"."""
        if name not in _fields(struct):
            have = ", ".join(_fields(struct)) or f"not a struct ({type(struct).__name__})"
            raise DataError(f"{self.name}: {where} has no field {name!r} (fields: {have})")
        return getattr(struct, name)

    def _positions(self, pos, where: str):
        """An ``[x y]`` array of shape (N, 2) from ``pos`` as scipy gives it (uint16 or float,
        squeezed to (2,) for one fixation, (0, 2) / (2, 0) / () when empty)."""
        import numpy as np

        arr = float_array(f"{self.name}: {where}: pos", pos) if pos is not None else np.zeros((0, 2))
        if arr.size == 0:
            return np.zeros((0, 2))
        if arr.ndim == 1 and arr.size == 2:
            return arr.reshape(1, 2)
        if arr.ndim == 2 and arr.shape[1] == 2:
            return arr
        raise DataError(f"{self.name}: {where}: pos has shape {arr.shape}, expected N x 2 [x y]")

    def _boxes(self, gtbb, width: int, height: int, where: str) -> list[list[float]]:
        arr = float_array(f"{self.name}: {where}: gtbb", gtbb if gtbb is not None else [])
        if arr.size == 0:
            return []
        if arr.size % 4:
            raise DataError(f"{self.name}: {where}: gtbb has shape {arr.shape}, expected [x1 y1 x2 y2] rows")
        boxes = []
        for x1, y1, x2, y2 in arr.reshape(-1, 4):
            if not (1 <= x1 <= x2 <= width and 1 <= y1 <= y2 <= height):
                raise DataError(f"{self.name}: {where}: gtbb [{x1:g} {y1:g} {x2:g} {y2:g}] is not a 1-based "
                                f"inclusive box inside the {width}x{height} image")
            boxes.append([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])
        return boxes

    def _check_order(self, points: list, path: Path) -> None:
        """Refuse a file whose points fit the images only when read as [y x]. ``points``: one
        ``(xy array, (width, height))`` per observer and image."""
        import numpy as np

        if sum(len(p) for p, _ in points) < 20:
            return
        xy = np.concatenate([p for p, _ in points])
        w = np.concatenate([np.full(len(p), wh[0]) for p, wh in points])
        h = np.concatenate([np.full(len(p), wh[1]) for p, wh in points])
        ok = np.isfinite(xy).all(axis=1)
        xy, w, h = xy[ok], w[ok], h[ok]
        outside = np.mean((xy[:, 0] < 0) | (xy[:, 0] > w - 1) | (xy[:, 1] < 0) | (xy[:, 1] > h - 1))
        swapped = np.mean((xy[:, 1] < 0) | (xy[:, 1] > w - 1) | (xy[:, 0] < 0) | (xy[:, 0] > h - 1))
        if outside > SWAP_OUTSIDE and swapped < SWAP_INSIDE:
            raise DataError(f"{self.name}: {path}: {outside:.0%} of the fixations fall outside their images as "
                            f"[x y] but {swapped:.0%} as [y x]: this file's pos columns are not [x y]")

    def convert(self, root: Path) -> Iterator[dict]:
        import numpy as np

        images = self._base(root) / "PascalImages"
        eye_field = EYES[self.eye]
        for cls, path in self._class_files(root):
            mat = load_mat(self.name, path, squeeze_me=True, struct_as_record=False)
            if "etData" not in mat:
                raise DataError(f"{self.name}: {path} has no variable etData")
            pending = []  # (positions per observer, (w, h), record) for the column-order check
            for n, entry in enumerate(np.atleast_1d(mat["etData"]), start=1):
                where = f"{path} etData({n})"
                self._note_fields("etData", entry)
                missing = [f for f in ("filename", "dimensions", "fixations") if f not in _fields(entry)]
                if missing:
                    raise DataError(f"{self.name}: {where} lacks field(s) {', '.join(missing)}")
                filename = str(entry.filename).strip()
                image_path = images / f"{cls}_{filename}.jpg"
                size = self.image_size(image_path)
                if size is None:
                    continue
                try:
                    dims = [int(v) for v in np.atleast_1d(np.asarray(entry.dimensions, dtype=np.float64))[:2]]
                except (TypeError, ValueError, OverflowError) as exc:  # NaN, inf, text
                    raise DataError(f"{self.name}: {where}.dimensions is not [height width] in pixels ({exc})") from None
                if dims != [size[1], size[0]]:
                    self.skip("skipped_size_mismatch", str(image_path),
                              f"image is {size[0]}x{size[1]} but {where}.dimensions is {dims} ([height width])")
                    continue
                observers = []
                for k, obs in enumerate(np.atleast_1d(entry.fixations), start=1):
                    self._note_fields("fixations", obs)
                    coords = self._field(obs, "imgCoord", f"{where}.fixations({k})")
                    self._note_fields("imgCoord", coords)
                    eye = self._field(coords, eye_field, f"{where}.fixations({k}).imgCoord")
                    self._note_fields(eye_field, eye)
                    pos = self._field(eye, "pos", f"{where}.fixations({k}).imgCoord.{eye_field}")
                    observers.append((str(k), self._positions(pos, f"{where}.fixations({k})")))
                record = {"stimulus_id": f"{cls}_{filename}", "image": str(image_path),
                          "width": size[0], "height": size[1], "label": cls,
                          "objects": [{"bbox": b, "category": cls}
                                      for b in self._boxes(getattr(entry, "gtbb", None), *size, where)]}
                pending.append((observers, size, record))
            self._check_order([(xy, size) for observers, size, _ in pending for _, xy in observers], path)
            for observers, size, record in pending:
                fixations = []
                for subject, xy in observers:
                    if not len(xy):
                        self.count("observers_without_fixations")
                    fixations += self.fixation_list(subject, xy[:, 0], xy[:, 1], width=size[0], height=size[1])
                if not fixations:
                    self.skip("skipped_no_fixations", record["image"], "no fixation inside the image")
                    continue
                yield {**record, "fixations": fixations}


@hookimpl
def register_datasets(register):
    register("poet", "plugins.datasets.poet:POET", tasks=POET.tasks, description=POET.description,
             pixels_per_degree=POET.pixels_per_degree,
             licence="not found (dataset page unreachable); images: PASCAL VOC terms", source=SOURCE)
