"""A task run every so many seconds, in a greenlet of its own.

The one way restreamer runs something periodically: statistics and the
dashboard sampling, the droptimeout watchdog, heartbeats.  (The core's
timers, a gunicorn worker's poll for an upstream's lock among them, run on
its clock: core/clock.py.)
"""

from __future__ import annotations

from typing import Callable

import gevent

#: Seconds :meth:`Periodic.stop` waits for the task's greenlet when asked to wait.
STOP_WAIT = 5.0


class Periodic:
    """Calls ``task()`` every ``interval`` seconds between :meth:`start` and :meth:`stop`.

    ``interval`` may be a function, read before every wait, for a period
    that a reload may change.  The first call comes at once, or after the
    first interval with ``wait_first``.
    """

    def __init__(self, task: Callable[[], None], interval: float | Callable[[], float],
                 wait_first: bool = False):
        self.task = task
        self._interval = interval if callable(interval) else (lambda: interval)
        self.wait_first = wait_first
        self._greenlet: gevent.Greenlet | None = None

    @property
    def running(self) -> bool:
        return self._greenlet is not None

    def start(self) -> None:
        """Run from now on; again does nothing."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self, wait: bool = False) -> None:
        """Stop running; with ``wait``, return only once the task's greenlet has ended
        (for at most :data:`STOP_WAIT` seconds)."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None:
            greenlet.kill(block=wait, timeout=STOP_WAIT if wait else None)

    def _run(self) -> None:
        if self.wait_first:
            gevent.sleep(self._interval())
        while True:
            self.task()
            gevent.sleep(self._interval())
