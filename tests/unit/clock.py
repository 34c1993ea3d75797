"""A clock the test moves: the core's timers fire when the test advances time."""

from __future__ import annotations

import heapq
import itertools
from typing import Callable


class FakeTimer:
    __slots__ = ("due", "interval", "callback", "closed")

    def __init__(self, due: float, interval: float | None, callback: Callable[[], None]):
        self.due = due
        self.interval = interval
        self.callback = callback
        self.closed = False

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """:class:`restreamer.core.clock.Clock` on a time that only :meth:`advance` moves."""

    def __init__(self, start: float = 1000.0):
        self.time = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def later(self, seconds: float, callback: Callable[[], None]) -> FakeTimer:
        return self._add(FakeTimer(self.time + seconds, None, callback))

    def every(self, seconds: float, callback: Callable[[], None]) -> FakeTimer:
        return self._add(FakeTimer(self.time + seconds, seconds, callback))

    def _add(self, timer: FakeTimer) -> FakeTimer:
        heapq.heappush(self._timers, (timer.due, next(self._order), timer))
        return timer

    def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, firing every timer due meanwhile, in order."""
        target = self.time + seconds
        while self._timers and self._timers[0][0] <= target:
            due, _, timer = heapq.heappop(self._timers)
            if timer.closed:
                continue
            self.time = due
            if timer.interval is not None:
                timer.due = due + timer.interval
                self._add(timer)
            timer.callback()
        self.time = target
