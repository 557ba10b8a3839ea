"""Downloading a dataset from its original source: small, stdlib only, atomic, checksummed.

A download is installed with :func:`install_atomically`: files are written into a temporary folder
beside the target and the folder is renamed into place only after every file arrived and the
checksum matched. An interrupted or corrupted download therefore never leaves a folder that a later
run would mistake for the dataset.

Checksums are SHA-256. Sources that serve many files (GitHub folders) are checked with
:func:`tree_digest`, one SHA-256 over the sorted ``(relative path, file SHA-256)`` list, so one
constant pins the whole tree, independent of how the files were fetched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

from ..errors import DataError
from ..modes import as_if_created

CHUNK = 1 << 20
USER_AGENT = "gaze-harness (+https://github.com/) python-urllib"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(root: str | os.PathLike, relpaths: Iterable[str]) -> str:
    """SHA-256 over ``"<relpath>\\0<sha256 of file>\\n"`` for the sorted relative paths."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(relpaths):
        h.update(f"{rel}\0{sha256_file(root / rel)}\n".encode())
    return h.hexdigest()


def fetch(url: str, dest: str | os.PathLike, *, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` (via ``dest.part``); verify ``sha256`` if given. Raises DataError."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                h.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = getattr(exc, "reason", None) or exc
        raise DataError(f"download of {url} failed: {reason}") from exc
    if sha256 is not None and h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise DataError(f"download of {url}: sha256 {h.hexdigest()} does not match the expected {sha256}")
    os.replace(part, dest)
    return dest


def fetch_tree(base_url: str, relpaths: Iterable[str], dest: str | os.PathLike, *, workers: int = 8,
               timeout: float = 60.0) -> None:
    """Fetch ``base_url + relpath`` into ``dest/relpath`` for every relpath. The first file is
    fetched alone, so an unreachable host fails after one attempt; the rest go a few at a time and
    the first failure cancels what has not started."""
    dest = Path(dest)
    base = base_url if base_url.endswith("/") else base_url + "/"
    relpaths = list(relpaths)
    if not relpaths:
        return

    def one(rel: str) -> None:
        fetch(base + urllib.parse.quote(rel), dest / rel, timeout=timeout)

    one(relpaths[0])
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for future in [pool.submit(one, rel) for rel in relpaths[1:]]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def remove_leftovers(folder: str | os.PathLike, match: Callable[[str], bool], recursive: bool = False) -> int:
    """Remove what atomic writes killed mid-way (SIGKILL, out of memory, power loss) left in
    ``folder``: the temporary files and folders whose names ``match``, in ``folder`` only or, with
    ``recursive``, in its subfolders too (symbolic links are removed, never followed). Call it only
    holding the lock that every writer of those names holds, so that none of them is in use.
    Returns how many were removed; one that cannot be (a read-only folder) stays, harmless."""
    removed = 0
    for where, dirs, files in os.walk(folder, followlinks=False):
        for name in [*files, *dirs]:
            if not match(name):
                continue
            path = Path(where) / name
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                pass
        dirs[:] = [d for d in dirs if recursive and not match(d)]
    return removed


def install_atomically(target: str | os.PathLike, populate: Callable[[Path], None]) -> Path:
    """Run ``populate(tmp)`` on a fresh temporary folder beside ``target``, then rename it to
    ``target``. On any failure the temporary folder is removed and ``target`` is left untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.download-", dir=target.parent))
    try:
        as_if_created(tmp, folder=True)  # not mkdtemp's 0700: a shared data folder stays readable
        populate(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if target.is_dir():  # another process installed it meanwhile: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
