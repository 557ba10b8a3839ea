"""The hooks a gaze-harness plugin may implement.

Every hook receives a ``register`` callback. Call it once per thing the plugin provides; what you
register is a *lazy spec*: a ``"module:attr"`` string naming the factory, plus metadata. Nothing is
imported until the thing is used, so ``harness plugins`` stays fast and never imports torch.

Built-in plugins (listed in ``registry.yaml``) implement these very hooks; third-party plugins are
found through the ``harness`` entry-point group.
"""

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_models(register):
    """Register model plugins.

    ``register(name, factory, *, tasks=(), attention=(), description="", **metadata)`` where
    ``factory`` is ``"module:attr"`` (or a callable) returning an object that follows
    :class:`harness.models.Model`. ``tasks`` lists the tasks it can solve, ``attention`` the attention
    methods it supports (the first is its default).
    """


@hookspec
def register_datasets(register):
    """Register gaze datasets.

    ``register(name, factory, *, tasks=(), description="", **metadata)`` where ``factory`` returns a
    :class:`harness.data.GazeDataset` whose ``load()`` yields a ``datasets.Dataset`` in the
    canonical schema (:mod:`harness.schema`).
    """


@hookspec
def register_metrics(register):
    """Register gaze-alignment metrics.

    ``register(name, factory, *, higher_is_better, needs=(), description="", **metadata)`` where
    ``factory`` names a plain function ``f(saliency_map, fix_x, fix_y, *, density=None, baseline=None,
    other_x=None, other_y=None, profile="mit", seed=0) -> float`` over numpy arrays (fixations in
    0-indexed pixel coordinates; ``needs`` names the context it cannot do without: ``"density"``,
    ``"other"``). The direction decides sorting and the arrows in leaderboards. A metric that
    raises is NaN for that stimulus, with the reason in the row's ``error``; no other number changes.
    """


@hookspec
def register_attention_methods(register):
    """Register attention-extraction methods (native attention, rollout, Grad-CAM, ...).

    ``register(name, factory, *, description="", applies_to=..., **metadata)``. A model lists the
    names it supports; ``harness eval --attention NAME`` picks one. Methods registered with
    ``applies_to="cnn-layer"`` are called as ``factory(forward, layer, inputs, targets) ->
    (maps (B, h, w), targets)`` and are offered by every CNN model that exposes such a layer
    (EfficientNet-Lite), so a plugin can add e.g. a Grad-CAM variant to the built-in models.
    """


@hookspec
def register_tasks(register):
    """Register tasks (free-viewing, classification, detection, captioning, ...).

    ``register(name, factory, *, requires=(), description="", **metadata)`` where ``requires`` names
    the dataset fields the task needs and ``factory`` returns a :class:`harness.tasks.Task`.
    """


@hookspec
def register_alignment_losses(register):
    """Register alignment losses for ``harness align`` (training a model toward human gaze).

    ``register(name, factory, *, needs=(), description="", citation="", **metadata)`` where ``factory``
    names a plain function ``f(batch) -> torch.Tensor`` (a scalar, lower is better aligned) over a
    :class:`harness.alignment.batch.AlignmentBatch`. ``needs`` names what the loss reads from the
    batch, so a model that cannot provide it is refused before training: ``"attention"`` (the model's
    own differentiable attention map) and/or ``"input_gradients"`` (gradients of its outputs with
    respect to the input pixels). The task term (cross-entropy or distillation) is added by the
    trainer; the loss returns the alignment term only. See ``docs/alignment.md``.
    """
