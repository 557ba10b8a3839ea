"""Does a run folder hold together? Used by ``harness verify`` (every run, every detail, exit 1 on
any problem) and by every reader of a results folder (a damaged run is reported and left out).

Checked, in order: the settings hash is the one in the folder name; every shard is readable, its
bytes match the hash in its name and the sha256 the manifest recorded, and no shard is missing or
extra; no stimulus has two rows; a finished run has one row per stimulus it was asked to score; the
summary has the types the schema says; and the summary is the one its rows give (counts, failures,
degenerate maps, non-finite values and every metric mean, recomputed). Dataset-level task metrics
(mAP, CIDEr) need the dataset's records and are checked for their types only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import HarnessError
from .files import links_inside, sha256_file
from .store import MAX_RUN_ROWS, SHARD_RE, Run, foreign_shard, read_shard, row_limit, run_id_for, settings_hash
from .summary import aggregate, metric_columns, mismatches, type_problems


def shard_problems(path: Path, manifest_hashes: dict[str, str] | None, settings: dict[str, Any] | None = None,
                   max_rows: int | None = None) -> tuple[list[str], object]:
    """(problems, frame or None) of one shard file (with ``settings``: also whether it is a shard of
    that run; with ``max_rows``: whether it holds no more rows than that)."""
    digest = sha256_file(path)
    named = SHARD_RE.match(path.name).group(2)
    if named is not None and not digest.startswith(named):
        return [f"{path.name}: contents do not match the hash in its name (sha256 {digest[:16]})"], None
    if manifest_hashes is not None and path.name in manifest_hashes and manifest_hashes[path.name] != digest:
        return [f"{path.name}: sha256 {digest[:16]}… is not the {str(manifest_hashes[path.name])[:16]}… the manifest recorded"], None
    if settings and (foreign := foreign_shard(path, settings)) is not None:
        return [f"{path.name}: {foreign}"], None
    try:
        return [], read_shard(path, max_rows=row_limit(settings) if max_rows is None else max_rows)
    except HarnessError as exc:
        return [f"{path.name}: {str(exc).split(': ', 1)[-1]}"], None


def run_problems(run: Run) -> list[str]:
    """Everything wrong with ``run``, one phrase each (empty: the run holds together)."""
    import pandas as pd

    problems: list[str] = []
    settings, manifest, summary = run.settings, run.manifest, run.summary
    if not settings:
        return ["settings.json is missing or empty"]
    problems += [f"settings.json: {p}" for p in settings_type_problems(settings)]
    problems += _links_inside(run.path)
    try:
        if run_id_for(settings) != run.path.name:
            problems.append(f"settings.json (sha256 {settings_hash(settings)[:12]}) does not match the folder name")
    except (KeyError, TypeError):
        problems.append("settings.json lacks model, dataset, task or attention")
    recorded = manifest.get("shards") if manifest else None
    if recorded is not None and not isinstance(recorded, dict):
        problems.append("manifest.json: shards is not a mapping of file names to sha256")
        recorded = None
    frames = []
    files = run.shard_files()
    left = row_limit(settings)  # rows the run's stimuli leave room for, so all its shards together fit
    for path in files:
        found, frame = shard_problems(path, recorded, settings, max_rows=left)
        problems += found
        if frame is not None:
            frames.append(frame)
            left -= len(frame)
    if run.finished and not recorded:
        # a finished run's manifest lists every shard's sha256 (and holds its provenance)
        problems.append("manifest.json: missing, unreadable or lists no shards (the run's provenance and its "
                        "shards' hashes)")
    if recorded is not None and run.finished:
        names = {p.name for p in files}
        problems += [f"{name}: listed in the manifest but missing" for name in sorted(set(recorded) - names)]
        problems += [f"{name}: not listed in the manifest" for name in sorted(names - set(recorded))]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["stimulus_id", "status"])
    dup = frame["stimulus_id"][frame["stimulus_id"].duplicated()]
    if len(dup):
        problems.append(f"{dup.nunique()} stimuli have more than one row (e.g. {dup.iloc[0]!r})")
    if not run.finished:
        return problems
    problems += [f"summary.json: {p}" for p in type_problems(summary)]
    recorded_cal = (manifest or {}).get("calibration_sha256")
    if recorded_cal:  # a calibrated run: its shards were scored with that calibration
        from ..data.download import sha256_file

        path = run.path / "calibration.json"
        if not path.is_file():
            problems.append("calibration.json: recorded in the manifest but missing")
        elif sha256_file(path) != recorded_cal:
            problems.append("calibration.json: not the file its shards were scored with (sha256 differs from the "
                            "manifest's)")
    problems += manifest_disagreements(manifest or {}, settings, summary)
    # what the tables show of a run comes from its summary: it must name the run its settings name
    for key in ("model", "attention", "dataset", "task", "kind", "metric_profile"):
        if key in summary and key in settings and summary[key] != settings[key]:
            problems.append(f"summary.json: {key} {summary[key]!r}, but settings.json says {settings[key]!r}")
    # the directions decide which side of a difference is better (compare, report, the page's
    # arrows): a registered metric's must be its registration's
    problems += [f"summary.json: metric_directions says {m} is {d!r}-is-better, but metric {m!r} is "
                 f"{'higher' if higher else 'lower'}-is-better" for m, d, higher in _directions_off(summary)]
    # raw runs record their scoring by its absence, in both files
    if summary.get("scoring", "raw") != settings.get("scoring", "raw"):
        problems.append(f"summary.json: scoring {summary.get('scoring', 'raw')!r}, but settings.json says "
                        f"{settings.get('scoring', 'raw')!r}")
    expected = settings.get("n_images")
    if isinstance(expected, int) and len(frame) != expected and not problems:
        problems.append(f"the shards hold {len(frame)} rows for the {expected} stimuli of this run")
    if any(p.startswith("summary.json") for p in problems) or any("shard" in p or ".parquet" in p for p in problems):
        return problems
    names = list((summary.get("metrics") or {}).keys())
    unknown = [m for m in names if m not in frame.columns]
    if unknown:  # a mean of no column: edited, or the shards of another run
        return problems + [f"summary.json: metric {m!r} is not a column of the shards" for m in unknown]
    extra = [m for m in metric_columns(frame) if m not in names]
    recomputed = aggregate(frame, names + extra)
    problems += [f"summary.json: {p}" for p in mismatches(summary, recomputed)]
    return problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    text = repr(value)  # repr: control characters of an edited file are shown escaped
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= MAX_RUN_ROWS


def settings_type_problems(settings: dict[str, Any]) -> list[str]:
    """The fields of a run's settings that readers use, where they do not have the type the harness
    writes: settings.json is hashed into the folder name, so an edit of it can be sealed again, and
    a run that passed verify with metric_params "oops" or seed "abc" stopped the readers with a
    traceback."""
    out = []
    for key in ("model", "dataset", "task", "attention", "kind", "metric_profile", "scoring"):
        if key in settings and not isinstance(settings[key], str):
            out.append(f"{key} is {_shown(settings[key])}, not a text")
    if "n_images" in settings and not _count(settings["n_images"]):
        out.append(f"n_images is {_shown(settings['n_images'])}, not a count of stimuli (at most {MAX_RUN_ROWS})")
    if settings.get("limit") is not None and not _count(settings["limit"], 1):
        out.append(f"limit is {_shown(settings['limit'])}, not a number of stimuli")
    if settings.get("batch_size") is not None and not _count(settings["batch_size"], 1):
        out.append(f"batch_size is {_shown(settings['batch_size'])}, not a whole number >= 1")
    seed = settings.get("seed")
    if "seed" in settings and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63):
        out.append(f"seed is {_shown(seed)}, not a whole number >= 0")
    fingerprint = settings.get("dataset_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, str) and re.fullmatch(r"[0-9a-f]{1,128}", fingerprint)):
        out.append(f"dataset_fingerprint is {_shown(fingerprint)}, not a hexadecimal digest")
    params = settings.get("metric_params")
    if params is not None:
        if not isinstance(params, dict):
            out.append(f"metric_params is {_shown(params)}, not a mapping")
        else:
            for name, value in params.items():
                want = {"sigma_per_stimulus": (dict, "a mapping"), "ig_baseline": (str, "a text")}.get(name)
                if not (isinstance(value, want[0]) if want else value is None or _number(value)):
                    out.append(f"metric_params.{name} is {_shown(value)}, not {want[1] if want else 'a number'}")
    for key in ("task_params", "stimuli", "model_provenance"):
        if settings.get(key) is not None and not isinstance(settings[key], dict):
            out.append(f"{key} is {_shown(settings[key])}, not a mapping")
    return out


def _links_inside(run_dir: Path) -> list[str]:
    """A link in a run folder: the harness never makes one, and through it a reader would take a
    shard or map from elsewhere into a table or a page (the security QA linked maps/ to another
    folder; `leaderboard build` then published its arrays)."""
    return [f"{p.relative_to(run_dir)}: a link inside the run folder (the harness makes none)"
            for p in links_inside(run_dir)]


#: what a manifest copies from settings.json when the run finishes (harness.evaluation.record.manifest)
MANIFEST_FROM_SETTINGS = ("model", "model_provenance", "dataset", "dataset_fingerprint", "task", "attention",
                          "metric_profile", "metric_params", "scoring", "seed")


def manifest_disagreements(manifest: dict, settings: dict, summary: dict) -> list[str]:
    """The manifest's copies of what settings.json (hashed into the folder name) and summary.json
    hold, where they differ: the manifest is not hashed, and an edited fingerprint or weights hash
    there passed verify and was what a publish reported."""
    out = [f"manifest.json: {key} {manifest[key]!r}, but settings.json says {settings[key]!r}"
           for key in MANIFEST_FROM_SETTINGS if key in manifest and key in settings and manifest[key] != settings[key]]
    if "settings_sha256" in manifest and manifest["settings_sha256"] != settings_hash(settings):
        out.append(f"manifest.json: settings_sha256 {str(manifest['settings_sha256'])[:12]}… is not the hash of "
                   f"settings.json ({settings_hash(settings)[:12]}…)")
    if manifest.get("finished_at") and summary.get("finished_at") and manifest["finished_at"] != summary["finished_at"]:
        out.append(f"manifest.json: finished_at {manifest['finished_at']!r}, but summary.json says "
                   f"{summary['finished_at']!r}")
    return out


def _directions_off(summary: dict) -> list[tuple[str, Any, bool]]:
    """``(metric, recorded, higher_is_better)`` for each metric whose direction in the summary is not
    the one its registration here gives (metrics not registered here are not judged; ``ll``, the
    log-likelihood of a calibrated run, is higher-is-better)."""
    from ..plugins import get_registry

    directions = summary.get("metric_directions")
    if not isinstance(directions, dict):
        return []
    reg = get_registry(warn=False)
    out = []
    for name, recorded in directions.items():
        if name == "ll":
            higher = True
        elif ("metric", name) in reg:
            higher = bool(reg.get("metric", name).get("higher_is_better", True))
        else:
            continue
        if recorded != ("higher" if higher else "lower"):
            out.append((name, recorded, higher))
    return out
