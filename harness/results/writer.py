"""Writing one run folder: one writer at a time, resumable, and never trusting what it finds.

A run folder is owned by one process for the whole of its computation: an OS file lock
(``<run>/.lock``, ``flock`` on POSIX through :mod:`filelock`) is taken before anything is read and
released when the run is finished or the process ends (the kernel releases it even after a
SIGKILL). A second process on the same run waits for the first and then finds the run complete
(reused) or resumes what is left. Shards are named by their first stimulus and their own hash, so
names never collide and a damaged shard is recognised without any other file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DataError, HarnessError
from .files import (atomic_write_bytes, atomic_write_json, links_inside, parquet_bytes, sha256_bytes,
                    sha256_file)
from .store import (SHARD_RE, SHARD_RUN_KEY, foreign_shard, read_run, read_shard, row_limit, run_id_for, settings_hash,
                    shard_files)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def writable_folder(path: Path, what: str) -> Path:
    """``path`` as a folder this process can write in (created if missing), else a one-line error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".harness-write-test-{os.getpid()}-{id(path)}"  # each rank of a launcher its own
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise HarnessError(f"{what} {path} cannot be written ({exc.strerror or exc})") from exc
    return path


class _RunFiles:
    """Writing rows and maps into a run folder (shared by the owner and, under a launcher, the
    other ranks, which write disjoint stimuli)."""

    dir: Path
    _done: dict[str, str]
    settings: dict[str, Any] | None = None

    def done_ids(self) -> set[str]:
        return set(self._done)

    def write_shard(self, rows: list[dict[str, Any]], first_index: int) -> str:
        import pyarrow as pa

        # from_pylist takes its columns from the first row only; a failed row has no metric columns
        columns = list(dict.fromkeys(k for r in rows for k in r))
        table = pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows])
        if self.settings is not None:  # the run the rows belong to, recognised if the file is copied elsewhere
            table = table.replace_schema_metadata({SHARD_RUN_KEY: settings_hash(self.settings).encode()})
        data = parquet_bytes(table)
        name = f"part-{first_index:08d}-{sha256_bytes(data)[:16]}.parquet"
        atomic_write_bytes(self.dir / "shards" / name, data)
        self._done.update((r["stimulus_id"], name) for r in rows)
        return name

    def save_map(self, stimulus_id: str, smap: np.ndarray) -> None:
        from filelock import FileLock

        from ..ids import stimulus_filename

        buf = io.BytesIO()
        np.save(buf, np.asarray(smap, dtype=np.float32))
        name = stimulus_filename(stimulus_id, ".npy")
        maps = self.dir / "maps"
        atomic_write_bytes(maps / name, buf.getvalue())
        with FileLock(str(maps / ".index.lock")):  # several ranks may add entries
            index_file = maps / "index.json"
            index = json.loads(index_file.read_text()) if index_file.is_file() else {}
            index[name] = stimulus_id
            atomic_write_json(index_file, index)


ENVIRONMENT = "environment.json"


def read_environment(run_dir: Path, set_aside: Callable[[Path, str], None] | None = None) -> dict[str, Any] | None:
    """The environment recorded in ``run_dir`` (see :meth:`RunWriter.begin_session`), or None; an
    unreadable record is set aside by ``set_aside`` if given (the owner), else ignored."""
    path = Path(run_dir) / ENVIRONMENT
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text())
        if isinstance(recorded, dict):
            return recorded
        problem = "not an object"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        problem = type(exc).__name__
    if set_aside is not None:
        set_aside(path, f"unreadable ({problem}); the environment of the earlier sessions is no longer known")
    return None


_ADVICE = ("finish it where it was started (with that code and those packages), remove the run folder to compute "
           "it all again here, or write to another --output")


def environment_differences(recorded: dict[str, Any], current: dict[str, Any],
                            keys: tuple[str, ...] | None = None) -> list[str]:
    """What differs between a recorded environment and this process' (of ``keys``, default all),
    as phrases: ``numpy 2.3.0 (here 2.4.6)``, ``plugin qa 0.1.0 (here 0.2.0)``, ``plugin qa's code
    sha256:... (here sha256:...)``."""
    diffs = []
    for key in sorted(set(recorded) | set(current)):
        if keys is not None and key not in keys:
            continue
        a, b = recorded.get(key), current.get(key)
        if key == "plugin sources" and not isinstance(a, dict):
            continue  # recorded before plugins' code was: their versions are compared
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}
            label = {"plugins": "plugin {} {}", "plugin sources": "plugin {}'s code {}"}.get(key, "{} {}")
            diffs += [label.format(k, a.get(k, "absent")) + f" (here {b.get(k, 'absent')})"
                      for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            diffs.append(f"{key} {a!r} (here {b!r})")
    return diffs


def check_same_environment(run_dir: Path, recorded: dict[str, Any], current: dict[str, Any], whose: str,
                           advice: str = _ADVICE) -> None:
    """A one-line error naming what differs between the recorded environment and this process'."""
    if recorded == current:
        return
    diffs = environment_differences(recorded, current)
    if not diffs:
        return
    shown = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
    raise HarnessError(f"{run_dir}: {whose} computed with {shown}: one run must not mix the numbers of two "
                       f"environments; {advice}")


def _no_links_inside(run_dir: Path) -> None:
    """A run folder holds its own files: this process writes, moves and deletes inside it (shards,
    maps, candidates, damaged files), and through a link in it (a results folder from someone else:
    untrusted) it wrote, moved shards and deleted a folder's files elsewhere (found by the security
    QA). The run folder itself may be reached through a link the user made above it."""
    links = links_inside(run_dir)
    if links:
        raise HarnessError(f"{links[0]}: a link inside the run folder (to {os.readlink(links[0])}); a run keeps "
                           "its own files, and this command writes and deletes in it: remove the link")


class RunFollower(_RunFiles):
    """A rank other than 0 under a launcher: writes its own stimuli into a run folder that rank 0
    holds locked (and has already checked: damaged shards are set aside before the ranks start).
    With ``environment``, it must be rank 0's (machines of one type: docs/scaling.md)."""

    def __init__(self, run_dir: Path, environment: dict[str, Any] | None = None,
                 settings: dict[str, Any] | None = None):
        self.dir = Path(run_dir)
        self.settings = settings
        if environment is not None:
            recorded = read_environment(self.dir)
            if recorded is not None:
                check_same_environment(self.dir, recorded, environment, "rank 0's rows are",
                                       "run every rank on machines of one type, with the same packages")
        self._done = {}
        for path in shard_files(self.dir):
            self._done.update((i, path.name) for i in read_shard(path)["stimulus_id"].astype(str))


class RunWriter(_RunFiles):
    """The one writer of ``<root>/<run_id>/`` while it lives; use as a context manager."""

    def __init__(self, root: Path, settings: dict[str, Any], *, note: Callable[[str], None] = _stderr):
        from filelock import FileLock, Timeout

        self.settings = settings
        self.note = note
        if (Path(root) / "settings.json").is_file() and (Path(root) / "shards").is_dir():
            # a run folder given as --output: the new run would nest inside it, and a reader of the
            # results folder would count it as part of that run
            raise HarnessError(f"{root} is a run folder (it holds settings.json and shards/); give the results "
                               "folder that holds the runs")
        self.dir = writable_folder(Path(root), "results folder") / run_id_for(settings)
        if self.dir.exists() and not self.dir.is_dir():
            raise HarnessError(f"{self.dir}: a file where this run's folder goes; move it away")
        try:
            self.dir.mkdir(exist_ok=True)
            self._lock = FileLock(str(self.dir / ".lock"))
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                note(f"{self.dir.name}: another harness process is computing this run; waiting for it")
                self._lock.acquire()
        except OSError as exc:
            raise HarnessError(f"{self.dir}: cannot lock the run folder ({exc.strerror or exc})") from exc
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        from ..data.download import remove_leftovers

        # the hidden temporary files of atomic writes a killed session left (SIGKILL, out of
        # memory): this process holds the lock and no rank has started, so none is being written
        # (a link among them is removed, never followed)
        left = remove_leftovers(self.dir, lambda name: name.startswith(".") and name.endswith(".tmp"), recursive=True)
        if left:
            self.note(f"{self.dir.name}: removed {left} temporary file(s) an interrupted session left")
        _no_links_inside(self.dir)
        try:
            existing = read_run(self.dir)
        except DataError as exc:
            bad = str(exc).split(":", 1)[0]
            if not bad.endswith("summary.json") and not bad.endswith("manifest.json"):
                raise
            self._set_aside(Path(bad), "unreadable")
            existing = read_run(self.dir)
        if existing.settings and settings_hash(existing.settings) != settings_hash(self.settings):
            raise HarnessError(f"{self.dir}: settings.json does not match this run's settings; remove the folder")
        if not existing.settings:
            atomic_write_json(self.dir / "settings.json", self.settings)
        self.manifest, self.summary = existing.manifest, existing.summary
        self.shards = self.dir / "shards"
        self.shards.mkdir(exist_ok=True)
        self.sessions = self._read_sessions()
        self._done = self._check_shards()

    # --- what is already there ------------------------------------------------------------------
    def _read_sessions(self) -> list[str]:
        path = self.dir / "sessions.json"
        if not path.is_file():
            return []
        try:
            sessions = json.loads(path.read_text())
            if isinstance(sessions, list) and all(isinstance(s, str) for s in sessions):
                return sessions
            problem = "not a list of start times"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            problem = type(exc).__name__
        self._set_aside(path, f"unreadable ({problem}); the run's first start is no longer known")
        return []

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a damaged file to ``<run>/damaged/`` (never delete what might be evidence)."""
        target = self.dir / "damaged" / path.name
        target.parent.mkdir(exist_ok=True)
        n = 1
        while target.exists():
            target = target.with_name(f"{path.name}.{n}")
            n += 1
        shutil.move(str(path), str(target))
        self.note(f"warning: {path}: {why}; set aside as {target.relative_to(self.dir)}")

    def _check_shards(self) -> dict[str, str]:
        """Stimulus id -> shard of every intact shard; damaged or duplicate shards are set aside (their
        stimuli are then computed again) and a summary that counted them is withdrawn."""
        recorded = self.manifest.get("shards") if isinstance(self.manifest.get("shards"), dict) else {}
        done: dict[str, str] = {}
        damaged = False
        # the shards the manifest lists first: of two shards with the same stimuli, the one the
        # finished run was summarised from is kept, and an unlisted one (added since) is set aside
        for path in sorted(shard_files(self.dir), key=lambda p: (p.name not in recorded, p.name)):
            digest = sha256_file(path)
            named = SHARD_RE.match(path.name).group(2)
            why = None
            if named is not None and not digest.startswith(named):
                why = "damaged shard (its contents do not match the hash in its name)"
            elif path.name in recorded and recorded[path.name] != digest:
                why = "damaged shard (not the file the manifest recorded)"
            elif (foreign := foreign_shard(path, self.settings)) is not None:
                why = foreign
            else:
                try:
                    rows = read_shard(path, max_rows=row_limit(self.settings))
                    ids = rows["stimulus_id"].astype(str).tolist()
                except HarnessError as exc:
                    why = str(exc).split(": ", 1)[-1]
                else:
                    again = [i for i in ids if i in done] + ([ids[0]] if len(set(ids)) < len(ids) else [])
                    if again:
                        why = f"rows for stimuli already in another shard (e.g. {again[0]!r})"
                        if set(ids) <= set(done):  # a second copy of rows the run keeps
                            why += f"; all {len(set(ids))} of its stimuli are, none is lost"
            if why is None:
                done.update((i, path.name) for i in ids)
            else:
                damaged = True
                self._set_aside(path, why if why.endswith("none is lost") else why + "; its stimuli will be computed again")
        if damaged and (self.dir / "summary.json").is_file():
            self._set_aside(self.dir / "summary.json", "withdrawn: a shard of this run was set aside")
            self.summary = {}
        return done

    def recheck(self) -> set[str]:
        """The shards checked again before the run is summarised (another process may have written
        rows since this one started: a launcher's rank that outlived its rank 0, in a multi-machine
        run, while this process took the run over); a second copy of rows is set aside. Returns the
        stimuli with a row."""
        self._done = self._check_shards()
        return set(self._done)

    @property
    def finished(self) -> bool:
        return bool(self.summary)

    # --- writing ----------------------------------------------------------------------------------
    def begin_session(self, environment: dict[str, Any] | None = None) -> None:
        """Record that this run computes rows (a run that is only reused gets no session). With
        ``environment`` (package versions and processor, ``harness.evaluation.record.environment``):
        refuse to add rows to rows computed in another one (a resumed run would otherwise mix the
        numbers of two torch or numpy versions, or of two processor types, and its manifest would
        name only the last); the first session records it in ``environment.json``."""
        if environment is not None:
            self._check_environment(environment)
        self.sessions.append(_now())
        atomic_write_json(self.dir / "sessions.json", self.sessions)

    def _check_environment(self, environment: dict[str, Any]) -> None:
        path = self.dir / ENVIRONMENT
        recorded = read_environment(self.dir, self._set_aside)
        if self._done:
            if recorded is None:
                if not path.exists():  # a folder of a version that did not record it
                    self.note(f"note: {self.dir.name}: the environment of its earlier sessions was not recorded; "
                              "resuming it in this one")
            else:
                check_same_environment(self.dir, recorded, environment, f"its {len(self._done)} rows were")
                return
        atomic_write_json(path, environment)

    def shard_hashes(self) -> dict[str, str]:
        return {p.name: sha256_file(p) for p in shard_files(self.dir)}

    def finish(self, manifest: dict[str, Any], summary: dict[str, Any]) -> None:
        """Manifest first, summary last: a summary's presence marks a finished run."""
        atomic_write_json(self.dir / "manifest.json", manifest)
        atomic_write_json(self.dir / "summary.json", summary)
        self.manifest, self.summary = manifest, summary

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None and lock.is_locked:
            lock.release()

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
