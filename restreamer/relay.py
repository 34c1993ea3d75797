"""The relay: every resource of one configuration, what is global across them
(viewer limit, statistics, metrics, notifications), and the lifecycle (start,
stop) that the CLI, gunicorn and a host app share."""

from __future__ import annotations

import atexit
import time

import gevent

from .config import Config
from .log import get_logger
from .metrics import create_registry
from .notifications import Notifier
from .static import StaticResource
from .stats import Statistics
from .stream import Stream


class Relay:
    """All resources of a config and what is global across them."""

    def __init__(self, config: Config):
        self.config = config
        self.log = get_logger("restreamer")
        self.streams: dict[str, Stream] = {r.serve: Stream(r, config) for r in config.streams}
        self.statics: dict[str, StaticResource] = {
            r.serve: StaticResource(r, config) for r in config.resources if r.type == "static"}
        self.statistics = Statistics(self)
        self.notifier = Notifier(config)
        self.metrics = create_registry(self)
        self.started = False
        self._watchdog: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start every stream's upstream and the background tasks; again does nothing."""
        if self.started:
            return
        self.started = True
        # Under gunicorn or in a host app nobody calls stop(): forked children
        # must still be reaped when the worker exits.
        atexit.register(self.stop)
        for warning in self.config.warnings:
            self.log.warning("config warning", detail=warning)
        for stream in self.streams.values():
            stream.start()
        self.statistics.start()
        self.notifier.start()
        if self.config.droptimeout > 0:
            self._watchdog = gevent.spawn(self._evict_stalled_forever)

    def stop(self) -> None:
        """Close every viewer and upstream (forked children are reaped)."""
        if not self.started:
            return
        self.started = False
        atexit.unregister(self.stop)
        self.statistics.stop()
        self.notifier.stop()
        if self._watchdog is not None:
            self._watchdog.kill(block=False)
            self._watchdog = None
        gevent.joinall([gevent.spawn(s.stop) for s in self.streams.values()], timeout=10)

    def _evict_stalled_forever(self) -> None:
        """Free the slots of viewers that take nothing (half-open, stopped players)."""
        interval = min(1.0, self.config.droptimeout / 4)
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            for stream in self.streams.values():
                stream.hub.evict_stalled(self.config.droptimeout, now)

    @property
    def viewer_count(self) -> int:
        return sum(len(s.hub.viewers) for s in self.streams.values())

    def refusal(self, stream: Stream) -> str | None:
        """Why a new viewer of ``stream`` may not join now, or None if it may."""
        if not stream.hub.enabled:
            return "stream switched offline"
        if not stream.hub.accepting:
            return "stream offline"
        limit = self.config.maxconnections
        if limit and self.viewer_count >= limit:
            return "connection limit reached"
        return None

    def viewers_changed(self) -> None:
        self.notifier.viewers_changed(self.viewer_count)

    def set_stream_enabled(self, stream: Stream, enabled: bool) -> None:
        """The control API's switch: offline closes the stream's viewers and refuses new ones."""
        if stream.hub.enabled != enabled:
            self.log.info("stream switched", stream=stream.serve, state="online" if enabled else "offline")
        stream.hub.set_enabled(enabled)
