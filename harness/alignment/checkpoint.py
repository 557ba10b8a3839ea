"""An aligned model's folder: written atomically at the end of every epoch, resumable, loadable.

Layout of ``--output``::

    align.json          what was trained and how (the provenance), the split, per-epoch history,
                        and the names and sha256 of the two files below
    weights-eNNN.pt     the trained module's state dict (tensors only: read with weights_only=True)
    state-eNNN.pt       the optimizer's state and the epoch, for resuming (the batch order has a
                        generator of its own, seeded by --seed and the epoch)

Each epoch writes its two files under new names first, then replaces ``align.json`` (write to a
temporary file, fsync, ``os.replace``), then deletes the previous epoch's files. A process killed at
any point leaves an ``align.json`` that names complete files of one epoch. Reading checks the
hashes, so a truncated or swapped weights file is named, not loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from ..results.files import atomic_write_bytes

META_FILE = "align.json"
FORMAT = "gaze-harness aligned model"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    folder: Path
    meta: dict[str, Any]

    @property
    def epochs_done(self) -> int:
        return self.meta.get("epochs_done", 0)  # a whole number: read_checkpoint checked it

    @property
    def complete(self) -> bool:
        return self.epochs_done >= self.meta["settings"]["epochs"]

    def weights(self) -> dict:
        return _load_tensor_file(self.folder, self.meta["files"]["weights"])

    def train_state(self) -> dict:
        return _load_tensor_file(self.folder, self.meta["files"]["state"])


def is_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / META_FILE).is_file()


def read_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    folder = Path(folder)
    path = folder / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{folder}: not an aligned-model folder (no {META_FILE}; `harness align` writes one)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    except RecursionError:  # a few KB of nested brackets exhaust the parser's stack
        raise HarnessError(f"{path}: unreadable (nested too deeply to be an {META_FILE} that harness align wrote)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise HarnessError(f"{path}: not a {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise HarnessError(f"{path}: format version {meta.get('format_version')!r}; this harness reads {FORMAT_VERSION}")
    for key in ("settings", "files", "split", "base"):
        if not isinstance(meta.get(key), dict):
            raise HarnessError(f"{path}: field {key!r} is missing or not an object")
    _check_fields(path, meta)
    for role in ("weights", "state"):
        entry = meta["files"].get(role)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "/" in entry["name"] \
                or "\\" in entry["name"] or entry["name"].startswith("."):
            raise HarnessError(f"{path}: files.{role} must name a file inside the folder")
    return Checkpoint(folder, meta)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(path: Path, meta: dict[str, Any]) -> None:
    """The fields loading and resuming use, of the types ``harness align`` writes: a hand-edited or
    hostile file is one line naming the field, not a traceback where it is used."""
    def bad(field: str, want: str, value: Any) -> HarnessError:
        shown = json.dumps(value)[:60] if value is None or isinstance(value, (str, int, float)) else \
            f"a JSON {'object' if isinstance(value, dict) else 'array'}"
        return HarnessError(f"{path}: field {field!r} must be {want}, not {shown}")

    done, epochs = meta.get("epochs_done", 0), meta["settings"].get("epochs")
    if not _whole(done) or done < 0:
        raise bad("epochs_done", "a whole number of epochs (0 or more)", done)
    if not _whole(epochs) or epochs < 1:
        raise bad("settings.epochs", "a whole number of epochs (1 or more)", epochs)
    for key in ("name", "dataset", "dataset_fingerprint"):
        if key in meta["settings"] and not isinstance(meta["settings"][key], str):
            raise bad(f"settings.{key}", "a string", meta["settings"][key])
    base = meta["base"]
    if not isinstance(base.get("model"), str) or not base["model"]:
        raise bad("base.model", "a model name", base.get("model"))
    if base.get("load_as") is not None and (not isinstance(base["load_as"], str) or not base["load_as"]):
        raise bad("base.load_as", "a model name", base["load_as"])


def _load_tensor_file(folder: Path, entry: dict) -> dict:
    import torch

    path = folder / entry["name"]
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise HarnessError(f"{path}: missing or unreadable ({exc.strerror or exc})") from None
    if digest != entry.get("sha256"):
        raise HarnessError(f"{path}: damaged (sha256 {digest[:12]}…, {META_FILE} records "
                           f"{str(entry.get('sha256'))[:12]}…); train again with `harness align`")
    try:  # tensors and plain containers only: no code runs from the file
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HarnessError(f"{path}: not a tensor file ({type(exc).__name__}: {exc})") from None


def sha256_of(path: Path) -> str:
    from ..data.download import sha256_file

    return sha256_file(path)


def write_epoch(folder: Path, meta: dict[str, Any], weights: dict, state: dict, epoch: int) -> dict[str, Any]:
    """Write epoch ``epoch``'s files, then the metadata naming them, then drop older epochs' files."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role, obj in (("weights", weights), ("state", state)):
        path = folder / f"{role}-e{epoch:03d}.pt"
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(path, data)
        files[role] = {"name": path.name, "sha256": hashlib.sha256(data).hexdigest()}
    meta = {**meta, "format": FORMAT, "format_version": FORMAT_VERSION, "epochs_done": epoch, "files": files}
    atomic_write_bytes(folder / META_FILE, json.dumps(meta, indent=2, sort_keys=False, allow_nan=False).encode())
    keep = {e["name"] for e in files.values()}
    for old in [*folder.glob("weights-e*.pt"), *folder.glob("state-e*.pt")]:
        if old.name not in keep:
            old.unlink(missing_ok=True)
    return meta
