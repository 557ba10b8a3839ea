"""Built-in gaze-alignment metrics: AUC-Judd, AUC-Borji, sAUC, NSS, CC, SIM, KLD, IG, IoU top-20%.

The functions live in :mod:`harness.metrics.saliency` (numpy only); this module registers them
lazily, so listing metrics imports nothing. Each is called as::

    f(saliency_map, fix_x, fix_y, *, density=None, baseline=None, other_x=None, other_y=None,
      profile="mit", seed=0) -> float

``needs`` names the context a metric cannot do without (``density``: the human fixation density;
``other``: fixations on other images). Definitions and the MIT/pysaliency profiles: docs/metrics.md.
"""

from __future__ import annotations

from harness.hookspecs import hookimpl

_MODULE = "harness.metrics.saliency"

# name, higher_is_better, needs, description; kept here (not imported from harness.metrics) so that
# registering stays import-free. tests/test_metrics.py checks it against harness.metrics.METRICS.
METRICS = (
    ("auc_judd", True, (), "AUC-Judd: ROC area, fixated vs other pixels (MIT AUC_Judd.m; pysaliency AUC)"),
    ("auc_borji", True, (), "AUC-Borji: ROC area against uniformly sampled pixels (MIT AUC_Borji.m)"),
    ("sauc", True, ("other",), "shuffled AUC: negatives are fixations on other images (MIT AUC_shuffled.m)"),
    ("nss", True, (), "normalized scanpath saliency: standardised map at the fixations"),
    ("cc", True, ("density",), "Pearson correlation with the human fixation density"),
    ("sim", True, ("density",), "similarity (histogram intersection) with the human fixation density"),
    ("kld", False, ("density",), "KL divergence of the map from the human fixation density (nats)"),
    ("ig", True, (), "information gain over a baseline map, bits per fixation (uniform if none)"),
    ("iou_top20", True, ("density",), "IoU of the top-20% regions of the map and of the human density"),
)


@hookimpl
def register_metrics(register):
    for name, higher_is_better, needs, description in METRICS:
        register(
            name,
            f"{_MODULE}:{name}",
            higher_is_better=higher_is_better,
            needs=needs,
            profiles=("mit", "pysaliency"),
            description=description,
        )
