"""An aligned checkpoint as a model: ``harness eval --model ckpt/lite0-osie`` (any path to a folder
written by ``harness align``, or ``aligned:PATH``).

It is the base model (built by its registered name, so its preprocessing and attention are exactly
the base's) with the checkpoint's weights loaded into the module ``trainable()`` exposes. Its
provenance is the base's plus the checkpoint's: the weights' sha256, the split, the loss and its
settings, so a run of an aligned model never shares a run id with its base or another checkpoint.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

from ..errors import HarnessError
from .checkpoint import read_checkpoint
from .split import Split

PREFIX = "aligned:"
#: aligned folders one load may pass through, a base naming an aligned folder as its own base and so
#: on (harness align trains a model with trainable() only, which an aligned model has not, so one is
#: all it writes; a few spare for hand-made chains)
MAX_BASE_CHAIN = 4
_LOADING = threading.local()  # the aligned folders whose base this thread is loading


def checkpoint_path(name: str) -> Path | None:
    """The folder a ``--model`` value names, if it names an aligned checkpoint, else None."""
    from .checkpoint import is_checkpoint

    if name.startswith(PREFIX):
        return Path(name[len(PREFIX):])
    if ("/" in name or name.startswith(".")) and is_checkpoint(name):
        return Path(name)
    return None


class AlignedModel:
    def __init__(self, folder: str | Path, device: str = "cpu") -> None:
        self.folder = Path(folder)
        self.checkpoint = read_checkpoint(self.folder)
        if not self.checkpoint.complete:
            done, total = self.checkpoint.epochs_done, self.checkpoint.meta["settings"]["epochs"]
            raise HarnessError(f"{self.folder}: training stopped after epoch {done} of {total}; run the same "
                               "`harness align` command again to finish it")
        meta = self.checkpoint.meta
        self.base_name = str(meta["base"]["model"])
        where = str(meta["base"].get("load_as") or self.base_name)  # a relative hf: folder, made absolute
        self.base = _load_base(self.folder, where, device, "load_as" if meta["base"].get("load_as") else "model")
        if not callable(getattr(self.base, "trainable", None)):
            raise HarnessError(f"{self.folder}: base model {self.base_name!r} cannot load trained weights (no trainable())")
        if self.base.provenance() != meta["base"]["provenance"]:
            raise HarnessError(f"{self.folder}: base model {self.base_name!r} installed here is not the one it was "
                               "trained from (its provenance differs: other weights or package version)")
        trainable = self.base.trainable()
        try:
            trainable.module.load_state_dict(self.checkpoint.weights(), strict=True)
        except RuntimeError as exc:
            raise HarnessError(f"{self.folder}: weights do not fit {self.base_name!r}: {str(exc).splitlines()[0]}") from None
        trainable.module.requires_grad_(False)
        trainable.module.eval()
        self.name = str(meta["settings"]["name"])
        self.tasks: Sequence[str] = tuple(self.base.tasks)
        self.attention_methods: Sequence[str] = tuple(self.base.attention_methods)
        self.split = Split.from_json(meta["split"])
        self.dataset = str(meta["settings"]["dataset"])
        self.dataset_fingerprint = str(meta["settings"]["dataset_fingerprint"])

    @property
    def needs_pixels(self) -> bool:
        return getattr(self.base, "needs_pixels", True)

    def provenance(self) -> dict[str, Any]:
        meta = self.checkpoint.meta
        return {
            "model_id": self.name,
            "weights_sha256": meta["files"]["weights"]["sha256"],
            "aligned": {
                "base_model": self.base_name,
                "base_provenance": meta["base"]["provenance"],
                "loss": meta["settings"]["loss"],
                "settings": {k: v for k, v in meta["settings"].items() if k not in ("name", "base_model")},
                "split_sha256": meta["split"]["sha256"],
                "checkpoint": self.folder.name,
            },
        }

    def predict(self, images, *, task: str, attention: str):
        return self.base.predict(images, task=task, attention=attention)

    def held_out_ids(self, dataset: str, fingerprint: str) -> list[str] | None:
        """The stimuli its training never saw, when evaluated on the dataset it was trained on."""
        if dataset != self.dataset:
            return None
        if fingerprint != self.dataset_fingerprint:
            raise HarnessError(f"{self.folder}: trained on another version of dataset {dataset!r} (its fingerprint "
                               "differs), so which stimuli it saw is unknown here; convert the same files or train again")
        return list(self.split.held_out)


def _load_base(folder: Path, where: str, device: str, field: str):
    """The base model ``where`` of the aligned ``folder``; an align.json whose base is the folder
    itself (or one whose base is it again) would load forever, so it is refused, as is a chain of
    aligned bases longer than :data:`MAX_BASE_CHAIN`."""
    from ..models import device_kwargs, load_model
    from .checkpoint import META_FILE

    here = os.path.realpath(folder)
    chain = getattr(_LOADING, "chain", [])
    base_folder = checkpoint_path(where)
    if base_folder is not None:
        target = os.path.realpath(base_folder)
        if target in (*chain, here):
            what = "the folder itself" if target == here else "an aligned folder whose base leads back to this one"
            raise HarnessError(f"{folder / META_FILE}: field 'base.{field}' names {what} (a base is the model "
                               "it was trained from)")
        if len(chain) + 2 > MAX_BASE_CHAIN:
            raise HarnessError(f"{folder / META_FILE}: field 'base.{field}' names an aligned model more than "
                               f"{MAX_BASE_CHAIN} aligned folders deep, each the base of the one before")
    _LOADING.chain = [*chain, here]
    try:
        return load_model(where, **device_kwargs(where, device))
    finally:
        _LOADING.chain = chain


def load_aligned(path: str | Path, device: str = "cpu") -> AlignedModel:
    return AlignedModel(path, device=device)
