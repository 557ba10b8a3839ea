"""Cross-validation folds by stimulus: a stimulus' fold from the seed and its id alone.

``fold(id) = int(sha256(f"{seed}:{id}"), 16) mod n_folds`` (the key of
:mod:`harness.alignment.split`). A stimulus' fold therefore does not depend on the order the dataset
lists its stimuli in, on ``--limit``, on the number of processes or on which other stimuli a run
holds; the calibration a stimulus is scored with is fitted on stimuli of the other folds only.
Fold sizes are multinomial, not exactly equal (700 OSIE stimuli in 5 folds: 140 +- ~11); a fold
that ends up without stimuli simply scores nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

RULE = "int(sha256(f'{seed}:{stimulus_id}'), 16) % n_folds"


def fold_of(stimulus_id: str, n_folds: int, seed: int) -> int:
    """The fold (0 .. n_folds - 1) of one stimulus."""
    if int(n_folds) < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {n_folds}")
    return int(hashlib.sha256(f"{int(seed)}:{stimulus_id}".encode()).hexdigest(), 16) % int(n_folds)


@dataclass(frozen=True)
class Folds:
    """The fold assignment of a set of stimulus ids."""

    n_folds: int
    seed: int
    assignment: dict  # stimulus id -> fold

    @classmethod
    def assign(cls, ids: Iterable[str], n_folds: int = 5, seed: int = 0) -> "Folds":
        ids = [str(i) for i in ids]
        return cls(int(n_folds), int(seed), {i: fold_of(i, n_folds, seed) for i in dict.fromkeys(ids)})

    def fold(self, stimulus_id: str) -> int:
        return self.assignment[str(stimulus_id)]

    def members(self, k: int) -> list[str]:
        """The stimuli scored with fold ``k``'s calibration."""
        return [i for i, f in self.assignment.items() if f == k]

    def fit_ids(self, k: int) -> list[str]:
        """The stimuli fold ``k``'s calibration is fitted on: every stimulus of the other folds."""
        return [i for i, f in self.assignment.items() if f != k]

    def to_json(self) -> dict:
        sizes = [len(self.members(k)) for k in range(self.n_folds)]
        return {"rule": RULE, "n_folds": self.n_folds, "seed": self.seed, "sizes": sizes}
