"""The relay: every stream of one configuration, what is global across them
(viewer admission and limits, statistics, metrics, notifications), and the
lifecycle (start, stop) that the CLI, gunicorn and a host app share."""

from __future__ import annotations

import atexit
import time
from dataclasses import dataclass

import gevent

from ..config import ApiConfig, Config
from ..log import get_logger
from ..ops.metrics import MetricsMirror, create_registry, create_shared_registry
from ..ops.notifications import Notifier
from ..ops.overview import Overview
from ..ops.server_statistics import ServerStatistics
from ..ops.statistics import Limits, Statistics
from ..sources import open_connection
from .census import Census
from .runtime import shared_directory
from .stream import Stream, viewer_count
from .upstream import Opener
from .viewer import Viewer

_log = get_logger("restreamer")


@dataclass(frozen=True)
class Refusal:
    """Why a viewer may not join a stream now, and the HTTP status that says so."""

    reason: str
    status: int = 404


class Relay:
    """All streams of a config and what is global across them."""

    def __init__(self, config: Config, opener: Opener = open_connection):
        self.config = config
        self.opener = opener
        # Under gunicorn -w N the workers share a runtime directory: one owner
        # per stream, one viewer count, whole-server figures.
        self.shared = shared_directory()
        self.census = None if self.shared is None else Census(self.shared)
        self.streams: dict[str, Stream] = {r.serve: Stream(r, config, opener, self.shared)
                                           for r in config.streams}
        self.limits = Limits(config.maxconnections, config.fullconnections)
        if self.census is None:
            self.statistics = Statistics(self.streams, self.limits, enabled=not config.nostats)
            self.metrics = create_registry(self.streams)
        else:
            mirror = MetricsMirror(self.streams)
            self.metrics = create_shared_registry(mirror)
            self.statistics = ServerStatistics(self.streams, self.limits, self.census,
                                               enabled=not config.nostats, on_sample=mirror.sync)
            mirror.server_states = self.statistics.server_states
        self.notifier = self._notifier(config)
        self.overview = Overview(self.streams, self.limits, _controls(config))
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
            _log.warning("config warning", detail=warning)
        for stream in self.streams.values():
            stream.start()
        self.statistics.start()
        self.overview.start()
        self.notifier.start()
        self._start_watchdog()

    def _start_watchdog(self) -> None:
        if self.config.droptimeout > 0 and self._watchdog is None:
            self._watchdog = gevent.spawn(self._evict_stalled_forever)

    def stop(self) -> None:
        """Close every viewer and upstream (forked children are reaped)."""
        if not self.started:
            return
        self.started = False
        atexit.unregister(self.stop)
        self.statistics.stop()
        self.overview.stop()
        self.notifier.stop()
        if self._watchdog is not None:
            self._watchdog.kill(block=False)
            self._watchdog = None
        gevent.joinall([gevent.spawn(s.stop) for s in self.streams.values()], timeout=10)

    def configure(self, config: Config) -> None:
        """Take a reloaded config's global settings (see :mod:`.reload` for the streams):
        limits, statistics, notifications and droptimeout apply from now on."""
        old, self.config = self.config, config
        self.limits = Limits(config.maxconnections, config.fullconnections)
        self.statistics.limits = self.overview.limits = self.limits
        self.overview.controls = _controls(config)
        self.statistics.enabled = not config.nostats
        if _notifying(old) != _notifying(config):
            self.notifier.stop()
            self.notifier = self._notifier(config)
        else:
            self.notifier.config = config
        if not self.started:
            return
        if self.statistics.enabled:
            self.statistics.start()
        else:
            self.statistics.stop()
        self.notifier.start()
        if config.droptimeout <= 0 and self._watchdog is not None:
            self._watchdog.kill(block=False)
            self._watchdog = None
        self._start_watchdog()

    def _notifier(self, config: Config) -> Notifier:
        if self.census is None:
            return Notifier(config)
        census = self.census
        return Notifier(config, crossed=census.crossed, beats=lambda: census.first)

    def _evict_stalled_forever(self) -> None:
        """Free the slots of viewers that take nothing (half-open, stopped players)."""
        while True:
            gevent.sleep(min(1.0, self.config.droptimeout / 4))
            now = time.monotonic()
            for stream in self.streams.values():
                stream.hub.evict_stalled(self.config.droptimeout, now)

    @property
    def viewer_count(self) -> int:
        """This server's viewers: all workers' under gunicorn -w N."""
        if self.census is not None:
            return self.census.total()
        return viewer_count(self.streams.values())

    # -- admission ---------------------------------------------------------

    def refusal(self, stream: Stream) -> Refusal | None:
        """Why a new viewer of ``stream`` may not join now, or None if it may."""
        if not stream.hub.enabled:
            return Refusal("stream switched offline")
        if not stream.accepting:
            return Refusal("stream offline")
        limit = self.limits.maxconnections
        if limit and self.viewer_count >= limit:
            return Refusal("connection limit reached", self.config.limitstatus)
        return None

    def admit(self, stream: Stream, remote: str) -> Viewer | Refusal:
        """A new viewer of ``stream``, or the refusal to give the client.

        May wait (up to the grace period) for a stream that is starting,
        on-demand streams included; a stream that is waiting for its upstream
        to come back takes it at once.
        """
        refusal = self.refusal(stream)
        if refusal is not None:
            return refusal
        census = self.census
        # The check above is this worker's view; the census's is the whole
        # server's, taken with its lock held.
        if census is not None and not census.admit(self.limits.maxconnections):
            return Refusal("connection limit reached", self.config.limitstatus)
        stream.demand()
        viewer = stream.hub.join(remote, head=stream.preamble)
        if viewer is None:
            if census is not None:
                census.release()
            stream.unwatched()
            return Refusal("stream offline")
        self.notifier.viewers_changed(self.viewer_count)
        return viewer

    def release(self, stream: Stream, viewer: Viewer) -> None:
        """A viewer's response has ended, however: free its slot."""
        stream.hub.leave(viewer)
        if self.census is not None:
            self.census.release()
        stream.unwatched()
        self.notifier.viewers_changed(self.viewer_count)

    def set_stream_enabled(self, stream: Stream, enabled: bool) -> None:
        """The control API's switch: offline closes the stream's viewers and refuses new ones."""
        if stream.hub.enabled != enabled:
            _log.info("stream switched", stream=stream.serve, state="online" if enabled else "offline")
        stream.hub.set_enabled(enabled)


def _notifying(config: Config) -> tuple:
    """What the notifier is built from."""
    return (config.notifications, config.userlist, config.heartbeatinterval, config.timeout)


def _controls(config: Config) -> dict[str, str]:
    """Each stream's control API path, for the dashboard's buttons."""
    return {r.remote: r.serve for r in config.resources
            if isinstance(r, ApiConfig) and r.api == "control"}
