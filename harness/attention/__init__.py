"""Attention extraction: plain functions that turn a model's internals into spatial maps.

- :mod:`harness.attention.gradcam`: Grad-CAM for CNNs (``grad_cam``).
- :mod:`harness.attention.resize`: bring a low-resolution map back to stimulus pixels
  (``to_stimulus``, ``crop_box``).

Nothing heavy is imported here; ``gradcam`` imports torch when it is imported itself.
"""


def cnn_layer_methods() -> list[str]:
    """Registered attention methods that take ``(forward, layer, inputs, targets)`` (registered with
    ``applies_to="cnn-layer"``): every CNN model that exposes its attention layer offers them all."""
    from ..plugins import get_registry

    return [s.name for s in get_registry().in_order("attention") if s.get("applies_to") == "cnn-layer"]


class AttentionMethodError(RuntimeError):
    """A registered attention method raised or returned something unusable: the batch fails (its
    stimuli are recorded as failed with this message, which names the method and its plugin) and the
    run goes on, as for any model failure; not a :class:`~harness.errors.HarnessError`, which would
    stop the whole command."""


def run_cnn_layer_method(name: str, forward, layer, inputs):
    """Maps and logits of the registered cnn-layer method ``name``, explaining the top-1 class.
    Returns ``(maps (B, h, w) tensor, targets (B,), logits)``.

    What the method returns is checked, since a plugin computes it and the harness then places and
    labels it: a ``(maps, targets)`` pair, maps of the layer's own (h, w) grid for every input (a map
    of another grid would be stretched onto the image without a word), and the targets it was given
    (the model's label is read from them). A method that raises, or returns something else, fails
    the batch with an :class:`AttentionMethodError` naming the method and its plugin."""
    import torch

    from ..errors import interrupt_in
    from ..plugins import get_registry

    spec = get_registry().get("attention", name)
    method = spec.resolve()
    grid: list[tuple[int, ...]] = []

    def hook(module, args, output):
        first = output[0] if isinstance(output, (tuple, list)) else output
        grid.append(tuple(getattr(first, "shape", ())))

    with layer.register_forward_hook(hook), torch.no_grad():  # the handle removes the hook on exit
        logits = forward(inputs)
    targets = logits.argmax(dim=1)
    who = f"attention {name!r} (plugin {spec.plugin!r})"
    try:
        result = method(forward, layer, inputs, targets.clone())
    except MemoryError:
        raise
    except Exception as exc:
        if interrupt_in(exc) is not None:  # Ctrl-C inside torch's code: not the method's failure
            raise
        raise AttentionMethodError(f"{who} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise AttentionMethodError(f"{who} returned {type(result).__name__}, not the pair "
                                   "(maps (B, h, w), targets (B,))")
    try:
        maps = torch.as_tensor(result[0]).detach()
        got = torch.as_tensor(result[1]).detach().reshape(-1)
    except Exception as exc:
        raise AttentionMethodError(f"{who} returned something that is not an array "
                                   f"({type(exc).__name__}: {exc})") from exc
    expected = (len(inputs), *grid[0][2:4]) if grid and len(grid[0]) == 4 else None
    if maps.dim() != 3 or (expected is not None and tuple(maps.shape) != expected):
        want = f"{expected}: the batch on the layer's own grid" if expected is not None else "(B, h, w)"
        raise AttentionMethodError(f"{who} returned maps of shape {tuple(maps.shape)}, expected {want}")
    if got.shape != targets.shape or not torch.equal(got.to(targets.device, targets.dtype), targets):
        raise AttentionMethodError(f"{who} returned other targets than the classes it was asked to explain "
                                   f"({got.tolist()[:4]} for {targets.tolist()[:4]}): the model's label is the "
                                   "top-1 class")
    return maps, targets, logits
