"""CUB-GHA: gaze of people classifying CUB-200-2011 bird images (fine-grained classification).

Rong, Xu, Akata, Kasneci. "Human Attention in Fine-grained Classification." BMVC 2021.
https://github.com/yaorong0921/CUB-GHA (images: CUB-200-2011, Wah et al. 2011).

On-disk layout read here, as the repository ships it, plus the CUB-200-2011 release:

- ``data_5runs/Fixation_run1.txt`` ... ``Fixation_run5.txt`` ("Inside the directory data_5runs, you
  will find 5 files and each stands for 1 run of the collection", README.md);
- ``Fixation.txt`` ("includes all gaze data from 5 runs of the data collection (after filtering gaze
  duration <0.1s)", README.md);
- CUB-200-2011, either in ``CUB_200_2011/`` next to them or in the data folder itself:
  ``images.txt`` (``<id> <class folder>/<file>.jpg``), ``image_class_labels.txt``, ``classes.txt``
  and ``images/``.

Which gaze file is read: ``data_5runs/`` when it holds ``Fixation_run<k>.txt`` files (every one
found, ``k`` in increasing order), else ``Fixation.txt``. ``harness datasets info cub-gha`` says which
(the notes ``gaze_files`` and ``subjects_from``).

``data_5runs/Fixation_run<k>.txt`` (read by no script of the authors; layout checked against the five
files of the repository at commit d182dcf): one line per image and viewing, comma-separated integers
``img_id, width, height`` followed by ``x, y, duration`` triplets. ``img_id`` is the CUB image id,
``(width, height)`` the original image's size, ``(x, y)`` a fixation in **original-image pixels,
0-based** and ``duration`` milliseconds. Checked on the real files: 11,601-11,786 lines per run,
11,788 distinct ids over the five runs (all of CUB), every point inside ``[0, width-1] x [0,
height-1]`` (the maximum ``width - 1`` occurs, ``width`` never, nor any negative value), durations
60-9,363 ms. An image id can occur on several lines of one run (in run 1, 699 images on 2 to 4
lines; runs 2-5 have one line per image). Read here: each run is one subject, ``run<k>`` (the
repository does not say whether a run is one person; it is the finest split the data has, so the
human ceiling has up to five observers); the lines of one run and image are pooled in file order,
their triplets kept in order; every triplet is kept (the authors' reader of ``Fixation.txt`` leaves
out each line's last triplet, see below, but no reader of these files exists). Points outside the
image are dropped and counted (``dropped_out_of_bounds``); a line whose ``width, height`` differ from
the stored image skips that image (``skipped_size_mismatch``, naming the file and line). A line that
is not ``3 + 3k`` numbers is a one-line ``DataError`` naming the file and line.

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
must equal the stored image's size, else the image is skipped and counted. ``Fixation.txt`` pools
the 5 runs without saying which point came from which, so when it is the file read every fixation
has the subject ``pooled`` (and the human ceiling, which needs two subjects, has nothing to score).
(The repository's ``Fixation.txt`` could not be read here, so whether it is exactly the five runs
pooled was not checked.)

Onsets are unknown (NaN). ``label`` is the CUB class name from ``classes.txt`` without its numeric
prefix (``001.Black_footed_Albatross`` -> ``Black_footed_Albatross``).

Viewing geometry. Every image was shown at its own scale (``image_x / o_x`` display pixels per image
pixel), so there is no single pixels-per-degree of the stored images. When ``Fixation.txt`` is in the
data folder, each record declares its ``display_scale`` (:mod:`harness.schema`) from it, whichever
file the fixations were read from: ``sqrt(image_x / o_x * image_y / o_y)`` (the two ratios differ
only by the rounding of the displayed size; the blur is isotropic, so their geometric mean is
used); without ``Fixation.txt`` it is NaN (not known). The viewing distance is not published, so
``display_pixels_per_degree`` (and ``pixels_per_degree``) are NaN: ``--sigma-deg`` cannot be used,
and ``harness eval --sigma-px N`` blurs each image by ``N`` **display** pixels, i.e. ``N /
display_scale`` pixels of the stored image (the authors' heatmaps blur with ``sd=75.0`` display
pixels, ``plot_gazemap``'s default). Should the distance be found, set
``display_pixels_per_degree`` (display pixels per degree of the 1920x1080 screen) and ``--sigma-deg``
works per image without converting again.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

SOURCE = "https://github.com/yaorong0921/CUB-GHA"
RUN_FILE = re.compile(r"Fixation_run(\d+)\.txt")


def _strict(parse, text: str):
    """``parse`` (int or float) of one field, refusing the digit separators of Python literals:
    int() and float() read '1_00' as 100, which in these files is damage, not a number."""
    if "_" in text:
        raise ValueError(f"{text!r} is not a plain number")
    return parse(text)


class CUBGHA(GazeDataset):
    name = "cub-gha"
    pixels_per_degree = float("nan")
    #: display pixels per degree of the 1920x1080 screen: the viewing distance is not published
    display_pixels_per_degree = float("nan")
    tasks = ("classification",)
    converter_version = "2"  # 2: data_5runs/ (one subject per run), display_scale per record
    source_url = SOURCE
    description = ("CUB-GHA: gaze on CUB-200-2011 bird images during fine-grained classification, "
                   "5 runs as 5 subjects (data_5runs/; Fixation.txt: pooled) (Rong et al. 2021)")

    gaze_file = "Fixation.txt"
    runs_dir = "data_5runs"
    skip_last_triplet = True  # Fixation.txt only, as the authors' reader does
    subject = "pooled"

    @staticmethod
    def _cub_dir(root: Path) -> Path:
        return root / "CUB_200_2011" if (root / "CUB_200_2011" / "images.txt").is_file() else root

    def _text(self, path: Path) -> str:
        """A text file of the dataset; one that is not UTF-8 text is named."""
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.name}: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    def _table(self, path: Path) -> dict[str, str]:
        """``<key> <value>`` lines of a CUB metadata file."""
        if not path.is_file():
            raise DataError(f"{self.name}: CUB-200-2011 file {path} does not exist")
        out: dict[str, str] = {}
        for n, line in enumerate(self._text(path).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                raise DataError(f"{self.name}: {path}: line {n} is not '<id> <value>'")
            out[parts[0]] = parts[1]
        return out

    def run_files(self, root: Path) -> list[tuple[int, Path]]:
        """``(k, data_5runs/Fixation_run<k>.txt)`` for every run file present, by increasing k."""
        folder = root / self.runs_dir
        if not folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := RUN_FILE.fullmatch(p.name)) and p.is_file()]
        return sorted(found)

    def source_files(self, root: Path) -> list[Path]:
        cub = self._cub_dir(root)
        images = self._table(cub / "images.txt")
        runs = [p for _, p in self.run_files(root)]
        if not runs and not (root / self.gaze_file).is_file():
            raise DataError(f"{self.name}: no gaze file in {root}: neither {self.runs_dir}/Fixation_run<k>.txt "
                            f"nor {self.gaze_file}")
        gaze = runs + ([root / self.gaze_file] if (root / self.gaze_file).is_file() else [])
        meta = [cub / "images.txt", cub / "image_class_labels.txt", cub / "classes.txt"]
        return gaze + meta + [cub / "images" / rel for rel in images.values() if (cub / "images" / rel).is_file()]

    # ------------------------------------------------------------------------------ parsing
    def _lines(self, path: Path):
        """``Fixation.txt``: ``(line number, integers)`` of each non-empty line."""
        if not path.is_file():
            raise DataError(f"{self.name}: gaze file {path} does not exist")
        for n, line in enumerate(self._text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                values = [_strict(int, v) for v in line.strip().split(",")]
            except ValueError as exc:
                raise DataError(f"{self.name}: {path}: line {n} has a non-integer field ({exc})") from exc
            if len(values) < 7 or (len(values) - 7) % 3:
                raise DataError(f"{self.name}: {path}: line {n} has {len(values)} fields, expected 7 + 3k")
            yield n, values

    def _run_lines(self, path: Path):
        """A run file: ``(line number, image id, width, height, (k, 3) triplets)`` of each non-empty line."""
        import numpy as np

        for n, line in enumerate(self._text(path).splitlines(), start=1):
            if not line.strip():
                continue
            fields = [v.strip() for v in line.strip().split(",")]
            if len(fields) < 3 or (len(fields) - 3) % 3:
                raise DataError(f"{self.name}: {path}: line {n} has {len(fields)} fields, expected "
                                "img_id, width, height + 3k (x, y, duration)")
            try:
                image_id, width, height = str(_strict(int, fields[0])), _strict(int, fields[1]), _strict(int, fields[2])
                triplets = np.asarray([_strict(float, v) for v in fields[3:]], dtype=np.float64).reshape(-1, 3)
            except ValueError as exc:
                raise DataError(f"{self.name}: {path}: line {n} has a non-numeric field ({exc})") from None
            yield n, image_id, width, height, triplets

    def _display_scales(self, root: Path) -> dict[str, float]:
        """Image id -> display pixels per image pixel, from ``Fixation.txt`` (empty without it)."""
        path = root / self.gaze_file
        if not path.is_file():
            return {}
        scales: dict[str, float] = {}
        for n, v in self._lines(path):
            o_x, o_y, shown_w, shown_h = v[1:5]
            if min(o_x, o_y, shown_w, shown_h) <= 0:
                raise DataError(f"{self.name}: {path}: line {n}: original size {o_x}x{o_y}, "
                                f"displayed {shown_w}x{shown_h}")
            scales[str(v[0])] = math.sqrt((shown_w / o_x) * (shown_h / o_y))
        return scales

    # ------------------------------------------------------------------------------ conversion
    def convert(self, root: Path) -> Iterator[dict]:
        cub = self._cub_dir_path = self._cub_dir(root)
        self._images = self._table(cub / "images.txt")
        self._labels = self._table(cub / "image_class_labels.txt")
        self._classes = self._table(cub / "classes.txt")
        runs = self.run_files(root)
        has_fixation_txt = (root / self.gaze_file).is_file()
        self.stats["display_scale_from"] = self.gaze_file if has_fixation_txt else "not known (no Fixation.txt)"
        if runs:
            self.stats["gaze_files"] = ", ".join(f"{self.runs_dir}/{p.name}" for _, p in runs)
            self.stats["subjects_from"] = "one subject per run (run<k>)"
            yield from self._convert_runs(root, runs, self._display_scales(root))
        else:
            self.stats["gaze_files"] = self.gaze_file
            self.stats["subjects_from"] = "pooled (Fixation.txt does not say which run a point is from)"
            yield from self._convert_pooled(root)

    def _image(self, image_id: str, where: str) -> Path:
        if image_id not in self._images:
            raise DataError(f"{self.name}: {where}: image id {image_id} is not in images.txt")
        return self._cub_dir_path / "images" / self._images[image_id]

    def _record(self, image_id: str, image_path: Path, size, fixations, display_scale: float) -> dict:
        label = self._labels.get(image_id)
        if label is None:
            raise DataError(f"{self.name}: {self._cub_dir_path / 'image_class_labels.txt'}: image id {image_id} "
                            "has no line")
        class_name = self._classes.get(label, "")
        if not class_name:
            raise DataError(f"{self.name}: {self._cub_dir_path / 'classes.txt'}: no class {label!r} (image id "
                            f"{image_id}'s, in image_class_labels.txt)")
        return {
            "stimulus_id": Path(self._images[image_id]).stem, "image": str(image_path),
            "width": size[0], "height": size[1], "fixations": fixations,
            "label": re.sub(r"^\d+\.", "", class_name),
            "display_scale": display_scale,
        }

    def _convert_runs(self, root: Path, runs: list[tuple[int, Path]], scales: dict[str, float]) -> Iterator[dict]:
        import numpy as np

        # image id -> [(run k, file, line, width, height, triplets), ...] in run and file order
        lines: dict[str, list] = {}
        for k, path in runs:
            for n, image_id, width, height, triplets in self._run_lines(path):
                lines.setdefault(image_id, []).append((k, path, n, width, height, triplets))
        for image_id in sorted(lines, key=int):
            entries = lines[image_id]
            _, first_path, first_line = entries[0][:3]
            image_path = self._image(image_id, f"{first_path}: line {first_line}")
            size = self.image_size(image_path)
            if size is None:
                continue
            wrong = next((e for e in entries if (e[3], e[4]) != size), None)
            if wrong is not None:
                self.skip("skipped_size_mismatch", str(image_path),
                          f"image is {size[0]}x{size[1]} but {self.runs_dir}/{wrong[1].name} line {wrong[2]} "
                          f"says {wrong[3]}x{wrong[4]}")
                continue
            fixations = []
            for k in sorted({e[0] for e in entries}):
                points = np.concatenate([e[5] for e in entries if e[0] == k])  # this run's lines, in order
                fixations += self.fixation_list(f"run{k}", points[:, 0], points[:, 1], width=size[0],
                                                height=size[1], duration_ms=points[:, 2])
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            yield self._record(image_id, image_path, size, fixations, scales.get(image_id, math.nan))

    def _convert_pooled(self, root: Path) -> Iterator[dict]:
        import numpy as np

        gaze_path = root / self.gaze_file
        seen: set[str] = set()
        for n, v in self._lines(gaze_path):
            image_id = str(v[0])
            if image_id in seen:
                raise DataError(f"{self.name}: {gaze_path}: line {n}: image id {image_id} appears twice")
            seen.add(image_id)
            image_path = self._image(image_id, f"{gaze_path}: line {n}")
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
            yield self._record(image_id, image_path, size, fixations,
                               math.sqrt((shown_w / o_x) * (shown_h / o_y)))


@hookimpl
def register_datasets(register):
    register("cub-gha", "plugins.datasets.cub_gha:CUBGHA", tasks=CUBGHA.tasks, description=CUBGHA.description,
             pixels_per_degree=CUBGHA.pixels_per_degree,
             licence="not stated in the CUB-GHA repository; CUB-200-2011 images: research use", source=SOURCE)
