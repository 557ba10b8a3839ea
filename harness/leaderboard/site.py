"""``harness leaderboard build``: a static leaderboard site that works from a folder.

The page makes no request outside its own folder: the JavaScript and CSS are files beside
``index.html`` (``harness/site/``), the rows are embedded as JSON in a
``<script type="application/json">`` block (``file://`` pages cannot ``fetch`` local files in
Chromium), and example images are PNG files under ``assets/``. A Content-Security-Policy meta tag
forbids everything else. All data is inserted by the script as text (``textContent``), never as
HTML, so a model named ``<script>...`` is shown, not run.

Example overlays: for up to ``n_examples`` stimuli per run the page shows the human fixation density
(recomputed from the dataset with the run's own blur) beside the model's map, each over the
stimulus, with the stimulus' own scores. The stimuli are the best, median and worst of the run by
NSS, then evenly spaced NSS ranks (:mod:`harness.results.examples`: ``harness eval`` keeps the small
maps of exactly those), shown three to a page. Nothing is re-run. A run names its maps in
``maps/index.json`` (``{file name: stimulus id}``, files named by
:func:`harness.ids.stimulus_filename`); the index is untrusted, so only plain ``.npy``/``.png`` files
directly in ``maps/`` are read, and a ``maps/`` (or index) that is a link to elsewhere is not
followed (one warning line; the run's examples are left off). Runs written before the index existed
saved ``maps/<stimulus_id>.npy``, and only files so named for the run's own stimuli are read. Assets are written under folders named by
:func:`harness.ids.safe_component`, so distinct runs (and datasets) never share one.

The dataset behind the human panels is opened from the converted Arrow table the run scored (the
cache holds it, stimuli included, under the run's ``dataset_fingerprint``), else converted from its
source files when they are here; it is never downloaded. A dataset that cannot be opened costs its
runs their human panels and gives one warning line on the terminal (``warn``); the page itself gets
a fixed sentence, never a local path or an error message (:func:`public_text` also shortens the
local paths in the provenance the page shows).
"""

from __future__ import annotations

import glob
import hashlib
import html
import json
import math
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from ..errors import HarnessError
from ..modes import as_if_created
from ..results import Run, load_runs
from ..results.examples import EXAMPLE_MAPS, RANK_METRIC
from . import hub_table

ASSETS = ("app.js", "style.css", "favicon.svg")
MARKER = ".gaze-harness-site"
EXAMPLE_WIDTH = 360
#: examples per run (three to a page on the site); ``harness eval`` keeps this many maps
DEFAULT_EXAMPLES = EXAMPLE_MAPS
COLOUR_SCALE = "assets/colour-scale.png"
#: what the task-metric columns mean (a task plugin's own score falls back to a generic sentence)
TASK_METRIC_TEXT = {
    "top1": "top-1 accuracy: share of stimuli whose first predicted class is the label",
    "top5": "top-5 accuracy: share of stimuli whose label is among the five first predictions",
    "map": "COCO mean average precision over IoU 0.50:0.95 (pycocotools)",
    "map50": "COCO mean average precision at IoU 0.50 (pycocotools)",
    "recall50": "share of annotated objects found at IoU 0.50",
    "bleu4": "BLEU-4 of the generated captions against the reference captions",
    "cider": "CIDEr of the generated captions against the reference captions",
    "rougeL": "ROUGE-L of the generated captions against the reference captions",
}

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


# --- what a page may say ------------------------------------------------------------------------

# an absolute local path (POSIX, home or Windows) of two components or more; not a URL (``://``),
# not a relative id (``org/model``), not markup (``</script>``)
_LOCAL_PATH = re.compile(r"(?<![\w.\\/<>~-])(?:~?(?:/[\w.@+=~-]+){2,}/?|[A-Za-z]:(?:\\[\w.@+=~-]+){2,}\\?)")
_FILE_URL = re.compile(r"file://[^\s'\"<>]+")
# an exception's text in parentheses, as error messages quote it: "(OSError: [Errno 2] ...)"
_ERROR_TEXT = re.compile(r"\s*\((?:[A-Z]\w*(?:Error|Exception|Warning)|\[?Errno)\b[^)]*\)")


def public_text(text: str) -> str:
    """``text`` as a published page or card may show it: every absolute local path shortened to
    ``…/<last part>`` and exception texts in parentheses left out. A model folder (``hf:/…``) also
    gets a tag of its whole path, ``hf:…/checkpoint-500 (1a2b3c4d)``: two folders that end alike
    are two models on the board, and one folder is the same model in every publish."""
    def short(m: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", m.group(0)) if p]
        shown = "\u2026/" + (parts[-1] if parts else "")
        if m.string[max(0, m.start() - 3):m.start()] == "hf:":
            shown += f" ({hashlib.sha256(m.group(0).encode()).hexdigest()[:8]})"
        return shown

    return _ERROR_TEXT.sub("", _LOCAL_PATH.sub(short, _FILE_URL.sub(short, text)))


def public_run_id(run_id: str, model: Any) -> str:
    """A run id as it is published: its first part is the model's name made a slug
    (:func:`harness.results.store.run_id_for`), so a local ``hf:`` folder's whole path would show
    in it; that part becomes the slug of the model's public name (:func:`public_text`). The last
    part, the settings hash, keeps it unique."""
    from ..results.store import id_slug

    if isinstance(model, str) and isinstance(run_id, str):
        local, public = id_slug(model), id_slug(public_text(model))
        if local != public and run_id.startswith(local + "__"):
            return public + run_id[len(local):]
    return run_id


def _with_run_id(manifest: Any, run_id: str) -> Any:
    """A run's manifest with the run id it is published under."""
    return {**manifest, "run_id": run_id} if isinstance(manifest, dict) and "run_id" in manifest else manifest


def _public_id(run: Run) -> str:
    return public_run_id(run.run_id, run.settings.get("model"))


def public_value(value: Any) -> Any:
    """:func:`public_text` applied to every string (keys included) of a JSON-like value."""
    if isinstance(value, str):
        return public_text(value)
    if isinstance(value, dict):
        return {public_text(k) if isinstance(k, str) else k: public_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(v) for v in value]
    return value


#: the columns only calibrated scoring has (harness.evaluation.calibrated)
CALIBRATED_METRICS = {
    "ll": "log-likelihood of the fixations under the calibrated density, bits per fixation over the uniform density",
    "ig_explained": "explained information gain: the model's ig as a percentage of the calibrated human ceiling's",
}


def metric_descriptions(names: Sequence[str]) -> dict[str, str]:
    """One sentence per gaze metric, from the metric registry (``description``)."""
    out: dict[str, str] = {}
    try:
        from ..plugins import get_registry

        reg = get_registry()
    except Exception:  # a broken plugin must not stop the page; the metric keeps its name only
        reg = None
    for name in names:
        text = None
        if reg is not None and ("metric", name) in reg:
            try:
                text = reg.get("metric", name).get("description")
            except Exception:
                text = None
        text = text or CALIBRATED_METRICS.get(name)
        out[name] = str(text) if text else f"gaze metric {name} (its plugin is not installed where this page was built)"
    return out


def task_metric_description(column: str) -> str:
    name = column.removeprefix("task:")
    return TASK_METRIC_TEXT.get(name, f"task score {name}, over the whole dataset")


def page_statistics(runs: Sequence[Run], primary: str | None) -> dict[str, dict[str, Any]]:
    """Per run id (as published, :func:`public_run_id`): its metrics' 95% bootstrap intervals and,
    on the primary metric, the marks of ``leaderboard show --ci`` (``†`` not significantly different from the model above, ``‡`` from
    center-bias) with what each was tested against; computed per scoring, as the CLI's tables are."""
    from . import significance
    from .table import _by_scoring

    out: dict[str, dict[str, Any]] = {}
    finished = [r for r in runs if r.finished]
    by_id = {r.run_id: r for r in finished}
    # one table per scoring and metric profile, as the command line's
    key = lambda r: f"{hub_table.scoring_of(r.summary)}\0{r.summary.get('metric_profile')}"  # noqa: E731
    for _, group in _by_scoring(finished, key):
        stats = significance.table_statistics(group, primary)
        for run_id, intervals in stats.intervals.items():
            tests = []
            for role in ("above", "reference"):
                c = stats.comparison(run_id, role)
                # a test that could not be made (fewer than two stimuli paired: p is NaN) says nothing,
                # as it gives no mark (TableStats.marks)
                if c is not None and isinstance(c.get("p_holm"), float) and math.isfinite(c["p_holm"]):
                    tests.append({"role": role, "against": c["against_model"], "diff": c["diff"], "p_holm": c["p_holm"],
                                  "significant": bool(c["significant"])})
            out[public_run_id(run_id, by_id[run_id].settings.get("model"))] = {
                "intervals": {m: [iv.get("lo"), iv.get("hi")] for m, iv in intervals.items()},
                "marks": stats.marks(run_id), "tests": tests, "n_boot": stats.n_boot, "alpha": stats.alpha,
                # tests not made (notes under show --ci's table): a cell without a mark would read as
                # significantly different
                "untested": [public_text(why) for why in stats.not_compared.get(run_id, [])],
            }
    return out


def page_rows(rows: Sequence[dict[str, Any]], examples: dict[str, dict[str, Any]] | None = None,
              statistics: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Published rows -> the records the page script reads (free text through :func:`public_value`)."""
    from ..results.files import jsonable

    examples = examples or {}
    statistics = statistics or {}
    from .table import _setting_variants, variant_kinds

    metrics = hub_table.metric_columns(rows)
    tasks = hub_table.task_columns(rows)
    variants: dict[int, str] = {}  # rows set apart (blur, task, data), labelled as `show` labels them
    kinds: dict[int, list[str]] = {}
    for scoring in {hub_table.scoring_of(r) for r in rows}:
        variants.update(_setting_variants([r for r in rows if hub_table.scoring_of(r) == scoring]))
        kinds.update(variant_kinds([r for r in rows if hub_table.scoring_of(r) == scoring]))
    out = []
    for row in rows:
        provenance = {k: row.get(k) for k in (
            "run_id", "harness_version", "harness_source", "model_id", "weights_sha256", "revision",
            "dataset_fingerprint", "metric_profile", "seed", "batch_size", "wall_time_s", "started_at",
            "finished_at", "settings_sha256", "published_at") if row.get(k) is not None}
        run_id = public_run_id(row["run_id"], row.get("model"))
        ex = examples.get(run_id, {})
        out.append({
            "run_id": run_id,
            "model": public_value(row.get("model")),
            "attention": public_value(row.get("attention")),
            "dataset": row.get("dataset"),
            "task": row.get("task"),
            "kind": row.get("kind") or "model",
            "scoring": hub_table.scoring_of(row),
            "variant": public_value(variants.get(id(row))),
            "variant_kinds": kinds.get(id(row), []),
            # the blur: rows are normalised by the references blurred alike
            "blur": hub_table._group(row, "metric_params"),
            "latest": bool(row.get("latest", True)),
            "n_images": row.get("n_images"),
            "n_failed": row.get("n_failed"),
            "n_degenerate": row.get("n_degenerate") or 0,
            "nonfinite": _parse_json(row.get("nonfinite")) or {},
            "task_primary": row.get("task_primary"),
            "values": {c: hub_table._clean(row.get(c)) for c in metrics + tasks if row.get(c) is not None},
            "provenance": public_value({**provenance, "run_id": run_id}),
            "settings": public_value(_parse_json(row.get("settings"))),
            "manifest": _with_run_id(public_value(_parse_json(row.get("manifest"))), run_id),
            "packages": public_value(_parse_json(row.get("packages"))),
            "examples": ex.get("items", []),
            "examples_note": ex.get("note"),
            # built from run folders: intervals and significance marks (None from published rows only)
            "statistics": public_value(jsonable(statistics[run_id])) if run_id in statistics else None,
        })
    return out


def page_data(rows: Sequence[dict[str, Any]], *, examples=None, primary: str | None = None,
              title: str = "gaze-harness leaderboard", colour_scale: str | None = None,
              statistics: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    from .. import __version__

    directions = hub_table.directions_of(rows)
    metrics = hub_table.metric_columns(rows)
    primary = hub_table.default_primary(rows, primary)
    if primary in metrics:
        metrics.remove(primary)
        metrics.insert(0, primary)
    described = metric_descriptions(metrics)
    return {
        "title": title,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness_version": __version__,
        "primary": primary,
        "metrics": [{"name": m, "direction": directions.get(m), "description": described[m]} for m in metrics],
        "task_metrics": [{"name": t, "direction": "higher", "description": task_metric_description(t)}
                         for t in hub_table.task_columns(rows)],
        "examples_by": RANK_METRIC,
        "colour_scale": colour_scale,
        "rows": page_rows(rows, examples, statistics),
    }


def before_after(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Each model trained by ``harness align`` against its base on the stimuli both scored (its
    held-out ones), as ``harness report`` pairs them: per metric the means, the mean paired
    difference and its 95% paired-bootstrap CI, and the top-1 agreement."""
    from ..alignment.compare import find_pairs, pair
    from ..results.files import jsonable

    out = []
    for base, aligned in find_pairs(runs):
        try:
            res = pair(base.settings, base.per_image(), aligned.settings, aligned.per_image(),
                       directions=aligned.summary.get("metric_directions"))
        except Exception:  # a pair that cannot be compared is left out of the page, never half shown
            continue
        out.append(jsonable({
            "base": public_text(res["before_model"]), "aligned": public_text(res["after_model"]),
            "dataset": res["dataset"],
            "task": res["task_name"], "n": res["n_paired"], "aligned_run": _public_id(aligned),
            "base_run": _public_id(base),
            "top1_agreement": res.get("top1_agreement"),
            "metrics": [{"name": m, "before": v["before"], "after": v["after"], "diff": v["diff"], "lo": v["lo"],
                         "hi": v["hi"], "better": v["better"]} for m, v in res["metrics"].items()],
        }))
    return out


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


def _shrunk(smap):
    """A map far larger than its overlay is drawn (a stimulus' full size, or a hostile 1 x 50 million
    array) as the means of factor x factor blocks, still at least twice ``EXAMPLE_WIDTH`` on its
    longest side, summed a few million values at a time: :func:`overlay` would otherwise hold it as
    float64 twice over (a 50 MB file cost 1.2 GB)."""
    import numpy as np

    factor = max(smap.shape) // (2 * EXAMPLE_WIDTH)
    if factor < 2:
        return smap
    if smap.dtype.kind == "f" and not np.isfinite(smap).all():  # as _normalise does, before a block takes it
        smap = np.nan_to_num(smap, nan=0.0, posinf=0.0, neginf=0.0)
    h, w = smap.shape
    step = factor * max(1, (1 << 22) // (h * factor))  # whole blocks of columns, a few million values at a time
    cols = np.concatenate([np.add.reduceat(smap[:, c:c + step].astype(np.float64), np.arange(0, min(step, w - c), factor),
                                           axis=1) for c in range(0, w, step)], axis=1)
    rows = np.arange(0, h, factor)
    sums = np.add.reduceat(cols, rows, axis=0)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(np.arange(0, w, factor), w)))
    return (sums / counts).astype(np.float32)


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


class _Unavailable(NamedTuple):
    """Why a dataset's human panels are missing: ``note`` for the page (fixed words: no local path,
    no error message), ``detail`` for the builder's terminal."""

    note: str
    detail: str


def _source_here(gaze) -> bool:
    """Whether the dataset's source files are on this machine (an explicit folder, ``$HARNESS_DATA_DIR``
    or an earlier download in the cache), without downloading anything."""
    from ..data import paths

    if gaze.data_dir is not None:
        return gaze.data_dir.is_dir()
    return any(folder.is_dir() for folder, _ in paths.candidate_data_dirs(gaze.name, gaze.cache_dir))


def _looked_in(gaze) -> str:
    from ..data import paths

    if gaze.data_dir is not None:
        return f"{gaze.data_dir} (--data-dir)"
    where = [f"{folder} ({origin})" for folder, origin in paths.candidate_data_dirs(gaze.name, gaze.cache_dir)]
    if not os.environ.get(paths.DATA_ENV):
        where.insert(0, f"${paths.DATA_ENV} (not set)")
    return ", ".join(where)


class _DatasetCache:
    """Datasets opened for the overlays, once per dataset and fingerprint. First the converted Arrow
    table the run scored (``<cache>/arrow/<name>/<fingerprint[:16]>``: it holds the stimuli, so no
    source file is needed), else the source files when they are here (converted once, and only used
    when they give the run's fingerprint). Never a download. What cannot be opened is remembered as
    :class:`_Unavailable`, and :meth:`warnings` says so, one line per dataset."""

    def __init__(self, data_dir: Path | None, cache_dir: Path | None):
        self.data_dir, self.cache_dir = data_dir, cache_dir
        self._open: dict[tuple[str, str | None], Any] = {}
        self._runs: dict[tuple[str, str | None], int] = {}

    def get(self, name: str, fingerprint: str | None = None):
        key = (str(name), fingerprint or None)
        if key not in self._open:
            try:
                self._open[key] = self._load(*key)
            except Exception as exc:  # a dataset that cannot be read must not stop the page; say why
                self._open[key] = _Unavailable(f"the {name} data could not be read where this page was built",
                                               f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        opened = self._open[key]
        if isinstance(opened, _Unavailable):
            self._runs[key] = self._runs.get(key, 0) + 1
        return opened

    def _load(self, name: str, fingerprint: str | None):
        import datasets as hf_datasets

        from ..data import get_gaze_dataset, paths
        from ..data.base import DATA_SUBDIR, META_FILE
        from ..plugins import get_registry

        if ("dataset", name) not in get_registry():
            return _Unavailable(f"no {name} dataset plugin was installed where this page was built",
                                f"no dataset plugin named {name!r} is installed (`harness datasets` lists them)")
        gaze = get_gaze_dataset(name, data_dir=self.data_dir, cache_dir=self.cache_dir)
        parent = paths.arrow_cache_dir(name, gaze.cache_dir)
        if fingerprint:
            folder = parent / fingerprint[:16]
            try:
                meta = json.loads((folder / META_FILE).read_text())
            except (OSError, ValueError):
                meta = {}
            if meta.get("fingerprint") == fingerprint:
                return self._indexed(gaze, hf_datasets.load_from_disk(str(folder / DATA_SUBDIR)))
        if not _source_here(gaze):
            cached = sorted(p.name for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) \
                if parent.is_dir() else []
            held = (f"the cache {parent} holds other conversions ({', '.join(cached)})" if cached
                    else f"the cache {parent} holds none")
            return _Unavailable(
                f"the {name} data was not available where this page was built",
                f"the converted table these runs scored (fingerprint {(fingerprint or '?')[:16]}) is not in the cache "
                f"({held}) and the {name} source files are not here (looked in {_looked_in(gaze)}); nothing was "
                f"downloaded. Convert it once with `harness datasets info {name} --data-dir DIR` (same --cache-dir), "
                "or pass --cache-dir or --data-dir")
        ds = gaze.load()  # converted once (and cached); root() finds the local folder, so no download
        if fingerprint and gaze.fingerprint() != fingerprint:
            return _Unavailable(
                f"the {name} data found where this page was built is not the version this run scored",
                f"the {name} files in {gaze.root()} have fingerprint {gaze.fingerprint()[:16]}, the run scored "
                f"{fingerprint[:16]}; pass the data the run used with --data-dir, or its cache with --cache-dir")
        return self._indexed(gaze, ds)

    @staticmethod
    def _indexed(gaze, ds):
        ids = ds.select_columns(["stimulus_id"])["stimulus_id"]
        return gaze, ds, {sid: i for i, sid in enumerate(ids)}

    def warnings(self) -> list[str]:
        """One line per dataset (and fingerprint) whose human panels are missing from the page."""
        out = []
        for (name, fingerprint), n in sorted(self._runs.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            why = self._open[(name, fingerprint)]
            out.append(f"warning: {name}: the page shows no human fixation density for {n} run(s): {why.detail}")
        return out


MAPS_INDEX = "index.json"


def _plain_map_file(maps_dir: Path, name: Any) -> Path | None:
    """``maps_dir / name`` if ``name`` is one plain ``.npy`` or ``.png`` file name of a regular file
    directly in ``maps_dir`` (no folder, ``..``, backslash, hidden file or link), else None."""
    if not isinstance(name, str) or not name.endswith((".npy", ".png")) or name.startswith(".") or \
            any(c in name for c in "/\\\0") or Path(name).name != name:
        return None
    path = maps_dir / name
    return path if path.is_file() and not path.is_symlink() else None


def saved_maps(run_dir: Path, stimulus_ids: Sequence[str] | None = None) -> tuple[dict[str, Path], str | None]:
    """``({stimulus id: map file}, problem)`` of a run folder: through ``maps/index.json`` when the
    run has one (entries that are not a plain file name in ``maps/`` with a valid stimulus id are
    ignored; files it does not name too), else, for older runs, the plain ``maps/<id>.npy`` of the
    run's own ``stimulus_ids`` (none when those are unknown). A stimulus with both a full-resolution
    ``.npy`` and a small ``.png`` example map gets the ``.npy``. ``problem`` says why the maps could
    not be read: an unreadable index, or a ``maps/`` (or index) that is a link, which is not
    followed (it would publish files from outside the results folder)."""
    from ..ids import validate_stimulus_id

    maps_dir = run_dir / "maps"
    if maps_dir.is_symlink():
        return {}, "maps/ is a link to another folder (not followed)"
    if not maps_dir.is_dir():
        return {}, None
    index_file = maps_dir / MAPS_INDEX
    maps: dict[str, Path] = {}
    if index_file.is_symlink():
        return {}, f"maps/{MAPS_INDEX} is a link (not followed)"
    if not index_file.exists():
        for sid in sorted(set(map(str, stimulus_ids or ()))):
            path = _plain_map_file(maps_dir, f"{sid}.npy")
            if path is not None:
                maps[sid] = path
        return maps, None
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return {}, f"maps/{MAPS_INDEX} is unreadable"
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


def _colour_scale(path: Path) -> None:
    """The legend of the overlays: the colour map from low to high, blended over grey the way
    :func:`overlay` blends it over a stimulus."""
    import numpy as np
    from PIL import Image

    v = np.linspace(0.0, 1.0, 256)
    colour = _colormap()
    alpha = (0.85 * np.sqrt(v))[:, None]
    row = np.clip(160.0 * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.repeat(row[None, :, :], 16, axis=0)).save(path)


def run_examples(run: Run, site: Path, n: int, datasets: _DatasetCache, human_done: dict,
                 scores: Sequence[str] = (RANK_METRIC, "auc_judd")) -> dict[str, Any]:
    """Write the overlay PNGs of one run under ``site/assets`` and describe them for the page: the
    stimuli :func:`harness.results.examples.describe` picks (best, median, worst by NSS, ...), each
    with its rank and its per-stimulus ``scores``."""
    from ..ids import safe_component
    from ..results.examples import MapFileError, check_map, describe, read_map

    frame = None
    if n > 0 and (run.path / "maps").is_dir():  # a run without maps needs no rows read
        try:
            frame = run.per_image()
        except Exception:  # unreadable shards: the maps are still shown, without ranks
            pass
    ids = list(frame["stimulus_id"]) if frame is not None and "stimulus_id" in frame.columns else None
    maps, problem = saved_maps(run.path, ids)
    warnings: list[str] = []
    if problem is not None:  # said on the page; said on the terminal too, not only there
        warnings.append(f"warning: {run.path}: {problem}; its example maps are left off the page")
    if n > 0:
        for sid, path in list(maps.items()):
            try:  # the header only: a small file that declares a huge map is refused before it is read
                check_map(path)
            except MapFileError as exc:
                warnings.append(f"warning: {path}: {exc}; that example is left off the page")
                del maps[sid]
                if not maps and problem is None:
                    problem = "its map files are not maps it could have written"
    if not maps or n <= 0:
        if problem is not None:
            note = f"This run's attention maps cannot be shown: {problem}."
        else:
            note = None if run.summary.get("kind") == "ceiling" else \
                "This run saved no attention maps (harness eval keeps those of its best, median and worst " \
                "stimuli by NSS, and more, under maps/)."
        return {"items": [], "note": note, "warnings": warnings if n > 0 else []}
    picked = describe(frame, maps, n, tuple(dict.fromkeys(scores)))
    name = run.summary.get("dataset")
    fingerprint = run.settings.get("dataset_fingerprint") or run.manifest.get("dataset_fingerprint")
    opened = datasets.get(name, fingerprint)
    if isinstance(opened, _Unavailable):
        gaze = ds = None
        index: dict[str, int] = {}
        note = f"Human fixation density unavailable: {opened.note}."
    else:
        gaze, ds, index = opened
        note = None
    from ..evaluation.config import run_sigma_px  # the run's blur of each stimulus (per-stimulus geometry)

    params = run.settings.get("metric_params") or {}
    items = []
    run_folder = safe_component(_public_id(run))
    run_dir = site / "assets" / "runs" / run_folder
    for pick in picked:
        sid = pick["stimulus_id"]
        try:
            smap = _shrunk(read_map(maps[sid]))
        except MapFileError as exc:  # a header that passed, data that did not
            warnings.append(f"warning: {maps[sid]}: {exc}; that example is left off the page")
            continue
        k = len(items)
        item: dict[str, Any] = dict(pick)
        if ds is not None and sid in index:
            from ..data.density import fixation_density
            from ..schema import Fixations

            record = ds[index[sid]]
            image = record["image"]
            w, h = int(record["width"]), int(record["height"])
            sigma = run_sigma_px(params, gaze, record)
            key = (name, fingerprint, sid, round(float(sigma), 6) if sigma is not None else None)
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

            # grey at the width the overlay is drawn, not the map's (which may be a stimulus' full size)
            h, w = smap.shape
            scale = min(1.0, EXAMPLE_WIDTH / w)
            image = Image.new("RGB", (max(1, round(w * scale)), max(1, round(h * scale))), (128, 128, 128))
        run_dir.mkdir(parents=True, exist_ok=True)
        rel = f"assets/runs/{run_folder}/{k:03d}-model.png"
        overlay(image, smap).save(site / rel)
        item["model"] = rel
        items.append(item)
    return {"items": items, "note": note, "warnings": warnings}


# --- building -----------------------------------------------------------------------------------


def _check_output(output: Path) -> None:
    """Refuse to later replace a folder that is not empty and was not made by this command (so a
    typo cannot wipe someone's files)."""
    if output.exists():
        if not output.is_dir():
            raise HarnessError(f"{output} exists and is not a folder")
        if any(output.iterdir()) and not (output / MARKER).exists():
            raise HarnessError(f"{output} is not empty and is not a leaderboard site built by harness; choose another --output")


def _prepare_output(output: Path) -> Path:
    """A fresh temporary folder beside ``output`` (checked by :func:`_check_output` first)."""
    output = Path(output)
    _check_output(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    as_if_created(tmp, folder=True)  # mkdtemp's 0700 would hide the site from a web server's user
    return tmp


def _build_lock(output: Path):
    """The lock every build of ``output`` holds from start to swap (``.<name>.lock`` beside it;
    kept, as every lock file of the harness: deleting one a process waits on lets a third lock
    beside it): two builds of one site no longer swap folders under each other, and whatever a
    killed build left can be removed by the next."""
    from filelock import FileLock

    return FileLock(str(output.with_name(f".{output.name}.lock")))


#: what a build of ``output`` makes beside it: its temporary folder (``tempfile.mkdtemp``'s eight
#: characters) and the old site while it is swapped out (``old-<pid>``)
_LEFTOVER = re.compile(r"[a-z0-9_]{8}|old-\d+")


def _remove_leftovers(output: Path) -> int:
    """Remove the folders a killed build of ``output`` left beside it; called under the build's
    lock, so no build is using them. Only folders named as a build names them, holding a built
    site's marker or nothing, and never through a link. Returns how many."""
    removed = 0
    prefix = f".{output.name}."
    for path in output.parent.glob(f".{glob.escape(output.name)}.*"):
        if not _LEFTOVER.fullmatch(path.name[len(prefix):]) or path.is_symlink() or not path.is_dir():
            continue
        if (path / MARKER).is_file() or not any(path.iterdir()):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system or the file system has no such call (then nothing happened)."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import errno

    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28, musl)
        return False
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if call(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # a kernel or file system without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_into_place(tmp: Path, output: Path) -> None:
    """The new site in place of the old one: exchanged in one step where the system can (a build
    killed at any moment leaves either site in place, never none; the old one, left in ``tmp``,
    is a leftover the next build removes); else moved aside, then replaced."""
    if output.exists() and _exchange(tmp, output):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
    os.replace(tmp, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stderr(line: str) -> None:
    import sys

    from ..results.store import terminal_safe

    print(terminal_safe(line), file=sys.stderr)  # warnings name runs' folders and files' values


def write_site(rows: Sequence[dict[str, Any]], output: Path, *, runs: Sequence[Run] = (), data_dir: Path | None = None,
               cache_dir: Path | None = None, primary: str | None = None, n_examples: int = DEFAULT_EXAMPLES,
               title: str = "gaze-harness leaderboard", warn: Callable[[str], None] | None = _stderr) -> Path:
    """Write the site for ``rows`` (published rows, see :mod:`hub_table`) into ``output``;
    ``runs`` are the run folders some rows came from, used for the example overlays. ``data_dir``
    means what ``--data-dir`` means everywhere (:func:`harness.data.paths.dataset_folder`). Each
    dataset whose human panels are missing gives ``warn`` one line (the page still gets written).
    The folder is built beside ``output`` and swapped in, so a failed build leaves the old site."""
    output = Path(output)
    if output.is_symlink():  # a link to the site: rebuild the folder it names and keep the link
        output = output.resolve()
    primary = hub_table.default_primary(rows, primary)  # an unknown --primary fails before any work
    _check_output(output)  # a refused build writes nothing, not even the lock (checked again under it)
    output.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(output):
        removed = _remove_leftovers(output)
        if removed and warn is not None:
            warn(f"removed {removed} folder(s) an interrupted build of {output} left beside it")
        index = _write_site(rows, output, runs=runs, data_dir=data_dir, cache_dir=cache_dir, primary=primary,
                            n_examples=n_examples, title=title, warn=warn)
    return index


def _write_site(rows, output: Path, *, runs, data_dir, cache_dir, primary, n_examples, title, warn) -> Path:
    """:func:`write_site` under the build's lock."""
    tmp = _prepare_output(output)
    try:
        (tmp / MARKER).write_text("built by harness leaderboard build\n")
        for name in ASSETS:
            (tmp / name).write_text(_template(name), encoding="utf-8")
        examples: dict[str, dict[str, Any]] = {}
        datasets = _DatasetCache(Path(data_dir) if data_dir else None, Path(cache_dir) if cache_dir else None)
        human_done: dict = {}
        # rows are published rows (public run ids) or rows of these run folders
        wanted = {public_run_id(r["run_id"], r.get("model")) for r in rows}
        runs = [r for r in runs if _public_id(r) in wanted]
        scores = tuple(dict.fromkeys(s for s in (RANK_METRIC, "auc_judd", primary) if s))
        unshown: list[str] = []
        for run in runs:
            ex = run_examples(run, tmp, n_examples, datasets, human_done, scores)
            unshown += ex.pop("warnings", [])
            examples[_public_id(run)] = ex
        scale = None
        if any(ex.get("items") for ex in examples.values()):
            _colour_scale(tmp / COLOUR_SCALE)
            scale = COLOUR_SCALE
        statistics = page_statistics(runs, primary) if runs else None
        data = page_data(rows, examples=examples, primary=primary, title=title, colour_scale=scale,
                         statistics=statistics)
        data["before_after"] = before_after(runs)
        (tmp / "index.html").write_text(render_page(data), encoding="utf-8")
        _swap_into_place(tmp, output)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None:  # a full disk while PIL or numpy wrote
            raise OSError(exc.errno, exc.strerror or str(exc), str(output)) from exc
        raise
    if warn is not None:
        for line in [*unshown, *datasets.warnings()]:
            warn(line)
    return output / "index.html"


def build_site(results_dir: Path | str, output: Path | str, *, data_dir: Path | None = None,
               cache_dir: Path | None = None, primary: str | None = None, n_examples: int = DEFAULT_EXAMPLES,
               title: str = "gaze-harness leaderboard", warn: Callable[[str], None] | None = _stderr) -> Path:
    """Build the site of every finished run under ``results_dir``. Returns the ``index.html`` path."""
    runs = load_runs(results_dir)
    if not runs:
        raise HarnessError(f"no finished runs under {results_dir}")
    rows = hub_table.mark_latest(hub_table.rows_from_runs(runs))
    return write_site(rows, Path(output), runs=runs, data_dir=data_dir, cache_dir=cache_dir, primary=primary,
                      n_examples=n_examples, title=title, warn=warn)
