"""Attention extraction: plain functions that turn a model's internals into spatial maps.

- :mod:`harness.attention.gradcam`: Grad-CAM for CNNs (``grad_cam``).
- :mod:`harness.attention.resize`: bring a low-resolution map back to stimulus pixels
  (``to_stimulus``, ``crop_box``).

Nothing heavy is imported here; ``gradcam`` imports torch when it is imported itself.
"""
