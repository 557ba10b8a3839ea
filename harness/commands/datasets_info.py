"""``harness datasets info NAME``: what a gaze dataset holds, what was dropped, where it lives;
``harness datasets prune NAME``: free the disk space of converted tables no longer used."""

from __future__ import annotations

import json

import click

from ..cli import datasets


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
    dropped = info["dropped"] or {}
    skipped = info["skipped"] or {}
    lines.append("  dropped fixations:   " + (", ".join(f"{k.removeprefix('dropped_')} {v}" for k, v in dropped.items()) or "none"))
    lines.append("  skipped stimuli:     " + (", ".join(f"{k.removeprefix('skipped_')} {v}" for k, v in skipped.items()) or "none"))
    for item in info.get("skipped_items", [])[:20]:
        lines.append(f"    - {item}")
    if len(info.get("skipped_items", [])) > 20:
        lines.append(f"    ... and {len(info['skipped_items']) - 20} more (see --json)")
    for key, value in (info.get("notes") or {}).items():
        lines.append(f"  {key + ':':<21}{value}")
    lines += [
        f"  data:                {info['data_dir']}",
        f"  cache:               {info['cache_dir']}",
        f"  source:              {info['source_url']}",
        f"  converter version:   {info['converter_version']}",
        f"  fingerprint:         {info['fingerprint']}",
    ]
    return "\n".join(lines)


@datasets.command("info")
@click.argument("name")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset's files (default: $HARNESS_DATA_DIR/NAME, then the cache).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache root (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def datasets_info(name: str, data_dir: str | None, cache_dir: str | None, as_json: bool) -> None:
    """Describe gaze dataset NAME (converts and caches it on first use)."""
    from ..data import get_gaze_dataset

    info = get_gaze_dataset(name, data_dir=data_dir, cache_dir=cache_dir).info()
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
    else:
        click.echo(_format(info))


def _size(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@datasets.command("prune")
@click.argument("names", nargs=-1, required=True)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Folder holding the dataset's files (default: $HARNESS_DATA_DIR/NAME, then the cache).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache root (default: $HARNESS_CACHE_DIR or ~/.cache/gaze-harness).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def datasets_prune(names: tuple[str, ...], data_dir: str | None, cache_dir: str | None, dry_run: bool) -> None:
    """Remove the cached tables of dataset NAMES that their current data no longer produces.

    Each conversion is cached under its data's fingerprint and embeds the images, so every change
    of the data or of a converter leaves a full copy behind; the current table is kept.
    """
    import shutil

    from ..data import get_gaze_dataset

    total = 0
    for name in names:
        stale = get_gaze_dataset(name, data_dir=data_dir, cache_dir=cache_dir).stale_caches()
        for path in stale:
            size = _size(path)
            total += size
            if not dry_run:
                shutil.rmtree(path)
            click.echo(f"{'would remove' if dry_run else 'removed'} {path} ({size / 2**20:.1f} MiB)")
        if not stale:
            click.echo(f"{name}: nothing to prune")
    click.echo(f"{'would free' if dry_run else 'freed'} {total / 2**20:.1f} MiB")
