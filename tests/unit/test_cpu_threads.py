"""cpu_threads=auto: the cores other processes are not using, measured, at least one."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch

from editing.errors import UserInputError
from editing_app import cpu_threads
from editing_app.cpu_threads import busy_cores, check_cpu_threads, set_cpu_threads, threads_for


@pytest.mark.parametrize(
    ("setting", "cores", "busy", "expected"),
    [
        ("auto", 2, 0.0, 2),
        ("auto", 2, 0.9, 1),  # one core taken by another process
        ("auto", 2, 2.0, 1),  # never fewer than one
        ("auto", 16, 3.4, 13),
        (3, 2, 2.0, 3),  # an explicit count is kept
    ],
)
def test_threads_for(setting, cores, busy, expected):
    assert threads_for(setting, cores, busy) == expected


@pytest.mark.parametrize("bad", [0, -1, "two", 1.5, True, None])
def test_bad_settings_are_refused_in_one_line(bad):
    with pytest.raises(UserInputError, match="cpu_threads must be auto or a whole number"):
        check_cpu_threads(bad)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_busy_process_is_counted():
    worker = multiprocessing.get_context("spawn").Process(target=_spin, args=(3.0,))
    worker.start()
    try:
        time.sleep(0.5)  # the worker is spinning
        busy = busy_cores(0.5)
    finally:
        worker.join()
    assert busy >= 0.7, busy  # the spinning worker alone is one core's worth
    assert busy <= multiprocessing.cpu_count() + 0.1, busy


def test_auto_applies_the_count_and_keeps_an_explicit_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert set_cpu_threads("auto") == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(cpu_threads, "usable_cores", lambda: 4)
        monkeypatch.setattr(cpu_threads, "busy_cores", lambda seconds=0.2: 1.2)
        assert set_cpu_threads("auto") == 3
        assert torch.get_num_threads() == 3
        assert set_cpu_threads(2) == 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
