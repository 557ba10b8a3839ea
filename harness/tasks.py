"""What a task plugin's factory returns: how to score a model's task output against a record."""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Task(Protocol):
    name: str
    requires: Sequence[str]  # dataset fields the task needs, e.g. ("label",)
    primary: str | None  # name of the headline task metric, None for free viewing
    per_image_score: str | None  # the per-stimulus score that alignment is correlated with

    def score_image(self, output: dict[str, Any], record: dict[str, Any]) -> dict[str, float]:
        """Per-stimulus task scores (e.g. ``{"top1": 1.0, "top5": 1.0}``); ``{}`` if none."""

    def score_dataset(
        self, outputs: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
    ) -> dict[str, float]:
        """Dataset-level task metrics (e.g. COCO mAP, BLEU-4) over the stimuli the run scored
        (a failed stimulus is left out, as from the gaze means)."""

    # optional: ``notes(outputs, records) -> list[str]``, what the run's outputs as a whole say that
    # its numbers do not (printed as warnings when the run finishes; classification's: no predicted
    # label names a dataset class, so its top-1 of 0 says nothing). ``score_image`` raises
    # ``ValueError`` for an output it cannot read: that stimulus fails with the reason.
