"""Reports over every stream that never hold the event loop for long: one is
reused for a while when computing it is costly, and the streams are walked
in slices (:func:`sliced`).

Monitoring may poll statistics and metrics often, from many clients at once;
with thousands of streams each computation takes milliseconds of the event
loop that the viewers share.  So a report is reused for a time proportional
to what it cost to compute (at most :data:`MAX_AGE`): however often it is
asked for, computing it takes at most about 1/:data:`REUSE_FACTOR` of the
loop, while a small configuration's cheap report (under :data:`CHEAP`) is
never reused.  Callers that arrive while it is being computed wait for that
computation.
"""

from __future__ import annotations

import time
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import gevent

from gevent.event import AsyncResult

T = TypeVar("T")

#: Items walked between two yields to the event loop, and how long a yield
#: is (a timer: sleep(0) may return before the loop has polled for I/O and
#: run its timers, such as the viewers' writes).
SLICE = 250
PAUSE = 0.001
#: Longest reuse, in seconds: well under a Prometheus scrape interval.
MAX_AGE = 1.0
#: A report is reused for this many times what it took to compute...
REUSE_FACTOR = 50
#: ...unless it took less CPU than this (seconds): a cheap report is always fresh.
CHEAP = 0.005


def reuse_for_cost(value: object, cost: float) -> float:
    """How long a report that took ``cost`` seconds of CPU is reused."""
    return 0.0 if cost < CHEAP else min(MAX_AGE, cost * REUSE_FACTOR)


class Snapshot(Generic[T]):
    """A value computed once for every caller until it expires; callers that
    arrive while it is computed wait for that computation and share its result
    (an exception too).  ``lifetime(value, cost)`` says for how many seconds a
    value is reused, from the CPU seconds it cost."""

    def __init__(self, compute: Callable[[], T],
                 lifetime: Callable[[T, float], float] = reuse_for_cost):
        self._compute = compute
        self._lifetime = lifetime
        self._value: T | None = None
        self._expires = float("-inf")
        self._computing: AsyncResult | None = None

    def get(self) -> T:
        if time.monotonic() < self._expires:
            return self._value  # type: ignore[return-value]
        if self._computing is not None:
            return self._computing.get()
        self._computing = computing = AsyncResult()
        # CPU time, not wall time: a busy machine must not stretch the reuse
        # of a cheap report (and its staleness) for nothing.
        began = time.thread_time()
        try:
            value = self._compute()
        except BaseException as e:
            computing.set_exception(e)
            raise
        finally:
            self._computing = None
        reuse = self._lifetime(value, time.thread_time() - began)
        self._value, self._expires = value, time.monotonic() + reuse
        computing.set(value)
        return value


def sliced(items: Iterable[T]) -> Iterator[T]:
    """``items``, yielding to the event loop after every :data:`SLICE` of them."""
    for index, item in enumerate(items):
        if index % SLICE == SLICE - 1:
            gevent.sleep(PAUSE)
        yield item
