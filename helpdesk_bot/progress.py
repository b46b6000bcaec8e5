"""Progress of a long command (index, eval, calibrate, backtest) on standard error.

On a terminal a bar redrawn in place; elsewhere (a CI log, `| tee`, a Kubernetes job) a line
every LINE_SECONDS, so the log shows the run is alive without a line per item.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

BAR_WIDTH = 30
LINE_SECONDS = 10.0
REDRAW_SECONDS = 0.2


class Progress:
    """Called as `progress(done, total)`; says how far a run is and how long it has left.

    The time left comes from the pace since the first call, not since the command started:
    loading the model and indexing the knowledge before the first item would otherwise be
    counted as the first item's time (70 s runs were shown with 11 hours left).
    """

    def __init__(self, label: str, stream: TextIO | None = None, interactive: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.clock = clock
        self._created = clock()
        self._first: tuple[float, int] | None = None  # (when, done) at the first call
        self._last_shown = float("-inf")

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self._first is None or done < self._first[1]:  # a new phase counts afresh
            self._first = (now, done)
        finished = done >= total
        pause = REDRAW_SECONDS if self.interactive else LINE_SECONDS
        if not finished and now - self._last_shown < pause:
            return
        self._last_shown = now
        if self.interactive:
            filled = int(BAR_WIDTH * done / total) if total else BAR_WIDTH
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.status(done, total, now)}\033[K")
            if finished:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.status(done, total, now)}\n")
        self.stream.flush()

    def status(self, done: int, total: int, now: float) -> str:
        percent = f"{100 * done // total} %" if total else "100 %"
        text = f"{done}/{total} ({percent})"
        started, done_then = self._first
        if done >= total:
            return f"{text}, {_duration(now - self._created)}"
        if done > done_then and now > started:
            left = (now - started) / (done - done_then) * (total - done)
            return f"{text}, about {_duration(left)} left"
        return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
