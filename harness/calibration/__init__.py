"""Calibrated scoring: every attention map as a fixation density, each metric on its own optimal map.

Raw scoring punishes a map's *format* (zeros give ``-inf`` information gain, a contrast curve or a
blur unlike the human density's costs KLD and IG) rather than where the model looks. Following
Kuemmerer, Wallis & Bethge (PNAS 2015, "Information-theoretic model comparison unifies saliency
metrics"; ECCV 2018, "Saliency Benchmarking Made Easy: Separating Models, Maps and Metrics") and the
MIT/Tuebingen benchmark, a model is turned into a fixation density by a per-model calibration fitted
on stimuli *disjoint from the scored ones*, and every metric is computed on the map that is optimal
for it under that density.

API
---
- :func:`fit_calibration` ``(maps, fixations, prior, ids=, folds=5, seed=0, factor=8)`` ->
  :class:`Calibration`: per fold (by stimulus id, :mod:`~harness.calibration.folds`) the
  parameters fitted by maximum likelihood on the other folds' stimuli
  (:mod:`~harness.calibration.fit`); ``Calibration.params_for(stimulus_id)``.
- :func:`calibrated_density` ``(map, params, prior)`` -> density: a monotone piecewise-linear
  log-density nonlinearity of the map, a Gaussian blur, a mixture with the centre-bias prior
  (:mod:`~harness.calibration.model`).
- :func:`score_calibrated` ``(density, fix_x, fix_y, ...)`` -> ``{"ll", "ig", "auc_judd", ...}``:
  log-likelihood and information gain in bits per fixation, and the harness metrics on the ECCV 2018
  metric-specific maps (:mod:`~harness.calibration.maps`, :mod:`~harness.calibration.score`).
- The gold standard: :func:`loso_inputs` (the leave-one-subject-out densities as fit inputs, one map
  per (stimulus, subject)), calibrated by the same :func:`fit_calibration`, scored by
  :func:`score_gold`; :func:`explained_information_gain` ``= 100 * IG / IG_gold``.

``benchmarks/calibration.py`` runs it on OSIE; docs/metrics.md ("Calibrated scoring") describes the
method and the numbers.
"""

from .fit import Calibration, Prepared, fit_calibration, fit_params, prepare, prepare_blocks
from .folds import Folds, fold_of
from .maps import METRIC_MAP, blurred_density, equalized, expected_sim, metric_maps, sim_map
from .model import (CalibrationParams, FoldFit, calibrated_density, calibrated_density_from_blocks,
                    calibrated_log_density, calibrated_log_density_from_blocks, shuffled_density)
from .score import (explained_information_gain, log_likelihood_bits, loso_inputs, loso_items, score_calibrated,
                    score_gold)

__all__ = [
    "METRIC_MAP",
    "Calibration",
    "CalibrationParams",
    "FoldFit",
    "Folds",
    "Prepared",
    "blurred_density",
    "calibrated_density",
    "calibrated_density_from_blocks",
    "calibrated_log_density",
    "calibrated_log_density_from_blocks",
    "equalized",
    "expected_sim",
    "explained_information_gain",
    "fit_calibration",
    "fit_params",
    "fold_of",
    "log_likelihood_bits",
    "loso_inputs",
    "loso_items",
    "metric_maps",
    "prepare",
    "prepare_blocks",
    "score_calibrated",
    "score_gold",
    "shuffled_density",
    "sim_map",
]
