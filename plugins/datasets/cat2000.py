"""CAT2000 (training set): 2000 images (1920x1080) of 20 categories, 18 observers each, 5 s free viewing.

Borji, Itti. "CAT2000: A Large Scale Fixation Dataset for Boosting Saliency Research." CVPR 2015
workshop "Future of Datasets", arXiv:1505.03581. Data: http://saliency.mit.edu/trainSet.zip.

On-disk layout read here (``trainSet.zip``, as unpacked by pysaliency's ``get_cat2000_train`` and
read by SalScan's ``CAT2000Dataset``): ``trainSet/Stimuli/<category>/<NNN>.jpg`` and
``trainSet/FIXATIONLOCS/<category>/<NNN>.mat``, each ``.mat`` holding ``fixLocs``, a binary map of
the image's size with a 1 at every fixated pixel (SalScan: ``sio.loadmat(path)["fixLocs"]``). The
data folder may be the folder that contains ``trainSet/`` or ``trainSet/`` itself.

Coordinates: a 1 at numpy index ``[row, col]`` of ``fixLocs`` is a fixation at ``x = col``,
``y = row`` (0-based pixel centres), exactly what indexing the map means; the map must have the
image's size, else the stimulus is skipped and counted.

Limits of this format, stated plainly: the per-observer scanpaths live only in
``trainSet/allFixData.mat``, a MATLAB ``containers.Map`` object (pysaliency's scripts/load_cat2000.m
iterates ``keys(allData)``) that scipy cannot read, so it is not used. From the binary maps:
observers are not identified (all fixations carry the subject ``all``), fixations of several
observers on the same pixel count once, and there are no onsets or durations (NaN). Drops are
impossible by construction (a map pixel is always inside the image).

Pixels per degree: NaN. The screen size and viewing distance could not be taken from the paper
(arXiv:1505.03581): stored copies expose only its abstract and introduction. No reader states a
figure either: pysaliency gives none, and the MIT/Tuebingen benchmark blurs every
dataset with a fixed ~24 px kernel (saliency_benchmarking/evaluation.py, ``kernel_size=23.99``), a
rule made for MIT300's ~1024 px images, not a 1920x1080 geometry. Left NaN rather than guessed; see
docs/datasets.md for what to set and how.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import fetch_zip, load_mat

SOURCE = "http://saliency.mit.edu/datasets.html"


class CAT2000(GazeDataset):
    name = "cat2000"
    pixels_per_degree = float("nan")  # viewing geometry not sourced: see module doc
    tasks = ("free-viewing",)
    converter_version = "1"
    source_url = SOURCE
    description = "CAT2000 train set: 2000 images (1920x1080), 20 categories, binary fixation maps of 18 observers (Borji & Itti 2015)"

    #: trainSet.zip and the MD5 pinned by pysaliency/external_datasets/cat2000.py
    archive = ("http://saliency.mit.edu/trainSet.zip", "56ad5c77e6c8f72ed9ef2901628d6e48")
    map_variable = "fixLocs"
    subject = "all"

    def download(self, dest: Path) -> None:
        # the archive also holds FIXATIONMAPS/ and the Output folders pysaliency filters; kept as shipped
        fetch_zip(*self.archive, dest)

    @staticmethod
    def _base(root: Path) -> Path:
        return root / "trainSet" if (root / "trainSet").is_dir() else root

    def _pairs(self, root: Path) -> list[tuple[Path, Path]]:
        base = self._base(root)
        stimuli, locs = base / "Stimuli", base / "FIXATIONLOCS"
        for folder in (stimuli, locs):
            if not folder.is_dir():
                raise DataError(f"{self.name}: folder {folder} does not exist (expected trainSet/Stimuli and trainSet/FIXATIONLOCS)")
        out = []
        for image in sorted(stimuli.glob("*/*")):
            if image.suffix.lower() not in (".jpg", ".jpeg", ".png") or "output" in image.name.lower():
                continue
            out.append((image, locs / image.parent.name / f"{image.stem}.mat"))
        if not out:
            raise DataError(f"{self.name}: no images in {stimuli}/<category>/")
        return out

    def source_files(self, root: Path) -> list[Path]:
        return [p for pair in self._pairs(root) for p in pair if p.is_file()]

    def convert(self, root: Path) -> Iterator[dict]:
        import numpy as np

        for image_path, loc_path in self._pairs(root):
            if not loc_path.is_file():
                self.skip("skipped_missing_fixations", str(image_path), f"no fixation map {loc_path}")
                continue
            size = self.image_size(image_path)
            if size is None:
                continue
            width, height = size
            mat = load_mat(self.name, loc_path)
            if self.map_variable not in mat:
                raise DataError(f"{self.name}: {loc_path} has no variable {self.map_variable!r}")
            locs = np.asarray(mat[self.map_variable])
            if locs.dtype.kind not in "biuf":  # a cell array (of arrays) made np.isin below fail unnamed
                what = "a MATLAB cell array" if locs.dtype.kind == "O" else f"values of type {locs.dtype}"
                raise DataError(f"{self.name}: {loc_path}: {self.map_variable} is {what}, not a binary fixation "
                                "map of 0 and 1")
            if locs.shape != (height, width):
                self.skip("skipped_size_mismatch", str(image_path),
                          f"fixLocs is {locs.shape[1] if locs.ndim == 2 else '?'}x{locs.shape[0]}, image is {width}x{height}")
                continue
            if locs.size and not np.isin(locs, (0, 1)).all():  # a density or NaN: every pixel would be a fixation
                odd = locs[~np.isin(locs, (0, 1))].flat[0]
                raise DataError(f"{self.name}: {loc_path}: {self.map_variable} holds {odd!r}, not a binary fixation "
                                "map of 0 and 1")
            rows, cols = np.nonzero(locs)
            fixations = self.fixation_list(self.subject, cols.astype(np.float64), rows.astype(np.float64),
                                           width=width, height=height)
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "empty fixation map")
                continue
            category = image_path.parent.name
            yield {"stimulus_id": f"{category}/{image_path.stem}", "image": str(image_path),
                   "width": width, "height": height, "fixations": fixations}


@hookimpl
def register_datasets(register):
    register("cat2000", "plugins.datasets.cat2000:CAT2000", tasks=CAT2000.tasks, description=CAT2000.description,
             pixels_per_degree=CAT2000.pixels_per_degree,
             licence="not stated on the MIT saliency benchmark page (research use)", source=SOURCE)
