"""A periodic side task (checkpoint, preview) held to a share of a fit's wall time.

`TimeShare(share)` answers, at each step where the task could run, whether running it now keeps
the time spent on it within `share` of the fit so far: with S the seconds already spent on the
task, c the estimated cost of this run (the last measured cost, or a first guess), and E the
seconds since the fit started, the task is due when S + c <= share * (E + c). Over a run the task
therefore costs at most `share` of the wall time plus one run's cost, and it runs as often as that
allows: every candidate step when it is cheap (a tiny model's checkpoint), rarely when it is
expensive (an SD 1.5 full fine-tune's 10 GB checkpoint), so the time an interruption can lose is
about c / share.
"""

from __future__ import annotations

import time


class TimeShare:
    """Book-keeping of one periodic task's time against the fit's elapsed time.

    Args:
        share: the fraction of the fit's wall time the task may take, in (0, 1].
    """

    def __init__(self, share: float) -> None:
        if not 0.0 < float(share) <= 1.0:
            raise ValueError(f"a time share must lie in (0, 1], got {share!r}")
        self.share = float(share)
        self.start = time.perf_counter()
        self.spent = 0.0
        self.last_cost: float | None = None
        self.runs = 0

    def restart(self) -> None:
        """Start counting at the beginning of a fit."""
        self.start = time.perf_counter()
        self.spent = 0.0
        self.runs = 0

    def due(self, first_estimate: float = 0.0) -> bool:
        """Whether running the task now keeps it within its share (`first_estimate`: the cost
        guess in seconds before any run was measured)."""
        cost = self.last_cost if self.last_cost is not None else float(first_estimate)
        elapsed = time.perf_counter() - self.start
        return self.spent + cost <= self.share * (elapsed + cost)

    def record(self, seconds: float) -> None:
        """Book one run of the task that took `seconds`."""
        self.spent += float(seconds)
        self.last_cost = float(seconds)
        self.runs += 1
