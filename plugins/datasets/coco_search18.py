"""COCO-Search18: visual search for 18 object categories in MS COCO images, 10 observers.

Chen, Yang, Ahn, Samaras, Hoai, Zelinsky. "COCO-Search18 fixation dataset for predicting
goal-directed attention control." Scientific Reports 11, 8776 (2021); Yang et al., CVPR 2020.
https://sites.google.com/view/cocosearch/

On-disk layout read here (the official archives, as pysaliency's ``get_COCO_Search18`` unpacks them):
fixation files ``coco_search18_fixations_*.json`` anywhere under the data folder (the TP archive holds
``coco_search18_fixations_TP_train_split1.json`` / ``..._TP_validation_split1.json``, the TA file is
``coco_search18_fixations_TA_trainval.json``), target-present images ``images/<category>/<name>``
and target-absent images ``coco_search18_images_TA/<category>/<name>`` (``images/TP/...`` and
``images/TA/...``, the layout of the authors' plot_scanpath.py, are accepted too).

Each JSON file is a list of trials. Field meanings, from the official readme (mirrored in
github.com/ssaket/visual-search-actr, data/coco_search_18/readme.txt): ``name`` image name,
``subject`` subject number, ``task`` target category, ``condition`` "present"/"absent", ``bbox``
"bounding box coordinates of the target [x,y,w,h]", ``X``/``Y`` fixation coordinates "from the
first fixation to the last in this trial (including the initial center fixation)", ``T`` fixation
durations, ``length``, ``correct``, ``RT``, ``split``.

Coordinates: "All images used in data collection were resized to 1680x1050 with zero padding and
aspect ratio kept" (readme), and the search display was that 1680x1050 image, so the EyeLink screen
coordinates (origin at the top-left pixel) are pixel coordinates of the stored image: no offset, no
scaling, no -1. The authors plot ``CURRENT_FIX_X``/``_Y`` straight onto the image (plot_scanpath.py,
with its display->image conversion commented out), and pysaliency uses X/Y unchanged. An image that
is not 1680x1050 is skipped and counted (its coordinates would be in another space). The initial
centre fixation (the fixation cross before the image appeared) is removed from every scanpath and
counted as ``dropped_initial_fixation``; then fixations outside the image are dropped and counted.

Records: one per (condition, target category, image): all observers' scanpaths of that search.
``search_target`` is the category, ``target_present`` the condition, ``objects`` the target box (in
the same image coordinates, COCO ``[x, y, w, h]``) for target-present trials and empty for
target-absent ones: only the target is annotated, not every object (``objects_exhaustive = False``:
detection scores each image's predictions of its target category only). Trials that appear in two files
(e.g. split1 and split2 releases) are read once (``duplicate_trials``). Onsets are not recorded
(NaN); durations are ``T`` in ms.

Pixels per degree: NaN. The official readme and the authors' code give the 1680x1050 display but no
viewing distance, and the papers' method sections (Sci. Rep. 2021; CVPR 2020) could not be read
offline; the MIT 1-degree convention is tied to MIT300's images, not this display. Left NaN rather
than guessed; see docs/datasets.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import COCO_SEARCH_SIZE, CocoSearchLayout, coco_search_image

SOURCE = "https://sites.google.com/view/cocosearch/"
CONDITIONS = {"present": "TP", "absent": "TA"}


class COCOSearch18(CocoSearchLayout):
    name = "coco-search18"
    pixels_per_degree = float("nan")  # viewing geometry not sourced: see module doc
    tasks = ("detection",)
    objects_exhaustive = False  # only the search target is annotated
    converter_version = "1"
    source_url = SOURCE
    description = ("COCO-Search18: 10 observers searching 1680x1050 COCO images for one of 18 categories, "
                   "target-present and target-absent (Chen et al. 2021)")

    fixation_glob = "coco_search18_fixations_*.json"
    drop_initial_fixation = True
    #: archives and MD5s as pinned by pysaliency/external_datasets/coco_search18.py
    archives = (
        ("COCOSearch18-images-TP.zip", "4a815bb591cb463ab77e5ba0c68fedfb"),
        ("COCOSearch18-images-TA.zip", "85af7d74fa57c202320fa5e7d0dcc187"),
        ("COCOSearch18-fixations-TP.zip", "bfcf4c005a89c43a1719b28b028c5499"),
    )
    files = (("coco_search18_fixations_TA_trainval.json", "bd491cce105ff6470536afdab1184776"),)

    def _trials(self, root: Path):
        """(key, trial fields, X, Y, T) of every distinct trial in every fixation file."""
        seen: set[tuple] = set()
        for path, i, item, x, y, t in self._scanpaths(root):
            try:
                name, task, subject = str(item["name"]), str(item["task"]), item["subject"]
                condition = str(item["condition"])
            except KeyError as exc:
                raise DataError(f"{self.name}: {path}: trial {i} lacks the field {exc.args[0]!r}") from exc
            if condition not in CONDITIONS:
                raise DataError(f"{self.name}: {path}: trial {i} has condition {condition!r}, not present/absent")
            key = (condition, task, name, str(subject))
            if key in seen:
                self.count("duplicate_trials")
                continue
            seen.add(key)
            yield (condition, task, name), item, x, y, t

    def _target_boxes(self, condition, task, name, trials) -> dict[tuple, list[str]]:
        """The distinct target boxes the trials of one image give, each with the subjects giving it."""
        boxes: dict[tuple, list[str]] = {}
        for item, *_ in trials:
            if item.get("bbox") is None:
                continue
            try:
                box = tuple(float(v) for v in item["bbox"])
            except (TypeError, ValueError):
                box = ()
            if len(box) != 4:
                raise DataError(f"{self.name}: trial {task}/{name} of subject {item['subject']}: bbox {item['bbox']!r} "
                                "is not [x, y, w, h]")
            boxes.setdefault(box, []).append(str(item["subject"]))
        return boxes

    def convert(self, root: Path) -> Iterator[dict]:
        groups: dict[tuple, list] = {}
        for group, item, x, y, t in self._trials(root):
            groups.setdefault(group, []).append((item, x, y, t))
        for (condition, task, name), trials in sorted(groups.items()):
            image_path = coco_search_image(root, condition, task, name)
            if image_path is None:
                self.skip("skipped_missing_image", f"{CONDITIONS[condition]}/{task}/{name}", "image file missing")
                continue
            size = self.image_size(image_path, expected=COCO_SEARCH_SIZE)
            if size is None:
                continue
            width, height = size
            trials = sorted(trials, key=lambda tr: str(tr[0]["subject"]))
            boxes = self._target_boxes(condition, task, name, trials) if condition == "present" else {}
            if len(boxes) > 1:  # which one is the target? scoring one would be a guess
                self.skip("skipped_conflicting_target_box", str(image_path), "its trials give the target box as "
                          + " and ".join(f"{list(b)} (subject {', '.join(s)})" for b, s in boxes.items()))
                continue
            bbox = list(next(iter(boxes))) if boxes else None
            fixations: list[dict] = []
            for item, x, y, t in trials:
                start = 1 if self.drop_initial_fixation else 0
                self.count("dropped_initial_fixation", min(start, x.size))
                fixations += self.fixation_list(f"s{item['subject']}", x[start:], y[start:], width=width,
                                                height=height, duration_ms=t[start:])
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            objects = [{"bbox": bbox, "category": task}] if bbox is not None else []
            yield {
                "stimulus_id": f"{CONDITIONS[condition]}/{task}/{Path(name).stem}",
                "image": str(image_path), "width": width, "height": height, "fixations": fixations,
                "objects": objects, "search_target": task, "target_present": condition == "present",
            }


@hookimpl
def register_datasets(register):
    register("coco-search18", "plugins.datasets.coco_search18:COCOSearch18", tasks=COCOSearch18.tasks,
             description=COCOSearch18.description, pixels_per_degree=COCOSearch18.pixels_per_degree,
             licence="not stated in the official readme; images: MS COCO terms", source=SOURCE)
