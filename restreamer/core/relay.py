"""The relay: every stream of one configuration, what is global across them
(viewer admission and limits, the droptimeout watchdog), and their lifecycle
(start, stop).  Operations (statistics, metrics, notifications) are wired to
it from above, by :mod:`restreamer.assembly`, through :attr:`Relay.on_configure`
and :attr:`Relay.on_viewers_changed`."""

from __future__ import annotations

import atexit
from typing import Callable

import gevent

from ..base.periodic import Periodic
from ..config import Config
from ..log import get_logger
from ..sources import open_connection
from .admission import Refusal, join
from .audience import Session
from .census import Census
from .claims import Claims
from .clock import REAL, Clock
from .gateway import Gateway
from .limits import Limits
from .pull import Upstreams
from .runtime import shared_directory
from .stream import Stream, viewer_count
from .upstream import Opener
from .viewer import Viewer

_log = get_logger("restreamer")

#: An HLS viewer that has asked for nothing for this many target durations has left.
SESSION_SEGMENTS = 3


class Relay:
    """All streams of a config and what is global across them."""

    def __init__(self, config: Config, opener: Opener = open_connection, clock: Clock = REAL):
        self.config = config
        self.opener = opener
        self.clock = clock  # the streams' time
        # Under gunicorn -w N the workers share a runtime directory: one owner
        # per upstream, one viewer count, whole-server figures.
        self.shared = shared_directory()
        self.census = None if self.shared is None else Census(self.shared)
        self.claims = None if self.shared is None else Claims(self.shared, clock)
        # Streams whose remotes are equal share one upstream connection (core/pull.py).
        self.upstreams = Upstreams()
        self.streams: dict[str, Stream] = {
            r.serve: Stream(r, config, opener, self.claims, clock=clock, upstreams=self.upstreams)
            for r in config.streams}
        #: The udpxy gateways' open groups, each also in ``streams`` while it is open.
        self.gateway = Gateway(self.streams, config, opener, self.claims, clock, self.upstreams)
        self.limits = Limits.of(config)
        #: Called with (old config, new config) once a reloaded config applies.
        self.on_configure: list[Callable[[Config, Config], None]] = []
        #: Called with the server's viewer count whenever a viewer joins or leaves.
        self.on_viewers_changed: list[Callable[[int], None]] = []
        self.started = False
        self._sweeper = Periodic(self._sweep, 1.0, wait_first=True)
        self._watchdog = Periodic(self._evict_stalled, lambda: min(1.0, self.config.droptimeout / 4),
                                  wait_first=True)

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
        for note in self.config.notes:
            _log.info("config note", detail=note)
        for stream in self.streams.values():
            stream.start()
        if self.config.droptimeout > 0:
            self._watchdog.start()
        self._sweeper.start()

    def stop(self) -> None:
        """Close every viewer and upstream (forked children are reaped)."""
        if not self.started:
            return
        self.started = False
        atexit.unregister(self.stop)
        self._watchdog.stop()
        self._sweeper.stop()
        gevent.joinall([gevent.spawn(s.stop) for s in self.streams.values()], timeout=10)

    def configure(self, config: Config) -> None:
        """Take a reloaded config's global settings (see :mod:`.reload` for the streams):
        limits, droptimeout and the gateways' keys apply from now on, and
        :attr:`on_configure` is told."""
        old, self.config = self.config, config
        self.limits = Limits.of(config)
        self.gateway.configure(config)
        if self.started:
            if config.droptimeout > 0:
                self._watchdog.start()
            else:
                self._watchdog.stop()
        for listener in self.on_configure:
            listener(old, config)

    def _evict_stalled(self) -> None:
        """Free the slots of viewers that take nothing (half-open, stopped players)."""
        for stream in self.streams.values():
            stream.hub.evict_stalled(self.config.droptimeout)

    @property
    def viewer_count(self) -> int:
        """This server's viewers: all workers' under gunicorn -w N."""
        if self.census is not None:
            return self.census.total()
        return viewer_count(self.streams.values())

    # -- admission ---------------------------------------------------------

    def refusal(self, stream: Stream) -> Refusal | None:
        """Why a new viewer of ``stream`` may not join now, or None if it may."""
        if not stream.lifecycle.enabled:
            return Refusal("stream switched offline")
        if not stream.lifecycle.accepting:
            return Refusal("stream offline")
        limit = self.limits.max_viewers
        if limit and self.viewer_count >= limit:
            return Refusal("connection limit reached", self.config.limitstatus)
        return None

    def admit(self, stream: Stream, remote: str) -> Viewer | Refusal:
        """A new viewer of ``stream``, or the refusal to give the client.

        May wait (up to the grace period) for a stream that is starting,
        on-demand streams included; a stream that is waiting for its upstream
        to come back takes it at once.
        """
        refusal = self._take_slot(stream)
        if refusal is not None:
            return refusal
        viewer = join(stream.hub, stream.lifecycle, remote, head=stream.preamble)
        if viewer is None:
            if self.census is not None:
                self.census.release()
            stream.unwatched()
            return Refusal("stream offline")
        self._viewers_changed()
        return viewer

    def _take_slot(self, stream: Stream) -> Refusal | None:
        """Take a viewer's slot of ``stream`` and of the server, and wake an
        on-demand upstream; or the refusal, with nothing taken."""
        refusal = self.refusal(stream)
        if refusal is not None:
            return refusal
        # The check above is this worker's view; the census's is the whole
        # server's, taken with its lock held.
        if self.census is not None and not self.census.admit(self.limits.max_viewers):
            return Refusal("connection limit reached", self.config.limitstatus)
        stream.demand()
        return None

    def release(self, stream: Stream, viewer: Viewer) -> None:
        """A viewer's response has ended, however: free its slot."""
        stream.hub.remove(viewer)
        if self.census is not None:
            self.census.release()
        stream.unwatched()
        self._viewers_changed()

    def _viewers_changed(self) -> None:
        if self.on_viewers_changed:
            count = self.viewer_count
            for listener in self.on_viewers_changed:
                listener(count)

    # -- HLS viewers ---------------------------------------------------------

    def admit_session(self, stream: Stream, key: tuple[str, str], remote: str) -> Session | Refusal:
        """The HLS session of a client (address, User-Agent) asking for the
        stream's playlist or a segment: a known one, a new one, or the refusal."""
        lifecycle = stream.lifecycle
        if not lifecycle.accepting:
            return Refusal("stream switched offline" if not lifecycle.enabled else "stream offline")
        now = self.clock.now()
        session = stream.audience.find(key, now)
        if session is not None:
            return session
        refusal = self._take_slot(stream)
        if refusal is not None:
            return refusal
        session = stream.audience.add(key, remote, now)
        stream.log.info("viewer connected", remote=remote, hls=True)
        self._viewers_changed()
        return session

    def _sweep(self) -> None:
        self._sweep_sessions()
        self.gateway.sweep()

    def _sweep_sessions(self) -> None:
        """HLS viewers leave by asking nothing for a few segments' time."""
        now = self.clock.now()
        for stream in list(self.streams.values()):
            segmenter = stream.segmenter
            timeout = SESSION_SEGMENTS * (segmenter.target_duration if segmenter else 2)
            for session in stream.audience.expire(now, timeout):
                if self.census is not None:
                    self.census.release()
                stream.log.info("viewer disconnected", remote=session.remote, hls=True,
                                duration=round(session.duration, 3), bytes=session.bytes_sent)
                stream.unwatched()
                self._viewers_changed()

    def set_stream_enabled(self, stream: Stream, enabled: bool) -> None:
        """The control API's switch: offline closes the stream's viewers and refuses new ones."""
        if stream.lifecycle.enabled != enabled:
            stream.log.info("stream switched", state="online" if enabled else "offline")
        stream.lifecycle.set_enabled(enabled)

