"""The thread plan: each process' share of the cores, split deliberately between stages."""

from __future__ import annotations

import pytest

from harness.evaluation import threads


@pytest.mark.parametrize("cores, local, model, n, expected", [
    (2, 1, True, 700, (1, 0, 0)),   # one spare core: score inline (measured faster)
    (2, 1, False, 700, (1, 2, 0)),  # references: every core scores
    (2, 2, True, 700, (1, 0, 0)),   # two processes on two cores: one core each
    (8, 1, True, 700, (1, 7, 1)),   # the model keeps one thread, the rest score
    (8, 2, False, 700, (1, 4, 0)),
    (8, 1, True, 10, (1, 0, 0)),    # too few stimuli to pay for a pool
])
def test_plan_shares_the_cores(monkeypatch, cores, local, model, n, expected):
    monkeypatch.setattr(threads, "cores", lambda: cores)
    p = threads.plan(local_processes=local, n_stimuli=n, model=model)
    assert (p.model_threads, p.score_workers, p.loader_workers) == expected


def test_explicit_choices_win(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    p = threads.plan(n_stimuli=5, score_workers=3, loader_workers=1, model_threads=2)
    assert (p.model_threads, p.score_workers, p.loader_workers) == (2, 3, 1)
