"""gaze-harness: does a model look where people look?"""

__version__ = "0.1.0"


def evaluate(*args, **kwargs):
    """Evaluate a model against human gaze from Python; see :func:`harness.api.evaluate`."""
    from .api import evaluate as _evaluate

    return _evaluate(*args, **kwargs)

