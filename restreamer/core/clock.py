"""The time the core runs on: monotonic seconds, and callbacks scheduled on them.

The hub, the lifecycle and the viewers take a :class:`Clock` instead of
reading the time and arming timers themselves, so their unit tests drive
time (tests/unit/clock.py) instead of sleeping through it.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import gevent


class Timer(Protocol):
    def close(self) -> None:
        """Cancel the callback (a timer that has fired, or was closed, takes it calmly)."""


class Clock:
    """Real time: :func:`time.monotonic` and gevent's event-loop timers.

    Callbacks run in the event loop, not in a greenlet of their own: they
    must not block (the hub's hand-out only does non-blocking sends).
    """

    __slots__ = ()

    now: Callable[[], float] = staticmethod(time.monotonic)

    def later(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` once, ``seconds`` from now."""
        timer = gevent.get_hub().loop.timer(seconds)
        timer.start(callback)
        return timer

    def every(self, seconds: float, callback: Callable[[], None]) -> Timer:
        """Call ``callback`` every ``seconds`` until the timer is closed."""
        timer = gevent.get_hub().loop.timer(seconds, seconds)
        timer.start(callback)
        return timer


#: The clock of everything not given another.
REAL = Clock()
