"""TimeShare: a periodic task is due only while it stays within its share of the elapsed time."""

from __future__ import annotations

import pytest

import callbacks.time_share as time_share
from callbacks.time_share import TimeShare


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_task_runs_as_often_as_its_share_allows(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time_share.time, "perf_counter", clock)
    budget = TimeShare(0.1)
    clock.now += 1.0
    assert budget.due()  # nothing measured yet, nothing spent
    budget.record(1.0)  # a 1 s task after 1 s of training
    clock.now += 1.0
    # spent 1 + next 1 = 2 > 0.1 * (2 + 1): not due until 2 <= 0.1 * (E + 1), E >= 19 s
    assert not budget.due()
    clock.now = 100.0 + 18.9
    assert not budget.due()
    clock.now = 100.0 + 19.0
    assert budget.due()


def test_the_first_estimate_holds_back_an_expensive_first_run(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time_share.time, "perf_counter", clock)
    budget = TimeShare(0.05)
    clock.now += 10.0
    assert not budget.due(first_estimate=20.0)  # 20 > 0.05 * 30
    assert budget.due(first_estimate=0.4)  # 0.4 <= 0.05 * 10.4
    budget.restart()
    assert budget.spent == 0.0 and budget.runs == 0


@pytest.mark.parametrize("share", [0.0, -0.1, 1.5])
def test_a_share_outside_0_1_is_refused(share):
    with pytest.raises(ValueError, match="time share"):
        TimeShare(share)
