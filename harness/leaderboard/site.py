"""``harness leaderboard build``: a static leaderboard site that works from a folder.

The page makes no request outside its own folder: the JavaScript and CSS are files beside
``index.html`` (``harness/site/``), the rows are embedded as JSON in a
``<script type="application/json">`` block (``file://`` pages cannot ``fetch`` local files in
Chromium), and example images are PNG files under ``assets/``. A Content-Security-Policy meta tag
forbids everything else. All data is inserted by the script as text (``textContent``), never as
HTML, so a model named ``<script>...`` is shown, not run.

Example overlays: for up to ``n_examples`` stimuli per run (the ones whose attention maps the run
saved under ``<run>/maps/``, in dataset order) the page shows the human fixation density
(recomputed from the dataset with the run's own ``sigma_px``) beside the model's map, each over the
stimulus. Nothing is re-run. A run names its maps in ``maps/index.json`` (``{file name: stimulus
id}``, files named by :func:`harness.ids.stimulus_filename`); the index is untrusted, so only plain
``.npy`` files directly in ``maps/`` are read. Runs written before the index existed saved
``maps/<stimulus_id>.npy`` and are read that way. Assets are written under folders named by
:func:`harness.ids.safe_component`, so distinct runs (and datasets) never share one.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ..errors import HarnessError
from ..results import Run, load_runs
from . import hub_table

ASSETS = ("app.js", "style.css", "favicon.svg")
MARKER = ".gaze-harness-site"
EXAMPLE_WIDTH = 360

# Anchors of a magma-like colour map (dark -> bright), interpolated into a 256-entry table.
_ANCHORS = [(0.0, (0, 0, 4)), (0.25, (80, 18, 123)), (0.5, (182, 54, 121)), (0.75, (251, 136, 97)),
            (1.0, (252, 253, 191))]


def _template(name: str) -> str:
    return resources.files("harness").joinpath("site", name).read_text(encoding="utf-8")


def json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and the JS line
    separators are escaped, so no string in the data can close the element."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, sort_keys=False)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _parse_json(value: Any) -> Any:
    if isinstance(value, str) and value:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value if value is not None else {}


def page_rows(rows: Sequence[dict[str, Any]], examples: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Published rows -> the records the page script reads."""
    examples = examples or {}
    metrics = hub_table.metric_columns(rows)
    tasks = hub_table.task_columns(rows)
    out = []
    for row in rows:
        provenance = {k: row.get(k) for k in (
            "run_id", "harness_version", "model_id", "weights_sha256", "revision", "dataset_fingerprint",
            "metric_profile", "seed", "batch_size", "wall_time_s", "started_at", "finished_at", "settings_sha256",
            "published_at") if row.get(k) is not None}
        ex = examples.get(row["run_id"], {})
        out.append({
            "run_id": row["run_id"],
            "model": row.get("model"),
            "attention": row.get("attention"),
            "dataset": row.get("dataset"),
            "task": row.get("task"),
            "kind": row.get("kind") or "model",
            "latest": bool(row.get("latest", True)),
            "n_images": row.get("n_images"),
            "n_failed": row.get("n_failed"),
            "task_primary": row.get("task_primary"),
            "values": {c: hub_table._clean(row.get(c)) for c in metrics + tasks if row.get(c) is not None},
            "provenance": provenance,
            "settings": _parse_json(row.get("settings")),
            "manifest": _parse_json(row.get("manifest")),
            "packages": _parse_json(row.get("packages")),
            "examples": ex.get("items", []),
            "examples_note": ex.get("note"),
        })
    return out


def page_data(rows: Sequence[dict[str, Any]], *, examples=None, primary: str | None = None,
              title: str = "gaze-harness leaderboard") -> dict[str, Any]:
    from .. import __version__

    directions = hub_table.directions_of(rows)
    metrics = hub_table.metric_columns(rows)
    primary = hub_table.default_primary(rows, primary)
    if primary in metrics:
        metrics.remove(primary)
        metrics.insert(0, primary)
    return {
        "title": title,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "primary": primary,
        "metrics": [{"name": m, "direction": directions.get(m)} for m in metrics],
        "task_metrics": [{"name": t, "direction": "higher"} for t in hub_table.task_columns(rows)],
        "rows": page_rows(rows, examples),
    }


def render_page(data: dict[str, Any]) -> str:
    values = {"TITLE": html.escape(str(data.get("title", "")), quote=True), "DATA": json_for_script(data)}
    # one pass, so text inserted for one placeholder is never scanned for another
    return re.sub(r"\{\{(TITLE|DATA)\}\}", lambda m: values[m.group(1)], _template("index.html"))


# --- example overlays ---------------------------------------------------------------------------


def _colormap():
    import numpy as np

    xs = np.linspace(0, 1, 256)
    pos = [a for a, _ in _ANCHORS]
    return np.stack([np.interp(xs, pos, [c[i] for _, c in _ANCHORS]) for i in range(3)], axis=1)


def _normalise(m):
    import numpy as np

    m = np.asarray(m, dtype=np.float64)
    m = np.where(np.isfinite(m), m, 0.0)
    lo, hi = float(m.min()), float(m.max())
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def overlay(image, heat, *, points=None):
    """The stimulus with ``heat`` (any scale, same aspect) blended on top; ``points`` (x, y arrays
    in stimulus pixels) drawn as dots. Returned at ``EXAMPLE_WIDTH`` pixels wide."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = image.convert("RGB")
    w, h = image.size
    scale = min(1.0, EXAMPLE_WIDTH / w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    base = np.asarray(image.resize(size, Image.BILINEAR), dtype=np.float64)
    hm = Image.fromarray(_normalise(heat).astype(np.float32), mode="F").resize(size, Image.BILINEAR)
    v = np.clip(np.asarray(hm, dtype=np.float64), 0.0, 1.0)
    colour = _colormap()[np.round(v * 255).astype(int)]
    alpha = (0.85 * np.sqrt(v))[..., None]
    out = Image.fromarray(np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8))
    if points is not None:
        draw = ImageDraw.Draw(out)
        for x, y in zip(*points):
            cx, cy = (float(x) + 0.5) * scale, (float(y) + 0.5) * scale
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=(0, 255, 255), outline=(0, 0, 0))
    return out


class _DatasetCache:
    """Datasets opened for the overlays, once each; a dataset that cannot be opened is remembered
    with its reason so every run of it gets the same note."""

    def __init__(self, data_dir: Path | None, cache_dir: Path | None):
        self.data_dir, self.cache_dir = data_dir, cache_dir
        self._open: dict[str, Any] = {}

    def get(self, name: str):
        if name not in self._open:
            try:
                from ..data import load_gaze_dataset

                explicit = None
                if self.data_dir is not None and (self.data_dir / name).is_dir():
                    explicit = self.data_dir / name
                gaze, ds = load_gaze_dataset(name, data_dir=explicit, cache_dir=self.cache_dir)
                ids = ds.select_columns(["stimulus_id"])["stimulus_id"]
                self._open[name] = (gaze, ds, {sid: i for i, sid in enumerate(ids)})
            except HarnessError as exc:
                self._open[name] = str(exc)
            except Exception as exc:  # a dataset that cannot be read must not stop the page; say why
                self._open[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return self._open[name]


MAPS_INDEX = "index.json"


def _plain_map_file(maps_dir: Path, name: Any) -> Path | None:
    """``maps_dir / name`` if ``name`` is one plain ``.npy`` file name of a regular file directly in
    ``maps_dir`` (no folder, ``..``, backslash, hidden file or link), else None."""
    if not isinstance(name, str) or not name.endswith(".npy") or name.startswith(".") or \
            any(c in name for c in "/\\\0") or Path(name).name != name:
        return None
    path = maps_dir / name
    return path if path.is_file() and not path.is_symlink() else None


def saved_maps(run_dir: Path) -> tuple[dict[str, Path], str | None]:
    """``({stimulus id: map file}, problem)`` of a run folder: through ``maps/index.json`` when the
    run has one (entries that are not a plain file name in ``maps/`` with a valid stimulus id are
    ignored; files it does not name too), else, for older runs, every plain ``maps/*.npy`` by its
    stem. ``problem`` says why an index could not be read."""
    from ..ids import validate_stimulus_id

    maps_dir = run_dir / "maps"
    if not maps_dir.is_dir():
        return {}, None
    index_file = maps_dir / MAPS_INDEX
    maps: dict[str, Path] = {}
    if not index_file.exists():
        for path in sorted(maps_dir.glob("*.npy")):
            if _plain_map_file(maps_dir, path.name) is not None:
                maps.setdefault(path.stem, path)
        return maps, None
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return {}, f"maps/{MAPS_INDEX} is unreadable ({type(exc).__name__})"
    if not isinstance(index, dict):
        return {}, f"maps/{MAPS_INDEX} is not a JSON object"
    for name in sorted(index, key=str):
        sid, path = index[name], _plain_map_file(maps_dir, name)
        if path is None or not isinstance(sid, str):
            continue
        try:
            validate_stimulus_id(sid)
        except ValueError:
            continue
        maps.setdefault(sid, path)
    return maps, None


def run_examples(run: Run, site: Path, n: int, datasets: _DatasetCache, human_done: dict) -> dict[str, Any]:
    """Write the overlay PNGs of one run under ``site/assets`` and describe them for the page."""
    import numpy as np

    from ..ids import safe_component

    maps, problem = saved_maps(run.path)
    if not maps or n <= 0:
        if problem is not None:
            note = f"This run's attention maps cannot be shown: {problem}."
        else:
            note = None if run.summary.get("kind") == "ceiling" else \
                "This run saved no attention maps (harness eval keeps the maps of its first stimuli under maps/)."
        return {"items": [], "note": note}
    name = run.summary.get("dataset")
    opened = datasets.get(name)
    if isinstance(opened, str):
        order = sorted(maps)[:n]
        gaze = ds = index = None
        note = f"Human fixation density unavailable: {opened}"
    else:
        gaze, ds, index = opened
        order = sorted((sid for sid in maps if sid in index), key=index.get)[:n]
        note = None
    from ..evaluation.config import run_sigma_px  # the run's blur of each stimulus (per-stimulus geometry)

    params = run.settings.get("metric_params") or {}
    items = []
    run_folder = safe_component(run.run_id)
    run_dir = site / "assets" / "runs" / run_folder
    for k, sid in enumerate(order):
        smap = np.load(maps[sid], allow_pickle=False)
        item: dict[str, Any] = {"stimulus_id": sid}
        if ds is not None:
            from ..data.density import fixation_density
            from ..schema import Fixations

            record = ds[index[sid]]
            image = record["image"]
            w, h = int(record["width"]), int(record["height"])
            sigma = run_sigma_px(params, gaze, record)
            key = (name, sid, round(float(sigma), 6) if sigma is not None else None)
            if sigma is not None and key not in human_done:
                fix = Fixations.from_record(record)
                density = fixation_density(fix.x, fix.y, (h, w), float(sigma))
                rel = f"assets/human/{safe_component(str(name))}/{len(human_done):03d}.png"
                (site / rel).parent.mkdir(parents=True, exist_ok=True)
                overlay(image, density, points=(fix.x, fix.y)).save(site / rel)
                human_done[key] = rel
            if key in human_done:
                item["human"] = human_done[key]
        else:
            from PIL import Image

            image = Image.new("RGB", (smap.shape[1], smap.shape[0]), (128, 128, 128))
        run_dir.mkdir(parents=True, exist_ok=True)
        rel = f"assets/runs/{run_folder}/{k:03d}-model.png"
        overlay(image, smap).save(site / rel)
        item["model"] = rel
        items.append(item)
    return {"items": items, "note": note}


# --- building -----------------------------------------------------------------------------------


def _prepare_output(output: Path) -> Path:
    """A fresh temporary folder beside ``output``; refuses to later replace a folder that is not
    empty and was not made by this command (so a typo cannot wipe someone's files)."""
    output = Path(output)
    if output.exists():
        if not output.is_dir():
            raise HarnessError(f"{output} exists and is not a folder")
        if any(output.iterdir()) and not (output / MARKER).exists():
            raise HarnessError(f"{output} is not empty and is not a leaderboard site built by harness; choose another --output")
    output.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))


def _swap_into_place(tmp: Path, output: Path) -> None:
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
    os.replace(tmp, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_site(rows: Sequence[dict[str, Any]], output: Path, *, runs: Sequence[Run] = (), data_dir: Path | None = None,
               cache_dir: Path | None = None, primary: str | None = None, n_examples: int = 3,
               title: str = "gaze-harness leaderboard") -> Path:
    """Write the site for ``rows`` (published rows, see :mod:`hub_table`) into ``output``;
    ``runs`` are the run folders some rows came from, used for the example overlays.
    The folder is built beside ``output`` and swapped in, so a failed build leaves the old site."""
    output = Path(output)
    tmp = _prepare_output(output)
    try:
        (tmp / MARKER).write_text("built by harness leaderboard build\n")
        for name in ASSETS:
            (tmp / name).write_text(_template(name), encoding="utf-8")
        examples: dict[str, dict[str, Any]] = {}
        datasets = _DatasetCache(Path(data_dir) if data_dir else None, Path(cache_dir) if cache_dir else None)
        human_done: dict = {}
        wanted = {r["run_id"] for r in rows}
        for run in runs:
            if run.run_id in wanted:
                examples[run.run_id] = run_examples(run, tmp, n_examples, datasets, human_done)
        data = page_data(rows, examples=examples, primary=primary, title=title)
        (tmp / "index.html").write_text(render_page(data), encoding="utf-8")
        _swap_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output / "index.html"


def build_site(results_dir: Path | str, output: Path | str, *, data_dir: Path | None = None,
               cache_dir: Path | None = None, primary: str | None = None, n_examples: int = 3,
               title: str = "gaze-harness leaderboard") -> Path:
    """Build the site of every finished run under ``results_dir``. Returns the ``index.html`` path."""
    runs = load_runs(results_dir)
    if not runs:
        raise HarnessError(f"no finished runs under {results_dir}")
    rows = hub_table.mark_latest(hub_table.rows_from_runs(runs))
    return write_site(rows, Path(output), runs=runs, data_dir=data_dir, cache_dir=cache_dir, primary=primary,
                      n_examples=n_examples, title=title)
