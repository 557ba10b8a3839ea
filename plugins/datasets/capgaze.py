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
needs ``allow_pickle=True``, which would run any code a crafted file names). This reader never calls
``np.load(allow_pickle=True)``: it parses the ``.npy`` header itself, reads numeric arrays with
``allow_pickle=False`` and unpickles object arrays with a restricted unpickler (``_read_npy`` below) that
admits only the globals numpy's array pickles use, as inert stand-ins, and rebuilds arrays, dtypes and
scalars from their validated contents; any other global (``os.system``, ``builtins.eval``, ...) is
refused with an error naming the file.
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
import math
import numbers
import pickle
import re
from pathlib import Path
from typing import Iterator

from harness.data.base import GazeDataset
from harness.errors import DataError
from harness.hookspecs import hookimpl

SOURCE = "https://github.com/SenHe/Human-Attention-in-Image-Captioning"
GAZE_DIR = "gaze_converted_2"
TEXT_DIR = "transcribed_text"
KEYS = ("dominant_eye", "left_eye", "right_eye", "time_stamp")


# -- reading a gaze file without running code from it ------------------------------------------------
#
# numpy pickles an array as ``_reconstruct(ndarray, (0,), b'b')`` + ``__setstate__((1, shape, dtype,
# fortran, data))``, a dtype as ``dtype('f8', False, True)`` + ``__setstate__((3, '<', None, None, None,
# -1, -1, 0))`` and a scalar as ``scalar(dtype, raw bytes)``; dicts, lists, tuples, numbers and strings
# need no global at all. Protocol-2 pickles written by Python 3 add ``_codecs.encode(text, 'latin1')``
# (bytes) and ``__builtin__.bytes()`` (empty bytes). Those are the only globals admitted, and not as the
# real callables: numpy's ``dtype.__setstate__`` trusts the flags it is given, so a crafted dtype can make
# an "object" array out of raw bytes (pointers the file chooses). The stand-ins below only record what the
# pickle asks for; ``_Materializer`` then builds the arrays with ``np.frombuffer`` / ``np.empty(object)``
# from simple dtypes (bool, int, uint, float, complex, bytes, str, object) after checking their sizes.

_ADMITTED = "only numpy arrays, dicts, lists, numbers and strings are allowed"


class _Refused(Exception):
    """A gaze file asks for something a data file never needs; the message says what."""


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Token:
    """What the unpickler hands out for ``numpy.ndarray``: only a marker for ``_reconstruct``."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __setstate__(self, state):
        raise _Refused(f"a change to {self.name!r}")


class _Callable(_Token):
    """What the unpickler hands out for an admitted function: calling it records inert data."""

    __slots__ = ("build",)

    def __init__(self, name: str, build):
        super().__init__(name)
        self.build = build

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise _Refused(f"{self.name!r} called with keyword arguments")
        return self.build(self.name, args)


class _Pending:
    """An ndarray, dtype or numpy scalar as the pickle describes it, built after reading."""

    __slots__ = ("kind", "args", "state")

    def __init__(self, kind: str, args: tuple):
        self.kind, self.args, self.state = kind, args, None

    def __setstate__(self, state):
        if self.kind == "scalar":
            raise _Refused("a change to a numpy scalar")
        self.state = state


def _reconstruct(name, args):
    if len(args) != 3 or args[0] is not _NDARRAY:
        raise _Refused(f"{name!r} of {_short(getattr(args[0], 'name', args[0]) if args else None)} "
                       f"(numpy.ndarray only)")
    return _Pending("ndarray", ())


def _latin1_encode(name, args):
    if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise _Refused(f"{name!r} with arguments {_short(args)} (only text to latin-1 bytes)")
    return args[0].encode("latin1")


def _empty_bytes(name, args):
    if args:
        raise _Refused(f"{name!r} with arguments {_short(args)} (only the empty bytes)")
    return b""


_NDARRAY = _Token("numpy.ndarray")
_DTYPE = _Callable("numpy.dtype", lambda name, args: _Pending("dtype", args))
_SCALAR = _Callable("numpy.core.multiarray.scalar", lambda name, args: _Pending("scalar", args))
_RECONSTRUCT = _Callable("numpy.core.multiarray._reconstruct", _reconstruct)
_GLOBALS = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _DTYPE,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 1.x (and Python 2)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2.x
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("_codecs", "encode"): _Callable("_codecs.encode", _latin1_encode),  # bytes in a Python 3 protocol-2 pickle
    ("__builtin__", "bytes"): _Callable("builtins.bytes", _empty_bytes),  # b'' in one
    ("builtins", "bytes"): _Callable("builtins.bytes", _empty_bytes),
}
_DESCR = re.compile(r"(?P<kind>[biufc])[0-9]+|(?P<flex>[SU])[0-9]*|(?P<other>[?O])[0-9]*")


class _GazeUnpickler(pickle.Unpickler):
    """Resolves only the globals in ``_GLOBALS`` (the gate for GLOBAL, STACK_GLOBAL, INST and the
    extension registry); every callable a pickle can reach is one of the stand-ins."""

    def find_class(self, module, name):
        try:
            return _GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _Refused(_short(f"{module}.{name}")) from None


class _Materializer:
    """Turns the unpickled tree (stand-ins included) into plain Python and numpy values."""

    _BUSY = object()

    def __init__(self):
        import numpy as np

        self.np = np
        self.memo: dict[int, object] = {}

    def __call__(self, obj):
        if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
            return obj
        key = id(obj)
        if key in self.memo:
            done = self.memo[key]
            if done is self._BUSY:
                raise _Refused("an array, dtype or tuple that contains itself")
            return done
        if isinstance(obj, list):
            out = self.memo[key] = []
            out.extend(self(v) for v in obj)
            return out
        if isinstance(obj, dict):
            out = self.memo[key] = {}
            for k, v in obj.items():
                out[self(k)] = self(v)
            return out
        if isinstance(obj, (set, frozenset)):
            self.memo[key] = self._BUSY
            out = type(obj)(self(v) for v in obj)
        elif isinstance(obj, tuple):
            self.memo[key] = self._BUSY
            out = tuple(self(v) for v in obj)
        elif isinstance(obj, _Pending):
            self.memo[key] = self._BUSY
            out = getattr(self, "_" + obj.kind)(obj)
        elif isinstance(obj, _Token):
            raise _Refused(f"a bare reference to {obj.name!r}")
        else:
            raise _Refused(f"a {type(obj).__name__}")
        self.memo[key] = out
        return out

    def _raw(self, data, size: int, what: str) -> bytes:
        if isinstance(data, str):  # a Python 2 str, decoded as latin-1 by the unpickler
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)) or len(data) != size:
            raise _Refused(f"{what} whose data is {_short(type(data).__name__)} of "
                           f"{len(data) if hasattr(data, '__len__') else '?'} bytes, not {size}")
        return bytes(data)

    def _dtype(self, p: _Pending):
        np = self.np
        args, state = p.args, p.state
        match = _DESCR.fullmatch(args[0]) if args and len(args) <= 3 and isinstance(args[0], str) else None
        if match is None:
            raise _Refused(f"numpy.dtype{_short(args)} (simple types only)")
        dtype = np.dtype(object) if match["other"] == "O" else np.dtype(args[0])
        if state is None:
            return dtype
        if not (isinstance(state, tuple) and (len(state) == 8 or (len(state) == 9 and state[8] is None))
                and state[0] in (3, 4) and state[1] in ("<", ">", "|", "=")
                and state[2] is None and state[3] is None and state[4] is None
                and all(isinstance(v, int) for v in state[5:8])):
            raise _Refused(f"a numpy.dtype {args[0]!r} with the state {_short(state)} "
                           f"(no fields, subarrays or metadata)")
        if match["flex"] and state[5] > 0:
            dtype = np.dtype(f"{match['flex']}{state[5] // 4 if match['flex'] == 'U' else state[5]}")
        if state[1] in ("<", ">") and dtype.byteorder != "|":
            dtype = dtype.newbyteorder(state[1])
        return dtype

    def _dtype_of(self, p, what: str):
        if not (isinstance(p, _Pending) and p.kind == "dtype"):
            raise _Refused(f"{what} whose dtype is {_short(p)}")
        return self(p)

    def _ndarray(self, p: _Pending):
        np = self.np
        state = p.state
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not (isinstance(state, tuple) and len(state) == 4 and isinstance(state[0], tuple)
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in state[0])):
            raise _Refused(f"a numpy.ndarray with the state {_short(state)}")
        shape, dtype, fortran, data = state[0], self._dtype_of(state[1], "a numpy.ndarray"), bool(state[2]), state[3]
        count = math.prod(shape)
        if dtype.kind == "O":  # numpy pickles the items as a list in C order
            if not isinstance(data, list) or len(data) != count:
                raise _Refused(f"an object array of shape {shape} whose items are {_short(type(data).__name__)} "
                               f"of length {len(data) if hasattr(data, '__len__') else '?'}")
            flat = np.empty(count, dtype=object)
            for i, item in enumerate(data):
                flat[i] = self(item)
            return flat.reshape(shape).copy(order="F" if fortran else "C")
        if dtype.itemsize == 0:
            raise _Refused(f"a numpy.ndarray of the empty type {dtype.str!r}")
        raw = self._raw(data, count * dtype.itemsize, f"a {dtype} array of shape {shape}")
        array = np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")
        # numpy swaps a non-native byte order on unpickling, as here
        return array.astype(dtype.newbyteorder("="), order="F" if fortran else "C", copy=True)

    def _scalar(self, p: _Pending):
        if len(p.args) != 2:
            raise _Refused(f"a numpy scalar with {len(p.args)} arguments")
        dtype = self._dtype_of(p.args[0], "a numpy scalar")
        if dtype.kind == "O":  # numpy.core.multiarray.scalar(dtype('O'), obj) is obj
            return self(p.args[1])
        if dtype.itemsize == 0:
            raise _Refused(f"a numpy scalar of the empty type {dtype.str!r}")
        return self.np.frombuffer(self._raw(p.args[1], dtype.itemsize, f"a {dtype} scalar"), dtype=dtype)[0]


def _read_npy(path: Path):
    """What ``np.load(path, allow_pickle=True, encoding='latin1')`` returns for an ``.npy`` file (or a
    bare pickle, which ``np.load`` also reads), without running code from it: numeric arrays are read
    with ``allow_pickle=False``, object arrays through ``_GazeUnpickler``. Raises ``_Refused``."""
    from numpy.lib import format as npy

    with open(path, "rb") as f:
        if f.read(len(npy.MAGIC_PREFIX)) == npy.MAGIC_PREFIX:
            f.seek(0)
            version = npy.read_magic(f)
            if version == (1, 0):
                _, _, dtype = npy.read_array_header_1_0(f)
            elif version == (2, 0):
                _, _, dtype = npy.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
            if not dtype.hasobject:
                f.seek(0)
                return npy.read_array(f, allow_pickle=False)
        else:
            f.seek(0)
        tree = _GazeUnpickler(f, encoding="latin1").load()
    return _Materializer()(tree)


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
            data = _read_npy(path)
            data = data.item() if isinstance(data, np.ndarray) and data.dtype == object and data.shape == () else data
        except _Refused as exc:
            raise DataError(f"{self.name}: {path}: refused to unpickle {exc} ({_ADMITTED})") from None
        except Exception as exc:  # a damaged pickle can raise almost anything
            raise DataError(f"{self.name}: {path} is not a readable gaze file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(data, dict):
            raise DataError(f"{self.name}: {path} holds a {type(data).__name__}, expected a dict with keys {', '.join(KEYS)}")
        missing = [k for k in KEYS if k not in data]
        if missing:
            raise DataError(f"{self.name}: {path} lacks key(s) {', '.join(missing)}")
        for key in ("left_eye", "right_eye", "time_stamp"):
            value = data[key]
            if not (isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim >= 1)):
                raise DataError(f"{self.name}: {path}: {key} is {_short(value)}, expected a list with one entry per sample")
        if len(data["left_eye"]) != len(data["time_stamp"]) or len(data["right_eye"]) != len(data["time_stamp"]):
            raise DataError(f"{self.name}: {path}: left_eye, right_eye and time_stamp differ in length")
        return data

    def _samples(self, data: dict, path: Path, width: int, height: int):
        """The authors' samples of the dominant eye, as pixel coordinates and onsets (ms)."""
        import numpy as np

        raw = np.asarray(data["dominant_eye"])
        # compared as read, not through int(): 0.9 would truncate to the left eye
        if raw.size != 1 or raw.dtype.kind not in "biuf" or raw.item() not in (0, 1):
            shown = raw.item() if raw.size == 1 else raw.tolist() if raw.size <= 4 else f"an array of shape {raw.shape}"
            raise DataError(f"{self.name}: {path}: dominant_eye is {shown!r}, expected 0 (left) or 1 (right)")
        eye = int(raw.item())
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
            stamp = data["time_stamp"][i]
            # float() raised unnamed on None and read the text '0.5' as a time
            if not isinstance(stamp, numbers.Real) or isinstance(stamp, (bool, np.bool_)):
                raise DataError(f"{self.name}: {path}: time_stamp of sample {i} is {_short(stamp)}, not a number (seconds)")
            ts.append(float(stamp) * 1000.0)
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
        # recordings of an image that is not in images/: a counted skip, not silence
        stems = {p.stem for p in images}
        orphans = {p.stem for who in participants for p in (root / GAZE_DIR / who / "gaze").glob("*.npy")} - stems
        for image_id in sorted(orphans):
            self.skip("skipped_missing_image", image_id, "gaze recordings without their image in images/")


@hookimpl
def register_datasets(register):
    register("capgaze", "plugins.datasets.capgaze:CapGaze", tasks=CapGaze.tasks, description=CapGaze.description,
             pixels_per_degree=CapGaze.pixels_per_degree,
             licence="not stated in the authors' repository; PASCAL images: see PASCAL VOC terms", source=SOURCE)
