"""COCO-FreeView: free viewing of the COCO-Search18 images (1680x1050), 10 observers.

Chen, Yang, Chakraborty, Mondal, Ahn, Samaras, Hoai, Zelinsky. "Characterizing Target-Absent Human
Attention." CVPR Workshops 2022. Data: http://vision.cs.stonybrook.edu/~cvlab_download/.

On-disk layout read here (as pysaliency's ``get_COCO_Freeview`` uses it): the fixation file
``COCOFreeView_fixations_trainval.json`` (any ``COCOFreeView_fixations_*.json`` under the data
folder) and the COCO-Search18 image archives, ``images/<category>/<name>`` and
``coco_search18_images_TA/<category>/<name>`` (the same picture appears under several categories;
pysaliency merges them by file name after checking they are byte-identical, and so does this reader
by name). Each trial has ``name``, ``subject``, ``X``, ``Y``, ``T``, ``length`` and ``split``
(pysaliency/external_datasets/coco_freeview.py reads exactly these) in the COCO-Search18 format.

Coordinates: as in COCO-Search18 (see plugins/datasets/coco_search18.py): the 1680x1050 stored image is the
display, so X/Y are its pixel coordinates unchanged; images of another size are skipped and counted.
The first fixation of every scanpath is removed (``dropped_initial_fixation``) on the assumption that,
as in COCO-Search18 whose readme says so explicitly, it is the initial centre fixation: the two datasets
were recorded with the same set-up and released in the same JSON format, and the authors' HAT code
(github.com/cvlab-stonybrook/HAT, common/dataset.py) treats both alike ("Force center
initialization" of the first fixation when the dataset is 'COCO-Search18' or 'COCO-Freeview'); the
FreeView release documentation itself was not available offline to confirm it. Onsets are not recorded (NaN); durations are
``T`` in ms.

Pixels per degree: NaN: same set-up as COCO-Search18, whose viewing distance could not be sourced
offline (see plugins/datasets/coco_search18.py and docs/datasets.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import COCO_SEARCH_SIZE, CocoSearchLayout, coco_search_image_files

SOURCE = "http://vision.cs.stonybrook.edu/~cvlab_download/"


class COCOFreeView(CocoSearchLayout):
    name = "coco-freeview"
    pixels_per_degree = float("nan")  # viewing geometry not sourced: see module doc
    tasks = ("free-viewing",)
    converter_version = "1"
    source_url = SOURCE
    description = "COCO-FreeView: 10 observers freely viewing the 1680x1050 COCO-Search18 images (Chen et al. 2022)"

    fixation_glob = "COCOFreeView_fixations_*.json"
    drop_initial_fixation = True
    #: as pinned by pysaliency/external_datasets/coco_freeview.py
    archives = (
        ("COCOSearch18-images-TP.zip", "4a815bb591cb463ab77e5ba0c68fedfb"),
        ("COCOSearch18-images-TA.zip", "85af7d74fa57c202320fa5e7d0dcc187"),
    )
    files = (("COCOFreeView_fixations_trainval.json", "c7f2fbc92afbe55d4dedc445ac2063d3"),)

    def convert(self, root: Path) -> Iterator[dict]:
        images: dict[str, Path] = {}
        for p in coco_search_image_files(root):
            images.setdefault(p.name, p)
        by_name: dict[str, list] = {}
        seen: set[tuple] = set()
        for path, i, item, x, y, t in self._scanpaths(root):
            try:
                name, subject = str(item["name"]), str(item["subject"])
            except KeyError as exc:
                raise DataError(f"{self.name}: {path}: trial {i} lacks the field {exc.args[0]!r}") from exc
            if (name, subject) in seen:
                self.count("duplicate_trials")
                continue
            seen.add((name, subject))
            by_name.setdefault(name, []).append((subject, x, y, t))
        for name, trials in sorted(by_name.items()):
            image_path = images.get(name)
            if image_path is None:
                self.skip("skipped_missing_image", name, "image file missing")
                continue
            size = self.image_size(image_path, expected=COCO_SEARCH_SIZE)
            if size is None:
                continue
            width, height = size
            fixations: list[dict] = []
            for subject, x, y, t in sorted(trials, key=lambda tr: tr[0]):
                start = 1 if self.drop_initial_fixation else 0
                self.count("dropped_initial_fixation", min(start, x.size))
                fixations += self.fixation_list(f"s{subject}", x[start:], y[start:], width=width, height=height,
                                                duration_ms=t[start:])
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            yield {"stimulus_id": Path(name).stem, "image": str(image_path), "width": width, "height": height,
                   "fixations": fixations}


@hookimpl
def register_datasets(register):
    register("coco-freeview", "plugins.datasets.coco_freeview:COCOFreeView", tasks=COCOFreeView.tasks,
             description=COCOFreeView.description, pixels_per_degree=COCOFreeView.pixels_per_degree,
             licence="not stated with the release; images: MS COCO terms", source=SOURCE)
