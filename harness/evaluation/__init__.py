"""``harness eval`` as stages, one module each, in the order data flows through them:

``config`` (what was asked, checked) -> ``context`` (the dataset, once) -> the model's
``predict`` -> ``scoring`` (is a map scorable; its metrics) -> ``record`` (rows, summary,
manifest) -> :mod:`harness.results` (the run folder). ``runner`` drives them.
"""

from .config import CEILING, DEFAULT_SIGMA_DEG, EvalConfig, EvalResult
from .runner import check_model_name, evaluate_ceiling, evaluate_model, reference_models, run_eval

__all__ = ["CEILING", "DEFAULT_SIGMA_DEG", "EvalConfig", "EvalResult", "check_model_name", "evaluate_ceiling",
           "evaluate_model", "reference_models", "run_eval"]
