"""``harness datasets info NAME``: what a gaze dataset holds, what was dropped, where it lives;
``harness datasets prune NAME``: free the disk space of converted tables no longer used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from . import FOLDER
from ..cli import datasets
from ..data.paths import DATA_DIR_HELP


def _label(key: str) -> str:
    """``key:`` padded to the label column; a longer one (poet's ``observers_without_fixations``)
    still keeps a space before its value."""
    return f"{key + ':':<20} "


def _format(info: dict) -> str:
    per = info["fixations_per_image"]
    lines = [
        f"{info['name']}: {info['description']}" if info.get("description") else info["name"],
        f"  tasks:               {', '.join(info['tasks']) or '-'}",
        f"  images:              {info['images']}",
        f"  subjects:            {info['subjects']}",
        f"  fixations:           {info['fixations']}",
        f"  fixations per image: mean {per['mean']:.1f}, min {per['min']}, max {per['max']}",
        f"  pixels per degree:   {info['pixels_per_degree']}",
    ]
    # images scaled to the screen each by its own factor: the geometry per stimulus (docs/schema.md)
    geometry = info.get("per_stimulus_geometry") or {}
    if geometry or str(info.get("display_pixels_per_degree", "nan")) != "nan":
        lines.append(f"  display px/degree:   {info.get('display_pixels_per_degree')}")
    for key, g in geometry.items():
        if g["records"]:
            lines.append(f"  {_label(key)}per stimulus, {g['records']} records, {g['min']:g} to {g['max']:g}")
    dropped = info["dropped"] or {}
    skipped = info["skipped"] or {}
    lines.append("  dropped fixations:   " + (", ".join(f"{k.removeprefix('dropped_')} {v}" for k, v in dropped.items()) or "none"))
    lines.append("  skipped stimuli:     " + (", ".join(f"{k.removeprefix('skipped_')} {v}" for k, v in skipped.items()) or "none"))
    for item in info.get("skipped_items", [])[:20]:
        lines.append(f"    - {item}")
    if len(info.get("skipped_items", [])) > 20:
        lines.append(f"    ... and {len(info['skipped_items']) - 20} more (see --json)")
    for key, value in (info.get("notes") or {}).items():
        lines.append(f"  {_label(key)}{value}")
    lines += [
        f"  data:                {info['data_dir']}",
        f"  cache:               {info['cache_dir']}",
        f"  source:              {info['source_url']}",
        f"  converter version:   {info['converter_version']}",
        f"  fingerprint:         {info['fingerprint']}",
    ]
    return "\n".join(lines)


def _source_found(obj) -> bool:
    """Whether the dataset's files are on disk (given with --data-dir, or where they are looked
    for), without downloading them."""
    from ..data import paths

    if obj.data_dir is not None:
        return True  # used as given; a missing folder is its own one-line error
    return any(folder.is_dir() for folder, _ in paths.candidate_data_dirs(obj.name, obj.cache_dir))


def _looked_in(obj) -> str:
    from ..data import paths

    where = [f"{folder} ({origin})" for folder, origin in paths.candidate_data_dirs(obj.name, obj.cache_dir)]
    if not any(origin.startswith("$") for _, origin in paths.candidate_data_dirs(obj.name, obj.cache_dir)):
        where.insert(0, f"${paths.DATA_ENV} (not set)")
    return ", ".join(where)


def _cached_tables(obj) -> list[dict]:
    """The converted tables of ``obj``'s dataset in its cache, as their meta files describe them."""
    from ..data import paths
    from ..data.base import META_FILE

    parent = paths.arrow_cache_dir(obj.name, obj.cache_dir)
    if not parent.is_dir():
        return []
    out = []
    for folder in sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")):
        entry = {"path": str(folder), "size_bytes": _size(folder), "fingerprint": None, "converter_version": None,
                 "current_converter": None, "created": None, "source_root": None, "stats": {}, "skipped": 0}
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            entry["problem"] = f"no readable {META_FILE} ({type(exc).__name__}); never loaded"
        else:
            entry.update(fingerprint=meta.get("fingerprint"), converter_version=meta.get("converter_version"),
                         created=meta.get("created"), source_root=meta.get("source_root"),
                         stats=meta.get("stats") or {}, skipped=len(meta.get("skipped") or []))
            entry["current_converter"] = str(entry["converter_version"]) == str(obj.converter_version)
            entry["source_root_exists"] = bool(entry["source_root"]) and Path(entry["source_root"]).is_dir()
        out.append(entry)
    return out


def _cache_only_info(obj) -> dict:
    return {
        "name": obj.name, "description": obj.description, "tasks": list(obj.tasks),
        "source_found": False, "looked_in": _looked_in(obj), "source_url": obj.source_url,
        "converter_version": str(obj.converter_version),
        "cache_root": str(obj.cache_dir), "cached_tables": _cached_tables(obj),
    }


def _format_cache_only(info: dict) -> str:
    from ..data import paths

    lines = [
        f"{info['name']}: {info['description']}" if info.get("description") else info["name"],
        f"  tasks:               {', '.join(info['tasks']) or '-'}",
        f"  source data:         not found (looked in {info['looked_in']}), so the current fingerprint "
        "cannot be checked",
        f"  get it from:         {info['source_url']} (then pass --data-dir or set ${paths.DATA_ENV})",
        f"  converter version:   {info['converter_version']}",
        f"  cached tables:       {len(info['cached_tables'])}",
    ]
    for t in info["cached_tables"]:
        lines.append(f"    - {t['path']}")
        if t.get("problem"):
            lines.append(f"        {t['problem']}; {t['size_bytes'] / 2**20:.1f} MiB")
            continue
        converter = f"{t['converter_version']}" + ("" if t["current_converter"] else " (not the current converter: "
                                                    "`harness datasets prune` removes it once the data is found)")
        lines += [
            f"        fingerprint:       {t['fingerprint']}",
            f"        size:              {t['size_bytes'] / 2**20:.1f} MiB",
            f"        converter version: {converter}",
            f"        created:           {t['created']}",
            f"        converted from:    {t['source_root']}"
            + (" (still there: pass it with --data-dir)" if t.get("source_root_exists") else ""),
        ]
    return "\n".join(lines)


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", type=FOLDER, default=None,
              help=DATA_DIR_HELP)
@click.option("--cache-dir", type=FOLDER, default=None,
              help="Cache root (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def datasets_info(name: str, data_dir: str | None, cache_dir: str | None, as_json: bool) -> None:
    """Describe gaze dataset NAME (converts and caches it on first use).

    Without its source data but with converted tables in the cache, describes those tables (and
    where the data was looked for) instead of downloading it."""
    # `harness datasets --json info NAME`: the group's flag, as meant (it printed the text; found by QA)
    as_json = as_json or bool(click.get_current_context().parent.params.get("as_json"))
    from ..data import get_gaze_dataset

    obj = get_gaze_dataset(name, data_dir=data_dir, cache_dir=cache_dir)
    if not _source_found(obj) and _cached_tables(obj):
        info = _cache_only_info(obj)
        click.echo(json.dumps(info, indent=2, default=str) if as_json else _format_cache_only(info))
        return
    info = obj.info()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        click.echo(_format(info))


def _size(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@datasets.command("prune")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=FOLDER, default=None,
              help=DATA_DIR_HELP)
@click.option("--cache-dir", type=FOLDER, default=None,
              help="Cache root (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def datasets_prune(names: tuple[str, ...], data_dir: str | None, cache_dir: str | None, dry_run: bool) -> None:
    """Remove the cached tables of dataset NAMES that their current data no longer produces.

    Each conversion is cached under its data's fingerprint and embeds the images, so every change
    of the data or of a converter leaves a full copy behind; the current table is kept.
    """

    from ..data import get_gaze_dataset

    total, refused = 0, 0
    for name in names:
        obj = get_gaze_dataset(name, data_dir=data_dir, cache_dir=cache_dir)
        if not _source_found(obj):
            # which table is current depends on the data's fingerprint: without the data, nothing is removed
            refused += 1
            click.echo(f"{name}: source data not found (looked in {_looked_in(obj)}), so which cached tables are "
                       "stale cannot be checked; nothing removed (pass --data-dir or set $HARNESS_DATA_DIR)",
                       err=True)
            continue
        from ..data import paths

        tables = paths.arrow_cache_dir(obj.name, obj.cache_dir)
        linked = next((p for p in (tables.parent, tables) if p.is_symlink()), None)
        if linked is not None:  # it deleted every folder where a linked arrow/<name> led (found by QA)
            refused += 1
            click.echo(f"{name}: {linked} is a link (to {os.readlink(linked)}); nothing removed through it (prune "
                       "where it leads, with --cache-dir)", err=True)
            continue
        stale = obj.stale_caches()
        for path, folder in obj.other_folders_tables():
            click.echo(f"kept {path}: the current table of {folder}, another data folder of {name}")
        for path in stale:
            size = _size(path)
            if not dry_run and not obj.remove_stale(path):
                click.echo(f"kept {path}: another process is converting it")
                continue
            total += size
            click.echo(f"{'would remove' if dry_run else 'removed'} {path} ({size / 2**20:.1f} MiB)")
        if not stale:
            click.echo(f"{name}: nothing to prune")
    if refused < len(names) and total:  # not 'freed 0.0 MiB' after 'nothing to prune' (found by QA)
        click.echo(f"{'would free' if dry_run else 'freed'} {total / 2**20:.1f} MiB")
    if refused:
        raise SystemExit(1)
