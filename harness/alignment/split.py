"""Which stimuli train and which are held out: a split by stimulus, from the seed and the ids alone.

Each stimulus gets the key ``sha256(f"{seed}:{stimulus_id}")``; the ``round(holdout * n)`` stimuli
with the smallest keys are held out. So the split does not depend on the order the dataset lists its
stimuli in, on the machine or on the number of processes, and a stimulus' side changes only with the
seed, the hold-out share or the set of stimuli (a stimulus added to the dataset moves at most the
stimuli whose keys lie near the cut). At least one stimulus is held out and one trains.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Sequence

from ..errors import HarnessError


@dataclass(frozen=True)
class Split:
    seed: int
    holdout: float
    train: tuple[str, ...]  # stimulus ids, in dataset order
    held_out: tuple[str, ...]

    @property
    def sha256(self) -> str:
        """Identity of the split: the hash of its held-out ids (sorted) and the training ids."""
        doc = json.dumps({"held_out": sorted(self.held_out), "train": sorted(self.train)}, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()

    def to_json(self) -> dict:
        return {"rule": "sha256(f'{seed}:{stimulus_id}'), smallest round(holdout * n) keys held out",
                "seed": self.seed, "holdout": self.holdout, "sha256": self.sha256,
                "n_train": len(self.train), "n_held_out": len(self.held_out),
                "train": list(self.train), "held_out": list(self.held_out)}

    @classmethod
    def from_json(cls, doc: dict) -> "Split":
        return cls(int(doc["seed"]), float(doc["holdout"]), tuple(map(str, doc["train"])),
                   tuple(map(str, doc["held_out"])))


def key(seed: int, stimulus_id: str) -> str:
    return hashlib.sha256(f"{int(seed)}:{stimulus_id}".encode()).hexdigest()


def split_stimuli(ids: Sequence[str], holdout: float, seed: int) -> Split:
    ids = [str(i) for i in ids]
    if not 0.0 < float(holdout) < 1.0:
        raise HarnessError(f"--holdout must lie strictly between 0 and 1 (a share of the stimuli), got {holdout}")
    if len(set(ids)) != len(ids):
        raise HarnessError("the dataset lists a stimulus id twice; a split by stimulus needs unique ids")
    if len(ids) < 2:
        raise HarnessError(f"a split needs at least 2 stimuli (one to train, one held out), got {len(ids)}")
    n_held = min(max(int(round(float(holdout) * len(ids))), 1), len(ids) - 1)
    held = set(sorted(ids, key=lambda s: key(seed, s))[:n_held])
    return Split(int(seed), float(holdout), tuple(s for s in ids if s not in held), tuple(s for s in ids if s in held))
