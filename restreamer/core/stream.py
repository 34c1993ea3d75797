"""A configured stream: its hub, its lifecycle, its pull (of an upstream it may
share, see core/pull.py) and its preamble, and when it pulls: always, or on
demand.

An on-demand stream (``ondemand``) connects when its first viewer arrives;
that viewer waits for the first packet as viewers do at start-up (see
:mod:`.admission`).  When the last viewer has left, the connection is kept for
``idletimeout`` seconds, so a viewer zapping back starts at once, then closed.
Under ``gunicorn -w N`` what runs on demand is this worker's role for the
stream (:class:`~.ownership.Ownership`): the owner pulls while any worker's
viewers need it.
"""

from __future__ import annotations

from typing import Iterable

import gevent
from gevent.lock import Semaphore

from ..config import Config, StreamConfig
from .clock import REAL, Clock, Timer
from .hub import Hub
from .lifecycle import Lifecycle
from ..redact import redact_url
from ..sources import SourceSettings, open_connection
from ..ts.analysis import Analyser
from .audience import Audience
from .claims import Claims
from .ownership import FOLLOW_RECONNECT, Ownership
from .pull import Pull, Upstreams
from .segments import Segmenter
from .settings import Settings
from .upstream import Opener

_NO_SIBLINGS: frozenset = frozenset()


class Stream:
    """Everything restreamer keeps for one ``type: stream`` resource."""

    def __init__(self, resource: StreamConfig, config: Config, opener: Opener = open_connection,
                 claims: Claims | None = None, settings: Settings | None = None,
                 clock: Clock = REAL, upstreams: Upstreams | None = None, alone: bool = False):
        self.resource = resource
        self.serve = resource.serve
        self.opener = opener
        self.clock = clock
        # Under gunicorn -w N: which worker pulls each upstream (core/claims.py);
        # ``alone``: this stream's upstream is claimed for it alone.
        self.claims = claims
        self.alone = alone
        # The running upstreams this stream's pull may share (its relay's).
        self.upstreams = upstreams if upstreams is not None else Upstreams()
        self.settings = settings if settings is not None else Settings.of(resource, config)
        self.hub = Hub(resource.serve, self.settings, clock)
        self.audience = Audience()  # HLS viewers
        self._segment()
        self.lifecycle = Lifecycle(self.hub, self.settings.graceperiod, self.settings.ondemand,
                                   pulling=lambda: self._runner.running, clock=clock)
        self.log = self.hub.log
        self.analyser = Analyser() if self.settings.tsanalysis else None
        self.pull, self.ownership = self._connection()
        #: How each remote is shown in statistics and metrics: without secrets.
        self.shown_urls = _shown_urls(self.settings.remotes)
        self.started = False
        # Starting and stopping the upstream (a viewer's demand, the idle
        # timeout, a reload) take turns, so none sees another's half-done work.
        self._turn = Semaphore()
        self._idle_timer: Timer | None = None

    def _segment(self) -> None:
        """Cut the stream into HLS segments if it is served as HLS (see core/segments.py)."""
        hls = self.settings.hls
        segmenter = self.hub.listener
        if hls is None:
            self.hub.listener = None
        elif segmenter is None or (segmenter.target, segmenter.window) != hls:
            self.hub.listener = Segmenter(*hls)

    @property
    def segmenter(self) -> Segmenter | None:
        """The stream cut into HLS segments, if it is served as HLS."""
        return self.hub.listener

    def _connection(self) -> tuple[Pull, Ownership | None]:
        """The pull of the stream's remotes (an upstream shared with the streams
        of the same remotes) and, under ``gunicorn -w N``, which worker pulls
        them (see core/ownership.py)."""
        s = self.settings
        source = SourceSettings(timeout=s.timeout, inputbuffer=s.inputbuffer, mru=s.mru,
                                clientinterface=s.clientinterface, base_dir=s.base_dir,
                                stream=self.serve, verify=s.verify, variant=s.variant)
        pull = Pull(self.hub, self.lifecycle, s.remotes, source, reconnect=s.reconnect,
                    readtimeout=s.readtimeout, opener=self.opener, analyser=self.analyser,
                    program=s.program, upstreams=self.upstreams)
        # A follower reads its owner's socket: an upstream of its own.
        ownership = None if self.claims is None else Ownership(
            self.hub, self.lifecycle, self.claims, pull,
            lambda url: Pull(self.hub, self.lifecycle, [url], source, reconnect=FOLLOW_RECONNECT,
                             readtimeout=0, opener=self.opener, analyser=self.analyser),
            demand=lambda: self.demand("a sibling worker reads it (ondemand)"),
            sibling_left=self.unwatched, alone=self.alone)
        return pull, ownership

    @property
    def _runner(self) -> Pull | Ownership:
        """What pulls the stream in this process: its pull, or its worker's role."""
        return self.ownership or self.pull

    def _run(self) -> None:
        if self._runner.running:
            return
        # Viewers joining from now on wait for the first packet (admission),
        # also while an ownership has yet to start its upstream.
        self.lifecycle.begin()
        self._runner.start()

    @property
    def shown_upstream(self) -> str | None:
        """The connected upstream's URL, without its secrets."""
        url = self.lifecycle.url
        return None if url is None else self.shown_urls.get(url) or redact_url(url)

    @property
    def preamble(self) -> bytes:
        return self.settings.preamble

    @property
    def siblings(self) -> set | frozenset:
        """The hub's viewers that are sibling workers, not anyone's audience."""
        return self.ownership.siblings if self.ownership is not None else _NO_SIBLINGS

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Serve from now on: connect at once, or on demand with the first viewer."""
        self.started = True
        if self.ownership is not None:
            self.ownership.enlist()
        if not self.settings.ondemand:
            self._run()

    def stop(self) -> None:
        """Close every viewer and the upstream; the stream serves nobody any more."""
        self.started = False
        self.lifecycle.set_enabled(False)
        with self._turn:
            self._cancel_idle()
            self._runner.stop()
            if self.ownership is not None:
                self.ownership.withdraw()

    # -- state (held by the lifecycle) -------------------------------------

    @property
    def state(self) -> str:
        """One of :data:`~.lifecycle.STATES`."""
        return self.lifecycle.state

    @property
    def serving(self) -> bool:
        """What the check API reports: online, or idle and ready to connect."""
        return self.lifecycle.serving

    # -- on demand -----------------------------------------------------------

    def demand(self, reason: str = "a viewer arrived (ondemand)") -> None:
        """A viewer is about to join: an on-demand stream keeps, or gets, its upstream."""
        if not self.settings.ondemand:
            return
        with self._turn:
            self._cancel_idle()
            if self.started and not self._runner.running:
                self.log.info("stream connecting", reason=reason)
                self._run()

    def unwatched(self) -> None:
        """A viewer left or was turned away: with none left, an on-demand stream
        closes its upstream after ``idletimeout`` seconds.

        A follower worker (``gunicorn -w N``) lets go of its owner's socket at
        once: it is a viewer of the owner's hub, so the owner times
        ``idletimeout`` from the last viewer of any worker, instead of a
        follower's timeout and then its own.
        """
        if (self.settings.ondemand and not self.hub.viewers and not self.audience
                and self._runner.running
                and self._idle_timer is None):
            following = self.ownership is not None and not self.ownership.owner
            # Stopping the upstream blocks: not in the timer's callback.
            self._idle_timer = timer = self.clock.later(
                0 if following else self.settings.idletimeout,
                lambda: gevent.spawn(self._close_idle, timer, following))

    def _close_idle(self, timer: Timer, following: bool) -> None:
        with self._turn:
            if self._idle_timer is not timer:
                return  # called off (a viewer came back) while this waited for its turn
            self._idle_timer = None
            if self.hub.viewers or self.audience or not self._runner.running:
                return
            self.log.info("stream idle",
                          reason="no viewer in this worker; its owner keeps it for idletimeout"
                          if following else f"no viewer for {self.settings.idletimeout:g} s (idletimeout)")
            self._runner.stop(hold=False)

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.close()
            self._idle_timer = None

    # -- reload --------------------------------------------------------------

    def reconfigure(self, resource: StreamConfig, settings: Settings) -> None:
        """Serve a reloaded resource's settings, keeping the hub and its viewers.

        Only a change of what the connection is opened with replaces the
        stream's pull; the viewers are held for the grace period meanwhile,
        as for any lost connection.  An upstream it shared goes on feeding
        the other streams; new remotes that another stream pulls already
        are joined, not connected again.
        """
        old, self.settings, self.resource = self.settings, settings, resource
        self.shown_urls = _shown_urls(settings.remotes)
        self.hub.configure(settings)
        self._segment()
        self.lifecycle.configure(settings.graceperiod, settings.ondemand)
        with self._turn:
            if settings.connection != old.connection:
                was_running = self._runner.running
                self._runner.stop()
                if self.ownership is not None:
                    self.ownership.withdraw()  # its followers reconnect, to the new upstream's owner
                if settings.tsanalysis != old.tsanalysis:
                    self.analyser = Analyser() if settings.tsanalysis else None
                self.pull, self.ownership = self._connection()
                if self.ownership is not None and self.started:
                    self.ownership.enlist()
                if was_running:
                    self._run()
            else:
                self.pull.retune(settings.reconnect, settings.readtimeout)
            if not settings.ondemand:
                self._cancel_idle()
                if self.started:
                    self._run()
        self.unwatched()


def _shown_urls(remotes: Iterable[str]) -> dict[str, str]:
    """Each remote redacted; remotes that differ only in their secrets are
    numbered, so each keeps its own metrics series."""
    shown: dict[str, str] = {}
    seen: dict[str, int] = {}
    for url in remotes:
        name = redact_url(url)
        seen[name] = seen.get(name, 0) + 1
        shown[url] = name if seen[name] == 1 else f"{name} #{seen[name]}"
    return shown


def viewer_count(streams: Iterable[Stream]) -> int:
    """Viewers connected to any of ``streams``."""
    return sum(len(s.hub.viewers) - len(s.siblings) + len(s.audience) for s in streams)
