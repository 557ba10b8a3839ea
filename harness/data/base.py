"""The base class of every gaze dataset plugin: locate the data, convert it once to Arrow, cache it.

A plugin subclasses :class:`GazeDataset`, sets the class attributes and implements two methods::

    class MyData(GazeDataset):
        name = "mydata"
        pixels_per_degree = 35.0          # say where the number comes from
        tasks = ("free-viewing",)
        converter_version = "1"           # bump when convert() changes its output
        source_url = "https://..."

        def source_files(self, root):     # what the fingerprint covers
            return [root / "fixations.mat", *sorted((root / "images").glob("*.jpg"))]

        def convert(self, root):          # yield canonical records (see harness.schema)
            for ...:
                size = self.image_size(image_path)          # None: counted skip
                if size is None:
                    continue
                fixations = self.fixation_list("s01", x, y, width=w, height=h, duration_ms=d)
                if not fixations:
                    self.skip("skipped_no_fixations", image_path.name)
                    continue
                yield {"stimulus_id": ..., "image": str(image_path), "width": w, "height": h,
                       "fixations": fixations}

and optionally ``download(self, dest)``, which fills the empty folder ``dest`` from the original
source (the base class installs it atomically).

Images of different sizes, each scaled to the screen: add ``"display_scale"`` (display pixels per
image pixel) to each record and set ``display_pixels_per_degree`` when the viewing distance is
known (or add a record's own ``"pixels_per_degree"``); each stimulus is then blurred by the same
visual angle (:mod:`harness.schema`, :func:`harness.data.density.stimulus_sigma_px`). Both fields
are optional; :meth:`GazeDataset._checked` refuses a value that is not positive and finite (None or
NaN mean "not known").

The base class provides :meth:`root` (data folder resolution, see :mod:`harness.data.paths`),
:meth:`load` (``datasets.Dataset`` in :data:`harness.schema.FEATURES`, cached), :meth:`fingerprint`
and :meth:`info`.

Caching: the Arrow table is written under ``<cache>/arrow/<name>/<fingerprint[:16]>/``. The
fingerprint is a SHA-256 over the dataset name, ``converter_version``, the canonical schema and the
*content* (SHA-256) of every source file. Content rather than ``(size, mtime)`` because copies,
checkouts and re-downloads change mtimes without changing data, and an in-place edit that keeps size
and mtime must still invalidate. Hashing is cheap (OSIE's 50 MB take ~0.05 s) and is memoised per
file by ``(size, mtime_ns, ctime_ns, inode)`` under ``<cache>/hashes/`` for large datasets (the change
time cannot be set back, so an edit that restores the size and mtime is still seen). ``save_to_disk`` embeds
the image bytes, so the cache is self-contained and does not depend on where the data folder is.
A conversion is written into a temporary folder and renamed into place, so a failure or interrupt
never leaves a half-written cache.

Every converted record is checked (:meth:`GazeDataset._checked`): fields of the schema only, a
valid and unique ``stimulus_id`` (:func:`harness.ids.validate_stimulus_id`; ids name files later,
so ``../x`` must never get through), fixations inside the image. A cached table is read back
without converting, so :meth:`load` re-checks its stimulus ids and rebuilds a cache holding an id
the rule refuses (made before the rule, or edited since); the fingerprint does not cover the rule.
"""

from __future__ import annotations

import json
import re
import math
import os
import shutil
import tempfile
import time
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar, Iterator

from ..errors import DataError, HarnessError, PluginError
from ..ids import validate_stimulus_id
from ..modes import as_if_created
from . import paths

META_FILE = "meta.json"
DATA_SUBDIR = "data"
#: meta.json's mark of a table whose images are stored as the observers saw them (no EXIF orientation
#: that a decoder would apply: :func:`_as_shown`); tables converted before that rule lack it
AS_STORED = "images_as_stored"


class GazeDataset:
    """A gaze dataset plugin. See the module docstring for how to write one."""

    #: registered name, also the folder name under ``$HARNESS_DATA_DIR`` and the cache
    name: ClassVar[str] = ""
    #: pixels of the stored stimulus per degree of visual angle (document the source in the subclass);
    #: for every stimulus, when all were seen at the same scale. A record's own ``pixels_per_degree``
    #: (see :mod:`harness.schema`) overrides it for that stimulus
    pixels_per_degree: ClassVar[float] = float("nan")
    #: display (screen) pixels per degree, for datasets whose images were each scaled to the screen:
    #: a record with a ``display_scale`` (display pixels per image pixel) and no ``pixels_per_degree``
    #: of its own has ``display_pixels_per_degree / display_scale`` image pixels per degree. NaN when
    #: the viewing distance is not known (``--sigma-px`` then counts display pixels per image, see
    #: :func:`harness.data.density.stimulus_sigma_px`). Not part of the cache key, like
    #: ``pixels_per_degree``: the density depends on it, the converted table does not
    display_pixels_per_degree: ClassVar[float] = float("nan")
    #: tasks the dataset supports, e.g. ("free-viewing",)
    tasks: ClassVar[tuple[str, ...]] = ()
    #: dataset class -> model labels that also name it (e.g. ImageNet WNIDs), for classifiers whose
    #: label set is not the dataset's; the classification task counts a prediction of any of them
    #: as right, and the run's settings record the mapping
    label_aliases: ClassVar[dict[str, list[str]] | None] = None
    #: the same for detectors' category names, used by detection only (with ``label_aliases``):
    #: POET's ``aeroplane`` is a COCO detector's ``airplane``
    detection_aliases: ClassVar[dict[str, list[str]] | None] = None
    #: False when ``objects`` holds only some categories' boxes (the search target's, the class of
    #: the file): detection then scores, per image, only predictions of the categories annotated in
    #: it or searched for, since any other correct detection would count as a false positive
    objects_exhaustive: ClassVar[bool] = True
    #: bump whenever convert() produces different records: it invalidates every cached table
    converter_version: ClassVar[str] = "1"
    #: where the data comes from (named in errors and ``info``)
    source_url: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        self.data_dir = Path(data_dir).expanduser() if data_dir else None
        self.cache_dir = paths.cache_root(cache_dir)
        #: counters filled by convert(): ``dropped_*`` (fixations), ``skipped_*`` (stimuli), notes
        self.stats: dict[str, Any] = {}
        #: one line per skipped stimulus: "<file>: <reason>"
        self.skipped: list[str] = []
        self._root: Path | None = None
        self._fingerprint: str | None = None
        #: the files the fingerprint covers (absolute, normalised), filled by fingerprint()
        self._sources: set[str] | None = None

    # ----------------------------------------------------------------- subclass interface
    def source_files(self, root: Path) -> list[Path]:
        """The files the conversion reads; their content makes up the fingerprint."""
        raise PluginError(f"dataset {self.name!r} ({type(self).__name__}) must implement source_files(root) "
                          "(docs/plugins.md)")

    def convert(self, root: Path) -> Iterator[dict]:
        """Yield canonical records (see :mod:`harness.schema`), counting drops in ``self.stats``."""
        raise PluginError(f"dataset {self.name!r} ({type(self).__name__}) must implement convert(root) "
                          "(docs/plugins.md)")

    def download(self, dest: Path) -> None:
        """Fill the empty folder ``dest`` from the original source (optional)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers for convert()
    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + int(n)

    def skip(self, key: str, item: str, reason: str = "") -> None:
        """Count a skipped stimulus under ``key`` (``skipped_...``) and remember which and why."""
        self.count(key)
        self.skipped.append(f"{item}: {reason or key.replace('skipped_', '').replace('_', ' ')}")

    def image_size(self, path: Path, expected: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """(width, height) of a readable image, decoding it fully to catch truncated or corrupt
        files; ``None`` (a counted skip) for a missing or unreadable one, or for one whose size is not
        ``expected`` (the size the fixations were recorded on)."""
        from PIL import Image, UnidentifiedImageError

        if self._root is not None:  # a name from the annotations (not trusted) is not opened outside the data
            inside, base = os.path.normpath(os.path.abspath(path)), os.path.normpath(os.path.abspath(self._root))
            if os.path.commonpath([inside, base]) != base:
                raise DataError(f"{self.name}: image {path} lies outside the data folder {self._root} (a file name "
                                "from the annotations must stay inside it)")
        if not path.is_file():
            self.skip("skipped_missing_image", str(path), "image file missing")
            return None
        try:
            with Image.open(path) as im:
                size = im.size
                im.load()
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            self.skip("skipped_corrupt_image", str(path), f"unreadable image ({type(exc).__name__}: {exc})")
            return None
        size = int(size[0]), int(size[1])
        if expected is not None and size != tuple(expected):
            self.skip("skipped_unexpected_size", str(path),
                      f"{size[0]}x{size[1]} image, the fixations were recorded on {expected[0]}x{expected[1]}")
            return None
        return size

    def fixation_list(self, subject: str, x, y, *, width: int, height: int, duration_ms=None,
                      start_ms=None, where: str | None = None) -> list[dict]:
        """Canonical fixation dicts from arrays already in 0-indexed pixel coordinates. Fixations
        outside ``[0, width-1] x [0, height-1]`` (the pixel-centre grid, so rounding always gives a
        valid pixel) are dropped and counted as ``dropped_out_of_bounds``; non-finite ones as
        ``dropped_invalid``. Missing durations/onsets become NaN, and so do negative or infinite durations
        (counted as ``invalid_durations``). ``where`` (the file and stimulus
        the arrays come from) is named in the error for arrays that are not real numbers or differ
        in length."""
        import numpy as np

        at = f"{self.name}: {where + ': ' if where else ''}subject {subject}"
        given = {"x": x, "y": y, "duration": duration_ms, "onset": start_ms}
        arrays = {}
        for key, value in given.items():
            if value is None:
                continue
            try:
                a = np.asarray(value)
                if np.iscomplexobj(a) or a.dtype.kind not in "biuf":  # complex: numpy drops the imaginary part
                    raise TypeError(f"dtype {a.dtype}")
                arrays[key] = np.atleast_1d(a.astype(np.float64)).ravel()
            except (TypeError, ValueError) as exc:
                raise DataError(f"{at}: {key} is not an array of real numbers ({exc})") from None
        x, y = arrays["x"], arrays["y"]
        n = x.size
        if len({a.size for a in arrays.values()}) > 1:
            raise DataError(f"{at}: {', '.join(arrays)} arrays differ in length "
                            f"({', '.join(str(a.size) for a in arrays.values())})")
        dur = arrays.get("duration", np.full(n, np.nan))
        start = arrays.get("onset", np.full(n, np.nan))
        finite = np.isfinite(x) & np.isfinite(y)
        inside = finite & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        # a negative or infinite duration was stored as it was (found by QA): not known, so NaN
        bad_duration = inside & ~np.isnan(dur) & ~(np.isfinite(dur) & (dur >= 0))
        if bad_duration.any():  # counted only then: `datasets info` lists it where there were any
            dur = np.where(bad_duration, np.nan, dur)
            self.count("invalid_durations", int(bad_duration.sum()))
        if n:
            self.count("dropped_invalid", int((~finite).sum()))
            self.count("dropped_out_of_bounds", int((finite & ~inside).sum()))
        return [
            {"subject": subject, "x": float(x[i]), "y": float(y[i]),
             "start_ms": float(start[i]), "duration_ms": float(dur[i])}
            for i in np.flatnonzero(inside)
        ]

    # ----------------------------------------------------------------- data folder
    def has_download(self) -> bool:
        return type(self).download is not GazeDataset.download

    def root(self) -> Path:
        """The data folder (see :mod:`harness.data.paths`); downloads when nothing is found."""
        if self._root is not None:
            return self._root
        if self.data_dir is not None:
            if not self.data_dir.is_dir():
                why = "is a file, not a folder" if self.data_dir.exists() else "does not exist"
                raise DataError(f"{self.name}: data folder {self.data_dir} (given with --data-dir) {why}")
            self._root = self.data_dir
            return self._root
        candidates = paths.candidate_data_dirs(self.name, self.cache_dir)
        for folder, _origin in candidates:
            if folder.is_dir():
                self._root = folder
                return self._root
        looked = ", ".join(f"{folder} ({origin})" for folder, origin in candidates)
        target = paths.downloaded_data_dir(self.name, self.cache_dir)
        if not self.has_download():
            raise DataError(
                f"{self.name}: data not found (looked in {looked}); get it from {self.source_url} "
                f"and pass --data-dir or set ${paths.DATA_ENV}"
            )
        from filelock import FileLock

        from .download import install_atomically, remove_leftovers

        try:
            # one process downloads, the others (ranks of a launcher) wait and use its folder
            with FileLock(str(self._lock_path(f"download-{self.name}"))):
                if not target.is_dir():
                    if target.parent.is_dir():  # what a download killed mid-way left
                        remove_leftovers(target.parent, lambda name: name.startswith(f".{target.name}.download-"))
                    install_atomically(target, self.download)
        except HarnessError as exc:
            raise DataError(f"{self.name}: data not found (looked in {looked}) and download failed: {exc}") from exc
        except Exception as exc:
            raise DataError(
                f"{self.name}: data not found (looked in {looked}) and download failed: {type(exc).__name__}: {exc}"
            ) from exc
        self._root = target
        return self._root

    # ----------------------------------------------------------------- fingerprint and cache
    def fingerprint(self) -> str:
        """SHA-256 (hex) of name, converter_version, the schema and the content of the source files."""
        if self._fingerprint is not None:
            return self._fingerprint
        import hashlib

        from ..schema import FEATURES

        root = self.root()
        h = hashlib.sha256()
        header = {"name": self.name, "converter_version": str(self.converter_version),
                  "schema": FEATURES.to_dict()}
        code = _converter_code(type(self))
        if code:  # a third-party converter edited without a bump converted other tables under one fingerprint
            header["converter_code"] = code
        h.update(json.dumps(header, sort_keys=True, default=str).encode())
        memo = _HashMemo(self.cache_dir / "hashes" / f"{self.name}.json")
        try:
            files = sorted({Path(p) for p in self.source_files(root)})
        except HarnessError:
            raise
        except (OSError, UnicodeError) as exc:  # the data: an index file unreadable, or not text
            where = f" {exc.filename}" if getattr(exc, "filename", None) else f" in {root}"
            raise DataError(f"{self.name}: cannot read the list of source files{where}: "
                            f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # a plugin's bug: one line naming it, not a traceback
            raise PluginError(f"dataset {self.name!r} ({type(self).__name__}): source_files() failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        self._sources = {os.path.normpath(os.path.abspath(p)) for p in files}
        for path in files:
            try:
                size, digest = memo.digest(path)
            except FileNotFoundError as exc:
                raise DataError(f"{self.name}: missing data file {path}") from exc
            except OSError as exc:
                raise DataError(f"{self.name}: cannot read {path}: {exc.strerror or exc}") from exc
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
            h.update(f"{rel}\0{size}\0{digest}\n".encode())
        memo.save()
        self._fingerprint = h.hexdigest()
        return self._fingerprint

    def cache_path(self) -> Path:
        """The folder holding this data's converted table (exists once :meth:`load` ran)."""
        return paths.arrow_cache_dir(self.name, self.cache_dir) / self.fingerprint()[:16]

    def stale_caches(self) -> list[Path]:
        """Converted tables of this dataset that the current data no longer produces (older
        converter versions or changed source files), and the temporary folders of conversions
        killed mid-way; :meth:`load` never reads them again. Remove one with :meth:`remove_stale`."""
        return [path for path, why in self._cached_tables() if why is None]

    def other_folders_tables(self) -> list[tuple[Path, str]]:
        """Tables of this dataset that another data folder, still there, produces with this
        converter (the cache is shared by every folder of a dataset): ``(path, that folder)``; not
        stale, since the folder they were converted from may still be used."""
        return [(path, why) for path, why in self._cached_tables() if why is not None]

    def _cached_tables(self) -> list[tuple[Path, str | None]]:
        """Every table but the current one: ``(path, None)`` for a stale one, ``(path, folder)``
        for the current table of another existing ``folder``. A link is never a table of ours."""
        parent = paths.arrow_cache_dir(self.name, self.cache_dir)
        if not parent.is_dir():
            return []
        current = self.fingerprint()[:16]
        here = Path(self.root()).resolve()
        out: list[tuple[Path, str | None]] = []
        for p in sorted(parent.iterdir()):
            if p.is_symlink() or not p.is_dir() or p.name == current:
                continue
            if not _TABLE_NAME.match(p.name):  # not a folder a conversion made: never ours to remove (QA)
                continue
            folder = None
            if not p.name.startswith("."):  # a killed conversion's folder: always stale
                try:
                    meta = json.loads((p / META_FILE).read_text())
                    source = Path(meta.get("source_root") or "")
                    if (str(meta.get("converter_version")) == str(self.converter_version) and source.is_absolute()
                            and source.is_dir() and source.resolve() != here):
                        folder = str(source)
                except (OSError, ValueError, AttributeError):
                    pass  # no readable record of where it came from: stale
            out.append((p, folder))
        return out

    def remove_stale(self, path: Path) -> bool:
        """Remove ``path``, one of :meth:`stale_caches`, holding the lock its conversion holds (the
        leftover folder of a killed conversion is its table's); False, and nothing removed, while
        another process converts it."""
        from filelock import FileLock, Timeout

        table = path.name[1:].split(".tmp-", 1)[0] if path.name.startswith(".") else path.name
        try:
            with FileLock(str(self._lock_path(f"convert-{self.name}-{table}")), timeout=0):
                shutil.rmtree(path)
        except Timeout:
            return False
        return True

    def load(self):
        """The dataset as a ``datasets.Dataset`` in the canonical schema, converted once and cached.

        One process converts, the others wait for it (a lock file under the cache's ``locks/``): every rank of
        ``torchrun --nproc_per_node 8`` on a fresh cache used to convert the whole dataset at once.
        A converted cache is read without the lock (a shared read-only cache works)."""
        from filelock import FileLock

        final = self.cache_path()
        ds = self._cached(final)
        if ds is not None:
            return ds
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self._lock_path(f"convert-{self.name}-{final.name}"))):
            ds = self._cached(final, repair=True)  # converted by another process meanwhile?
            if ds is None:
                from .download import remove_leftovers

                # a conversion killed mid-way left its temporary folder (this lock is every converter's)
                remove_leftovers(final.parent, lambda name: name.startswith(f".{final.name}.tmp-"))
                self._build(final)
                ds = self._cached(final)
                if ds is None:
                    raise DataError(f"{self.name}: the converted dataset in {final} cannot be read back")
        return ds

    def _lock_path(self, name: str) -> Path:
        """A lock file under the cache's ``locks/`` (lock files are never deleted, lest a process
        waiting on one race a third: kept apart from the data)."""
        locks = paths.cache_root(self.cache_dir) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{name}.lock"

    def _cached(self, final: Path, repair: bool = False):
        """The converted dataset in ``final``, or None when absent or unreadable; with ``repair``
        (under the conversion lock) an unreadable or invalid one is removed, to be rebuilt: never
        trusted."""
        import datasets

        if not (final / META_FILE).is_file():
            return None
        try:
            ds = datasets.load_from_disk(str(final / DATA_SUBDIR))
            _check_cached_ids(ds)
            meta = self._read_meta(final)
        except Exception:
            if repair:
                shutil.rmtree(final, ignore_errors=True)
            return None
        if not meta.get(AS_STORED):
            self._check_orientation(final, ds, meta)
        return ds

    def _check_orientation(self, final: Path, ds, meta: dict) -> None:
        """A table converted before images were stored as the observers saw them (:func:`_as_shown`)
        may hold images that decode turned: such a table is refused with what to remove (its
        fingerprint, of the source files, is the same as a new table's, so the runs scored on it
        would be reused too). One without any is marked, so that it is looked at once."""
        turned = [sid for sid, image in zip(ds["stimulus_id"], ds.data.column("image").to_pylist())
                  if _orientation(image) not in (None, 1)]
        if turned:
            shown = ", ".join(str(s) for s in turned[:3]) + (f" and {len(turned) - 3} more" if len(turned) > 3 else "")
            raise DataError(f"{self.name}: the converted table {final} predates images stored as shown: {len(turned)} "
                            f"of its images ({shown}) carry an EXIF orientation and decode turned; remove it "
                            f"(rm -r {final}) and the run folders scored on it, then run again")
        from ..results.files import atomic_write_bytes

        try:
            atomic_write_bytes(final / META_FILE, json.dumps({**meta, AS_STORED: True}, indent=2).encode())
        except OSError:
            pass  # a read-only shared cache: looked at again next time (a fraction of a second for OSIE)

    def _build(self, final: Path) -> None:
        import datasets

        from ..schema import GEOMETRY_FIELDS, features_for

        root = self.root()
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
        try:
            as_if_created(tmp, folder=True)  # not mkdtemp's 0700: a cache shared by a lab stays readable
            self.stats, self.skipped = {}, []
            t0 = time.perf_counter()
            records = list(self._checked(self.convert(root), root))
            if not records:  # why each was skipped, or nobody could tell: no table, no `datasets info` (QA)
                counts = ", ".join(f"{int(n)} {k.removeprefix('skipped_').replace('_', ' ')}"
                                   for k, n in sorted(self.stats.items()) if k.startswith("skipped_") and n)
                first = f"; the first: {self.skipped[0]}" if self.skipped else ""
                raise DataError(f"{self.name}: no usable stimuli in {root}"
                                + (f" (skipped: {counts}{first})" if counts else ""))
            features = features_for(records)
            if set(GEOMETRY_FIELDS) <= set(features):  # a record without them: not known (NaN)
                records = [{**{k: math.nan for k in GEOMETRY_FIELDS}, **r} for r in records]
            ds = datasets.Dataset.from_list(records, features=features)
            was_enabled = datasets.is_progress_bar_enabled()
            datasets.disable_progress_bars()
            try:
                ds.save_to_disk(str(tmp / DATA_SUBDIR))
            finally:
                if was_enabled:
                    datasets.enable_progress_bars()
            meta = {
                "name": self.name, "fingerprint": self.fingerprint(),
                "converter_version": str(self.converter_version), "source_root": os.path.abspath(root),  # absolute, links kept: the folder as the user named it
                "stats": self.stats, "skipped": self.skipped, AS_STORED: True,
                "convert_seconds": round(time.perf_counter() - t0, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / META_FILE).is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # a concurrent run finished first: keep theirs
        except HarnessError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise DataError(f"{self.name}: converting {root} failed: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _checked(self, records, root: Path | None = None) -> Iterator[dict]:
        """Fill absent task fields with None and enforce the canonical invariants on each record:
        schema fields only, a valid (:func:`harness.ids.validate_stimulus_id`) and unique
        ``stimulus_id``, fixations inside the image. Any violation is a one-line ``DataError``."""
        from ..schema import FEATURES, empty_task_fields

        from ..schema import GEOMETRY_FIELDS

        allowed = set(FEATURES) | set(GEOMETRY_FIELDS)
        seen: set[str] = set()
        for rec in records:
            if not isinstance(rec, dict):
                raise DataError(f"{self.name}: convert() yielded {type(rec).__name__}, not a record (dict)")
            sid = rec.get("stimulus_id")
            try:
                validate_stimulus_id(sid)
            except ValueError as exc:
                raise DataError(f"{self.name}: record {_short_repr(sid)}: invalid stimulus_id: {exc}") from None
            unknown = set(rec) - allowed
            if unknown:
                raise DataError(f"{self.name}: record {sid!r} has fields outside the schema: {sorted(unknown)}")
            missing = [k for k in ("image", "width", "height", "fixations") if rec.get(k) is None]
            if missing:
                raise DataError(f"{self.name}: record {sid!r} lacks {', '.join(missing)}")
            if sid in seen:
                raise DataError(f"{self.name}: duplicate stimulus_id {sid!r}")
            seen.add(sid)
            for key in GEOMETRY_FIELDS:
                if key in rec:
                    rec = {**rec, key: self._geometry_value(sid, key, rec[key])}
            if root is not None:
                self._check_inside(sid, rec["image"], root)
            try:
                image = _as_shown(rec["image"])
            except _Turned as exc:  # an orientation that cannot be taken off: which way it was shown is unknown
                self.skip("skipped_exif_orientation", sid, str(exc))
                continue
            if image is not rec["image"]:
                rec = {**rec, "image": image}
            w, h = self._checked_size(sid, rec)
            fixations = rec["fixations"]
            if not isinstance(fixations, (list, tuple)):
                raise DataError(f"{self.name}: record {sid!r}: fixations must be a list of dicts, "
                                f"got {type(fixations).__name__}")
            for f in fixations:
                self._check_fixation(sid, f, w, h)
            for obj in rec.get("objects") or ():
                self._check_object(sid, obj)
            if not fixations:  # the schema's invariant: every stimulus has fixations
                self.skip("skipped_no_fixations", sid, "no fixations")
                continue
            out = empty_task_fields()
            out.update(rec)
            yield out

    def _checked_size(self, sid: str, rec: dict) -> tuple[int, int]:
        """The record's ``(width, height)``: positive integers, and the size of its image where
        the image can be read here (a path, bytes, a PIL image, an array): a size that is not the
        image's would blur and score every stimulus on the wrong grid."""
        size = []
        for key in ("width", "height"):
            value = rec[key]
            if isinstance(value, bool) or not isinstance(value, Real) or not float(value).is_integer() or value < 1:
                raise DataError(f"{self.name}: record {sid!r}: {key} must be a positive integer, got {value!r}")
            size.append(int(value))
        actual = _image_size(rec["image"])
        if isinstance(actual, str):
            raise DataError(f"{self.name}: record {sid!r}: {actual}")
        if actual is not None and actual != tuple(size):
            raise DataError(f"{self.name}: record {sid!r}: width x height {size[0]}x{size[1]}, but its image is "
                            f"{actual[0]}x{actual[1]} (read the size from the image: image_size())")
        return size[0], size[1]

    def _check_inside(self, sid: str, image: Any, root: Path) -> None:
        """An image named by a path must lie in the data folder: a name taken from an annotation
        file (data, not trusted) such as ``../../secret.jpg`` or an absolute path would otherwise
        put a file from anywhere into the cache, outside the fingerprint. Lexically (``..`` and
        absolute paths), so that a folder the user linked in stays usable."""
        if isinstance(image, dict):
            image = image.get("path") if not image.get("bytes") else None
        if not isinstance(image, (str, os.PathLike)):
            return
        path = os.path.normpath(os.path.abspath(os.fspath(image)))  # as datasets will open it
        base = os.path.normpath(os.path.abspath(root))
        if os.path.commonpath([path, base]) != base:
            raise DataError(f"{self.name}: record {sid!r}: its image {os.fspath(image)} lies outside the data "
                            f"folder {root} (a file name from the annotations must stay inside it)")
        if self._sources is None:
            self.fingerprint()
        if path not in self._sources and os.path.exists(path):  # a missing one is said by _checked_size
            # an image the annotations name in a sub-folder (or as .JPG) that the fingerprint's list
            # missed: a new image there kept serving the old table (found by QA)
            raise DataError(f"{self.name}: record {sid!r}: its image {os.path.relpath(path, base)} is not among "
                            "the files the dataset's fingerprint covers (source_files()), so a change to it would "
                            "not rebuild the converted table")

    def _check_object(self, sid: str, obj: Any) -> None:
        """A detection reference: ``bbox`` [x, y, w, h] finite with w, h >= 0 and a ``category``
        name (a NaN or negative box would be scored by pycocotools as if valid)."""
        import math

        box = obj.get("bbox") if isinstance(obj, dict) else None
        ok = (isinstance(box, (list, tuple)) and len(box) == 4
              and all(isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in box)
              and box[2] >= 0 and box[3] >= 0 and isinstance(obj.get("category"), str))
        if not ok:
            raise DataError(f"{self.name}: record {sid!r}: an object must be {{bbox: [x, y, w, h] finite, w and h "
                            f">= 0, category: a name}}, got {_short_repr(obj)}")

    def _check_fixation(self, sid: str, f: Any, w: int, h: int) -> None:
        if not isinstance(f, dict) or "x" not in f or "y" not in f or "subject" not in f:
            raise DataError(f"{self.name}: record {sid!r}: a fixation must be a dict with subject, x and y, "
                            f"got {_short_repr(f)}")
        x, y = f["x"], f["y"]
        if not all(isinstance(v, Real) and not isinstance(v, bool) for v in (x, y)):
            raise DataError(f"{self.name}: record {sid!r}: fixation x and y must be numbers, got ({x!r}, {y!r})")
        if not (0 <= x <= w - 1 and 0 <= y <= h - 1):
            raise DataError(
                f"{self.name}: record {sid!r}: fixation ({x}, {y}) outside the "
                f"{w}x{h} image (converter bug: use fixation_list)"
            )

    def _geometry_value(self, sid: str, key: str, value: Any) -> float:
        """A record's ``pixels_per_degree`` / ``display_scale``: a positive finite number, or NaN
        (None and NaN both mean "not known for this record")."""
        if value is None:
            return math.nan
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{self.name}: record {sid!r}: {key} must be a number, got {value!r}") from None
        if math.isnan(v):
            return math.nan
        if not (math.isfinite(v) and v > 0):
            raise DataError(f"{self.name}: record {sid!r}: {key} must be positive and finite (or NaN: not known), "
                            f"got {v}")
        return v

    def _read_meta(self, folder: Path) -> dict:
        meta = json.loads((folder / META_FILE).read_text())
        self.stats = dict(meta.get("stats", {}))
        self.skipped = list(meta.get("skipped", []))
        # the cache is shared by content: a copy of the data elsewhere reuses the table the first
        # folder converted; its skipped files are named in the folder this object reads
        then, now = meta.get("source_root"), self._root
        if isinstance(then, str) and now is not None and os.path.abspath(now) != then:
            here = os.path.abspath(now)
            self.skipped = [item.replace(then + os.sep, here + os.sep) if isinstance(item, str) else item
                            for item in self.skipped]
        return meta

    # ----------------------------------------------------------------- description
    def info(self) -> dict:
        """What ``harness datasets info`` prints: counts, drops, skips, locations, fingerprint."""
        import numpy as np
        import pyarrow.compute as pc

        ds = self.load()
        col = ds.data.column("fixations").combine_chunks()
        lengths = np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False), dtype=np.int64)
        flat = pc.list_flatten(col)
        subjects = len(pc.unique(flat.field("subject"))) if len(flat) else 0
        per_image = {
            "mean": float(lengths.mean()) if lengths.size else math.nan,
            "min": int(lengths.min()) if lengths.size else 0,
            "max": int(lengths.max()) if lengths.size else 0,
        }
        stats = self.stats
        return {
            "name": self.name,
            "description": self.description,
            "tasks": list(self.tasks),
            "pixels_per_degree": self.pixels_per_degree,
            "display_pixels_per_degree": self.display_pixels_per_degree,
            "per_stimulus_geometry": _geometry_summary(ds),
            "source_url": self.source_url,
            "images": len(ds),
            "subjects": subjects,
            "fixations": int(lengths.sum()),
            "fixations_per_image": per_image,
            "dropped": {k: v for k, v in sorted(stats.items()) if k.startswith("dropped_")},
            "skipped": {k: v for k, v in sorted(stats.items()) if k.startswith("skipped_")},
            "skipped_items": list(self.skipped),
            "notes": {k: v for k, v in sorted(stats.items()) if not k.startswith(("dropped_", "skipped_"))},
            "data_dir": str(self.root()),
            "cache_dir": str(self.cache_path()),
            "converter_version": str(self.converter_version),
            "fingerprint": self.fingerprint(),
        }


#: the folders a conversion makes under arrow/<name>/: a table (the fingerprint's first 16 hex digits)
#: and, while it runs or after it was killed, its temporary folder
_TABLE_NAME = re.compile(r"^(\.)?[0-9a-f]{16}(?(1)\.tmp-.+)$")


def _geometry_summary(ds) -> dict[str, Any]:
    """For each per-record geometry column the table has: how many records state it, and the range."""
    import numpy as np

    from ..schema import GEOMETRY_FIELDS

    out: dict[str, Any] = {}
    for key in GEOMETRY_FIELDS:
        if key not in ds.column_names:
            continue
        values = np.asarray(ds.data.column(key).to_numpy(zero_copy_only=False), dtype=np.float64)
        known = values[np.isfinite(values)]
        out[key] = {"records": int(known.size),
                    "min": float(known.min()) if known.size else math.nan,
                    "max": float(known.max()) if known.size else math.nan}
    return out


def _short_repr(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut in the middle when long (an error message stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def _check_cached_ids(ds) -> None:
    """Raise ``ValueError`` if a cached table holds a stimulus id that :meth:`GazeDataset._checked`
    would refuse, or a stimulus without fixations (a table converted before the rule existed, or
    edited since): :meth:`load` then rebuilds it, and the conversion names the offending record or
    skips it. (The list lengths come from the column's offsets: no fixation is read.)"""
    import pyarrow.compute as pc

    for sid in ds.data.column("stimulus_id").to_pylist():
        validate_stimulus_id(sid)
    lengths = pc.list_value_length(ds.data.column("fixations"))
    if lengths.null_count or (len(lengths) and pc.min(lengths).as_py() < 1):
        raise ValueError("a stimulus without fixations")


def _image_size(image: Any) -> tuple[int, int] | str | None:
    """``(width, height)`` of a record's image as ``datasets.Image`` will store it (a path, bytes,
    ``{"bytes"|"path": ...}``, a PIL image, an array), from its header only; a message when it cannot
    be read; None for anything else (``datasets`` then says what it thinks of it)."""
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, dict):
        image = image.get("bytes") or image.get("path")
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        return int(image.shape[1]), int(image.shape[0])
    if isinstance(image, (bytes, bytearray)):
        source, what = io.BytesIO(image), "its image bytes"
    elif isinstance(image, (str, os.PathLike)):
        source, what = image, f"image {os.fspath(image)}"
    else:
        return None
    try:
        with Image.open(source) as im:
            return int(im.size[0]), int(im.size[1])
    except FileNotFoundError:
        return f"{what} does not exist"
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        return f"{what} cannot be read ({type(exc).__name__}: {exc})"


def _as_shown(image: Any) -> Any:
    """The record's image as the observers saw it: its stored pixels. ``datasets`` rotates or mirrors
    an image with an EXIF orientation other than 1 when it decodes it (``ImageOps.exif_transpose``),
    but eye-tracking software (MATLAB's ``imread``, Psychtoolbox, PsychoPy) and pysaliency show and
    read the pixels as stored: a rotated image failed its stimulus (a map of another shape), a
    mirrored one was scored against fixations on its mirror image, in silence. A JPEG (path or
    bytes) with such an orientation comes back as ``{"bytes": ..., "path": None}`` without its EXIF
    segment (the compressed pixels untouched); an image of another format with one raises
    :class:`_Turned` (the stimulus is skipped); anything else comes back as it is."""
    data = path = None
    if isinstance(image, dict):
        data, path = image.get("bytes"), image.get("path")
    elif isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
    else:
        return image
    found = _exif_orientation(data, path)
    if found is None:
        return image  # _checked_size says what is wrong with it
    orientation, kind = found
    if orientation in (None, 1):
        return image
    if kind == "JPEG":
        if data is None:
            with open(path, "rb") as fh:
                data = fh.read()
        stripped = _without_exif(data)
        if stripped is not None:
            return {"bytes": stripped, "path": None}  # datasets would read an existing path's file instead
    raise _Turned(f"EXIF orientation {orientation} on a {kind} image: decoders would turn it, the observers "
                  "likely saw it unturned; store the image without the tag")


def _exif_orientation(data: bytes | None, path: str | None) -> tuple[int | None, str | None] | None:
    """(EXIF orientation or None, format) of an image given as bytes or a path (from its header);
    None when it cannot be read."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if data else path) as im:
            return im.getexif().get(0x0112), im.format  # PIL.ExifTags.Base.Orientation
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def _orientation(image: Any) -> int | None:
    """The EXIF orientation of a stored image (``{"bytes", "path"}`` as ``datasets`` keeps it), None
    without one or when it cannot be read."""
    if not isinstance(image, dict) or not (image.get("bytes") or image.get("path")):
        return None
    found = _exif_orientation(image.get("bytes"), image.get("path"))
    return found[0] if found is not None else None


class _Turned(ValueError):
    """An image whose EXIF orientation :func:`_as_shown` cannot take off."""


def _without_exif(data: bytes) -> bytes | None:
    """A JPEG file's bytes without its EXIF (APP1 ``Exif``) segments, the rest byte for byte; None
    where the markers do not parse."""
    if data[:2] != b"\xff\xd8":
        return None
    out, i = [data[:2]], 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xDA:  # start of scan: the compressed pixels follow, kept as they are
            out.append(data[i:])
            return b"".join(out)
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if length < 2:
            return None
        segment = data[i:i + 2 + length]
        if not (marker == 0xE1 and segment[4:10] == b"Exif\x00\x00"):
            out.append(segment)
        i += 2 + length
    return None


class _HashMemo:
    """SHA-256 of files, memoised by (size, mtime_ns, ctime_ns, inode) in a small JSON file; a stale
    or unreadable memo only costs a re-hash. The change time too: an edit that keeps the size and
    puts the modification time back (``os.utime``, ``touch -r``) cannot put it back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.changed = False
        try:
            self.entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def digest(self, file: Path) -> tuple[int, str]:
        from .download import sha256_file

        st = file.stat()
        key = str(file.resolve())
        hit = self.entries.get(key)
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        if hit and len(hit) == 5 and [hit[0], hit[1], hit[3], hit[4]] == stamp:
            return st.st_size, hit[2]
        digest = sha256_file(file)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest, st.st_ctime_ns, st.st_ino]
        self.changed = True
        return st.st_size, digest

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only cache only loses the memo


def _converter_code(cls: type) -> str | None:
    """SHA-256 of the source files that define a third-party dataset class and its bases outside the
    harness (the modules of its MRO), or None for the built-in datasets (whose ``converter_version``
    the harness bumps itself). A plugin author edits ``convert`` without bumping
    ``converter_version``: two tables converted by two codes then shared one fingerprint, and a
    cached table outlived the code that made it (found by a plugin author's QA)."""
    import hashlib
    import sys

    files = []
    for klass in cls.__mro__:
        module = klass.__module__ or ""
        if module == "builtins" or module.split(".")[0] in ("harness", "plugins"):
            continue
        path = getattr(sys.modules.get(module), "__file__", None)
        if path and path.endswith(".py") and path not in files:
            files.append(path)
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        try:
            h.update(Path(path).read_bytes())
        except OSError:  # the file went away after import: its name then
            h.update(path.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
