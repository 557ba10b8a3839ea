"""Writing run files so that a reader never sees half of one, and hashing them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..data.download import sha256_file  # noqa: F401  (one implementation, re-exported for the store)
from ..modes import file_mode


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: readers never see half a file. A
    failed write (a full disk, a quota) leaves nothing behind and raises an ``OSError`` that names
    ``path`` (the CLI prints it as one line): ``write`` and ``fsync`` errors name no file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would make shared results unreadable to others
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def jsonable(obj: Any) -> Any:
    """NaN and infinities -> None, recursively (``json`` would write the invalid token ``NaN``)."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def parquet_bytes(table: Any) -> bytes:
    """A table as Parquet bytes (hashed before the file gets its final, hash-bearing name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def atomic_write_parquet(path: Path, table: Any) -> None:
    atomic_write_bytes(path, parquet_bytes(table))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()




def links_inside(run_dir: Path) -> list[Path]:
    """Every link inside ``run_dir`` (not descending into linked folders). The harness makes none: a
    results folder from someone else (untrusted) could lead a writer or reader elsewhere through one."""
    found = []
    for folder, dirs, files in os.walk(run_dir):
        found += [Path(folder, name) for name in sorted(dirs + files) if Path(folder, name).is_symlink()]
    return found
