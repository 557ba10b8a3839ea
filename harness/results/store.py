"""Run folders read back: :class:`Run`, and every run of a results folder with the damaged ones
reported and left out (see :mod:`.verify` for what is checked).

Layout of ``<results>/<run_id>/`` (documented in ``docs/results.md``)::

    settings.json          what determines the numbers; its hash is part of run_id
    sessions.json          the start of each session that computed rows
    environment.json       package versions and processor of those sessions (one for all of them)
    shards/part-<first>-<sha256 prefix>.parquet
                           per-image rows, one file per finished batch (atomic rename); the name
                           carries the file's own hash, so damage is seen before the manifest exists
    maps/                  attention maps of a few stimuli: the first ones in full, and small 8-bit
                           ones of the examples the page shows (index.json names their stimuli)
    damaged/               shards set aside as unreadable or not matching their hash
    manifest.json          provenance, and the sha256 of every shard (written when the run finishes)
    summary.json           aggregate numbers (written last: its presence marks a finished run)
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import DataError, HarnessError

#: 2: shard names carry their hash, the manifest lists every shard's sha256, summaries count
#: degenerate maps and non-finite metric values
SCHEMA_VERSION = 2
SHARD_RE = re.compile(r"^part-(\d+)(?:-([0-9a-f]{16}))?\.parquet$")


#: the key under which a shard's Parquet schema metadata names its run: the sha256 of the settings
#: that computed its rows (a shard copied from another run into this one is recognised by it;
#: shards of versions that did not write it have none)
SHARD_RUN_KEY = b"gaze_harness.settings_sha256"


def shard_settings_hash(path: Path) -> str | None:
    """The settings hash a shard records (:data:`SHARD_RUN_KEY`), None when it records none or its
    footer cannot be read (the full read names that damage)."""
    import pyarrow.parquet as pq

    try:
        with open(path, "rb") as f:  # a file object: pyarrow reads a path '~/x' as the home folder's
            meta = pq.read_schema(f).metadata or {}
    except Exception:  # pyarrow raises several types for a damaged file
        return None
    value = meta.get(SHARD_RUN_KEY)
    return value.decode("ascii", "replace") if value is not None else None


def foreign_shard(path: Path, settings: dict[str, Any]) -> str | None:
    """Why the shard at ``path`` is not a shard of the run of ``settings`` (None: it is, or it does
    not say)."""
    theirs = shard_settings_hash(path)
    if theirs is None or theirs == settings_hash(settings):
        return None
    return (f"a shard of another run (its rows were computed with settings sha256 {theirs[:12]}…, this run's are "
            f"{settings_hash(settings)[:12]}…)")


def settings_hash(settings: dict[str, Any]) -> str:
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


#: C0 controls, DEL and C1 controls: ESC ] 52 (clipboard write), ESC ] 8 (hyperlink), CSI sequences
#: and BEL in a model name or file reached the terminal as they were
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str, one_line: bool = False) -> str:
    """``text`` with every control character (but line breaks and tabs, unless ``one_line``) made
    U+FFFD, so data printed on a terminal cannot drive it."""
    return (_CONTROL_OR_BREAK if one_line else _CONTROL).sub("\ufffd", text)


def id_slug(part: Any) -> str:
    """One ``__``-separated part of a run id: the text with every run of other characters than
    letters, digits, ``.``, ``_`` and ``-`` made one ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(part)).strip("-") or "x"


def run_id_for(settings: dict[str, Any]) -> str:
    parts = [settings["model"], settings["dataset"], settings["task"], settings["attention"]]
    return "__".join(id_slug(p) for p in parts) + f"__{settings_hash(settings)[:12]}"


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

    def shard_files(self) -> list[Path]:
        """The shard files, in name order (first stimulus index, then hash)."""
        return shard_files(self.path)

    def per_image(self):
        """All per-image rows as a pandas DataFrame (one row per stimulus), in stimulus-id order;
        an unreadable shard is a :class:`DataError` naming it."""
        import pandas as pd

        from .summary import canonical_order

        frames, left = [], row_limit(self.settings)
        for f in self.shard_files():
            frames.append(read_shard(f, max_rows=left))
            left -= len(frames[-1])
        if not frames:
            return pd.DataFrame()
        return canonical_order(pd.concat(frames, ignore_index=True))


def shard_files(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "shards"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if SHARD_RE.match(p.name))


#: the most stimuli a run may have: more than any dataset holds, few enough to read (a run whose
#: settings say more is damaged; a shard with more rows is never loaded)
MAX_RUN_ROWS = 1_000_000


def row_limit(settings: dict[str, Any] | None) -> int:
    """The most rows the shards of the run of ``settings`` may hold together: its ``n_images``."""
    n = (settings or {}).get("n_images")
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_RUN_ROWS else MAX_RUN_ROWS


def _footer_problem(f, max_rows: int) -> str | None:
    """Why the shard whose footer ``f`` holds must not be loaded: the footer is read alone, so a
    small file that declares 2e8 rows of one repeated value is refused before it takes the memory."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(f).metadata
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    rows = max(meta.num_rows, sum(g.num_rows for g in groups))
    if rows > max_rows:
        return f"it holds {rows} rows, more than the {max_rows} its run has room for"
    # shard columns are flat, one value a row: a list column could hide any number of values in a row
    if any(g.column(i).num_values > g.num_rows for g in groups for i in range(g.num_columns)):
        return "a column holds more values than the shard has rows"
    return None


def read_shard(path: Path, max_rows: int = MAX_RUN_ROWS):
    """One shard as a DataFrame; a truncated or garbled file, or one with more than ``max_rows``
    rows, is one line naming it."""
    import pyarrow.parquet as pq

    try:
        # a file object: given the path './~/runs/...' as '~/runs/...', pyarrow read the home folder's
        # (every shard of an `eval -o '~/runs'` was then 'damaged'; found by QA)
        with open(path, "rb") as f:
            too_big = _footer_problem(f, max(max_rows, 0))
            if too_big is None:
                f.seek(0)
                frame = pq.read_table(f).to_pandas()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: damaged shard ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from exc
    if too_big is not None:
        raise DataError(f"{path}: damaged shard ({too_big})")
    if "stimulus_id" not in frame.columns or "status" not in frame.columns:
        raise DataError(f"{path}: damaged shard (no stimulus_id/status columns)")
    return frame


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable run file ({type(exc).__name__}: {exc})") from exc
    except RecursionError as exc:  # '[' * 200000: the parser's recursion, not a crash of the reader
        raise DataError(f"{path}: unreadable run file (JSON nested too deeply)") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: unreadable run file (a JSON object was expected)")
    return data


def read_run(path: Path) -> Run:
    path = Path(path)
    return Run(
        path=path,
        settings=_read_json(path / "settings.json"),
        manifest=_read_json(path / "manifest.json"),
        summary=_read_json(path / "summary.json"),
    )


def _warn(path: Path, problem: str) -> None:
    print(terminal_safe(f"warning: {path}: damaged run left out ({problem}); `harness verify` tells more"),
          file=sys.stderr)


def run_dirs(results_dir: Path | str) -> list[Path]:
    """Every run folder under ``results_dir`` (recursively, so folders of folders work)."""
    root = Path(results_dir)
    if root.exists() and not root.is_dir():
        raise HarnessError(f"results folder {root} is a file, not a folder")
    if not root.is_dir():
        raise HarnessError(f"results folder {root} does not exist")
    return sorted(p.parent for p in root.rglob("settings.json"))


def load_runs(results_dir: Path | str, *, finished_only: bool = True, check: bool = True,
              on_damaged: Callable[[Path, str], None] | None = _warn) -> list[Run]:
    """Every run under ``results_dir``. With ``check``, a finished run whose files do not hold
    together (unreadable JSON, a shard that is damaged or not the one the manifest recorded, a
    summary that its shards do not give) is reported through ``on_damaged`` and left out, so one
    damaged run never hides the others."""
    from .verify import run_problems

    runs = []
    for path in run_dirs(results_dir):
        try:
            run = read_run(path)
        except HarnessError as exc:
            if on_damaged is not None:
                on_damaged(path, str(exc).removeprefix(f"{path}/"))
            continue
        if finished_only and not run.finished:
            continue
        if check and run.finished:
            problems = run_problems(run)
            if problems:
                if on_damaged is not None:
                    on_damaged(path, problems[0] + (f" and {len(problems) - 1} more" if len(problems) > 1 else ""))
                continue
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
