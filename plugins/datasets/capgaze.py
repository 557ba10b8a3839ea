"""capgaze: eye movements recorded while people described images aloud (image captioning).

He, Tavakoli, Borji, Pugeault. "Human Attention in Image Captioning: Dataset and Analysis."
ICCV 2019 (arXiv 1903.02501). https://github.com/SenHe/Human-Attention-in-Image-Captioning

This reads **capgaze1**: 1000 PASCAL images (e.g. ``2008_000885``), raw gaze and spoken
descriptions of 5 native English speakers, released as a Google Drive folder (README.md of the
authors' repository). The Drive folder cannot be fetched by a script without an API key, so there is
no download path: unpack its archives (``images.zip``, ``gaze_converted_2.zip``,
``transcribed_text.zip``) into the data folder. Layout read here::

    images/<image id>.jpg
    gaze_converted_2/<participant 1..5>/gaze/<image id>.npy
    transcribed_text/<participant 1..5>/<image id>.json      # {"text": "...", ...}

The layout and the ``text`` key are as a third-party reader that ran on the release uses them
(github.com/fynnomenon/iann_wtfproject, ``data/dataloader_capgaze1.py`` and README.md); the gaze
files' contents are as the authors' own demo reads them (``demo/demo.ipynb`` of the authors'
repository, with its example file ``demo/2008_000885.npy``)::

    data = np.load('2008_000885.npy', encoding='latin1').item()
    # keys: right_eye, dominant_eye, duration, left_eye, time_stamp
    ## dominant_eye: 0-left, 1-right
    ## time_stamp (a list, length N): the time for each eye-fixation
    ## left-eye or right_eye (a list, length N): the location for each eye-fixation
    fix = data['left_eye'] if data['dominant_eye'] == 0 else data['right_eye']
    for j in range(int(len(fix) / 4) - 3):
        temp = fix[j*4+10]
        if temp and 0 < temp[0] < 1 and 0 < temp[1] < 1:
            fix_map[int(temp[1]*height), int(temp[0]*width)] = 1

So each file is a pickled dict (written under Python 2: ``encoding='latin1'``; numpy >= 1.16.3 also
needs ``allow_pickle=True``, which runs code from the file: read only files from the release).
Positions are ``(x, y)`` fractions of the image's width and height from its top-left corner; the
demo's example has 333 entries over 7.7 s, i.e. a gaze *sample* stream (~43 Hz), not detected
fixations, and the authors' map takes every 4th sample from the 11th on. This converter follows the
authors' reader exactly (``sample_offset = 10``, ``sample_step = 4``, ``int(N/4) - 3`` samples, the
dominant eye, points strictly inside (0, 1); a missing entry (``None`` or empty, which the authors'
``if temp`` skips) is counted as ``dropped_missing_sample``, a point outside as
``dropped_outside_sample``; an entry that is not an (x, y) pair stops the conversion with an error
naming the file, since it would mean a layout this reader does not know). A fraction ``u`` becomes the continuous 0-indexed pixel
coordinate ``u * width - 0.5``, held to ``[0, width - 1]`` (the authors' ``int(u * width)`` pixel,
whose centre this lies within half a pixel of).

Subjects are the participant folders (``1`` .. ``5``). ``start_ms`` is ``time_stamp * 1000``:
the unit is not documented, seconds is inferred from the example (``duration`` 7.73 for 333 samples
whose 101st is at 2.34). ``duration_ms`` is NaN: samples have no duration. ``captions`` are the
participants' transcribed descriptions (``text``), in participant order.

Pixels per degree: NaN. Neither the repository nor any reachable copy of the paper gives the
screen or viewing distance (the authors' demo blurs with a 19-pixel Gaussian in image pixels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

SOURCE = "https://github.com/SenHe/Human-Attention-in-Image-Captioning"
GAZE_DIR = "gaze_converted_2"
TEXT_DIR = "transcribed_text"
KEYS = ("dominant_eye", "left_eye", "right_eye", "time_stamp")


class CapGaze(GazeDataset):
    name = "capgaze"
    pixels_per_degree = float("nan")
    tasks = ("captioning",)
    converter_version = "1"
    source_url = SOURCE
    description = "capgaze1: gaze of 5 people describing 1000 PASCAL images aloud, with their transcribed captions (He et al. 2019)"

    sample_offset = 10
    sample_step = 4

    def _participants(self, root: Path) -> list[str]:
        gaze = root / GAZE_DIR
        if not gaze.is_dir():
            raise DataError(f"{self.name}: {gaze} does not exist (expected {GAZE_DIR}/<participant>/gaze/<image id>.npy)")
        names = [p.name for p in gaze.iterdir() if (p / "gaze").is_dir()]
        if not names:
            raise DataError(f"{self.name}: {gaze} holds no <participant>/gaze/ folder")
        return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))

    def source_files(self, root: Path) -> list[Path]:
        files = sorted((root / "images").glob("*.jpg"))
        for who in self._participants(root):
            files += sorted((root / GAZE_DIR / who / "gaze").glob("*.npy"))
            files += sorted((root / TEXT_DIR / who).glob("*.json"))
        return files

    def _read_gaze(self, path: Path) -> dict:
        import numpy as np

        try:
            data = np.load(path, allow_pickle=True, encoding="latin1")
            data = data.item() if isinstance(data, np.ndarray) and data.dtype == object and data.shape == () else data
        except Exception as exc:  # a damaged pickle can raise almost anything
            raise DataError(f"{self.name}: {path} is not a readable gaze file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise DataError(f"{self.name}: {path} holds a {type(data).__name__}, expected a dict with keys {', '.join(KEYS)}")
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise DataError(f"{self.name}: {path} lacks key(s) {', '.join(missing)}")
        if len(data["left_eye"]) != len(data["time_stamp"]) or len(data["right_eye"]) != len(data["time_stamp"]):
            raise DataError(f"{self.name}: {path}: left_eye, right_eye and time_stamp differ in length")
        return data

    def _samples(self, data: dict, path: Path, width: int, height: int):
        """The authors' samples of the dominant eye, as pixel coordinates and onsets (ms)."""
        import numpy as np

        eye = int(np.asarray(data["dominant_eye"]).item())
        if eye not in (0, 1):
            raise DataError(f"{self.name}: {path}: dominant_eye is {eye}, expected 0 (left) or 1 (right)")
        fix = data["left_eye"] if eye == 0 else data["right_eye"]
        n = len(fix)
        xs, ys, ts = [], [], []
        for j in range(int(n / 4) - 3):
            i = j * self.sample_step + self.sample_offset
            point = fix[i]
            if point is None or (hasattr(point, "__len__") and len(point) == 0):  # the authors' falsy entries
                self.count("dropped_missing_sample")
                continue
            try:
                u, v = (float(c) for c in point)
            except (TypeError, ValueError) as exc:  # another layout than (x, y) pairs: do not guess
                raise DataError(f"{self.name}: {path}: sample {i} of the dominant eye is {point!r}, "
                                f"not an (x, y) pair") from exc
            if not (0 < u < 1 and 0 < v < 1):  # also false for NaN
                self.count("dropped_outside_sample")
                continue
            xs.append(min(max(u * width - 0.5, 0.0), width - 1.0))
            ys.append(min(max(v * height - 0.5, 0.0), height - 1.0))
            ts.append(float(data["time_stamp"][i]) * 1000.0)
        return xs, ys, ts

    def _caption(self, path: Path) -> str:
        try:
            text = json.loads(path.read_text(encoding="utf-8")).get("text")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
            raise DataError(f"{self.name}: {path} is not a transcription JSON object ({type(exc).__name__}: {exc})") from exc
        if text is not None and not isinstance(text, str):
            raise DataError(f"{self.name}: {path}: 'text' is a {type(text).__name__}, expected a string")
        return (text or "").strip()

    def convert(self, root: Path) -> Iterator[dict]:
        participants = self._participants(root)
        images = sorted((root / "images").glob("*.jpg"))
        if not images:
            raise DataError(f"{self.name}: no images/<image id>.jpg under {root}")
        for image_path in images:
            image_id = image_path.stem
            size = self.image_size(image_path)
            if size is None:
                continue
            fixations, captions = [], []
            for who in participants:
                gaze_path = root / GAZE_DIR / who / "gaze" / f"{image_id}.npy"
                if gaze_path.is_file():
                    xs, ys, ts = self._samples(self._read_gaze(gaze_path), gaze_path, *size)
                    fixations += self.fixation_list(who, xs, ys, width=size[0], height=size[1], start_ms=ts)
                text_path = root / TEXT_DIR / who / f"{image_id}.json"
                if text_path.is_file():
                    caption = self._caption(text_path)
                    if caption:
                        captions.append(caption)
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no gaze sample of any participant inside the image")
                continue
            yield {"stimulus_id": image_id, "image": str(image_path), "width": size[0], "height": size[1],
                   "fixations": fixations, "captions": captions}


@hookimpl
def register_datasets(register):
    register("capgaze", "plugins.datasets.capgaze:CapGaze", tasks=CapGaze.tasks, description=CapGaze.description,
             pixels_per_degree=CapGaze.pixels_per_degree,
             licence="not stated in the authors' repository; PASCAL images: see PASCAL VOC terms", source=SOURCE)
