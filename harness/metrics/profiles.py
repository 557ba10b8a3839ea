"""Metric profiles: the two published sets of conventions the metrics can follow.

The saliency literature computes "the same" metric in two ways that give different numbers:

- ``"mit"``: the MIT Saliency Benchmark MATLAB code (github.com/cvzoya/saliency,
  ``code_forMetrics/*.m``), the definitions of Bylinskii et al. (TPAMI 2019);
- ``"pysaliency"``: pysaliency and the MIT/Tuebingen Saliency Benchmark
  (github.com/matthias-k/pysaliency, github.com/matthias-k/saliency-benchmarking), Kümmerer et al.
  (ECCV 2018), which changed several conventions on purpose.

A :class:`Profile` names every convention that differs, so each metric is written once and reads its
switches from here. ``docs/metrics.md`` lists the differences in one table; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HarnessError

MATLAB_EPS = 2.220446049250313e-16  # MATLAB's eps, used by KLdiv.m and InfoGain.m
PYSALIENCY_EPS = 2.2204e-16  # the rounded constant pysaliency's MIT_KLDiv uses


@dataclass(frozen=True)
class Profile:
    name: str
    unique_fixations: bool  # MIT: a binary fixation map, so two fixations on one pixel count once
    auc_judd: str  # "judd": thresholds at fixated values, negatives = unfixated pixels (AUC_Judd.m)
    #                "all": every threshold, negatives = all pixels, ties count half (pysaliency AUC)
    jitter: bool  # AUC_Judd.m adds uniform noise of 1e-7 to break ties
    sauc: str  # "splits": 100 random subsets of the unique other locations, 0.1 thresholds (AUC_shuffled.m)
    #            "all": every other fixation is a negative, every threshold (pysaliency sAUC)
    nss_ddof: int  # MATLAB std() divides by N-1, numpy's by N
    sim_normalisation: str  # "minmax": rescale to [0, 1] then divide by the sum (similarity.m)
    #                         "shift": subtract the minimum only if negative, divide by the sum (pysaliency SIM)
    kld_eps: float
    ig: str  # "mit": min-max, divide by sum, log2(eps + p) (InfoGain.m)
    #          "density": divide by sum (negatives shifted), log2 p, no eps (pysaliency information_gain)


PROFILES = {
    "mit": Profile(
        name="mit",
        unique_fixations=True,
        auc_judd="judd",
        jitter=True,
        sauc="splits",
        nss_ddof=1,
        sim_normalisation="minmax",
        kld_eps=MATLAB_EPS,
        ig="mit",
    ),
    "pysaliency": Profile(
        name="pysaliency",
        unique_fixations=False,
        auc_judd="all",
        jitter=False,
        sauc="all",
        nss_ddof=0,
        sim_normalisation="shift",
        kld_eps=PYSALIENCY_EPS,
        ig="density",
    ),
}


def get_profile(profile: str | Profile) -> Profile:
    """The :class:`Profile` named ``profile`` (``"mit"`` or ``"pysaliency"``)."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        raise HarnessError(
            f"unknown metric profile {profile!r}; known: {', '.join(sorted(PROFILES))}"
        ) from None
