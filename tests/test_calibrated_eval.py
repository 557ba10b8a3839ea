"""``harness eval --scoring calibrated`` on real OSIE data with a real model (EfficientNet-Lite0).

The proof that the calibration never sees the stimuli it scores: two datasets that differ only in
one stimulus' fixations give that stimulus' fold the same fitted parameters, bit for bit, while the
folds that fit on it change. Also: the raw run is the plain raw run (a raw run made earlier gets
only its block means added), runs resume without refitting, 1 and 2 processes agree, the ceiling
is the calibrated gold standard and the leaderboard never mixes raw and calibrated rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from harness.calibration import fold_of
from harness.cli import main
from harness.errors import HarnessError
from harness.evaluation import EvalConfig, run_eval
from harness.results import load_runs, read_run
from harness.results.files import sha256_file

N = 12  # stimuli (ids 1001..1012): with seed 0, 4 of the 5 folds get some (fold 2 none, so it is not fitted)


def _osie_copy(src: Path, dest: Path, n: int = N, mirror: str | None = None) -> Path:
    """The first ``n`` OSIE stimuli; ``mirror``: that stimulus' fixations mirrored left-right."""
    (dest / "eye").mkdir(parents=True)
    (dest / "stimuli").mkdir()
    cell = scipy.io.loadmat(str(src / "eye" / "fixations.mat"))["fixations"][:n].copy()
    for i in range(n):
        entry = cell[i, 0][0, 0]
        img = str(entry["img"][0])
        shutil.copyfile(src / "stimuli" / img, dest / "stimuli" / img)
        if mirror is not None and img.startswith(mirror):
            for s in range(entry["subjects"].shape[0]):
                subject = entry["subjects"][s, 0][0, 0]
                subject["fix_x"][...] = 801.0 - subject["fix_x"].astype(np.float64)  # 1-based columns of 800
    scipy.io.savemat(str(dest / "eye" / "fixations.mat"), {"fixations": cell})
    return dest


def _cfg(data: Path, out: Path, **kw) -> EvalConfig:
    base = dict(model="efficientnet-lite0", dataset="osie", limit=N, batch_size=4, output=out, data_dir=data,
                progress=False, scoring="calibrated", score_workers=0, loader_workers=0)
    base.update(kw)
    return EvalConfig(**base)


def _calibration(run_dir: Path) -> dict:
    return json.loads((run_dir / "calibration.json").read_text())


@pytest.fixture(scope="module")
def two_datasets(osie_dir, tmp_path_factory):
    """Calibrated runs on the first 12 OSIE stimuli, and on the same with stimulus 1001's fixations mirrored."""
    root = tmp_path_factory.mktemp("calibrated")
    runs = {}
    for name, mirror in (("same", None), ("mirrored", "1001")):
        data = _osie_copy(osie_dir, root / name / "osie", mirror=mirror)
        (result,) = run_eval(_cfg(data, root / name / "runs"), references=False)
        runs[name] = result
    return runs


@pytest.mark.slow
def test_the_calibration_never_sees_the_stimuli_it_scores(two_datasets):
    a, b = two_datasets["same"], two_datasets["mirrored"]
    cal_a, cal_b = _calibration(a.run_dir), _calibration(b.run_dir)
    seed = cal_a["folds"]["seed"]
    k = fold_of("1001", 5, seed)
    assert cal_a["assignment"]["1001"] == k
    for cal in (cal_a, cal_b):
        for fit in cal["fits"]:
            members = {sid for sid, f in cal["assignment"].items() if f == fit["fold"]}
            assert members.isdisjoint(fit["fit_ids"]), f"fold {fit['fold']} fitted on stimuli it scores"
            assert set(fit["fit_ids"]) | members == set(cal["assignment"])
    fits_a, fits_b = ({f["fold"]: f for f in cal["fits"]} for cal in (cal_a, cal_b))
    # the fold that scores 1001 did not see 1001's fixations: the same parameters to the bit
    assert fits_a[k]["params"] == fits_b[k]["params"]
    assert fits_a[k]["train_ll_bits"] == fits_b[k]["train_ll_bits"]
    # every other fold fitted on 1001: its fixations moved, so did their fits
    others = [f for f in fits_a if f != k]
    assert others and all(fits_a[f]["train_ll_bits"] != fits_b[f]["train_ll_bits"] for f in others)
    # and stimulus 1001's own scores changed only because its fixations did: the other stimuli of its
    # fold are scored identically in both datasets except through the shuffled-AUC pool
    fa = read_run(a.run_dir).per_image().set_index("stimulus_id")
    fb = read_run(b.run_dir).per_image().set_index("stimulus_id")
    same_fold = [s for s, f in cal_a["assignment"].items() if f == k and s != "1001"]
    for sid in same_fold:
        for m in ("ll", "ig", "auc_judd", "nss", "cc", "kld", "sim"):
            assert fa.loc[sid, m] == fb.loc[sid, m], (sid, m)
    assert fa.loc["1001", "nss"] != fb.loc["1001", "nss"]


@pytest.mark.slow
def test_a_calibrated_run_records_its_scoring_and_verifies(two_datasets):
    result = two_datasets["same"]
    run = read_run(result.run_dir)
    assert run.settings["scoring"] == "calibrated" and run.summary["scoring"] == "calibrated"
    assert run.settings["calibration"]["folds"] == 5 and run.settings["calibration"]["factor"] == 8
    assert run.manifest["calibration_sha256"] == sha256_file(result.run_dir / "calibration.json")
    frame = run.per_image()
    assert len(frame) == N and (frame["status"] == "ok").all()
    for m in ("ll", "ig", "auc_judd", "auc_borji", "sauc", "nss", "cc", "kld", "sim", "iou_top20"):
        assert np.isfinite(frame[m]).all(), m
        assert run.summary["metrics"][m] == pytest.approx(frame[m].mean())
    assert run.summary["metric_directions"]["ll"] == "higher"
    # the raw run of the same model is there too, under its own id, with the block means it kept
    raw = [r for r in load_runs(result.run_dir.parent) if r.run_id != result.run_dir.name]
    assert len(raw) == 1 and "scoring" not in raw[0].settings
    assert run.manifest["raw_run"] == raw[0].run_id
    assert sorted(p.name for p in (raw[0].path / "blocks").iterdir()) == [
        "part-00000000.npz", "part-00000004.npz", "part-00000008.npz"]
    r = CliRunner().invoke(main, ["verify", str(result.run_dir.parent)])
    assert r.exit_code == 0, r.output


def test_a_damaged_or_missing_calibration_is_caught(two_datasets, tmp_path):
    """verify passed a calibrated run whose calibration.json was garbage or gone, and eval said a
    garbage one was "fitted on other block means"."""
    result = two_datasets["same"]
    runs = tmp_path / "runs"
    shutil.copytree(result.run_dir.parent, runs)
    cal = runs / result.run_dir.name / "calibration.json"
    cal.write_text("{not json")
    r = CliRunner().invoke(main, ["verify", str(runs)])
    assert r.exit_code == 1 and "calibration.json: not the file its shards were scored with" in r.output
    data = result.run_dir.parent.parent / "osie"
    with pytest.raises(HarnessError, match=r"calibration.json: unreadable \(damaged or edited\); its shards were "
                                           "scored with it"):
        run_eval(_cfg(data, runs), references=False)
    cal.unlink()
    r = CliRunner().invoke(main, ["verify", str(runs)])
    assert r.exit_code == 1 and "calibration.json: recorded in the manifest but missing" in r.output


def test_every_remedy_for_a_damaged_calibration_leaves_a_run_that_verifies(two_datasets, tmp_path):
    """A damaged calibration.npz was reported as calibration.json with numpy's allow_pickle advice; its
    remedy ("remove it"), and a leak's ("remove calibration.json"), refitted under the finished
    run's shards: the refit's fit times changed calibration.json's sha256, the run was reused as it
    was and verify failed. Every remedy is now the one that works: remove the calibrated run."""
    result = two_datasets["same"]
    pristine = tmp_path / "pristine"
    shutil.copytree(result.run_dir.parent, pristine)
    runs = tmp_path / "runs"
    run_dir = runs / result.run_dir.name
    data = result.run_dir.parent.parent / "osie"
    remedy = f"remove {run_dir} and run again"

    def damaged(damage) -> str:
        if runs.exists():
            shutil.rmtree(runs)
        shutil.copytree(pristine, runs)
        damage()
        with pytest.raises(HarnessError) as caught:
            run_eval(_cfg(data, runs), references=False)
        return str(caught.value)

    def leak():
        doc = _calibration(run_dir)
        fit = doc["fits"][0]
        own = [s for s, f in doc["assignment"].items() if f == fit["fold"]]
        fit["fit_ids"] = fit["fit_ids"] + own[:1]
        (run_dir / "calibration.json").write_text(json.dumps(doc))

    def edited():
        doc = _calibration(run_dir)
        doc["fits"][0]["params"] = "edited"
        (run_dir / "calibration.json").write_text(json.dumps(doc))

    npz = run_dir / "calibration.npz"
    message = damaged(lambda: npz.write_bytes(b"not a zip file"))
    assert message.startswith(f"{npz}: unreadable") and "pickle" not in message and message.endswith(remedy)
    message = damaged(lambda: npz.unlink())
    assert message.startswith(f"{npz}: unreadable") and message.endswith(remedy)
    for damage in (leak, edited, lambda: (run_dir / "calibration.json").unlink()):
        message = damaged(damage)
        assert message.startswith(f"{run_dir / 'calibration.json'}: ") and message.endswith(remedy), message
    # following it: the calibrated run is made again (the raw run is reused) and verifies
    shutil.rmtree(run_dir)
    (again,) = run_eval(_cfg(data, runs), references=False)
    assert not again.reused and again.run_dir == run_dir
    r = CliRunner().invoke(main, ["verify", str(runs)])
    assert r.exit_code == 0, r.output


@pytest.mark.slow
def test_a_raw_run_made_earlier_gets_its_block_means_and_the_same_numbers(two_datasets, osie_dir, tmp_path, capsys):
    data = _osie_copy(osie_dir, tmp_path / "osie")
    out = tmp_path / "runs"
    (raw,) = run_eval(_cfg(data, out, scoring="raw"), references=False)
    shards = {p.name: sha256_file(p) for p in (raw.run_dir / "shards").iterdir()}
    assert not (raw.run_dir / "blocks").exists()
    capsys.readouterr()
    (cal,) = run_eval(_cfg(data, out, progress=True), references=False)
    err = capsys.readouterr().err
    assert "fitting the calibration" in err
    # 12 stimuli in 4 of the 5 folds (by hash): each fold fitted on the others' few, said (again when reused)
    fewest = min(f["n_fit_stimuli"] for f in _calibration(cal.run_dir)["fits"])
    warning = (f"warning: efficientnet-lite0: 4 of its 4 calibration folds were fitted on fewer than 20 stimuli "
               f"(the fewest: {fewest}); its calibrated scores rest on the noise of a few maps: raise --limit")
    assert warning in err and 0 < fewest < 12
    # the raw run's rows were not written again; its block means were added (same batches: same maps)
    assert {p.name: sha256_file(p) for p in (raw.run_dir / "shards").iterdir()} == shards
    assert len(list((raw.run_dir / "blocks").iterdir())) == 3
    # the same numbers as the calibrated run that computed everything in one go
    fresh = read_run(two_datasets["same"].run_dir).per_image().drop(columns=["seconds"])
    here = read_run(cal.run_dir).per_image().drop(columns=["seconds"])
    assert here.equals(fresh)
    untimed = (lambda run_dir: [{k: v for k, v in f.items() if k != "seconds"} for f in _calibration(run_dir)["fits"]])
    assert untimed(cal.run_dir) == untimed(two_datasets["same"].run_dir)
    # a second invocation reuses both runs: nothing is fitted or written again
    (again,) = run_eval(_cfg(data, out, progress=True), references=False)
    err = capsys.readouterr().err
    assert again.reused and "fitting" not in err and warning in err
    # a calibration fitted on other block means than the raw run holds is never mixed with a new one
    doc = json.loads((cal.run_dir / "calibration.json").read_text())
    doc["inputs_sha256"] = "0" * 64
    (cal.run_dir / "calibration.json").write_text(json.dumps(doc))
    with pytest.raises(HarnessError, match="fitted on other block means than the raw run"):
        run_eval(_cfg(data, out), references=False)


@pytest.mark.slow
def test_two_processes_give_the_calibrated_numbers_of_one(osie_dir, osie_cache, tmp_path):
    from test_parallel import _env, assert_identical, two_then_one

    data = _osie_copy(osie_dir, tmp_path / "osie")
    args = ["-m", "harness", "eval", "--model", "efficientnet-lite0", "--dataset", "osie", "--limit", str(N),
            "--batch-size", "4", "--data-dir", str(data), "--no-references", "--no-show", "--scoring", "calibrated"]
    two_then_one(args, _env(osie_cache), tmp_path)
    assert_identical(tmp_path / "two", tmp_path / "one")


def test_too_few_stimuli_for_cross_validation_is_one_line(osie_dir, tmp_path):
    data = _osie_copy(osie_dir, tmp_path / "osie", n=1)
    with pytest.raises(HarnessError, match="all fall in one of the 5 cross-validation folds"):
        run_eval(_cfg(data, tmp_path / "runs", limit=1, model="center-bias"), references=False)
    # checked before the calibrated run's folder is made: an empty one was left, which verify skipped
    (raw,) = load_runs(tmp_path / "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [raw.run_id]


def test_only_folds_with_stimuli_are_fitted(osie_dir, tmp_path, capsys):
    """With --limit 2 the three folds without stimuli were fitted as well (on both stimuli) and counted
    in the warning about thin folds ("5 of its 5 ... the fewest: 1")."""
    data = _osie_copy(osie_dir, tmp_path / "osie", n=2)
    (result,) = run_eval(_cfg(data, tmp_path / "runs", limit=2, model="center-bias"), references=False)
    cal = _calibration(result.run_dir)
    scoring = sorted(set(cal["assignment"].values()))
    assert len(scoring) == 2 and [f["fold"] for f in cal["fits"]] == scoring
    assert [f["n_fit_stimuli"] for f in cal["fits"]] == [1, 1]
    assert ("warning: center-bias: 2 of its 2 calibration folds were fitted on fewer than 20 stimuli (the fewest: 1)"
            in capsys.readouterr().err)
    assert (read_run(result.run_dir).per_image()["status"] == "ok").all()


def test_a_model_whose_every_map_failed_is_said_so(tmp_path):
    from harness.evaluation.calibrated import _check_folds

    with pytest.raises(HarnessError, match=r"none of its stimuli has a scorable map .* nothing to calibrate"):
        _check_folds([], 0, "a model")


def test_an_unknown_scoring_is_one_line(osie_dir, tmp_path):
    with pytest.raises(HarnessError, match="unknown scoring 'calibrate'; use one of raw, calibrated"):
        run_eval(_cfg(osie_dir, tmp_path / "runs", scoring="calibrate"), references=False)
    assert not (tmp_path / "runs").exists()


def test_a_calibration_that_saw_its_own_stimuli_is_refused():
    from harness.calibration import Calibration, CalibrationParams, FoldFit, Folds
    from harness.evaluation.calibrated import leak_check

    folds = Folds.assign(["a", "b", "c", "d"], 2, 0)
    params = CalibrationParams((0.0, 1.0), (1.0,), 1.0, 0.5, 8)
    honest = [FoldFit(k, params, tuple(folds.fit_ids(k)), 1, 1, 0.0, 0.0, 1) for k in range(2)]
    leak_check(Calibration(folds, honest, {}), Path("run"))
    leaky = [FoldFit(k, params, tuple(folds.fit_ids(k)) + tuple(folds.members(k))[:1], 1, 1, 0.0, 0.0, 1)
             for k in range(2)]
    with pytest.raises(HarnessError, match=r"fitted on 1 of the stimuli it scores .*; remove run and run again"):
        leak_check(Calibration(folds, leaky, {}), Path("run"))


@pytest.mark.slow
def test_the_calibrated_references_and_the_leaderboard(osie_dir, tmp_path):
    """Ceiling (calibrated gold standard) and baselines on 8 stimuli, with the raw ones beside."""
    data = _osie_copy(osie_dir, tmp_path / "osie", n=8)
    out = tmp_path / "runs"
    run_eval(_cfg(data, out, limit=8, model="human-ceiling"), references=True)
    runs = load_runs(out)
    calibrated = {r.summary["model"]: r for r in runs if r.summary.get("scoring") == "calibrated"}
    raw = {r.summary["model"]: r for r in runs if "scoring" not in r.summary}
    assert set(calibrated) == set(raw) == {"human-ceiling", "center-bias", "uniform"}
    gold = calibrated["human-ceiling"]
    assert gold.settings["calibration"]["max_fit_maps"] == 2000
    assert gold.summary["metrics"]["ig"] > 1.0  # the other observers predict far beyond the centre bias
    # the uniform map calibrates to the prior itself: no gain over the centre bias (Kuemmerer et al.)
    assert abs(calibrated["uniform"].summary["metrics"]["ig"]) < 0.02
    # leaderboard: two tables, raw first; the calibrated one with ll and the explained IG
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(out), "--wide"])
    assert r.exit_code == 0, r.output
    raw_part, cal_part = r.output.split("Calibrated scoring:")
    assert raw_part.startswith("Raw scoring:") and "ig_explained" not in raw_part and "ig_explained" in cal_part
    csv = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(out), "--format", "csv"]).output
    lines = [line.split(",") for line in csv.strip().splitlines()]
    head = lines[0]
    rows = {(line[head.index("model")], line[head.index("scoring")]): line for line in lines[1:]}
    assert len(rows) == 6
    ceiling = rows[("human-ceiling", "calibrated")]
    assert float(ceiling[head.index("ig_explained")]) == pytest.approx(100.0)
    cb = rows[("center-bias", "calibrated")]
    expected = 100 * float(cb[head.index("ig")]) / float(ceiling[head.index("ig")])
    assert float(cb[head.index("ig_explained")]) == pytest.approx(expected)
    assert rows[("center-bias", "raw")][head.index("ig_explained")] == ""
    # --ci intervals are computed within each scoring
    r = CliRunner().invoke(main, ["leaderboard", "show", "--results", str(out), "--ci", "--n-boot", "200", "--wide"])
    assert r.exit_code == 0 and r.output.count("percentile-bootstrap interval") == 2, r.output
