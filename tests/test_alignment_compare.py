"""Before/after comparison of an aligned model with its base (harness.alignment.compare)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest

from harness.alignment.compare import (COMPARABLE, NotComparable, baseline_on, find_pairs, format_table, is_aligned,
                                       pair, paired_bootstrap, top1_agreement)
from harness.errors import HarnessError


# --- paired_bootstrap -----------------------------------------------------------------------------------

def test_constant_difference_collapses_the_interval():
    rng = np.random.default_rng(3)
    before = rng.normal(size=50)
    after = before + 0.25
    r = paired_bootstrap(before, after, n_boot=2000, seed=1)
    assert r["n"] == 50 and r["n_dropped"] == 0
    assert r["diff"] == pytest.approx(0.25, rel=1e-12)
    # every resample's mean difference is 0.25: the interval is that point
    assert r["lo"] == pytest.approx(0.25, rel=1e-12) and r["hi"] == pytest.approx(0.25, rel=1e-12)
    # the sign-flip test: of 2000 random assignments none reaches |0.25| (only all-alike signs do,
    # 2 of 2^50): the smallest p the (1 + count) / (B + 1) rule can give
    assert r["p"] == pytest.approx(1 / 2001)
    assert r["before"] == pytest.approx(before.mean()) and r["after"] == pytest.approx(after.mean())


def test_interval_agrees_with_scipy_paired_percentile_bootstrap():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(11)
    n, B = 60, 20000
    before = rng.normal(0.5, 1.0, size=n)
    after = before + rng.normal(0.3, 1.0, size=n)
    d = after - before
    ours = paired_bootstrap(before, after, n_boot=B, seed=5)
    ref = bootstrap((before, after), statistic=lambda a, b: np.mean(b - a), paired=True, vectorized=False,
                    method="percentile", n_resamples=B, random_state=6)
    assert ours["diff"] == pytest.approx(d.mean(), rel=1e-12)
    # Monte-Carlo tolerance: both estimate the same quantiles of the ideal bootstrap distribution,
    # which is close to normal with sd s = sd(d)/sqrt(n). An estimated q-quantile from B draws has
    # standard error sqrt(q(1-q)/B) / density at it = sqrt(q(1-q)/B) * s / phi(z_q) (about 0.019 s
    # here); the two independent estimates differ with sd sqrt(2) times that. Five such sds is a
    # tolerance that two correct implementations exceed with probability ~6e-7, while a wrong one
    # (unpaired resampling, a 90% interval, a shifted centre) misses it by several times over.
    s = d.std(ddof=0) / math.sqrt(n)
    q, z = 0.025, 1.959963984540054
    phi = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    tol = 5 * math.sqrt(2) * math.sqrt(q * (1 - q) / B) * s / phi
    assert abs(ours["lo"] - ref.confidence_interval.low) < tol
    assert abs(ours["hi"] - ref.confidence_interval.high) < tol
    # and the interval is the paired one: an unpaired interval would be ~sqrt(2) wider here
    width = ours["hi"] - ours["lo"]
    assert width == pytest.approx(2 * 1.96 * s, rel=0.08)
    assert ours["lo"] > 0 and ours["p"] < 0.05


def test_symmetric_zero_mean_differences_are_not_significant():
    rng = np.random.default_rng(2)
    half = rng.exponential(size=40)
    d = np.concatenate([half, -half])  # exactly symmetric about 0: the bootstrap distribution is too
    before = rng.normal(size=80)
    r = paired_bootstrap(before, before + d, n_boot=10000, seed=0)
    assert r["diff"] == pytest.approx(0.0, abs=1e-12)
    assert r["lo"] < 0 < r["hi"]
    # P*(d* <= 0) and P*(d* >= 0) are both ~1/2, so p ~ 1 (Monte-Carlo sd of each ~0.005)
    assert r["p"] > 0.95


def test_identical_scores_give_p_one():
    x = np.linspace(0, 1, 30)
    r = paired_bootstrap(x, x.copy(), n_boot=500)
    assert r["diff"] == 0 and r["lo"] == 0 and r["hi"] == 0 and r["p"] == 1.0


def test_ties_at_zero_up_to_rounding():
    """-0.2 and +0.2 computed as 1.0 - 1.2 and 1.6 - 1.4 do not cancel exactly in floating point; a
    resample of both is still a difference of 0, counted in both tails and not "excluding" 0."""
    before, after = np.array([1.2, 1.4]), np.array([1.0, 1.6])
    assert (after - before).sum() != 0  # the rounding this is about
    r = paired_bootstrap(before, after, n_boot=4000, seed=0)
    assert r["p"] == 1.0 and r["lo"] < 0 < r["hi"]
    r = paired_bootstrap(before[[1, 0, 1]], after[[1, 0, 1]], n_boot=4000, seed=0)  # +0.2 twice, -0.2 once
    # every sign assignment of (0.2, 0.2, 0.2) sums to +-0.2 or +-0.6, never nearer 0 than the observed
    # 0.2 (which rounding makes 0.2000...01 or 0.1999...9): p = 1
    assert r["p"] == 1.0


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(4)
    before, after = rng.normal(size=100), rng.normal(0.1, 1.0, size=100)
    a = paired_bootstrap(before, after, n_boot=3000, seed=7)
    b = paired_bootstrap(before.tolist(), after.tolist(), n_boot=3000, seed=7)
    assert a == b
    c = paired_bootstrap(before, after, n_boot=3000, seed=8)
    assert (c["lo"], c["hi"]) != (a["lo"], a["hi"]) and c["diff"] == a["diff"]


def test_chunked_resampling(monkeypatch):
    """Many stimuli are drawn in chunks (here forced small): every resample is filled and the result
    is still deterministic and centred."""
    import harness.alignment.compare as compare

    monkeypatch.setattr(compare, "_CHUNK", 5000)  # 1 resample of 5000 stimuli per chunk
    rng = np.random.default_rng(9)
    before = rng.normal(size=5000)
    after = before + rng.normal(0.05, 0.5, size=5000)
    r = paired_bootstrap(before, after, n_boot=300, seed=1)
    s = (after - before).std() / math.sqrt(5000)
    assert r["lo"] < r["diff"] < r["hi"]
    assert r["hi"] - r["lo"] == pytest.approx(2 * 1.96 * s, rel=0.25)
    assert paired_bootstrap(before, after, n_boot=300, seed=1) == r


def test_nan_pairs_are_dropped_and_counted():
    rng = np.random.default_rng(5)
    before, after = rng.normal(size=40), rng.normal(size=40)
    b, a = before.copy(), after.copy()
    b[3], a[17], b[20], a[20] = np.nan, np.nan, np.nan, np.inf
    r = paired_bootstrap(b, a, n_boot=1000, seed=2)
    keep = np.ones(40, bool)
    keep[[3, 17, 20]] = False
    assert r["n"] == 37 and r["n_dropped"] == 3
    assert r == {**paired_bootstrap(before[keep], after[keep], n_boot=1000, seed=2), "n_dropped": 3}

    empty = paired_bootstrap([np.nan, 1.0], [2.0, np.nan])
    assert empty["n"] == 0 and empty["n_dropped"] == 2 and math.isnan(empty["diff"]) and math.isnan(empty["p"])
    one = paired_bootstrap([1.0, np.nan], [1.5, 2.0])
    assert one["n"] == 1 and one["diff"] == 0.5 and math.isnan(one["lo"]) and math.isnan(one["p"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="level"):
        paired_bootstrap([1.0, 2.0], [1.0, 3.0], level=95)


# --- top1_agreement -------------------------------------------------------------------------------------

def test_top1_agreement_on_hand_made_outputs():
    a = ['{"label": "n02510455", "score": 0.9}', json.dumps({"label": "n01440764"}), json.dumps({"label": "x"}),
         None, "not json", json.dumps({"boxes": []}), None]
    b = [json.dumps({"label": "n02510455", "score": 0.4}), json.dumps({"label": "n01443537"}), None,
         json.dumps({"label": "x"}), json.dumps({"label": "y"}), json.dumps({"boxes": []}), None]
    # agree only on the first; one-sided or absent labels count as disagreement
    assert top1_agreement(a, b) == pytest.approx(1 / 7)
    assert top1_agreement(a[:1], b[:1]) == 1.0
    assert top1_agreement([{"label": 3}], ['{"label": "3"}']) == 1.0  # parsed mappings, labels as text
    assert math.isnan(top1_agreement([], []))
    with pytest.raises(ValueError):
        top1_agreement(a, b[:3])


# --- pair -----------------------------------------------------------------------------------------------

PROVENANCE = {"model_id": "resnet50", "source": "torchvision", "weights": "IMAGENET1K_V2"}


def make_settings(model: str = "resnet50", **over: Any) -> dict[str, Any]:
    s = {"schema_version": 2, "model": model, "kind": "model", "model_provenance": dict(PROVENANCE),
         "dataset": "osie", "dataset_fingerprint": "0123456789abcdef", "n_images": 8, "limit": None,
         "task": "classification", "attention": "gradcam", "metric_profile": "mit",
         "metric_params": {"sigma_deg": 1.0, "sigma_px": 24.0, "ig_baseline": "center-bias"}, "seed": 0,
         "batch_size": 8, "device": "cpu"}
    s.update(over)
    return s


def aligned_settings(**over: Any) -> dict[str, Any]:
    prov = {"model_id": "resnet50-aligned", "aligned": {"base_model": "resnet50", "base_provenance": dict(PROVENANCE),
                                                        "loss": "cc", "checkpoint": "ckpt/step-100"}}
    return make_settings("resnet50-aligned", model_provenance=prov,
                         stimuli={"subset": "held-out", "n": 4, "split_sha256": "ab" * 32}, **over)


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    out = []
    for r in rows:
        label = r.get("label")
        out.append({"stimulus_id": r["id"], "status": r.get("status", "ok"), "error": None, "n_fixations": 10,
                    "seconds": 0.1, "output": json.dumps({"label": label}) if label else None,
                    "auc_judd": r.get("auc", math.nan), "nss": r.get("nss", math.nan), "kld": r.get("kld", math.nan),
                    "task:top1": r.get("top1", math.nan)})
    return pd.DataFrame(out)


BEFORE = frame([
    {"id": "s0", "auc": 0.70, "nss": 1.0, "kld": 1.5, "top1": 1, "label": "a"},
    {"id": "s1", "auc": 0.71, "nss": 1.1, "kld": 1.4, "top1": 0, "label": "b"},
    {"id": "s2", "auc": 0.72, "nss": 1.2, "kld": 1.3, "top1": 1, "label": "c"},
    {"id": "s3", "auc": 0.73, "nss": 1.3, "kld": 1.2, "top1": 1, "label": "d"},
    {"id": "s4", "auc": 0.74, "nss": 1.4, "kld": 1.1, "top1": 0, "label": "e", "status": "degenerate"},
    {"id": "s5", "auc": 0.75, "nss": math.nan, "kld": 1.0, "top1": 1, "label": "f"},
])
# the aligned run: s2..s7 (s0, s1 only before; s6, s7 only after), s3 failed, rows not in id order
AFTER = frame([
    {"id": "s7", "auc": 0.9, "nss": 2.0, "kld": 0.1, "top1": 1, "label": "z"},
    {"id": "s5", "auc": 0.85, "nss": 1.0, "kld": 0.8, "top1": 1, "label": "f"},
    {"id": "s3", "status": "failed"},
    {"id": "s2", "auc": 0.82, "nss": 1.0, "kld": 1.1, "top1": 1, "label": "c"},
    {"id": "s4", "auc": 0.84, "nss": 1.6, "kld": 0.9, "top1": 1, "label": "q", "status": "degenerate"},
    {"id": "s6", "auc": 0.9, "nss": 2.0, "kld": 0.1, "top1": 1, "label": "y"},
])


def test_pair_restricts_to_shared_scored_stimuli():
    r = pair(make_settings(), BEFORE, aligned_settings(), AFTER, n_boot=2000, seed=0)
    assert (r["before_model"], r["after_model"], r["dataset"], r["task_name"]) == \
        ("resnet50", "resnet50-aligned", "osie", "classification")
    assert r["n_before"] == 6 and r["n_after"] == 6
    assert r["n_shared"] == 4  # s2..s5
    assert r["n_failed"] == 1  # s3 failed after: left out; s4 degenerate: scored, kept
    assert r["n_paired"] == 3
    assert list(r["metrics"]) == ["auc_judd", "nss", "kld"] and list(r["task"]) == ["top1"]
    auc = r["metrics"]["auc_judd"]
    assert auc["n"] == 3 and auc["before"] == pytest.approx((0.72 + 0.74 + 0.75) / 3)
    assert auc["after"] == pytest.approx((0.82 + 0.84 + 0.85) / 3)
    assert auc["diff"] == pytest.approx(0.10) and auc["lo"] == pytest.approx(0.10) and auc["hi"] == pytest.approx(0.10)
    # three stimuli can never show a difference: 2 of the 8 sign assignments are as far from 0
    assert auc["higher_is_better"] is True and auc["p"] == 0.25 and auc["better"] is None
    kld = r["metrics"]["kld"]  # lower is better and went down by 0.2 on every stimulus
    assert kld["higher_is_better"] is False and kld["diff"] == pytest.approx(-0.2) and kld["better"] is None
    nss = r["metrics"]["nss"]  # s5 is NaN before: one pair dropped; +(-0.2), +0.2 straddle 0
    assert nss["n"] == 2 and nss["n_dropped"] == 1 and nss["better"] is None
    top1 = r["task"]["top1"]
    assert top1["n"] == 3 and top1["diff"] == pytest.approx(1 / 3) and top1["higher_is_better"] is True
    assert r["top1_agreement"] == pytest.approx(2 / 3) and r["n_labelled"] == 3  # s4 changed label
    assert r["stimuli"]["subset"] == "held-out"

    # row order does not matter; a worse model is "worse"
    again = pair(make_settings(), BEFORE.iloc[::-1], aligned_settings(), AFTER.sample(frac=1, random_state=0),
                 n_boot=2000, seed=0)
    assert again == r
    # on eight stimuli the same constant differences are significant (p = 2 / 2^8), each on its side
    big_before, big_after = _constant_pair(8)
    big = pair(make_settings(), big_before, aligned_settings(), big_after, n_boot=2000, seed=0)
    assert big["metrics"]["auc_judd"]["p"] == 2 / 256 and big["metrics"]["auc_judd"]["better"] is True
    assert big["metrics"]["kld"]["better"] is True
    swapped = pair(aligned_settings(), big_after, make_settings(), big_before, n_boot=2000)
    assert swapped["metrics"]["auc_judd"]["better"] is False and swapped["metrics"]["kld"]["better"] is False


def _constant_pair(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Before/after frames of ``n`` stimuli: auc_judd +0.1 and kld -0.2 on every one."""
    before = frame([{"id": f"s{i}", "auc": 0.7 + 0.01 * i, "nss": 1.0, "kld": 1.5 - 0.1 * i, "top1": 1, "label": "a"}
                    for i in range(n)])
    after = frame([{"id": f"s{i}", "auc": 0.8 + 0.01 * i, "nss": 1.0, "kld": 1.3 - 0.1 * i, "top1": 1, "label": "a"}
                   for i in range(n)])
    return before, after


def test_pair_metric_selection_and_directions():
    """A registered metric's direction is its registration's, whatever a summary says (an edited
    summary turned kld's around and the worse model into the better one); a metric not registered
    here (a plugin missing) takes the summary's."""
    before, after = _constant_pair(8)
    before, after = before.assign(plug=before["kld"]), after.assign(plug=after["kld"])
    r = pair(make_settings(), before, aligned_settings(), after, metrics=["kld", "plug", "missing"], n_boot=500,
             directions={"kld": "higher", "plug": "higher"})
    assert list(r["metrics"]) == ["kld", "plug"]
    assert r["metrics"]["kld"]["higher_is_better"] is False and r["metrics"]["kld"]["better"] is True
    assert r["metrics"]["plug"]["higher_is_better"] is True and r["metrics"]["plug"]["better"] is False


def test_pair_leaves_out_shuffled_auc_when_the_contexts_differ():
    """sAUC's negatives are the fixations on the run's other stimuli (the first --limit of the
    dataset), so with different limits the same stimulus is scored against other negatives."""
    before, after = BEFORE.assign(sauc=0.6), AFTER.assign(sauc=0.7)
    same = pair(make_settings(), before, aligned_settings(), after, n_boot=200)
    assert "sauc" in same["metrics"] and same["left_out"] == {}
    other = pair(make_settings(), before, aligned_settings(limit=12), after, n_boot=200)
    assert "sauc" not in other["metrics"] and "auc_judd" in other["metrics"]
    assert "limit None vs 12" in other["left_out"]["sauc"]
    assert "sauc not compared" in format_table(other)
    # a limit above the dataset's size is the whole dataset for a run that scored all it had
    whole = pair(make_settings(limit=1000), before, aligned_settings(), after, n_boot=200)
    assert "sauc" in whole["metrics"]


def test_pair_without_labels_reports_no_agreement():
    baseline = make_settings("center-bias", kind="baseline", attention="center-bias",
                             model_provenance={"model_id": "center-bias"})
    r = pair(baseline, BEFORE.assign(output=None), aligned_settings(), AFTER, n_boot=500)
    assert r["top1_agreement"] is None and r["n_labelled"] == 0


@pytest.mark.parametrize("key", COMPARABLE)
def test_pair_refuses_runs_that_are_not_comparable(key):
    changed = {"dataset": "mit1003", "dataset_fingerprint": "fedcba9876543210", "task": "free-viewing",
               "task_params": {"label_aliases": {"x": ["y"]}}, "metric_profile": "pysaliency",
               "metric_params": {"sigma_deg": 2.0, "sigma_px": 48.0, "ig_baseline": "center-bias"}, "seed": 1,
               "scoring": "calibrated", "calibration": {"folds": 5}}[key]
    with pytest.raises(ValueError) as info:
        pair(make_settings(), BEFORE, aligned_settings(**{key: changed}), AFTER, n_boot=100)
    message = str(info.value)
    assert "'resnet50'" in message and "'resnet50-aligned'" in message and key in message
    assert "\n" not in message
    assert isinstance(info.value, HarnessError)  # the CLI prints it as one line


def test_pair_refuses_disjoint_stimuli():
    with pytest.raises(NotComparable, match="no stimulus in common"):
        pair(make_settings(), BEFORE.iloc[:2], aligned_settings(), AFTER, n_boot=100)
    with pytest.raises(NotComparable, match="no stimulus in common"):
        pair(make_settings(), pd.DataFrame(), aligned_settings(), AFTER, n_boot=100)


def test_pair_refuses_duplicated_stimuli():
    with pytest.raises(ValueError, match="duplicated"):
        pair(make_settings(), pd.concat([BEFORE, BEFORE.iloc[:1]]), aligned_settings(), AFTER, n_boot=100)


def test_format_table():
    r = pair(make_settings(), BEFORE, aligned_settings(), AFTER, n_boot=500)
    text = format_table(r)
    lines = text.splitlines()
    assert lines[0].startswith("resnet50 → resnet50-aligned on osie/classification (held-out): 3 stimuli paired of 4")
    # runs of partly other stimuli (a base run of another --limit, or the right one damaged and left
    # out) pair only part of each: the title says how small a part
    assert lines[0].endswith("1 failed in either run left out (the runs scored 6 and 6)")
    assert lines[1].split() == ["metric", "dir", "before", "after", "diff", "[95%", "CI]", "p", "n", "verdict"]
    same = format_table(pair(make_settings(), BEFORE, aligned_settings(), BEFORE, n_boot=500)).splitlines()[0]
    assert "stimuli paired of" in same and "the runs scored" not in same, same
    # the usual case: a base run of every stimulus against the aligned model's held-out few (all of
    # them in the base run): nothing to say
    held = AFTER.iloc[1:5]  # s5, s3, s2, s4: all scored by the base run too
    usual = format_table(pair(make_settings(), BEFORE, aligned_settings(), held, n_boot=500)).splitlines()[0]
    assert "4 shared" in usual and "the runs scored" not in usual, usual
    auc = next(line for line in lines if line.startswith("auc_judd"))
    # three stimuli: the interval is a point, but p = 0.25 (the sign-flip test): not a verdict
    assert "+0.1000 [+0.1000, +0.1000]  0.250" in auc and "n.s." in auc
    assert "n.s." in next(line for line in lines if line.startswith("nss"))
    big = format_table(pair(make_settings(), *_constant_pair(8)[:1], aligned_settings(), _constant_pair(8)[1],
                            n_boot=500)).splitlines()
    assert "▲ better" in next(line for line in big if line.startswith("auc_judd"))
    assert "▲ better" in next(line for line in big if line.startswith("kld"))
    assert any(line.startswith("task:top1") for line in lines)
    assert lines[-1].startswith("top-1 agreement: 66.7% of 3 stimuli") and lines[-1].endswith(
        "the same class from both models, not accuracy)")


# --- find_pairs / baseline_on ---------------------------------------------------------------------------

@dataclass
class FakeRun:
    """What find_pairs reads of a run: settings, summary, per_image(), run_id."""

    run_id: str
    settings: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    ids: tuple[str, ...] = ()
    reads: int = 0

    def per_image(self) -> pd.DataFrame:
        self.reads += 1
        return pd.DataFrame({"stimulus_id": list(self.ids), "status": ["ok"] * len(self.ids)})


def fake(run_id: str, settings: dict[str, Any], finished_at: str | None = "2024-01-01T00:00:00+00:00",
         ids: range = range(10)) -> FakeRun:
    summary = {"model": settings["model"], "finished_at": finished_at} if finished_at else {}
    return FakeRun(run_id, settings, summary, tuple(f"s{i}" for i in ids))


def test_is_aligned():
    assert is_aligned(aligned_settings())
    assert not is_aligned(make_settings())
    assert not is_aligned({"model_provenance": {"aligned": "yes"}})
    assert not is_aligned({})


def test_find_pairs_picks_the_comparable_covering_most_recent_base():
    aligned = fake("aligned", aligned_settings(), "2024-07-01T00:00:00+00:00", ids=range(5, 10))
    runs = [
        fake("old-full", make_settings(), "2024-01-01T00:00:00+00:00"),
        fake("new-full", make_settings(), "2024-03-01T00:00:00+00:00"),
        # newest, but made with a smaller --limit: it misses the held-out stimuli s5..s9
        fake("newest-partial", make_settings(limit=5), "2024-06-01T00:00:00+00:00", ids=range(5)),
        # not the base: other weights, other seed, other attention, unfinished, a baseline
        fake("other-weights", make_settings(model_provenance={**PROVENANCE, "weights": "IMAGENET1K_V1"}),
             "2024-08-01T00:00:00+00:00"),
        fake("other-seed", make_settings(seed=1), "2024-08-01T00:00:00+00:00"),
        fake("other-attention", make_settings(attention="integrated-gradients"), "2024-08-01T00:00:00+00:00"),
        fake("unfinished", make_settings(), None),
        fake("other-kind", make_settings(kind="baseline"), "2024-08-01T00:00:00+00:00"),
        aligned,
        # an aligned run whose base was never run: left out
        fake("orphan", aligned_settings(dataset="mit1003"), "2024-07-01T00:00:00+00:00"),
    ]
    pairs = find_pairs(runs)
    assert [(b.run_id, a.run_id) for b, a in pairs] == [("new-full", "aligned")]
    # with one candidate no rows are read
    lone = [fake("only", make_settings()), fake("al", aligned_settings(), ids=range(5, 10))]
    assert [(b.run_id, a.run_id) for b, a in find_pairs(lone)] == [("only", "al")]
    assert lone[0].reads == 0 and lone[1].reads == 0
    # listing order does not matter
    assert [(b.run_id, a.run_id) for b, a in find_pairs(runs[::-1])] == [("new-full", "aligned")]


def test_find_pairs_prefers_the_same_limit():
    aligned = fake("aligned", aligned_settings(limit=12), ids=range(2, 5))
    runs = [aligned,
            fake("full-newer", make_settings(n_images=700), "2024-05-01T00:00:00+00:00", ids=range(700)),
            fake("same-limit", make_settings(limit=12, n_images=12), "2024-02-01T00:00:00+00:00", ids=range(12))]
    assert [b.run_id for b, _ in find_pairs(runs)] == ["same-limit"]
    assert [b.run_id for b, _ in find_pairs(runs[:2])] == ["full-newer"]  # else any covering one


def test_baseline_on_the_same_settings():
    aligned = fake("aligned", aligned_settings(), ids=range(5, 10))
    ref = {"kind": "baseline", "attention": "center-bias", "batch_size": None, "device": None}
    runs = [
        aligned,
        fake("cb", make_settings("center-bias", model_provenance={"model_id": "center-bias"}, **ref)),
        fake("cb-other-profile", make_settings("center-bias", metric_profile="pysaliency", **ref),
             "2025-01-01T00:00:00+00:00"),
        fake("uniform", make_settings("uniform", **ref)),
        fake("ceiling", make_settings("human-ceiling", kind="ceiling", attention="leave-one-subject-out")),
    ]
    assert baseline_on(runs, aligned).run_id == "cb"
    assert baseline_on(runs, aligned, "uniform").run_id == "uniform"
    assert baseline_on(runs, aligned, "human-ceiling").run_id == "ceiling"
    assert baseline_on(runs, aligned, "nothing") is None
    # and the baseline scores on the held-out stimuli through pair
    base = runs[1]
    rows = frame([{"id": f"s{i}", "auc": 0.6 + i / 100} for i in range(10)])
    held = frame([{"id": f"s{i}", "auc": 0.8} for i in range(5, 10)])
    r = pair(base.settings, rows, aligned.settings, held, metrics=["auc_judd"], n_boot=500)
    assert r["n_shared"] == 5 and r["metrics"]["auc_judd"]["before"] == pytest.approx(0.67)


def test_real_runs_of_a_small_osie(small_osie, tmp_path):
    """Runs written by `harness eval` (the references of a 6-stimulus OSIE copy), read back: the
    baseline is found for an aligned run made of one of them, and pairs on the real rows."""
    import copy

    from click.testing import CliRunner

    from harness.cli import main
    from harness.results import load_runs

    data, out = small_osie(n=6), tmp_path / "runs"
    r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--data-dir", str(data),
                                  "--output", str(out), "--no-show"])
    assert r.exit_code == 0, r.output
    runs = load_runs(out)
    by = {run.settings["model"]: run for run in runs}
    assert {"uniform", "center-bias", "human-ceiling"} <= set(by)
    cb = by["center-bias"]
    # an "aligned" run scoring 3 held-out stimuli, as the real one's settings would say
    settings = copy.deepcopy(cb.settings)
    settings.update(model="cb-aligned", kind="model", stimuli={"subset": "held-out", "n": 3, "split_sha256": "0" * 64},
                    model_provenance={"aligned": {"base_model": "center-bias",
                                                  "base_provenance": cb.settings["model_provenance"]}})
    held = cb.per_image().iloc[[1, 3, 5]].assign(nss=lambda f: f["nss"] + 0.5)
    aligned = FakeRun("cb-aligned", settings, {"finished_at": "2099-01-01T00:00:00+00:00"}, tuple(held["stimulus_id"]))
    aligned.per_image = lambda: held
    assert baseline_on(runs, aligned).run_id == cb.run_id
    assert baseline_on(runs, aligned, "human-ceiling").run_id == by["human-ceiling"].run_id
    assert find_pairs([*runs, aligned]) == []  # center-bias is a baseline, not a model run
    res = pair(cb.settings, cb.per_image(), aligned.settings, held, n_boot=1000,
               directions=cb.summary["metric_directions"])
    assert res["n_shared"] == 3 and res["n_paired"] == 3
    assert set(res["metrics"]) == set(cb.summary["metrics"])  # every metric of the run
    # +0.5 on each of 3 stimuli: p = 2 / 2^3, too few stimuli for a verdict
    assert res["metrics"]["nss"]["diff"] == pytest.approx(0.5) and res["metrics"]["nss"]["p"] == 0.25
    assert res["metrics"]["nss"]["better"] is None
    assert res["metrics"]["auc_judd"]["diff"] == 0 and res["metrics"]["auc_judd"]["p"] == 1.0
    assert res["metrics"]["auc_judd"]["before"] == pytest.approx(cb.per_image()["auc_judd"].iloc[[1, 3, 5]].mean())


def test_a_verdict_never_contradicts_its_p_value():
    """With 20 resamples, an interpolated 95% interval excluded 0 while p was 0.095, and the table
    said "better" beside p = 0.095; with one resample the interval [x, x] need not even hold the mean."""
    import numpy as np

    from harness.alignment.compare import _verdict

    rng = np.random.default_rng(0)
    before = rng.normal(0, 1, 40)  # above 30 stimuli: Monte Carlo flips, as many as resamples
    after = before + 0.3 + rng.normal(0, 1, 40)
    stats = paired_bootstrap(before, after, n_boot=1, seed=0)
    assert stats["p"] >= 0.5 and _verdict(stats, True) is None and _verdict(stats, False) is None
    # an interval that excludes 0 with p above 0.05 (few resamples of a test, or few stimuli): no verdict
    stats = {**paired_bootstrap(before, after, n_boot=20, seed=0), "p": 0.095}
    assert stats["lo"] > 0 and _verdict(stats, True) is None and _verdict(stats, False) is None
    for n_boot in (19, 20, 50, 200):  # whatever the resamples, a verdict only beside p < 0.05
        stats = paired_bootstrap(before, after, n_boot=n_boot, seed=0)
        assert (_verdict(stats, True) is not None) == (stats["p"] < 0.05 and (stats["lo"] > 0 or stats["hi"] < 0))
    stats = paired_bootstrap(before, after, n_boot=10000, seed=0)
    assert stats["lo"] > 0 and stats["p"] < 0.05 and _verdict(stats, True) is True and _verdict(stats, False) is False


def test_too_few_resamples_are_refused_on_the_command_line():
    from click.testing import CliRunner

    from harness.cli import main

    for argv in (["compare", "a", "b", "--n-boot", "20"], ["leaderboard", "show", "--ci", "--n-boot", "20"]):
        r = CliRunner().invoke(main, argv)
        assert r.exit_code == 2 and "20 is not in the range x>=100" in r.output


def test_p_value_is_the_sign_flip_permutation_test():
    """The p-value is Fisher's sign-flip test: exactly scipy's permutation_test of the mean over the
    2^n sign flips up to 30 stimuli, and close to it (Monte Carlo) above; under the null its
    false-positive rate stays at or below alpha on few stimuli, where the bootstrap's own test
    rejected 25% of the time on 3."""
    from scipy.stats import permutation_test

    rng = np.random.default_rng(7)
    for n in (6, 11, 16, 17, 18):  # 17 and 18 were Monte Carlo, 3 standard errors off in one QA check
        before, after = rng.normal(size=n), rng.normal(size=n) + 0.6
        ours = paired_bootstrap(before, after, n_boot=2000, seed=0)["p"]
        ref = permutation_test((after - before,), np.mean, permutation_type="samples", n_resamples=np.inf,
                               alternative="two-sided").pvalue
        assert ours == pytest.approx(ref, rel=1e-12), n
    before, after = rng.normal(size=40), rng.normal(size=40) + 0.3
    ours = paired_bootstrap(before, after, n_boot=20000, seed=0)["p"]
    ref = permutation_test((after - before,), np.mean, permutation_type="samples", n_resamples=20000,
                           alternative="two-sided", random_state=1).pvalue
    assert ours == pytest.approx(ref, abs=0.01)
    rejected = sum(paired_bootstrap(np.zeros(3), rng.standard_t(5, size=3), n_boot=200, seed=k)["p"] < 0.05
                   for k in range(200))
    assert rejected == 0  # the smallest p on 3 stimuli is 2/8
    rejected = sum(paired_bootstrap(np.zeros(10), rng.standard_t(5, size=10), n_boot=200, seed=k)["p"] < 0.05
                   for k in range(400))
    assert rejected / 400 <= 0.075  # alpha 0.05 and Monte-Carlo spread (the bootstrap's test: ~0.11)


# --- `harness compare` ------------------------------------------------------------------------------------

def test_compare_refuses_a_model_against_the_human_ceiling(tmp_path):
    """`compare <ceiling> <model>` printed '-2.83 ... worse' as if like with like (found by QA): the
    ceiling's per-stimulus numbers score one left-out observer against the others."""
    from click.testing import CliRunner

    from harness.cli import main
    from site_helpers import write_run

    ceiling = write_run(tmp_path / "a", model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                        metrics={"nss": 3.0}, n_images=8)
    net = write_run(tmp_path / "b", model="net", metrics={"nss": 1.0}, n_images=8)
    for args in ([ceiling, net], [net, ceiling]):
        r = CliRunner().invoke(main, ["compare", *map(str, args), "--n-boot", "100"])
        assert r.exit_code == 1, r.output
        assert r.output.strip().splitlines()[-1] == (
            f"Error: {ceiling}: the human ceiling scores each observer against the others, one left-out observer at "
            "a time, not the fixations a model is scored against: a paired difference would not compare like with "
            "like (`harness leaderboard show --ci` gives its interval)")
    other = write_run(tmp_path / "c", model="human-ceiling", kind="ceiling", attention="leave-one-subject-out",
                      metrics={"nss": 2.5}, n_images=8)  # another folder's: two ceilings compare
    assert CliRunner().invoke(main, ["compare", str(ceiling), str(other), "--n-boot", "100"]).exit_code == 0


def test_compare_says_when_run_a_scored_more_stimuli_than_were_paired(tmp_path):
    """The '(the runs scored 40 and 30)' note came only when B was the larger run (found by QA)."""
    from click.testing import CliRunner

    from harness.cli import main
    from site_helpers import write_run

    big = write_run(tmp_path / "a", model="net-a", metrics={"nss": 1.0}, n_images=12)
    small = write_run(tmp_path / "b", model="net-b", metrics={"nss": 0.5}, n_images=8)
    for args in ([big, small], [small, big]):
        r = CliRunner().invoke(main, ["compare", *map(str, args), "--n-boot", "100"])
        assert r.exit_code == 0, r.output
        assert "8 stimuli paired of 8 shared" in r.output, r.output
        assert "(the runs scored 12 and 8)" in r.output or "(the runs scored 8 and 12)" in r.output, r.output
