"""Gaze-alignment metrics over numpy arrays (see :mod:`harness.metrics.saliency` and docs/metrics.md).

Importing this package is cheap: numpy only.
"""

from .inputs import MetricInputError, MetricInputs, SharedInputs, pixel_indices
from .profiles import PROFILES, Profile, get_profile
from .saliency import (
    METRICS,
    MetricInfo,
    auc_borji,
    auc_judd,
    cc,
    compute_suite,
    compute_suite_many,
    ig,
    iou_top20,
    iou_topk,
    kld,
    nss,
    sauc,
    sim,
)

__all__ = [
    "METRICS",
    "PROFILES",
    "MetricInfo",
    "MetricInputError",
    "MetricInputs",
    "Profile",
    "SharedInputs",
    "auc_borji",
    "auc_judd",
    "cc",
    "compute_suite",
    "compute_suite_many",
    "get_profile",
    "ig",
    "iou_top20",
    "iou_topk",
    "kld",
    "nss",
    "pixel_indices",
    "sauc",
    "sim",
]
