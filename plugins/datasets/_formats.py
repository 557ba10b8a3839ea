"""Helpers shared by the dataset plugins that read original on-disk formats.

Everything here raises :class:`harness.errors.DataError` with one line naming the file at fault, and
imports numpy/scipy only inside functions (plugin modules must stay cheap to import).

* :func:`read_json`, :func:`load_mat`: readers that name the file when it is missing or damaged;
* :func:`scanpath_arrays`: the ``X``/``Y``/``T`` lists of one COCO-Search18 / COCO-FreeView trial;
* :func:`float_array`: a numeric field of a MATLAB file as floats, or an error naming it;
* :func:`coco_search_image`: where the COCO-Search18 image archives put an image;
* :func:`fetch_zip`: download a zip, check its published MD5, unpack it safely (for ``download()``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from harness.data.base import GazeDataset
from harness.errors import DataError

#: the display and stimulus size of COCO-Search18 and COCO-FreeView: "All images used in data
#: collection were resized to 1680x1050 with zero padding and aspect ratio kept" (official readme)
COCO_SEARCH_SIZE = (1680, 1050)

#: folders the COCO-Search18 image archives unpack to: ``COCOSearch18-images-TP.zip`` ->
#: ``images/<category>/<name>``, ``COCOSearch18-images-TA.zip`` -> ``coco_search18_images_TA/<category>/<name>``
#: (pysaliency/external_datasets/coco_search18.py globs exactly these), and the ``images/TP``/``images/TA``
#: layout of the authors' plot_scanpath.py (cvlab-stonybrook/Scanpath_Prediction)
COCO_SEARCH_IMAGE_DIRS = {
    "present": ("images", "images/TP"),
    "absent": ("coco_search18_images_TA", "images/TA"),
}


def read_json(dataset: str, path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{dataset}: file {path} does not exist")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"{dataset}: cannot read {path} (truncated or not JSON?): {type(exc).__name__}: {exc}") from exc


def load_mat(dataset: str, path: Path, **kwargs) -> dict:
    """``scipy.io.loadmat`` (MATLAB v4-v7.2 files); DataError naming the file when that fails."""
    import scipy.io

    if not path.is_file():
        raise DataError(f"{dataset}: file {path} does not exist")
    try:
        return scipy.io.loadmat(str(path), **kwargs)
    except NotImplementedError as exc:  # scipy's message for MATLAB v7.3 (HDF5) files
        raise DataError(f"{dataset}: {path} is a MATLAB v7.3 file, which scipy cannot read: {exc}") from exc
    except Exception as exc:  # MatReadError, ValueError, OSError, ... for damaged files
        raise DataError(f"{dataset}: cannot read {path} (truncated or not a MATLAB file?): {type(exc).__name__}: {exc}") from exc


def scanpath_arrays(dataset: str, path: Path, index: int, item: dict):
    """``(X, Y, T)`` of one trial as float arrays, checked against each other and ``length``."""
    import numpy as np

    where = f"{dataset}: {path}: trial {index}"
    if not isinstance(item, dict):
        raise DataError(f"{where} is not a JSON object")
    arrays = []
    for key in ("X", "Y", "T"):
        if key not in item:
            raise DataError(f"{where} lacks the field {key!r}")
        value = item[key]
        # JSON null, strings ("12.5") and booleans are not coordinates: numpy would make NaN, digits or 0/1
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            bad = next(v for v in values if not (isinstance(v, (int, float)) and not isinstance(v, bool)))
            raise DataError(f"{where}: {key} holds {bad!r}, not a number")
        arrays.append(np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel())
    x, y, t = arrays
    if not (x.size == y.size == t.size):
        raise DataError(f"{where}: X, Y and T differ in length ({x.size}, {y.size}, {t.size})")
    length = item.get("length")
    if length is not None:
        # int() raised without naming the trial on "two" and truncated 2.5 to 2
        if isinstance(length, bool) or not (isinstance(length, int) or (isinstance(length, float) and length.is_integer())):
            record = f" (image {item['name']}, subject {item['subject']})" if "name" in item and "subject" in item else ""
            raise DataError(f"{where}{record}: length must be an integer, got {length!r}")
        if int(length) != x.size:
            raise DataError(f"{where}: 'length' is {length} but X has {x.size} fixations")
    return x, y, t


def float_array(what: str, value):
    """``value`` (an array from a MATLAB file) as float64; DataError starting with ``what`` (dataset,
    file, record and field) when it holds text or anything else that is not numbers."""
    import numpy as np

    arr = np.asarray(value)
    text = [v for v in arr.flat if isinstance(v, (str, bytes))] if arr.dtype.kind in "SUO" else []
    if text:  # numpy would read the text '12' as 12.0
        raise DataError(f"{what} holds text ({str(text[0])!r}), not numbers")
    try:
        return arr.astype(np.float64)
    except (TypeError, ValueError) as exc:  # a cell of arrays, a struct
        kind = "a MATLAB cell array" if arr.dtype.kind == "O" else f"values of type {arr.dtype}"
        raise DataError(f"{what} holds {kind}, not numbers ({type(exc).__name__}: {exc})") from None


def coco_search_image(root: Path, condition: str, category: str, name: str) -> Path | None:
    """The stored image of a COCO-Search18 trial (``condition`` 'present'/'absent'), or None."""
    for folder in COCO_SEARCH_IMAGE_DIRS[condition]:
        candidate = root / folder / category / name
        if candidate.is_file():
            return candidate
    return None


def coco_search_image_files(root: Path) -> list[Path]:
    """Every image under the COCO-Search18 image folders (for fingerprints and FreeView lookup)."""
    folders = sorted({f for dirs in COCO_SEARCH_IMAGE_DIRS.values() for f in dirs if "/" not in f})
    out: list[Path] = []
    for folder in folders:
        base = root / folder
        if base.is_dir():
            out += sorted(p for p in base.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file())
    return out


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safe_members(zf: zipfile.ZipFile, skip: Iterable[str]) -> list[zipfile.ZipInfo]:
    skip = tuple(skip)
    out = []
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts:
            raise DataError(f"zip member {info.filename!r} would unpack outside the target folder")
        if any(part in skip for part in p.parts):
            continue
        out.append(info)
    return out


def fetch_zip(url: str, md5: str, dest: Path, *, skip: Iterable[str] = ("__MACOSX", ".svn", ".DS_Store")) -> None:
    """Download ``url`` into ``dest`` (a folder being populated by GazeDataset.download), check the
    MD5 its maintainers publish (pysaliency pins these archives by MD5; SHA-256 is not published),
    unpack it there and delete the archive. Raises DataError."""
    from harness.data.download import fetch

    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / (Path(url.split("?")[0]).name or "download.zip")
    fetch(url, archive)
    got = md5_file(archive)
    if got != md5:
        archive.unlink(missing_ok=True)
        raise DataError(f"download of {url}: md5 {got} does not match the published {md5}")
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in _safe_members(zf, skip):
                zf.extract(info, dest)
    except zipfile.BadZipFile as exc:
        raise DataError(f"download of {url}: not a zip archive ({exc})") from exc
    finally:
        archive.unlink(missing_ok=True)


def fetch_file_md5(url: str, md5: str, target: Path) -> None:
    """Download one plain file and check its published MD5."""
    from harness.data.download import fetch

    fetch(url, target)
    got = md5_file(target)
    if got != md5:
        target.unlink(missing_ok=True)
        raise DataError(f"download of {url}: md5 {got} does not match the published {md5}")


class CocoSearchLayout(GazeDataset):
    """What COCO-Search18 and COCO-FreeView share: the lab's download folder, JSON fixation files
    found by ``fixation_glob``, and the COCO-Search18 image folders."""

    base_url = "http://vision.cs.stonybrook.edu/~cvlab_download/"
    archives: tuple[tuple[str, str], ...] = ()  # (zip name, published MD5)
    files: tuple[tuple[str, str], ...] = ()  # (file name, published MD5)
    fixation_glob = "*.json"

    def download(self, dest: Path) -> None:
        for name, md5 in self.archives:
            fetch_zip(self.base_url + name, md5, dest)
        for name, md5 in self.files:
            fetch_file_md5(self.base_url + name, md5, dest / name)

    def _fixation_files(self, root: Path) -> list[Path]:
        files = sorted(p for p in root.rglob(self.fixation_glob) if p.is_file())
        if not files:
            raise DataError(f"{self.name}: no {self.fixation_glob} file under {root}")
        return files

    def source_files(self, root: Path) -> list[Path]:
        return self._fixation_files(root) + coco_search_image_files(root)

    def _scanpaths(self, root: Path):
        """(path, index, trial dict, X, Y, T) of every trial in every fixation file, in file order."""
        for path in self._fixation_files(root):
            data = read_json(self.name, path)
            if not isinstance(data, list):
                raise DataError(f"{self.name}: {path} is not a list of trials")
            for i, item in enumerate(data):
                x, y, t = scanpath_arrays(self.name, path, i, item)
                yield path, i, item, x, y, t
