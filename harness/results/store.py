"""The results store: one folder per run, written atomically, readable back as :class:`Run`.

Layout of ``<results>/<run_id>/`` (documented in ``docs/results.md``)::

    settings.json        what determines the numbers; its hash is part of run_id
    shards/part-*.parquet  per-image rows, one file per finished batch (atomic rename)
    manifest.json        provenance: versions, hashes, timings (written when the run finishes)
    summary.json         aggregate numbers (written last: its presence marks a finished run)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .errors import HarnessError

SCHEMA_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_write_parquet(path: Path, table: Any) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def settings_hash(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def run_id_for(settings: dict[str, Any]) -> str:
    parts = [settings["model"], settings["dataset"], settings["task"], settings["attention"]]
    slug = "__".join(re.sub(r"[^A-Za-z0-9._-]+", "-", str(p)).strip("-") or "x" for p in parts)
    return f"{slug}__{settings_hash(settings)[:12]}"


@dataclass
class Run:
    """A run folder read back."""

    path: Path
    settings: dict[str, Any]
    manifest: dict[str, Any]
    summary: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def finished(self) -> bool:
        return bool(self.summary)

    def per_image(self):
        """All per-image rows as a pandas DataFrame (one row per stimulus)."""
        import pandas as pd
        import pyarrow.parquet as pq

        files = sorted((self.path / "shards").glob("part-*.parquet"))
        if not files:
            return pd.DataFrame()
        return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessError(f"{path}: unreadable run file ({exc})") from exc


def read_run(path: Path) -> Run:
    path = Path(path)
    return Run(
        path=path,
        settings=_read_json(path / "settings.json"),
        manifest=_read_json(path / "manifest.json"),
        summary=_read_json(path / "summary.json"),
    )


def load_runs(results_dir: Path | str, *, finished_only: bool = True) -> list[Run]:
    """Every run under ``results_dir`` (recursively, so folders of folders work)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise HarnessError(f"results folder {root} does not exist")
    runs = []
    for settings_file in sorted(root.rglob("settings.json")):
        run = read_run(settings_file.parent)
        if run.finished or not finished_only:
            runs.append(run)
    return runs


def iter_rows(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """One flat row per finished run: identity, kind, metric means, task metrics."""
    rows = []
    for run in runs:
        s = run.summary
        row = {
            "run_id": run.run_id,
            "model": s.get("model"),
            "attention": s.get("attention"),
            "dataset": s.get("dataset"),
            "task": s.get("task"),
            "kind": s.get("kind", "model"),
            "n_images": s.get("n_images"),
            "n_failed": s.get("n_failed"),
        }
        row.update({k: v for k, v in (s.get("metrics") or {}).items()})
        row.update({f"task:{k}": v for k, v in (s.get("task_metrics") or {}).items()})
        rows.append(row)
    return rows
