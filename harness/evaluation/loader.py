"""The read stage: each chunk's stimuli decoded (in DataLoader worker processes when asked), so
that decoding overlaps the model's work on the previous chunk."""

from __future__ import annotations

from typing import Any, Iterator


class StimulusSize:
    """What a model that does not look at pixels (``needs_pixels = False``: the baselines) gets
    instead of an image: only ``size``, as PIL gives it, ``(width, height)``."""

    __slots__ = ("size",)

    def __init__(self, width: int, height: int):
        self.size = (int(width), int(height))


def _decode(ds, idx: list[int]) -> list[Any]:
    return [record["image"].convert("RGB") for record in ds.select(idx)]


class _Chunks:
    """A map-style dataset of chunks for ``torch.utils.data.DataLoader``."""

    def __init__(self, ds, chunks: list[tuple[int, list[int]]]):
        self.ds, self.chunks = ds, chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int):
        chunk, idx = self.chunks[k]
        return chunk, idx, _decode(self.ds, idx)


def _worker_init(_):
    from .threads import limit_this_process

    limit_this_process(1)


def batches(ctx, chunks: list[tuple[int, list[int]]], *, pixels: bool = True, workers: int = 0
            ) -> Iterator[tuple[int, list[int], list[Any]]]:
    """``(chunk, indices, images)`` for each chunk, in order."""
    if not pixels:
        for chunk, idx in chunks:
            yield chunk, idx, [StimulusSize(*ctx.sizes[i]) for i in idx]
        return
    if workers <= 0 or len(chunks) < 2:
        for chunk, idx in chunks:
            yield chunk, idx, _decode(ctx.ds, idx)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(_Chunks(ctx.ds, chunks), batch_size=None, shuffle=False, num_workers=workers,
                        prefetch_factor=2, worker_init_fn=_worker_init, collate_fn=lambda x: x)
    yield from loader
