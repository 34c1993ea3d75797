"""Event notifications: ``limit_hit``, ``limit_miss`` and ``heartbeat`` as HTTP GETs.

Events are queued and sent by one background greenlet, so a slow or dead
target never delays a viewer; failures are logged, never raised.  Where a
notification goes comes only from the config file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import gevent
import requests
from gevent.queue import Full, Queue

from ..core.credentials import authorization_header
from ..log import get_logger
from ..sources.base import USER_AGENT, timeout_or_none

if TYPE_CHECKING:
    from ..config import Config

#: Events waiting to be sent; beyond this new ones are dropped (and logged).
QUEUE_SIZE = 100
#: Seconds a notification request may take when ``timeout`` is 0.
DEFAULT_TIMEOUT = 10.0

_log = get_logger("notifications")


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
        self._targets: dict[str, list[tuple[str, dict]]] = {}
        for n in config.notifications:
            headers = {"User-Agent": USER_AGENT,
                       **authorization_header(n.authentication, config.userlist)}
            self._targets.setdefault(n.event, []).append((n.url, headers))
        self._queue: Queue = Queue(QUEUE_SIZE)
        self._greenlets: list[gevent.Greenlet] = []
        self._over_limit = False
        self._timeout = timeout_or_none(config.timeout, fallback=DEFAULT_TIMEOUT)

    def start(self) -> None:
        if not self._targets or self._greenlets:
            return
        self._greenlets.append(gevent.spawn(self._send_forever))
        if "heartbeat" in self._targets and self.config.heartbeatinterval > 0:
            self._greenlets.append(gevent.spawn(self._heartbeat_forever))

    def stop(self) -> None:
        gevent.killall(self._greenlets, block=False)
        self._greenlets = []

    def viewers_changed(self, count: int) -> None:
        """Called whenever the global viewer count changes; fires on crossings only."""
        limit = self.config.fullconnections
        if not limit:
            return
        if self._crossed is not None:
            over = self._crossed(limit)
            if over is not None:
                self._emit("limit_hit" if over else "limit_miss", viewers=count)
            return
        over = count >= limit
        if over != self._over_limit:
            self._over_limit = over
            self._emit("limit_hit" if over else "limit_miss", viewers=count)

    def _emit(self, event: str, **context) -> None:
        for url, headers in self._targets.get(event, ()):
            try:
                self._queue.put_nowait((event, url, headers))
            except Full:
                _log.warning("notification dropped", event_type=event, url=url,
                             reason="too many notifications waiting", **context)

    def _heartbeat_forever(self) -> None:
        while True:
            gevent.sleep(self.config.heartbeatinterval)
            if self._beats():
                self._emit("heartbeat")

    def _send_forever(self) -> None:
        session = requests.Session()
        for event, url, headers in self._queue:
            try:
                response = session.get(url, headers=headers, timeout=self._timeout)
                response.close()
                _log.info("notification sent", event_type=event, url=url,
                          status=response.status_code)
            except Exception as e:  # whatever it is, this greenlet must keep sending
                _log.warning("notification failed", event_type=event, url=url,
                             reason=type(e).__name__)
