"""Calibrated scoring (``harness eval --scoring calibrated``): every model as a fixation density.

The data flow of a calibrated model run, after the model's raw run (which it reuses or completes):

1. **keep** - the raw run keeps each scored map's ``FACTOR`` x ``FACTOR`` block means
   (``<raw run>/blocks/part-<first>.npz``, one file per chunk, written before the chunk's shard; a
   raw run computed without them recomputes only its blocks, with the same batches, so the maps are
   the same bits);
2. **fit** - rank 0 fits a cross-validated calibration on those blocks
   (:func:`harness.calibration.fit_calibration`: ``FOLDS`` folds by stimulus id seeded by
   ``--seed``; fold k's parameters are fitted on the other folds' stimuli only) and writes it into the
   calibrated run folder (``calibration.json``: folds, settings, per fold its parameters, fit
   stimuli and their hash; ``calibration.npz``: each fold's sAUC baseline), the other ranks read it;
3. **score** - every stimulus' calibrated density (the parameters of its own fold) is scored by
   :func:`harness.calibration.score_calibrated`: ``ll`` and ``ig`` in bits per fixation and every
   metric on its ECCV 2018 metric-specific map; the task scores and outputs are the raw run's.

The human ceiling's calibrated run is the gold standard: the leave-one-subject-out densities,
calibrated the same way (:func:`harness.calibration.loso_inputs`, at most ``GOLD_MAX_FIT_MAPS``
(stimulus, subject) maps per fold, a seeded subset), scored per subject
(:func:`harness.calibration.score_gold`). The leaderboard's explained information gain is
``100 * IG / IG(ceiling)`` of the calibrated rows.

A calibrated run is a run of its own (settings ``scoring`` and ``calibration``, so its own id); raw
runs keep theirs. Everything is deterministic: the blocks are the raw run's bits, folds come from
ids and the seed, the fit has no randomness beyond its seeded subset, so results do not depend on
the number of processes.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, HarnessError

#: block downsampling of the kept maps and of the fit (OSIE's 800x600 -> 100x75)
FACTOR = 8
FOLDS = 5
#: the gold standard fits each fold on at most this many (stimulus, subject) maps (seeded subset):
#: on all of OSIE there are ~8,300 per fold, and 2,000 give the same parameters to 3 decimals
GOLD_MAX_FIT_MAPS = 2000
SCORINGS = ("raw", "calibrated")
#: a fold fitted on fewer stimuli than this is warned about: a handful of maps leave the
#: nonlinearity, centre bias and blur to the noise of those stimuli' fixations
MIN_FIT_STIMULI = 20


def thin_folds(cal) -> str | None:
    """A warning line when some fold's parameters were fitted on fewer than ``MIN_FIT_STIMULI``
    stimuli (``--limit`` small), else None."""
    # a calibration stored before folds without stimuli were skipped still has their fits
    scoring = [f for f in cal.fits if cal.folds.members(f.fold)]
    thin = [f for f in scoring if len(f.fit_ids) < MIN_FIT_STIMULI]
    if not thin:
        return None
    least = min(len(f.fit_ids) for f in thin)
    return (f"{len(thin)} of its {len(scoring)} calibration folds were fitted on fewer than {MIN_FIT_STIMULI} "
            f"stimuli (the fewest: {least}); its calibrated scores rest on the noise of a few maps: raise --limit")


def settings(cfg, kind: str) -> dict[str, Any]:
    """What a calibrated run records under ``calibration`` in its settings (part of its id)."""
    from ..calibration.fit import METHOD
    from ..calibration.folds import RULE

    out = {"method": METHOD, "folds": FOLDS, "fold_rule": RULE, "seed": int(cfg.seed), "factor": FACTOR,
           "n_knots": 8, "prior": "center-bias"}
    if kind == "ceiling":
        out.update(fit="leave-one-subject-out densities, one map per (stimulus, subject)",
                   max_fit_maps=GOLD_MAX_FIT_MAPS)
    return out


# --- 1. the block means a raw run keeps ----------------------------------------------------------


def save_blocks(run_dir: Path, first_index: int, ids: list[str], blocks: list[np.ndarray | None],
                constant: list[bool]) -> None:
    """One chunk's block means, atomically (plain arrays: read back without pickle); every stimulus
    of the chunk is listed, one whose map failed with ``None`` (no array), so it is not asked for again."""
    from ..results.files import atomic_write_bytes

    arrays = {f"b{j}": np.asarray(b, dtype=np.float64) for j, b in enumerate(blocks) if b is not None}
    buf = io.BytesIO()
    np.savez(buf, ids=np.array(ids, dtype=str), constant=np.array(constant, dtype=bool), **arrays)
    atomic_write_bytes(Path(run_dir) / "blocks" / f"part-{first_index:08d}.npz", buf.getvalue())


def _block_files(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "blocks"
    return sorted(folder.glob("part-*.npz")) if folder.is_dir() else []


def blocks_done(run_dir: Path) -> set[str]:
    """The stimuli whose block means are on disk."""
    done: set[str] = set()
    for path in _block_files(run_dir):
        try:
            with np.load(path, allow_pickle=False) as z:
                done.update(str(i) for i in z["ids"])
        except Exception:  # a damaged file: its stimuli are computed again (and the file replaced)
            continue
    return done


def read_blocks(run_dir: Path, wanted: set[str]) -> dict[str, tuple[np.ndarray, bool]]:
    """Stimulus id -> (block means, whether the map was constant), for the ``wanted`` stimuli."""
    out: dict[str, tuple[np.ndarray, bool]] = {}
    for path in _block_files(run_dir):
        try:
            with np.load(path, allow_pickle=False) as z:
                ids = [str(i) for i in z["ids"]]
                for j, sid in enumerate(ids):
                    if sid in wanted and f"b{j}" in z.files:
                        out[sid] = (np.array(z[f"b{j}"], dtype=np.float64), bool(z["constant"][j]))
        except Exception as exc:
            raise DataError(f"{path}: unreadable block means ({type(exc).__name__}); remove the file and run "
                            "again") from None
    return out


# --- 2. the fit ----------------------------------------------------------------------------------


def _check_folds(ids: list[str], seed: int, what: str) -> None:
    from ..calibration.folds import fold_of

    if not ids:  # no map to fit on: a larger --limit would not help
        raise HarnessError(f"calibrated scoring of {what}: none of its stimuli has a scorable map (every one "
                           "failed in the raw run: see its summary's failures), so there is nothing to calibrate")
    folds = {fold_of(i, FOLDS, seed) for i in ids}
    if len(folds) < 2:
        raise HarnessError(f"calibrated scoring of {what}: its {len(ids)} scorable stimuli all fall in one of the "
                           f"{FOLDS} cross-validation folds, so no calibration can be fitted without the stimuli it "
                           "scores; raise --limit")


def fit_model(ctx, scored: list[int], blocks: dict[str, tuple[np.ndarray, bool]], seed: int, label: str):
    """The model's cross-validated calibration, fitted on the block means of its scored stimuli."""
    from ..calibration import fit_calibration, prepare_blocks

    idx = [i for i in scored if ctx.ids[i] in blocks]
    ids = [ctx.ids[i] for i in idx]
    _check_folds(ids, seed, label)
    prep = prepare_blocks((blocks[s][0] for s in ids), ((ctx.sizes[i][1], ctx.sizes[i][0]) for i in idx),
                          (ctx.fixations[i] for i in idx), None, ids=ids, factor=FACTOR,
                          constant=(blocks[s][1] for s in ids))
    return fit_calibration(prep, folds=FOLDS, seed=seed, factor=FACTOR)


def fit_gold(ctx, scored: list[int], seed: int):
    """The gold standard's calibration: leave-one-subject-out densities of the scored stimuli."""
    from ..calibration import fit_calibration, loso_inputs

    prep = loso_inputs([ctx.fixations[i] for i in scored], [(ctx.sizes[i][1], ctx.sizes[i][0]) for i in scored],
                       [ctx.ids[i] for i in scored], [ctx.sigma(i) for i in scored], factor=FACTOR)
    _check_folds(list(dict.fromkeys(prep.ids)), seed, "the human ceiling")
    return fit_calibration(prep, folds=FOLDS, seed=seed, factor=FACTOR, max_fit_maps=GOLD_MAX_FIT_MAPS)


def inputs_sha256(blocks: dict[str, tuple[np.ndarray, bool]] | None, ids: list[str]) -> str:
    """What a fit was made from, beyond the run's settings: the scored ids and their block means."""
    h = hashlib.sha256()
    for sid in ids:
        h.update(sid.encode() + b"\0")
        if blocks is not None and sid in blocks:
            b, const = blocks[sid]
            h.update(repr(b.shape).encode() + (b"c" if const else b"v"))
            h.update(np.ascontiguousarray(b).tobytes())
    return h.hexdigest()


def store(cal, run_dir: Path, inputs: str) -> None:
    """``calibration.json`` (the record) and ``calibration.npz`` (the sAUC baselines) of a run."""
    from ..results.files import atomic_write_bytes, atomic_write_json

    arrays = {}
    for fit in cal.fits:
        for shape, arr in sorted((fit.shuffled or {}).items()):
            arrays[f"f{fit.fold}_{shape[0]}x{shape[1]}"] = np.asarray(arr, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(run_dir) / "calibration.npz", buf.getvalue())
    doc = cal.to_json(with_ids=True)
    doc["inputs_sha256"] = inputs
    doc["assignment"] = dict(sorted(cal.folds.assignment.items()))
    atomic_write_json(Path(run_dir) / "calibration.json", doc)


def stored_inputs(run_dir: Path) -> str | None:
    """The ``inputs_sha256`` of a run's stored calibration (None without one; "" when unreadable)."""
    path = Path(run_dir) / "calibration.json"
    if not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text()).get("inputs_sha256", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def load(run_dir: Path, inputs: str | None = None):
    """The calibration a run stored (None when there is none, or, given ``inputs``, when it was
    fitted on other inputs); a damaged one is a one-line error naming the file."""
    from ..calibration import Calibration, CalibrationParams, Folds, FoldFit

    path = Path(run_dir) / "calibration.json"
    if not path.is_file():
        return None
    # the run's shards were scored with this calibration, so a refit under them (even one with the
    # same parameters: the record holds fit times) would not be the file its manifest lists
    remedy = f"remove {run_dir} and run again"
    try:
        doc = json.loads(path.read_text())
        if inputs is not None and doc.get("inputs_sha256") != inputs:
            return None
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: unreadable calibration ({type(exc).__name__}); {remedy}") from None
    npz = Path(run_dir) / "calibration.npz"
    shuffled: dict[int, dict] = {}
    try:
        with np.load(npz, allow_pickle=False) as z:
            for key in z.files:
                fold, shape = key[1:].split("_")
                h, w = shape.split("x")
                shuffled.setdefault(int(fold), {})[(int(h), int(w))] = np.array(z[key])
    except Exception as exc:  # not numpy's message: for a file that is no .npz it suggests allow_pickle
        raise DataError(f"{npz}: unreadable sAUC baselines ({type(exc).__name__}); {remedy}") from None
    try:
        folds = Folds(int(doc["folds"]["n_folds"]), int(doc["folds"]["seed"]),
                      {str(k): int(v) for k, v in doc["assignment"].items()})
        fits = [FoldFit(int(f["fold"]), CalibrationParams.from_json(f["params"]), tuple(f["fit_ids"]),
                        int(f["n_fit_maps"]), int(f["n_fit_fixations"]), float(f["train_ll_bits"]),
                        float(f["seconds"]), int(f["n_evaluations"]), shuffled.get(int(f["fold"])),
                        float(f["fixations_per_map"]))
                for f in doc["fits"]]
        unfitted = sorted(set(folds.assignment.values()) - {f.fold for f in fits})
        if unfitted:
            raise ValueError(f"fold {unfitted[0]} scores stimuli but has no fit")
        return Calibration(folds, fits, dict(doc["settings"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable calibration ({type(exc).__name__}: {exc}); {remedy}") from None


def leak_check(cal, run_dir: Path) -> None:
    """Refuse a calibration that saw a stimulus it scores (a fold's fit stimuli among its own): an
    edited ``calibration.json`` of the run in ``run_dir``."""
    for fit in cal.fits:
        own = set(cal.folds.members(fit.fold))
        seen = own.intersection(fit.fit_ids)
        if seen:
            raise HarnessError(f"{Path(run_dir) / 'calibration.json'}: the calibration of fold {fit.fold} was fitted "
                               f"on {len(seen)} of the stimuli it scores (e.g. {sorted(seen)[0]!r}); remove {run_dir} "
                               "and run again")


# --- 3. scoring ----------------------------------------------------------------------------------


def model_scores(ctx, i: int, blocks: np.ndarray, constant: bool, profile: str, seed: int,
                 notes: list[str] | None = None) -> dict[str, float]:
    """Stimulus i's calibrated scores from its block means and its fold's calibration (``ctx.calibration``;
    ``notes``: see :func:`harness.evaluation.scoring.plugin_scores`)."""
    from ..calibration import calibrated_density_from_blocks, score_calibrated, shuffled_density
    from .scoring import _baseline_map, plugin_scores

    fit = ctx.calibration.fit_for(ctx.ids[i])
    w, h = ctx.sizes[i]
    fix = ctx.fixations[i]
    prior = _baseline_map(h, w)
    p = calibrated_density_from_blocks(blocks, (h, w), fit.params, prior, constant=constant)
    negatives = ctx.negatives(i)
    scores = score_calibrated(p, fix.x, fix.y, sigma_px=ctx.sigma(i), baseline=prior, human_density=ctx.density(i),
                              shuffled=shuffled_density(fit, (h, w)),
                              sim_fixations=max(1, int(round(fit.fixations_per_map))), profile=profile,
                              seed=seed + i, factor=fit.params.factor, **negatives)
    if ctx.extra_metrics:  # third-party metrics see the model as what it now is: its density
        context = dict(density=ctx.density(i), baseline=prior, profile=profile, **negatives)
        scores.update(plugin_scores(ctx.extra_metrics, p, fix, seed + i, context, notes))
    return scores


def ceiling_scores(ctx, i: int, profile: str, seed: int) -> dict[str, float] | None:
    """Stimulus i's calibrated gold standard (None with fewer than two subjects)."""
    from ..calibration import score_gold, shuffled_density
    from .scoring import _baseline_map

    fix = ctx.fixations[i]
    if np.unique(fix.subject).size < 2:
        return None
    fit = ctx.calibration.fit_for(ctx.ids[i])
    w, h = ctx.sizes[i]
    return score_gold(fix, (h, w), fit.params, sigma_px=ctx.sigma(i), prior=_baseline_map(h, w),
                      shuffled=shuffled_density(fit, (h, w)), profile=profile, seed=seed + i, **ctx.negatives(i))
