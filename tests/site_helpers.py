"""Run folders for the leaderboard tests, written the way ``harness/results.py`` documents them
(settings.json, shards/part-*.parquet, manifest.json, summary.json, optional maps/ with
index.json, or the older maps/<stimulus_id>.npy layout), and
``harness eval`` runs on real OSIE stimuli for the tests that need real ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness.ids import stimulus_filename
from harness.results import SCHEMA_VERSION, atomic_write_bytes, atomic_write_json, run_id_for, settings_hash
from harness.results.files import parquet_bytes, sha256_bytes

REPO = Path(__file__).resolve().parent.parent
DIRECTIONS = {"nss": "higher", "auc_judd": "higher", "cc": "higher", "sim": "higher", "kld": "lower"}


def write_run(root: Path, *, model: str, metrics: dict[str, float], attention: str = "grad-cam",
              dataset: str = "osie", task: str = "free-viewing", kind: str = "model",
              task_metrics: dict[str, float] | None = None, task_primary: str | None = None, n_images: int = 4,
              n_failed: int = 0, seed: int = 0, profile: str = "mit",
              finished_at: str = "2025-03-01T12:00:00+00:00", maps: dict[str, np.ndarray] | None = None,
              stimulus_ids: list[str] | None = None, legacy_maps: bool = False, scoring: str = "raw",
              shuffle: int | None = None, metric_params: dict[str, Any] | None = None,
              stimuli: dict[str, Any] | None = None, task_params: dict[str, Any] | None = None,
              dataset_fingerprint: str = "f0" * 32) -> Path:
    """One finished run folder; per-image values average exactly to ``metrics``. ``maps`` are
    saved as ``maps/<stimulus_filename(id, ".npy")>`` named in ``maps/index.json``, or, with
    ``legacy_maps``, as the ``maps/<id>.npy`` of runs written before the index existed."""
    import pyarrow as pa

    settings = {
        "schema_version": SCHEMA_VERSION, "model": model, "kind": kind,
        "model_provenance": {"model_id": f"org/{model}", "weights_sha256": "ab" * 32},
        "dataset": dataset, "dataset_fingerprint": dataset_fingerprint, "n_images": n_images, "limit": n_images,
        "task": task, "attention": attention, "metric_profile": profile,
        "metric_params": metric_params or {"sigma_deg": 1.0, "sigma_px": 24.0}, "seed": seed,
        **({"scoring": scoring} if scoring != "raw" else {}),
        **({"stimuli": stimuli} if stimuli else {}),  # an aligned model's held-out subset
        **({"task_params": task_params} if task_params else {}),
    }
    run = Path(root) / run_id_for(settings)
    atomic_write_json(run / "settings.json", settings)
    ids = stimulus_ids or [f"{1001 + i}" for i in range(n_images)]
    ok = n_images - n_failed
    offsets = np.linspace(-0.1, 0.1, ok) if ok > 1 else np.zeros(ok)
    if shuffle is not None:  # the same mean, other stimuli high and low: paired differences that vary
        offsets = 5 * np.random.default_rng(shuffle).permutation(offsets)
    rows = []
    for i, sid in enumerate(ids):
        if i < ok:
            row = {"stimulus_id": sid, "status": "ok", "error": None}
            row.update({m: float(v + offsets[i]) for m, v in metrics.items()})
            row.update({f"task:{k}": float(v) for k, v in (task_metrics or {}).items()})
        else:
            row = {"stimulus_id": sid, "status": "failed", "error": "model returned no attention map"}
            row.update({m: None for m in metrics})
            row.update({f"task:{k}": None for k in (task_metrics or {})})
        rows.append(row)
    # named and hashed as the real writer does (harness.results.writer.RunWriter.write_shard)
    data = parquet_bytes(pa.Table.from_pylist(rows))
    shard = run / "shards" / f"part-00000000-{sha256_bytes(data)[:16]}.parquet"
    atomic_write_bytes(shard, data)
    index = {}
    for sid, smap in (maps or {}).items():
        name = f"{sid}.npy" if legacy_maps else stimulus_filename(sid, ".npy")
        (run / "maps").mkdir(exist_ok=True)
        np.save(run / "maps" / name, np.asarray(smap, dtype=np.float32))
        index[name] = sid
    if index and not legacy_maps:
        atomic_write_json(run / "maps" / "index.json", index)
    manifest = {
        "schema_version": SCHEMA_VERSION, "harness_version": "0.1.0", "run_id": run.name,
        "settings_sha256": settings_hash(settings), "model": model,
        "model_provenance": settings["model_provenance"], "dataset": dataset,
        "dataset_fingerprint": settings["dataset_fingerprint"], "task": task, "attention": attention,
        "metric_profile": profile, "metric_params": settings["metric_params"], "seed": seed, "batch_size": 8,
        "wall_time_s": 12.5, "packages": {"torch": "2.13.0", "numpy": "2.3.0"},
        "started_at": "2025-03-01T11:59:00+00:00", "finished_at": finished_at,
        "shards": {shard.name: sha256_bytes(data)},
    }
    atomic_write_json(run / "manifest.json", manifest)
    summary = {
        "schema_version": SCHEMA_VERSION, "model": model, "kind": kind, "attention": attention,
        "dataset": dataset, "task": task, "metric_profile": profile, **({"scoring": scoring} if scoring != "raw" else {}),
        "n_images": n_images, "n_failed": n_failed,
        "metrics": metrics if ok else {m: float("nan") for m in metrics}, "metric_directions": {m: DIRECTIONS.get(m, "higher") for m in metrics},
        "task_metrics": task_metrics or {}, "task_primary": task_primary, "finished_at": finished_at,
    }
    atomic_write_json(run / "summary.json", summary)
    return run


def sample_results(root: Path) -> dict[str, Path]:
    """A small leaderboard: ceiling, two baselines, three classification models (one with an
    older superseded run), a free-viewing model, and a model whose name is an XSS attempt."""
    root = Path(root)
    runs = {
        "ceiling": write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                             metrics={"nss": 2.5, "auc_judd": 0.88, "kld": 0.6}),
        "center": write_run(root, model="center-bias", kind="baseline", attention="prior",
                            metrics={"nss": 1.2, "auc_judd": 0.80, "kld": 1.1}),
        "uniform": write_run(root, model="uniform", kind="baseline", attention="prior",
                             metrics={"nss": 0.0, "auc_judd": 0.5, "kld": 2.0}),
        "lite0": write_run(root, model="efficientnet-lite0", task="classification", metrics={"nss": 0.9, "auc_judd": 0.74, "kld": 1.4},
                           task_metrics={"top1": 0.75, "top5": 0.92}, task_primary="top1"),
        "lite0_old": write_run(root, model="efficientnet-lite0", task="classification", seed=1,
                               finished_at="2025-01-01T00:00:00+00:00",
                               metrics={"nss": 0.3, "auc_judd": 0.6, "kld": 1.9},
                               task_metrics={"top1": 0.70, "top5": 0.90}, task_primary="top1"),
        "lite1": write_run(root, model="efficientnet-lite1", task="classification", attention="rollout",
                           metrics={"nss": 1.6, "auc_judd": 0.79, "kld": 1.2},
                           task_metrics={"top1": 0.77, "top5": 0.93}, task_primary="top1", n_failed=1),
        "xss": write_run(root, model="<script>alert(1)</script>", task="classification",
                         metrics={"nss": 1.1, "auc_judd": 0.77, "kld": 1.3},
                         task_metrics={"top1": 0.5, "top5": 0.8}, task_primary="top1"),
        "fv": write_run(root, model="vit-free", attention="rollout", metrics={"nss": 0.7, "auc_judd": 0.70, "kld": 1.5}),
    }
    return runs


def harness_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data"))
    env.update(extra)
    return env


def eval_runs(output: Path, *, model: str = "uniform", limit: int = 4) -> None:
    """Real runs from ``harness eval`` on the first OSIE stimuli (the ceiling comes with them)."""
    cmd = [sys.executable, "-m", "harness", "eval", "--model", model, "--dataset", "osie", "--limit", str(limit),
           "--output", str(output), "--no-show"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=harness_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def page_data(index_html: Path) -> dict:
    """The JSON the page embeds."""
    text = Path(index_html).read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="leaderboard-data">') + len(
        '<script type="application/json" id="leaderboard-data">')
    end = text.index("</script>", start)
    return json.loads(text[start:end])


#: every gaze metric of the OSIE leaderboard (README), so the page is as wide as a real one
ALL_METRICS = ("auc_judd", "auc_borji", "sauc", "nss", "cc", "sim", "kld", "ig", "iou_top20")
DIRECTIONS.update({m: "higher" for m in ALL_METRICS if m != "kld"})


def _osie_like(nss: float) -> dict[str, float]:
    """All nine metrics, loosely tied to NSS the way the README's OSIE table is."""
    return {"auc_judd": 0.5 + 0.12 * nss, "auc_borji": 0.5 + 0.11 * nss, "sauc": 0.5 + 0.05 * nss, "nss": nss,
            "cc": 0.18 * nss + 0.12, "sim": 0.28 + 0.08 * nss, "kld": 1.7 - 0.2 * nss, "ig": -0.5 + 0.6 * nss,
            "iou_top20": 0.11 + 0.1 * nss}


def wide_results(root: Path) -> dict[str, Path]:
    """A leaderboard as wide as a real one: all nine gaze metrics and two task metrics, long model
    names, references far from the models (the ceiling at NSS 3.7), several models whose points lie
    close together, and the same models on 700 and on 50 images (two plots)."""
    root = Path(root)
    runs: dict[str, Path] = {}
    models = [  # (model, attention, nss, top1): the first three within 0.01 NSS and 0.004 top-1
        ("efficientnet-lite0", "grad-cam", 0.6316, 0.752),
        ("efficientnet-lite1", "grad-cam", 0.6381, 0.755),
        ("hf:microsoft/resnet-50", "grad-cam", 0.6352, 0.754),
        ("hf:google/vit-base-patch16-224-in21k", "attention-rollout", 0.6690, 0.781),
        ("efficientnet-lite2", "grad-cam", 0.7054, 0.768),
        ("hf:facebook/deit-small-distilled-patch16-224", "attention-rollout", 0.6620, 0.779),
    ]
    for n, shift in ((700, 0.0), (50, 0.05)):
        runs[f"ceiling-{n}"] = write_run(root, model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                                         metrics=_osie_like(3.7033 - shift), n_images=n)
        runs[f"center-{n}"] = write_run(root, model="center-bias", kind="baseline", attention="prior",
                                        metrics=_osie_like(0.8412 + shift), n_images=n)
        runs[f"uniform-{n}"] = write_run(root, model="uniform", kind="baseline", attention="prior",
                                         metrics=_osie_like(0.0), n_images=n)
        for model, attention, nss, top1 in models:
            runs[f"{model}-{n}"] = write_run(root, model=model, attention=attention, task="classification",
                                             metrics=_osie_like(nss + shift), n_images=n,
                                             task_metrics={"top1": top1 - shift, "top5": top1 + 0.15},
                                             task_primary="top1", n_failed=3 if model.endswith("lite2") else 0)
    return runs
