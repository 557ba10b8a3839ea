"""MIT1003: 1003 natural images, 15 observers, 3 s free viewing (Judd, Ehinger, Durand, Torralba 2009).

"Learning to Predict Where Humans Look", ICCV 2009. http://people.csail.mit.edu/tjudd/WherePeopleLook/

On-disk layout read here (the authors' ``ALLSTIMULI.zip`` and ``DATA.zip``): ``ALLSTIMULI/<name>.jpeg``
and ``DATA/<user>/<name>.mat`` for the 15 users ``CNG ajs emb ems ff hp jcw jw kae krl po tmj tu ya zb``
(only ``<image name>.mat`` is read; the users' calibration and presentation-order records are
ignored). Each ``.mat`` holds one struct named after the image (MATLAB truncates variable names to
63 characters, as pysaliency's ``scripts/extract_fixations.m`` notes) whose ``DATA(1).eyeData`` is
the raw ``N x 2`` trace at 240 Hz: "the raw x and y pixel locations of the eye for every sample that the eye tracker took.
Negative locations are blinks." (DatabaseCode/README.txt, mirrored in github.com/Riadsala/SaccadicBiases
under data/Judd2009/DatabaseCode/).

Coordinates: already image pixels, 0-based. The experiment script (DatabaseCode/basicFreeView_v1.m)
centres the image on the screen and stores ``eyeData(:,1) = eyeData(:,1) - xoffset`` ("Rescale eye
movement data into image-space (instead of screen-space)"), with ``xoffset = (screenWidth -
width)/2`` on Psychtoolbox screen coordinates whose top-left pixel is (0, 0). So no offset and no
-1 are applied here; pysaliency's ``get_mit1003`` likewise uses the values as they are (its ``- 1``
lines are commented out). Fixations outside the image (including blinks) are dropped and counted.

Fixations: derived from the raw samples with the authors' ``checkFixations.m`` (ported exactly in
:mod:`plugins.datasets._judd_fixations`; the README prescribes it). As in the authors' ``showEyeData.m``
("DO NOT include the first fixation in the center of the image ... because we require users to look
at a center crosshair") and pysaliency's ``get_mit1003``, each trace's first fixation is discarded
(counted as ``dropped_initial_fixation``) before the out-of-image ones are removed. (pysaliency removes
out-of-image fixations first and then the first remaining one; the authors' code drops fixation 1.)
Onsets are ``(Fix.start - 1) / 240`` s after stimulus onset (sample 1 is the onset; pysaliency
uses ``Fix.start / 240``, one sample later); durations are ``Fix.duration`` (ms).

Pixels per degree: 34, the value of the authors' own saccade detector (``pxPerDeg = 34; % based on
current ET setup``, checkFixations.m). The comment beside it describes a 1024x768 px, 40.5x30 cm
display at 75 cm (33.1 ppd), older than MIT1003's reported 1280x1024 set-up; the MIT benchmark's
"1 dva or about 35 pixel" is close. The detector must use 34 to reproduce the authors' fixations,
and the density uses the same number rather than a second, unsourced one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

from ._formats import fetch_zip, float_array, load_mat

SOURCE = "http://people.csail.mit.edu/tjudd/WherePeopleLook/index.html"


class MIT1003(GazeDataset):
    name = "mit1003"
    pixels_per_degree = 34.0
    tasks = ("free-viewing",)
    converter_version = "1"
    source_url = SOURCE
    description = "MIT1003: 1003 natural images, 15 observers, 3 s free viewing, 240 Hz raw traces (Judd et al. 2009)"

    stimuli_dir = "ALLSTIMULI"
    data_dir_name = "DATA"
    stimulus_suffix = ".jpeg"
    sampling_rate = 240.0
    #: archives and their MD5s as pinned by pysaliency/external_datasets/mit.py
    archives = (
        ("http://people.csail.mit.edu/tjudd/WherePeopleLook/ALLSTIMULI.zip", "0d7df8b954ecba69b6796e77b9afe4b6"),
        ("http://people.csail.mit.edu/tjudd/WherePeopleLook/DATA.zip", "ea19d74ad0a0144428c53e9d75c2d71c"),
    )

    def download(self, dest: Path) -> None:
        for url, md5 in self.archives:
            fetch_zip(url, md5, dest)

    def _stimuli(self, root: Path) -> list[Path]:
        folder = root / self.stimuli_dir
        if not folder.is_dir():
            raise DataError(f"{self.name}: stimulus folder {folder} does not exist")
        return sorted(p for p in folder.iterdir() if p.suffix.lower() == self.stimulus_suffix and p.is_file())

    def _users(self, root: Path) -> list[Path]:
        folder = root / self.data_dir_name
        if not folder.is_dir():
            raise DataError(f"{self.name}: eye-tracking folder {folder} does not exist")
        users = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not users:
            raise DataError(f"{self.name}: no user folders in {folder}")
        return users

    def source_files(self, root: Path) -> list[Path]:
        stimuli = self._stimuli(root)
        out = list(stimuli)
        for user in self._users(root):
            out += [user / f"{s.stem}.mat" for s in stimuli if (user / f"{s.stem}.mat").is_file()]
        return out

    def _eye_data(self, path: Path, stem: str):
        mat = load_mat(self.name, path)
        names = [k for k in mat if not k.startswith("__")]
        var = stem[:63] if stem[:63] in names else (names[0] if len(names) == 1 else None)
        if var is None:
            raise DataError(f"{self.name}: {path} has no variable {stem[:63]!r} (found {names})")
        try:
            eye = mat[var][0, 0]["DATA"][0, 0]["eyeData"]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise DataError(f"{self.name}: {path}: {var}.DATA(1).eyeData not found ({type(exc).__name__}: {exc})") from exc
        eye = float_array(f"{self.name}: {path}: {var}.DATA(1).eyeData", eye)
        if eye.ndim != 2 or eye.shape[1] < 2:
            raise DataError(f"{self.name}: {path}: eyeData has shape {eye.shape}, expected N x 2")
        if eye.shape[1] > 2 and eye.shape[0] < eye.shape[1]:  # read as a few samples, it gave no fixation, unsaid
            raise DataError(f"{self.name}: {path}: eyeData has shape {eye.shape}, expected one row per sample "
                            "(N x 2: x, y); is it transposed or flattened?")
        return eye

    def convert(self, root: Path) -> Iterator[dict]:
        from ._judd_fixations import CheckFixationsError, check_fixations

        users = self._users(root)
        stems: set[str] = set()
        for image_path in self._stimuli(root):
            stems.add(image_path.stem)
            size = self.image_size(image_path)
            if size is None:
                continue
            width, height = size
            stem = image_path.stem
            fixations: list[dict] = []
            for user in users:
                mat_path = user / f"{stem}.mat"
                if not mat_path.is_file():
                    self.count("missing_recordings")
                    continue
                eye = self._eye_data(mat_path, stem)
                try:
                    fix = check_fixations(eye)
                except CheckFixationsError as exc:
                    raise DataError(f"{self.name}: {mat_path}: checkFixations fails on this trace: {exc}") from exc
                if len(fix) == 0:
                    continue
                self.count("dropped_initial_fixation")  # the central cross-hair fixation (see module doc)
                fixations += self.fixation_list(
                    user.name, fix.x[1:], fix.y[1:], width=width, height=height,
                    duration_ms=fix.duration_ms[1:],
                    start_ms=(fix.start[1:] - 1) * 1000.0 / self.sampling_rate,
                )
            if not fixations:
                self.skip("skipped_no_fixations", str(image_path), "no fixation inside the image")
                continue
            yield {"stimulus_id": stem, "image": str(image_path), "width": width, "height": height,
                   "fixations": fixations}
        # recordings of an image that is not in ALLSTIMULI: a counted skip, not silence
        for stem in sorted({p.stem for user in users for p in user.glob("*.mat")} - stems):
            self.skip("skipped_missing_image", stem, "recordings without their image in ALLSTIMULI")


@hookimpl
def register_datasets(register):
    register("mit1003", "plugins.datasets.mit1003:MIT1003", tasks=MIT1003.tasks, description=MIT1003.description,
             pixels_per_degree=MIT1003.pixels_per_degree,
             licence="not stated by the authors (research use; see the dataset page)", source=SOURCE)
