"""SALICON (Saliency in Context): 15,000 MS COCO images (640x480), mouse-contingent "fixations".

Jiang, Huang, Duan, Zhao. "SALICON: Saliency in Context." CVPR 2015. http://salicon.net

On-disk layout read here (the COCO-style release, salicon.net/download: "The data format is consistent
with MS COCO"): annotation files ``fixations_train2014.json`` / ``fixations_val2014.json`` (anywhere
under the data folder, e.g. ``annotations/``; the API's setup.py also saves them as
``fixations_<split>2015r1.json``) and the images ``COCO_<split>2014_<id>.jpg`` anywhere under it (the
API's demo reads ``images/<split>/<file_name>``). Each annotation file has ``images`` (``id``,
``file_name``, ``width``, ``height``) and ``annotations`` (``image_id``, ``worker_id``,
``fixations``): a list of points, one worker's mouse-contingent fixations on one image.

Coordinates: each point is ``[row, column]``, 1-based. Source: the SALICON API
(github.com/NUS-VIP/salicon-api, PythonAPI/salicon/salicon.py, ``buildFixMap`` at commit 98b523f):
``for y,x in merged_fixations: sal_map[y-1][x-1] = 1``. The API's example annotations agree:
annotations/fixations_train2014examples.json (dated 2015-04-25, 640x480 images) has first values up
to ~445 (< 480 rows) and second values up to ~630 (< 640 columns). Converted here as
``x = column - 1``, ``y = row - 1``; points outside the image are dropped and counted. The raw value
ranges are kept in ``stats`` (``source_row_range``, ``source_col_range``) so a file in another
convention is visible in ``harness datasets info``. An earlier pre-release example
(fixations_val2014_examples.json, 2015-04-10, read by an older API revision as ``for x,y``) stored
``[x, y]``; that layout is not supported.

The points come without timing: ``start_ms`` and ``duration_ms`` are NaN. Subjects are the AMT
``worker_id`` s. The 2017 MATLAB release (``fixations/<split>/*.mat`` with a ``gaze`` struct, read
by pysaliency's ``get_SALICON``) is a different format and is not read here.

Pixels per degree: 19, by convention rather than geometry. SALICON was collected with a mouse on
crowd workers' own screens, so there is no viewing distance; the authors' ground-truth maps blur the
fixations with a Gaussian of sigma 19 px (``buildFixMap(self, anns, doBlur=True, sigma=19)`` in the
API's salicon.py). Taking that as one degree makes the harness's default 1-degree density equal to
the authors' fixation maps (the same reasoning as OSIE's 24 px).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import read_json

SOURCE = "http://salicon.net/download/"


class SALICON(GazeDataset):
    name = "salicon"
    pixels_per_degree = 19.0  # the authors' fixation-map sigma, see module doc
    tasks = ("free-viewing",)
    converter_version = "2"  # 2: a worker_id of null is 'unknown' as a missing one (was 'None')
    source_url = SOURCE
    description = "SALICON: 15,000 MS COCO images (640x480), mouse-contingent fixations of AMT workers (Jiang et al. 2015)"

    annotation_glob = "fixations_*.json"

    def _annotation_files(self, root: Path) -> list[Path]:
        files = sorted(root.rglob(self.annotation_glob))
        for p in files:
            if not p.is_file():  # left out, its split would vanish from the dataset without a word
                raise DataError(f"{self.name}: {p} is not a file (an annotation file's name: {self.annotation_glob})")
        if not files:
            raise DataError(f"{self.name}: no {self.annotation_glob} annotation file under {root}")
        return files

    def _image_index(self, root: Path) -> dict[str, Path]:
        index: dict[str, Path] = {}
        for p in sorted(root.rglob("*")):
            if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file():
                index.setdefault(p.name, p)
        return index

    def source_files(self, root: Path) -> list[Path]:
        # every image under the folder, not only the annotated ones: listing those would mean
        # parsing the ~1.3 GB of JSON once more just to fingerprint
        return self._annotation_files(root) + sorted(self._image_index(root).values())

    def convert(self, root: Path) -> Iterator[dict]:
        import numpy as np

        index = self._image_index(root)
        rows_lo = cols_lo = np.inf
        rows_hi = cols_hi = -np.inf
        seen: dict[str, tuple[Path, str]] = {}  # stem -> the file that gave it, its annotations' digest
        for path in self._annotation_files(root):
            data = read_json(self.name, path)
            if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
                raise DataError(f"{self.name}: {path} is not a SALICON annotation file (no 'images'/'annotations')")
            for key in ("images", "annotations"):
                if not isinstance(data[key], list):
                    raise DataError(f"{self.name}: {path}: '{key}' is a {type(data[key]).__name__}, not a list")
            by_image: dict[int, list[dict]] = {}
            for k, ann in enumerate(data["annotations"]):
                try:
                    if not isinstance(ann, dict):
                        raise TypeError
                    by_image.setdefault(int(ann["image_id"]), []).append(ann)
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataError(f"{self.name}: {path}: annotation {k} has no valid image_id") from exc
            ids_here: set[int] = set()
            names_here: set[str] = set()
            unknown = set(by_image)
            for img in data["images"]:
                try:
                    if not isinstance(img, dict):
                        raise TypeError
                    image_id, file_name = int(img["id"]), str(img["file_name"])
                    declared = (int(img["width"]), int(img["height"]))
                except (KeyError, TypeError, ValueError) as exc:
                    raise DataError(f"{self.name}: {path}: image entry {img!r:.80} lacks id/file_name/width/height") from exc
                # twice in one file: the annotations of an id would go to both, or the second be lost
                if image_id in ids_here or file_name in names_here:
                    raise DataError(f"{self.name}: {path}: image id {image_id} or file name {file_name!r} is listed "
                                    "twice")
                ids_here.add(image_id)
                names_here.add(file_name)
                unknown.discard(image_id)
                stem = Path(file_name).stem
                digest = _annotations_digest(by_image.get(image_id, []))
                if stem in seen:  # the same image in two annotation files (e.g. 2014 and 2015r1 names)
                    first, first_digest = seen[stem]
                    if digest != first_digest:  # the later file's annotations were dropped unseen (found by QA)
                        raise DataError(f"{self.name}: image {file_name} is annotated differently in {first} and "
                                        f"{path}: keep one of the two files in the data folder")
                    continue
                image_path = index.get(file_name, root / "images" / file_name)
                size = self.image_size(image_path)
                if size is None:
                    continue
                if size != declared:
                    self.skip("skipped_size_mismatch", str(image_path),
                              f"image is {size[0]}x{size[1]} but {path.name} says {declared[0]}x{declared[1]}")
                    continue
                width, height = size
                fixations: list[dict] = []
                for ann in by_image.get(image_id, []):
                    try:
                        pts = np.asarray(_points(ann.get("fixations")), dtype=np.float64)
                        if pts.ndim == 2 and pts.shape[1] != 2:  # [r, c, t] rows would be re-paired
                            raise ValueError(f"rows of {pts.shape[1]} values")
                        pts = pts.reshape(-1, 2)
                    except (TypeError, ValueError) as exc:
                        raise DataError(f"{self.name}: {path}: annotation {ann.get('id')!r} of image {image_id}: "
                                        f"fixations are not [row, col] pairs ({exc})") from exc
                    if pts.size:
                        rows_lo, rows_hi = min(rows_lo, pts[:, 0].min()), max(rows_hi, pts[:, 0].max())
                        cols_lo, cols_hi = min(cols_lo, pts[:, 1].min()), max(cols_hi, pts[:, 1].max())
                    # [row, col], 1-based (salicon-api buildFixMap) -> x = col - 1, y = row - 1
                    worker = ann.get("worker_id")
                    if worker is not None and (isinstance(worker, bool) or not isinstance(worker, (str, int))):
                        raise DataError(f"{self.name}: {path}: annotation {ann.get('id')!r} of image {image_id}: "
                                        f"worker_id must be a name or a number, got {worker!r:.60}")
                    fixations += self.fixation_list("unknown" if worker is None else str(worker), pts[:, 1] - 1.0,
                                                    pts[:, 0] - 1.0, width=width, height=height)
                if not fixations:
                    self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                    continue
                seen[stem] = (path, digest)
                yield {"stimulus_id": stem, "image": str(image_path), "width": width, "height": height,
                       "fixations": fixations}
            for image_id in sorted(unknown):  # no image, no size to score its annotations on
                anns = by_image[image_id]
                self.skip("skipped_unknown_image", f"{path}: image id {image_id}",
                          f"{len(anns)} annotations name it, but the file's 'images' do not list it")
        if np.isfinite(rows_lo):
            self.stats["source_row_range"] = [float(rows_lo), float(rows_hi)]
            self.stats["source_col_range"] = [float(cols_lo), float(cols_hi)]


def _points(value) -> list:
    """An annotation's ``fixations``: a list of [row, col] numbers. numpy would read "10" as 10.0 and
    true as 1 (found by QA)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"a {type(value).__name__}, not a list")
    for point in value:
        values = point if isinstance(point, list) else [point]
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{v!r:.40} is not a number")
    return value


def _annotations_digest(anns: list[dict]) -> str:
    """What an image's annotations say as the converter reads them (the worker as its subject name,
    the points as numbers), in any order: [[12, 8]] and [[12.0, 8.0]], or worker 7 and "7", say the
    same (compared as JSON text they were refused as different: found by QA). An annotation the
    converter would refuse is left to say so when it is read."""
    import hashlib
    import json

    items = []
    for a in anns:
        worker = a.get("worker_id") if isinstance(a, dict) else None
        try:
            points = [[float(v) for v in (p if isinstance(p, list) else [p])] for p in _points(a.get("fixations"))]
        except (TypeError, ValueError, AttributeError):
            points = repr(a)
        items.append(json.dumps(["unknown" if worker is None else str(worker), points]))
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


@hookimpl
def register_datasets(register):
    register("salicon", "plugins.datasets.salicon:SALICON", tasks=SALICON.tasks, description=SALICON.description,
             pixels_per_degree=SALICON.pixels_per_degree, licence="not stated in the SALICON API repository (see salicon.net); images: MS COCO terms",
             source=SOURCE)
