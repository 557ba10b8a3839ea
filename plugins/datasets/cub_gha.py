"""CUB-GHA: gaze of people classifying CUB-200-2011 bird images (fine-grained classification).

Rong, Xu, Akata, Kasneci. "Human Attention in Fine-grained Classification." BMVC 2021.
https://github.com/yaorong0921/CUB-GHA (images: CUB-200-2011, Wah et al. 2011).

On-disk layout read here: ``Fixation.txt`` from the CUB-GHA repository ("includes all gaze data
from 5 runs of the data collection (after filtering gaze duration <0.1s)", README.md) and the
CUB-200-2011 release, either in ``CUB_200_2011/`` next to it or in the data folder itself:
``images.txt`` (``<id> <class folder>/<file>.jpg``), ``image_class_labels.txt``, ``classes.txt`` and
``images/``.

``Fixation.txt`` format, from the authors' reader ``generate_heatmap.py``: one line per image,
comma-separated integers ``id, o_x, o_y, image_x, image_y, start_x, start_y`` followed by
``x, y, duration`` triplets. ``id`` is the CUB image id; ``(o_x, o_y)`` is the original image's
width and height; the image was shown on a 1920x1080 display (``plot_gazemap(..., 1920, 1080, ...)``)
scaled to ``image_x x image_y`` with its top-left pixel at ``(start_x, start_y)``; gaze points are
display pixels and durations milliseconds. The reader draws each point into a 1920x1080 map, crops
``[start_y:start_y+image_y, start_x:start_x+image_x]`` and resizes the crop to ``(o_x, o_y)`` with
PIL. The same mapping is applied here to the points themselves, pixel centre to pixel centre as PIL's
resize does::

    x = (x_display - start_x + 0.5) * o_x / image_x - 0.5
    y = (y_display - start_y + 0.5) * o_y / image_y - 0.5

Points outside the image (on the display's grey border) are dropped and counted. The reader also
reads only the first ``(len(line) - 7) // 3 - 1`` triplets, i.e. it leaves out each line's last one;
the repository does not say why, so this converter follows the authors' reader
(``skip_last_triplet``; the left-out points are counted as ``dropped_last_triplet``). ``(o_x, o_y)``
must equal the stored image's size, else the image is skipped and counted.

Subjects: ``Fixation.txt`` pools the 5 runs without saying which point came from which, so every
fixation has the subject ``pooled``. Onsets are unknown (NaN). ``label`` is the CUB class name from
``classes.txt`` without its numeric prefix (``001.Black_footed_Albatross`` -> ``Black_footed_Albatross``).

Pixels per degree: NaN: the viewing distance is not published with the data, and each image was
shown at its own scale (the authors' heatmaps blur with ``sd=75.0`` display pixels,
``plot_gazemap``'s default, which is a different number of image pixels for every image).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

SOURCE = "https://github.com/yaorong0921/CUB-GHA"


class CUBGHA(GazeDataset):
    name = "cub-gha"
    pixels_per_degree = float("nan")
    tasks = ("classification",)
    converter_version = "1"
    source_url = SOURCE
    description = "CUB-GHA: gaze on CUB-200-2011 bird images during fine-grained classification, 5 runs pooled (Rong et al. 2021)"

    gaze_file = "Fixation.txt"
    skip_last_triplet = True
    subject = "pooled"

    @staticmethod
    def _cub_dir(root: Path) -> Path:
        return root / "CUB_200_2011" if (root / "CUB_200_2011" / "images.txt").is_file() else root

    def _table(self, path: Path) -> dict[str, str]:
        """``<key> <value>`` lines of a CUB metadata file."""
        if not path.is_file():
            raise DataError(f"{self.name}: CUB-200-2011 file {path} does not exist")
        out: dict[str, str] = {}
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                raise DataError(f"{self.name}: {path}: line {n} is not '<id> <value>'")
            out[parts[0]] = parts[1]
        return out

    def source_files(self, root: Path) -> list[Path]:
        cub = self._cub_dir(root)
        images = self._table(cub / "images.txt")
        meta = [root / self.gaze_file, cub / "images.txt", cub / "image_class_labels.txt", cub / "classes.txt"]
        return meta + [cub / "images" / rel for rel in images.values() if (cub / "images" / rel).is_file()]

    def _lines(self, path: Path):
        if not path.is_file():
            raise DataError(f"{self.name}: gaze file {path} does not exist")
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                values = [int(v) for v in line.strip().split(",")]
            except ValueError as exc:
                raise DataError(f"{self.name}: {path}: line {n} has a non-integer field ({exc})") from exc
            if len(values) < 7 or (len(values) - 7) % 3:
                raise DataError(f"{self.name}: {path}: line {n} has {len(values)} fields, expected 7 + 3k")
            yield n, values

    def convert(self, root: Path) -> Iterator[dict]:
        import numpy as np

        cub = self._cub_dir(root)
        images = self._table(cub / "images.txt")
        labels = self._table(cub / "image_class_labels.txt")
        classes = self._table(cub / "classes.txt")
        gaze_path = root / self.gaze_file
        seen: set[str] = set()
        for n, v in self._lines(gaze_path):
            image_id = str(v[0])
            if image_id in seen:
                raise DataError(f"{self.name}: {gaze_path}: line {n}: image id {image_id} appears twice")
            seen.add(image_id)
            if image_id not in images:
                raise DataError(f"{self.name}: {gaze_path}: line {n}: image id {image_id} is not in {cub / 'images.txt'}")
            image_path = cub / "images" / images[image_id]
            size = self.image_size(image_path)
            if size is None:
                continue
            o_x, o_y, shown_w, shown_h, start_x, start_y = v[1:7]
            if size != (o_x, o_y):
                self.skip("skipped_size_mismatch", str(image_path),
                          f"image is {size[0]}x{size[1]} but {self.gaze_file} line {n} says {o_x}x{o_y}")
                continue
            if shown_w <= 0 or shown_h <= 0:
                raise DataError(f"{self.name}: {gaze_path}: line {n}: displayed size {shown_w}x{shown_h}")
            triplets = np.asarray(v[7:], dtype=np.float64).reshape(-1, 3)
            if self.skip_last_triplet and len(triplets):
                self.count("dropped_last_triplet")
                triplets = triplets[:-1]
            # display pixel -> stored-image pixel, centre to centre (see module doc)
            x = (triplets[:, 0] - start_x + 0.5) * (o_x / shown_w) - 0.5
            y = (triplets[:, 1] - start_y + 0.5) * (o_y / shown_h) - 0.5
            fixations = self.fixation_list(self.subject, x, y, width=size[0], height=size[1],
                                           duration_ms=triplets[:, 2])
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            class_name = classes.get(labels.get(image_id, ""), "")
            if not class_name:
                raise DataError(f"{self.name}: image id {image_id} has no class in {cub / 'image_class_labels.txt'}")
            yield {
                "stimulus_id": Path(images[image_id]).stem, "image": str(image_path),
                "width": size[0], "height": size[1], "fixations": fixations,
                "label": re.sub(r"^\d+\.", "", class_name),
            }


@hookimpl
def register_datasets(register):
    register("cub-gha", "plugins.datasets.cub_gha:CUBGHA", tasks=CUBGHA.tasks, description=CUBGHA.description,
             pixels_per_degree=CUBGHA.pixels_per_degree,
             licence="not stated in the CUB-GHA repository; CUB-200-2011 images: research use", source=SOURCE)
