"""The results stage: a finished run's summary and manifest, from its rows and its provenance."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import types
from datetime import datetime, timezone
from importlib import metadata as md
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import HarnessError
from ..results import SCHEMA_VERSION, settings_hash
from ..results.summary import aggregate, metric_columns

PACKAGES = ("torch", "transformers", "datasets", "numpy", "numba", "scipy", "pyarrow", "pillow", "huggingface-hub")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "gaze-harness": __version__}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def source_fingerprint(roots: tuple[Path, ...] | None = None, files: tuple[Path, ...] | None = None) -> str:
    """``sha256:`` and 16 hex digits over the code that computes the numbers: every ``.py`` file of
    the ``harness`` and built-in ``plugins`` packages (relative path and bytes, in path order) and
    ``registry.yaml`` (which module is which plugin). The version number alone does not change
    between commits, and a run resumed under other code would mix two codes' numbers (a kernel's
    last bits, a metric's definition) with nothing to show for it."""
    if roots is None and files is None:
        return _installed_source()
    digest = hashlib.sha256()
    for root in roots or ():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(f"{root.name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    for path in files or ():
        digest.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def _installed_source() -> str:
    import plugins as builtin_pkg

    from ..plugins import registry_yaml_path

    roots = (Path(__file__).resolve().parent.parent, Path(builtin_pkg.__file__).resolve().parent)
    return source_fingerprint(roots, (registry_yaml_path(),))


def hardware(device: str | None) -> dict[str, Any]:
    """The machine that finished the run: its CPU (a CPU model's last bits depend on the vector
    instructions its kernels pick) and, for a CUDA run, the GPU and the CUDA and cuDNN versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:  # not Linux
        pass
    from .threads import cores

    out: dict[str, Any] = {"cpu": cpu, "cores": cores()}
    if device == "cuda":
        import torch

        out.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    return out


def plugin_versions(settings: dict[str, Any], metrics: list[str]) -> dict[str, str]:
    """Versions of the third-party plugins whose code computes a run's numbers: those that provide
    its model, attention method and dataset, and every metric it computes beyond the built-in ones
    (``metrics``: their names). Built-in plugins are the harness' own version."""
    from ..plugins import get_registry, plugin_infos

    reg = get_registry()
    model = settings["model"]
    wanted = [("model", "hf" if model.startswith("hf:") and ("model", model) not in reg else model),
              ("attention", settings["attention"]), ("dataset", settings["dataset"])]
    wanted += [("metric", m) for m in metrics]
    names = {reg.get(kind, name).plugin for kind, name in wanted if (kind, name) in reg}
    return {i.name: i.version for i in plugin_infos() if i.name in names and i.source != "built-in"}


def plugin_sources(names) -> dict[str, str]:
    """The code of each third-party plugin of ``names`` (:func:`plugin_versions`' keys), as
    :func:`source_fingerprint` of the ``.py`` files of the top-level package (or module) that holds
    its hooks and of those that hold the factories it registers, unless that package is another
    installed distribution's (a factory ``transformers:AutoModel`` is versioned with transformers).
    A plugin's version number does not change while its author edits it: without this, a run resumed
    after an edit mixed the numbers of two codes under one version, and a finished one was reused
    after its model changed (found by a plugin author's QA)."""
    return {name: _plugin_source(name) for name in sorted(names)}


def _plugin_source(name: str) -> str:  # not cached: a plugin's author edits it between two runs
    import importlib.util

    from ..plugins import get_registry, plugin_infos, pm
    from ..registry import KINDS

    plugin = pm.get_plugin(name)
    modules = {plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__}
    reg = get_registry(warn=False)
    modules |= {s.factory_path.partition(":")[0] for kind in KINDS for s in reg.in_order(kind) if s.plugin == name}
    info = next((i for i in plugin_infos() if i.name == name), None)
    own = info.source.removeprefix("distribution ") if info is not None else None
    owners = _packages_distributions()
    roots: list[Path] = []
    files: list[Path] = []
    for top in sorted({m.split(".")[0] for m in modules if m}):
        dists = owners.get(top)
        if dists and own not in dists:
            continue
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):  # __main__, or a module that cannot be found any more
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots += sorted(Path(loc) for loc in spec.submodule_search_locations)
        elif spec.origin and spec.origin.endswith(".py"):
            files.append(Path(spec.origin))
    return source_fingerprint(tuple(roots), tuple(files))


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return md.packages_distributions()


#: the packages the numbers of a run without a network depend on (the human ceiling, the baselines,
#: mouse-tracking proxies: maps and metrics in numpy, numba and scipy); a model run depends on all
REFERENCE_PACKAGES = ("python", "gaze-harness", "numpy", "numba", "scipy")


def environment(device: str | None, plugins: dict[str, str] | None = None, kind: str = "model") -> dict[str, Any]:
    """What a run's numbers depend on besides its settings: the package versions, the harness'
    own code (:func:`source_fingerprint`), the versions and code of the third-party plugins that
    compute them (:func:`plugin_versions`, :func:`plugin_sources`; a metric plugin installed between
    two sessions would leave the earlier rows without its column) and the processor (the CPU model; for a CUDA run the GPU,
    CUDA and cuDNN). Every session that computes rows of a run
    must have the same (:meth:`harness.results.writer.RunWriter.begin_session` checks), so that a
    run's rows, and the manifest's provenance, come from one environment. A run of ``kind`` other
    than ``model`` runs no network: upgrading torch does not stop it from resuming."""
    machine = {k: v for k, v in hardware(device).items() if k != "cores"}  # threads are set, not taken
    packages = package_versions()
    if kind != "model":
        packages = {k: v for k, v in packages.items() if k in REFERENCE_PACKAGES}
    sources = {"plugin sources": plugin_sources(plugins)} if plugins else {}
    return {"packages": packages, "harness source": source_fingerprint(), "plugins": dict(plugins or {}), **sources,
            **machine}


def row(stimulus_id: str, status: str, error: str | None, scores: dict, task_scores: dict, output: dict,
        seconds: float, n_fix: int) -> dict:
    out: dict[str, Any] = {
        "stimulus_id": stimulus_id,
        "status": status,
        "error": error,
        "n_fixations": n_fix,
        "seconds": seconds,
        "output": json.dumps(output, default=_json_default) if output else None,
    }
    out.update({k: float(v) for k, v in scores.items()})
    out.update({f"task:{k}": float(v) for k, v in task_scores.items()})
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def scored_outputs(frame, ctx) -> tuple[list[dict], list[dict]]:
    """The task outputs of a run's scored stimuli and their dataset records, in row order: the
    stimuli the gaze means cover (a failed one has no output to score: it used to count as a wrong
    answer, so that a run's top-1 and its rows' mean disagreed)."""
    from ..results.summary import SCORED

    by_id = {r["stimulus_id"]: r for r in ctx.meta}
    rows = [r for r in frame.to_dict("records") if r.get("status") in SCORED]
    outputs = [json.loads(r["output"]) if isinstance(r.get("output"), str) else {} for r in rows]
    return outputs, [by_id[r["stimulus_id"]] for r in rows]


def summarize(frame, settings: dict[str, Any], *, task_obj, ctx, seed: int,
              previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's summary (everything but ``finished_at``), recomputable from ``frame`` alone except
    the dataset-level task metrics. Every metric column of ``frame`` has its mean: the registered
    metrics in their order, then any other (a metric plugin uninstalled since the rows were
    computed, or a built-in name another plugin now contests), whose direction comes from the
    built-in suite or from ``previous`` (the run's summary so far): a summary without them would
    not be the one its rows give, and every reader would leave the run out."""
    from ..metrics import METRICS
    from ..plugins import get_registry
    from ..results.summary import canonical_order

    frame = canonical_order(frame)
    reg = get_registry()
    # a calibrated run adds the log-likelihood (bits per fixation over uniform) to the registered metrics
    extra = ["ll"] if settings.get("scoring") == "calibrated" else []
    known = [s.name for s in reg.in_order("metric")] + extra
    names = metric_columns(frame, known)
    names += [m for m in metric_columns(frame) if m not in names]
    recorded = (previous or {}).get("metric_directions") or {}

    def direction(m: str) -> str:
        if m in extra:
            return "higher"
        if ("metric", m) in reg:
            return "higher" if reg.get("metric", m).get("higher_is_better", True) else "lower"
        if m in METRICS:
            return "higher" if METRICS[m].higher_is_better else "lower"
        return recorded.get(m, "higher")

    directions = {m: direction(m) for m in names}
    task_metrics: dict[str, float] = {}
    if task_obj is not None and getattr(task_obj, "primary", None) is not None:
        outputs, records = scored_outputs(frame, ctx)
        try:
            task_metrics = dict(task_obj.score_dataset(outputs, records)) if outputs else {}
        except HarnessError:
            raise
        except Exception as exc:  # a task plugin's dataset metric: named in one line, the rows stay
            name = getattr(task_obj, "name", type(task_obj).__name__)
            raise HarnessError(f"task {name!r}: scoring the run's outputs failed: {type(exc).__name__}: {exc}; "
                               "the run's rows are kept") from exc
    summary = {
        "schema_version": SCHEMA_VERSION,
        "model": settings["model"],
        "kind": settings["kind"],
        "attention": settings["attention"],
        "dataset": settings["dataset"],
        "task": settings["task"],
        "metric_profile": settings["metric_profile"],
        **({"scoring": settings["scoring"]} if "scoring" in settings else {}),
        **aggregate(frame, names),
        "metric_directions": directions,
        "task_metrics": task_metrics,
        "task_primary": getattr(task_obj, "primary", None),
    }
    if task_metrics:
        from ..analysis import alignment_vs_task

        summary["alignment_vs_task"] = alignment_vs_task(
            frame, directions, seed=seed, score=getattr(task_obj, "per_image_score", None))
    return summary


def manifest(writer, cfg, settings: dict[str, Any], frame, finished_at: str, extra: dict[str, Any],
             plugins: dict[str, str]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "harness_source": source_fingerprint(),
        "run_id": writer.dir.name,
        "settings_sha256": settings_hash(settings),
        "model": settings["model"],
        "model_provenance": settings["model_provenance"],
        "dataset": settings["dataset"],
        "dataset_fingerprint": settings["dataset_fingerprint"],
        "task": settings["task"],
        "attention": settings["attention"],
        "metric_profile": settings["metric_profile"],
        "metric_params": settings["metric_params"],
        **({"scoring": settings["scoring"]} if "scoring" in settings else {}),
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "wall_time_s": float(frame["seconds"].sum()) if len(frame) else 0.0,
        "packages": package_versions(),
        "plugins": plugins,
        "platform": platform.platform(),
        "hardware": hardware(settings.get("device", "cpu")),  # references run on CPU whatever the model did
        "command": cfg.command,
        "started_at": writer.sessions[0] if writer.sessions else None,
        "sessions": len(writer.sessions),
        "finished_at": finished_at,
        "shards": writer.shard_hashes(),
        **extra,
    }
