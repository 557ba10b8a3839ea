"""Alignment training: make a model look where people look (``harness align``).

Data flow, one module per stage: :mod:`.split` (which stimuli train, which are held out) ->
:mod:`.batch` (what a loss sees: inputs, the human density, the model's differentiable attention and
input gradients) -> the loss plugins (``register_alignment_losses``) -> :mod:`.train` (the loop, on
accelerate) -> :mod:`.checkpoint` (an atomic, resumable folder that :mod:`.model` loads as a model)
-> :mod:`.compare` (before/after on the held-out stimuli, paired).
"""
