"""Example maps: the attention maps a run keeps for the leaderboard page's examples.

The page shows, for each run, the stimuli on which the model agreed best, median and worst with
human gaze by NSS, then more stimuli at evenly spaced NSS ranks for paging. Which stimuli those are
is known only when the run is complete, so while it is computed the map of every scored stimulus
is kept *small* (longest side at most :data:`EXAMPLE_SIDE` pixels, shrunk by a whole factor; an
8-bit grayscale map rescaled from its own minimum..maximum to 0..255) under ``maps/candidates/``,
as a raw array (tens of KB; encoding every one as PNG cost more than shrinking it), written before
the stimulus' shard. When the run finishes, :func:`keep_examples` encodes the candidates of the
chosen stimuli (:func:`example_positions` over :func:`ranked`, :data:`EXAMPLE_MAPS` of them) as
``maps/<stimulus_filename(id, ".png")>`` (a few KB each), names them in ``maps/index.json`` and
deletes the rest, so a finished run folder holds a dozen small maps whatever its size. A resumed
run keeps the candidates of its earlier sessions until it finishes; every rank of a launcher writes
its own.

The leaderboard page (:mod:`harness.leaderboard.site`) makes the same choice from the run's
per-stimulus rows, so the maps it needs are the ones the run kept. Runs written before this kept
full-resolution ``.npy`` maps of their first stimuli only; the page falls back to those.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

#: longest side, at most, in pixels, of a kept example map (the page draws them 360 pixels wide and
#: attention maps are smooth; OSIE's 800x600 maps become 200x150, a smaller map keeps its size)
EXAMPLE_SIDE = 256
#: example maps a finished run keeps: best, median and worst by NSS, then evenly spaced ranks
#: (four pages of three on the page)
EXAMPLE_MAPS = 12
#: the per-stimulus metric the examples are chosen by (higher is better)
RANK_METRIC = "nss"
CANDIDATES = "candidates"
MAPS_INDEX = "index.json"
SCORED = ("ok", "degenerate")


def small_map(smap, side: int = EXAMPLE_SIDE):
    """``smap`` (2-D, any scale) as an 8-bit grayscale array whose longest side is at most ``side``
    pixels: shrunk by a whole factor with a box filter (an 800x600 map becomes 200x150), then its
    minimum is 0 and its maximum 255 (a constant map is all 0). About 1 ms for an 800x600 map."""
    import numpy as np
    from PIL import Image

    m = np.asarray(smap, dtype=np.float32)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0.0).astype(np.float32)
    h, w = m.shape
    factor = max(1, math.ceil(max(h, w) / side))
    img = Image.fromarray(np.ascontiguousarray(m), mode="F")
    if factor > 1:
        img = img.reduce(factor)  # the mean of each factor x factor block
    small = np.asarray(img, dtype=np.float64)
    lo, hi = (float(small.min()), float(small.max())) if small.size else (0.0, 0.0)
    return np.zeros(small.shape, dtype=np.uint8) if not hi > lo else \
        np.clip(np.round((small - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def png_bytes(small) -> bytes:
    """A :func:`small_map` array as PNG bytes (~1.5 ms: PNG's row filters cost more than the
    compression, which is why candidates wait as raw arrays and only the kept ones are encoded)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(small, mode="L").save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def small_map_png(smap, side: int = EXAMPLE_SIDE) -> bytes:
    """:func:`small_map` as PNG bytes."""
    return png_bytes(small_map(smap, side))


#: most pixels a full-resolution ``.npy`` map (:meth:`harness.results.writer.RunWriter.save_map`: the
#: model's map at its stimulus' size) can have: stimuli are decoded by PIL, which refuses an image of
#: more than twice its ``MAX_IMAGE_PIXELS`` (89,478,485) as a decompression bomb
MAX_MAP_PIXELS = 2 * 89_478_485
#: the numpy dtype kinds a map is saved with (bool, signed and unsigned integers, floats)
MAP_KINDS = "biuf"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class MapFileError(ValueError):
    """Why a kept map cannot be shown (its path is for the caller to name)."""


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) a PNG's header declares, from its first 24 bytes (nothing decoded)."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise MapFileError("not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _npy_shape(path: Path):
    """(shape, dtype) an ``.npy`` header declares, checked against what a map can be and against
    the file's size (which must hold the data), without reading the data."""
    import numpy as np
    from numpy.lib import format as npy

    with open(path, "rb") as fh:
        try:
            version = npy.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise MapFileError(f".npy format version {version[0]}.{version[1]} (np.save writes 1.0 or 2.0)")
            reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
            shape, _fortran, dtype = reader(fh)
        except (ValueError, EOFError) as exc:
            raise MapFileError(f"not a .npy array ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        offset = fh.tell()
        size = os.fstat(fh.fileno()).st_size
    if dtype.kind not in MAP_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise MapFileError(f"dtype {dtype.str!r} is not a map's (numbers: bool, integer or float)")
    if len(shape) != 2 or min(shape) < 1:
        raise MapFileError(f"shape {tuple(shape)} is not a map's (height x width, both at least 1)")
    pixels = math.prod(shape)
    if pixels > MAX_MAP_PIXELS:
        raise MapFileError(f"{shape[0]}x{shape[1]} is larger than any stimulus' map can be "
                           f"({MAX_MAP_PIXELS:,} pixels at most)")
    if size - offset < pixels * dtype.itemsize:
        raise MapFileError(f"holds {max(0, size - offset):,} bytes of the {pixels * dtype.itemsize:,} its header "
                           "declares (truncated)")
    return tuple(shape), np.dtype(dtype)


def check_map(path: Path) -> None:
    """:class:`MapFileError` unless ``path`` declares a map that :func:`read_map` may read: a ``.png``
    an example can be (at most :data:`EXAMPLE_SIDE` pixels a side, as :func:`keep_examples` writes
    them), or a 2-D numeric ``.npy`` of at most :data:`MAX_MAP_PIXELS` that the file holds. Reads
    the header only, so a small file that declares a huge image costs nothing."""
    path = Path(path)
    try:
        if path.suffix == ".png":
            w, h = _png_size(path)
            if not (1 <= w <= EXAMPLE_SIDE and 1 <= h <= EXAMPLE_SIDE):
                raise MapFileError(f"{w}x{h} PNG, larger than an example map can be ({EXAMPLE_SIDE} pixels a side)")
        else:
            _npy_shape(path)
    except OSError as exc:
        raise MapFileError(f"unreadable ({exc.strerror or type(exc).__name__})") from None


def read_map(path: Path):
    """A kept map as a float array: a ``.npy`` as saved, a ``.png`` scaled to 0..1. Checked first
    (:func:`check_map`); :class:`MapFileError` says why one cannot be read."""
    import numpy as np

    from PIL import Image

    path = Path(path)
    check_map(path)
    try:
        if path.suffix == ".png":

            with Image.open(path, formats=["PNG"]) as im:
                if max(im.size) > EXAMPLE_SIDE:  # the header read above said otherwise
                    raise MapFileError(f"{im.size[0]}x{im.size[1]} PNG, larger than an example map can be")
                return np.asarray(im.convert("L"), dtype=np.float64) / 255.0
        smap = np.load(path, allow_pickle=False)
    except MapFileError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise MapFileError(f"unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    if smap.ndim != 2 or smap.dtype.kind not in MAP_KINDS:  # the header changed since it was checked
        raise MapFileError(f"not a 2-D numeric map ({smap.dtype.str}, shape {smap.shape})")
    return smap


def ranked(frame, metric: str = RANK_METRIC) -> list[tuple[str, float]]:
    """``(stimulus id, value)`` of the scored stimuli (status ok or degenerate) with a finite
    ``metric``, best (highest) first; ties by stimulus id. Empty when the run has no such column."""
    if frame is None or not len(frame) or metric not in frame.columns or "stimulus_id" not in frame.columns:
        return []
    out = []
    status = frame["status"] if "status" in frame.columns else None
    for k, (sid, value) in enumerate(zip(frame["stimulus_id"], frame[metric])):
        if status is not None and status.iloc[k] not in SCORED:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out.append((str(sid), v))
    out.sort(key=lambda item: (-item[1], item[0]))
    return out


def median_position(n: int) -> int:
    return (n - 1) // 2


def example_positions(n: int, k: int = EXAMPLE_MAPS) -> list[int]:
    """Positions (0 = best) in a ranking of ``n`` stimuli of the ``k`` examples, in the order the
    page shows them: best, median, worst, then evenly spaced ranks from best to worst."""
    if n <= 0 or k <= 0:
        return []
    first = list(dict.fromkeys([0, median_position(n), n - 1]))[:k]
    if k >= n:
        return first + [p for p in range(n) if p not in first]
    extra: list[int] = []
    for j in range(1, k - len(first) + 1):  # k - 3 points strictly between best and worst
        p = round(j * (n - 1) / (k - len(first) + 1))
        if p not in first and p not in extra:
            extra.append(p)
    for p in range(n):  # collisions on a short ranking: the next unused ranks
        if len(first) + len(extra) >= k:
            break
        if p not in first and p not in extra:
            extra.append(p)
    return first + sorted(extra)


def role_of(position: int, n: int) -> str | None:
    """``best``, ``median`` or ``worst`` for those positions of a ranking of ``n``, else None."""
    if n <= 0:
        return None
    if position == 0:
        return "best"
    if position == n - 1:
        return "worst"
    if position == median_position(n):
        return "median"
    return None


def save_candidate(run_dir: Path, stimulus_id: str, small) -> None:
    """Keep the small map of one scored stimulus until the run finishes (atomically): a
    :func:`small_map` array as a raw ``.npy`` (encoded as PNG by :func:`keep_examples` only if it
    is kept, a dozen of a run's maps), or PNG bytes as given."""
    import numpy as np

    from ..ids import stimulus_filename
    from .files import atomic_write_bytes

    folder = Path(run_dir) / "maps" / CANDIDATES
    if isinstance(small, (bytes, bytearray)):
        atomic_write_bytes(folder / stimulus_filename(stimulus_id, ".png"), bytes(small))
        return
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(small, dtype=np.uint8), allow_pickle=False)
    atomic_write_bytes(folder / stimulus_filename(stimulus_id, ".npy"), buf.getvalue())


def _encode_candidate(raw: Path, target: Path) -> None:
    """A raw candidate (:func:`save_candidate`) as the PNG ``target``; a damaged one gives none."""
    import numpy as np

    from .files import atomic_write_bytes

    try:
        shape, dtype = _npy_shape(raw)
        if dtype != np.uint8 or max(shape) > EXAMPLE_SIDE:  # not what save_candidate wrote
            return
        small = np.load(raw, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # MapFileError is a ValueError
        return
    if small.dtype == np.uint8 and small.ndim == 2:
        atomic_write_bytes(target, png_bytes(small))


def keep_examples(run_dir: Path, frame, k: int = EXAMPLE_MAPS) -> list[str]:
    """When a run finishes: keep the candidate maps of its example stimuli (chosen from ``frame``,
    its per-stimulus rows) as ``maps/<name>.png`` named in ``maps/index.json``, and delete the
    other candidates. Idempotent (a run finished again after a crash keeps the same maps).
    Returns the stimulus ids kept."""
    from filelock import FileLock

    from ..ids import stimulus_filename
    from .files import atomic_write_json

    maps = Path(run_dir) / "maps"
    candidates = maps / CANDIDATES
    if maps.is_symlink() or candidates.is_symlink():  # files elsewhere are not the run's to move or delete
        return []
    order = ranked(frame)
    if not order and frame is not None and len(frame) and "stimulus_id" in frame.columns:
        # no NSS column (a metric set without it): the first scored stimuli, in order
        status = frame["status"] if "status" in frame.columns else None
        order = [(str(s), math.nan) for j, s in enumerate(frame["stimulus_id"])
                 if status is None or status.iloc[j] in SCORED]
    chosen = [order[p][0] for p in example_positions(len(order), k)]
    kept = []
    moved: dict[str, str] = {}
    for sid in chosen:
        name = stimulus_filename(sid, ".png")
        source = candidates / name
        raw = candidates / stimulus_filename(sid, ".npy")
        if raw.is_file():  # written as an array (a run's earlier sessions may have written PNGs)
            _encode_candidate(raw, maps / name)
        elif source.is_file():
            os.replace(source, maps / name)
        if (maps / name).is_file():
            moved[name] = sid
            kept.append(sid)
    if moved:
        with FileLock(str(maps / ".index.lock")):
            index_file = maps / MAPS_INDEX
            try:
                index = json.loads(index_file.read_text()) if index_file.is_file() else {}
            except (OSError, ValueError):
                index = {}
            if not isinstance(index, dict):
                index = {}
            index.update(moved)
            atomic_write_json(index_file, index)
    if candidates.is_dir():
        shutil.rmtree(candidates, ignore_errors=True)
    return kept


def describe(frame, maps: dict[str, Any], k: int, scores: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The page's examples of one run: up to ``k`` stimuli that have a map in ``maps``, in
    :func:`example_positions` order over :func:`ranked` (the stimuli the run kept), then, for runs
    that kept other maps (older runs: their first stimuli), those by rank, then maps of stimuli
    without a score by id. Each: ``stimulus_id``, ``rank`` (1 = best NSS) and ``of`` (scored
    stimuli), ``role`` (best/median/worst or None) and ``scores`` (the per-stimulus values of
    ``scores`` columns, finite ones only)."""
    order = ranked(frame)
    n = len(order)
    position = {sid: p for p, (sid, _) in enumerate(order)}
    picked: list[str] = []
    for p in example_positions(n, k):
        if order[p][0] in maps:
            picked.append(order[p][0])
    if len(picked) < k:
        picked += [sid for sid, _ in order if sid in maps and sid not in picked][: k - len(picked)]
    if len(picked) < k:
        picked += sorted(sid for sid in maps if sid not in position)[: k - len(picked)]
    rows = {}
    if frame is not None and len(frame) and "stimulus_id" in frame.columns:
        wanted = set(picked)
        for rec in frame.to_dict("records"):
            if str(rec["stimulus_id"]) in wanted:
                rows[str(rec["stimulus_id"])] = rec
    out = []
    for sid in picked:
        rec = rows.get(sid, {})
        values = {}
        for col in scores:
            try:
                v = float(rec.get(col))
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                values[col] = v
        p = position.get(sid)
        out.append({"stimulus_id": sid, "rank": None if p is None else p + 1, "of": n,
                    "role": None if p is None else role_of(p, n), "scores": values})
    return out
