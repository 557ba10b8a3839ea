"""gaze-harness: does a model look where people look?"""

__version__ = "0.1.0"
