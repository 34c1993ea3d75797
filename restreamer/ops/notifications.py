"""Event notifications: ``limit_hit``, ``limit_miss`` and ``heartbeat`` as HTTP GETs.

Each target (a notification's URL) has its own queue and sending greenlet, so
a slow or dead target never delays a viewer nor another target; failures
are logged, never raised.  Where a notification goes comes only from the
config file.

limit_hit and limit_miss have hysteresis in time: a viewer count that flaps
around ``fullconnections`` (a client connecting and resetting at the
threshold) would otherwise send a pair of requests per flap.  A change of
state is announced at once if the previous announcement is at least
:data:`HOLD` seconds old, otherwise when those seconds are over, and only if
the state still differs then: at most one announcement per ``HOLD`` seconds,
and the latest state is always announced.  (Workers sharing a server under
gunicorn report crossings through their shared census instead, one worker
each, as they happen.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import gevent
from gevent.queue import Full, Queue

from ..base import outbound
from ..base.periodic import Periodic
from ..core.credentials import authorization_header
from ..log import get_logger
from ..redact import redact_url
from ..sources.base import timeout_or_none

if TYPE_CHECKING:
    from ..config import Config

#: Events waiting to be sent to one target; beyond this new ones are dropped (and logged).
QUEUE_SIZE = 100
#: Seconds a notification request may take when ``timeout`` is 0.
DEFAULT_TIMEOUT = 10.0
#: Least seconds between two announcements of limit_hit/limit_miss.
HOLD = 2.0

_log = get_logger("notifications")


class _Target:
    """One notification URL: its queue and the greenlet that sends it, in order."""

    def __init__(self, url: str, headers: dict, timeout: float):
        self.url = url
        self.shown_url = redact_url(url)
        self.headers = headers
        self.timeout = timeout
        self.queue: Queue = Queue(QUEUE_SIZE)

    def put(self, event: str, context: dict) -> None:
        try:
            self.queue.put_nowait(event)
        except Full:
            _log.warning("notification dropped", event_type=event, url=self.shown_url,
                         reason="too many notifications waiting", **context)

    def send_forever(self) -> None:
        session = outbound.session()
        for event in self.queue:
            try:
                response = session.get(self.url, headers=self.headers, timeout=self.timeout)
                response.close()
                _log.info("notification sent", event_type=event, url=self.shown_url,
                          status=response.status_code)
            except Exception as e:  # whatever it is, this greenlet must keep sending
                _log.warning("notification failed", event_type=event, url=self.shown_url,
                             reason=type(e).__name__)


class Notifier:
    """Watches the viewer count against ``fullconnections`` and sends heartbeats."""

    def __init__(self, config: "Config", crossed: Callable[[int], bool | None] | None = None,
                 beats: Callable[[], bool] = lambda: True):
        """``crossed`` and ``beats`` are for workers sharing a server (see
        :class:`restreamer.core.census.Census`): ``crossed(limit)`` says whether
        the whole server crossed ``limit`` since any worker last asked, so one
        of them reports it; ``beats()`` whether this worker sends heartbeats."""
        self.config = config
        self._crossed = crossed
        self._beats = beats
        timeout = timeout_or_none(config.timeout, fallback=DEFAULT_TIMEOUT)
        self._targets: dict[str, list[_Target]] = {}
        for n in config.notifications:
            headers = authorization_header(n.authentication, config.userlist)
            self._targets.setdefault(n.event, []).append(_Target(n.url, headers, timeout))
        self._greenlets: list[gevent.Greenlet] = []
        self._heartbeat = Periodic(self._beat, lambda: self.config.heartbeatinterval, wait_first=True)
        self._over_limit = False  # the state now
        self._announced = False  # the state last announced
        self._announced_at = float("-inf")
        self._viewers = 0
        self._settling: gevent.Greenlet | None = None

    def start(self) -> None:
        if not self._targets or self._greenlets:
            return
        for targets in self._targets.values():
            self._greenlets += [gevent.spawn(target.send_forever) for target in targets]
        if "heartbeat" in self._targets and self.config.heartbeatinterval > 0:
            self._heartbeat.start()

    def stop(self) -> None:
        if self._settling is not None:
            self._greenlets.append(self._settling)
            self._settling = None
        gevent.killall(self._greenlets, block=False)
        self._greenlets = []
        self._heartbeat.stop()

    def viewers_changed(self, count: int) -> None:
        """Called whenever the global viewer count changes; announces crossings (see HOLD)."""
        limit = self.config.fullconnections
        if not limit:
            return
        if self._crossed is not None:
            over = self._crossed(limit)
            if over is not None:
                self._emit("limit_hit" if over else "limit_miss", viewers=count)
            return
        self._viewers = count
        self._over_limit = count >= limit
        if self._settling is None:
            self._announce()

    def _announce(self) -> None:
        if self._over_limit == self._announced:
            return
        wait = self._announced_at + HOLD - time.monotonic()
        if wait > 0:
            self._settling = gevent.spawn_later(wait, self._settle)
            return
        self._announced = self._over_limit
        self._announced_at = time.monotonic()
        self._emit("limit_hit" if self._announced else "limit_miss", viewers=self._viewers)

    def _settle(self) -> None:
        self._settling = None
        self._announce()

    def _emit(self, event: str, **context) -> None:
        for target in self._targets.get(event, ()):
            target.put(event, context)

    def _beat(self) -> None:
        if self._beats():
            self._emit("heartbeat")
