"""The read stage: each chunk's stimuli decoded (in DataLoader worker processes when asked), so
that decoding overlaps the model's work on the previous chunk."""

from __future__ import annotations

from typing import Any, Iterator


class StimulusSize:
    """What a model that does not look at pixels (``needs_pixels = False``: the baselines, the
    mouse-tracking models) gets instead of an image: ``size``, as PIL gives it, ``(width, height)``,
    and ``stimulus_id``, the dataset's id of the stimulus (a string; ``None`` when unknown), for
    models that look their map up per stimulus."""

    __slots__ = ("size", "stimulus_id")

    def __init__(self, width: int, height: int, stimulus_id: str | None = None):
        self.size = (int(width), int(height))
        self.stimulus_id = None if stimulus_id is None else str(stimulus_id)

    def __repr__(self) -> str:
        return f"StimulusSize(size={self.size}, stimulus_id={self.stimulus_id!r})"


def _decode(ds, idx: list[int]) -> list[Any]:
    return [record["image"].convert("RGB") for record in ds.select(idx)]


class _Chunks:
    """A map-style dataset of chunks for ``torch.utils.data.DataLoader``."""

    def __init__(self, ds, chunks: list[tuple[int, list[int]]]):
        self.ds, self.chunks = ds, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int):
        import numpy as np
        import torch

        chunk, idx = self.chunks[k]
        # as tensors, which the DataLoader hands over in shared memory: a few bytes through the pipe
        # instead of each image's pixels pickled into it (a worker killed while writing those, by
        # the out-of-memory killer, left the reader waiting forever for the rest of the message)
        return chunk, idx, [torch.from_numpy(np.array(image)) for image in _decode(self.ds, idx)]


def worker_died(exc: BaseException) -> bool:
    """``exc`` is torch's report of a dead decoding process. Its DataLoader raises it at the next
    batch fetched, or from a SIGCHLD handler wherever the main thread happens to be (in the
    model, in scoring): never a model's error or a stimulus' failure."""
    return isinstance(exc, RuntimeError) and "DataLoader worker" in str(exc)


def decoder_died(exc: BaseException):
    from ..errors import HarnessError

    return HarnessError(f"a decoding process died ({exc}); finished batches are kept, run again to resume")


def _worker_init(_):
    from .threads import limit_this_process

    limit_this_process(1)


def batches(ctx, chunks: list[tuple[int, list[int]]], *, pixels: bool = True, workers: int = 0
            ) -> Iterator[tuple[int, list[int], list[Any]]]:
    """``(chunk, indices, images)`` for each chunk, in order."""
    if not pixels:
        for chunk, idx in chunks:
            yield chunk, idx, [StimulusSize(*ctx.sizes[i], stimulus_id=ctx.ids[i]) for i in idx]
        return
    if workers <= 0 or len(chunks) < 2:
        for chunk, idx in chunks:
            yield chunk, idx, _decode(ctx.ds, idx)
        return
    from PIL import Image
    from torch.utils.data import DataLoader

    loader = iter(DataLoader(_Chunks(ctx.ds, chunks), batch_size=None, shuffle=False, num_workers=workers,
                             prefetch_factor=2, worker_init_fn=_worker_init, collate_fn=lambda x: x))
    while True:
        try:
            chunk, idx, pixels = next(loader)
        except StopIteration:
            return
        except RuntimeError as exc:  # torch: "DataLoader worker (pid(s) ...) exited unexpectedly"
            if not worker_died(exc):
                raise
            raise decoder_died(exc) from exc
        yield chunk, idx, [Image.fromarray(p.numpy()) for p in pixels]  # the same RGB pixels
