"""A configured stream: its hub, its upstream and its preamble, and when the
upstream runs: always, or on demand.

An on-demand stream (``ondemand``) connects when its first viewer arrives;
that viewer waits for the first packet as viewers do at start-up (see
:meth:`Hub.join`).  When the last viewer has left, the connection is kept for
``idletimeout`` seconds, so a viewer zapping back starts at once, then closed.
Under ``gunicorn -w N`` what runs on demand is this worker's role for the
stream (:class:`~.ownership.Ownership`): the owner pulls while any worker's
viewers need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import gevent
from gevent.lock import Semaphore

from ..config import Config, ConfigError, StreamConfig
from .hub import Hub
from ..log import get_logger
from ..redact import redact_url
from ..sources import SourceSettings, open_connection
from ..ts.analysis import Analyser
from ..sources.base import describe, resolve_path
from .ownership import FOLLOW_RECONNECT, Ownership
from .upstream import Opener, Upstream

_log = get_logger("streaming")

#: What :attr:`Stream.state` may be, from the closest to serving viewers to the farthest.
STATES = ("online", "waiting", "connecting", "offline", "idle", "disabled")

_NO_RELAYS: frozenset = frozenset()


@dataclass(frozen=True)
class Settings:
    """Everything a stream is made of, from its resource and the config's globals.

    Two streams with equal settings serve the same: a reload leaves such a
    stream alone.
    """

    remotes: tuple[str, ...]
    timeout: float
    inputbuffer: int
    mru: int
    clientinterface: str | None
    base_dir: str
    reconnect: float
    readtimeout: float
    graceperiod: float
    faststart: bool
    backlogseconds: float
    backlogbytes: int
    keepalive: float
    ondemand: bool
    idletimeout: float
    tsanalysis: bool
    preamble: bytes
    verify: bool | str  # HTTPS upstreams: check certificates (against this CA bundle, if a path)

    @classmethod
    def of(cls, resource: StreamConfig, config: Config) -> "Settings":
        """The settings of a stream resource; reads its preamble (ConfigError if it cannot)."""
        return cls(
            remotes=resource.remotes, timeout=config.timeout, inputbuffer=config.inputbuffer,
            mru=resource.mru, clientinterface=resource.clientinterface, base_dir=config.base_dir,
            reconnect=config.reconnect, readtimeout=config.readtimeout,
            graceperiod=config.graceperiod, faststart=config.faststart_of(resource),
            backlogseconds=config.backlogseconds, backlogbytes=config.backlogbytes,
            keepalive=config.keepalive,
            ondemand=config.ondemand_of(resource), idletimeout=config.idletimeout_of(resource),
            tsanalysis=config.tsanalysis, preamble=_read_preamble(resource, config),
            verify=_verify(resource, config))

    @property
    def connection(self) -> tuple:
        """What an upstream connection is opened with: a change needs a new connection."""
        return (self.remotes, self.timeout, self.inputbuffer, self.mru, self.clientinterface,
                self.base_dir, self.tsanalysis, self.verify)


class Stream:
    """Everything restreamer keeps for one ``type: stream`` resource."""

    def __init__(self, resource: StreamConfig, config: Config, opener: Opener = open_connection,
                 shared: Path | None = None, settings: Settings | None = None):
        self.resource = resource
        self.serve = resource.serve
        self.opener = opener
        self.shared = shared
        self.settings = settings if settings is not None else Settings.of(resource, config)
        self.hub = Hub(resource.serve)
        self._configure_hub()
        self.analyser = Analyser() if self.settings.tsanalysis else None
        self.upstream, self.ownership = self._connection()
        #: How each remote is shown in statistics and metrics: without secrets.
        self.shown_urls = _shown_urls(self.settings.remotes)
        self.started = False
        # Starting and stopping the upstream (a viewer's demand, the idle
        # timeout, a reload) take turns, so none sees another's half-done work.
        self._turn = Semaphore()
        self._idle_timer: gevent.Greenlet | None = None

    def _configure_hub(self) -> None:
        s = self.settings
        self.hub.configure(graceperiod=s.graceperiod, faststart=s.faststart,
                           backlog_bytes=s.backlogbytes, backlog_seconds=s.backlogseconds,
                           keepalive=s.keepalive)

    def _connection(self) -> tuple[Upstream, Ownership | None]:
        """The upstream of the stream's remotes and, under ``gunicorn -w N``, which
        worker pulls them (see core/ownership.py)."""
        s = self.settings
        source = SourceSettings(timeout=s.timeout, inputbuffer=s.inputbuffer, mru=s.mru,
                                clientinterface=s.clientinterface, base_dir=s.base_dir,
                                stream=self.serve, verify=s.verify)
        upstream = Upstream(self.hub, s.remotes, source, reconnect=s.reconnect,
                            readtimeout=s.readtimeout, opener=self.opener, analyser=self.analyser)
        ownership = None if self.shared is None else Ownership(
            self.hub, self.shared, upstream,
            lambda url: Upstream(self.hub, [url], source, reconnect=FOLLOW_RECONNECT,
                                 readtimeout=0, opener=self.opener, analyser=self.analyser),
            relay_left=self.unwatched)
        return upstream, ownership

    @property
    def _runner(self) -> Upstream | Ownership:
        """What pulls the stream in this process: its upstream, or its worker's role."""
        return self.ownership or self.upstream

    def _run(self) -> None:
        if self._runner.running:
            return
        # Viewers joining from now on wait for the first packet (Hub.join),
        # also while an ownership has yet to start its upstream.
        self.hub.upstream_starting()
        self._runner.start()

    @property
    def shown_upstream(self) -> str | None:
        """The connected upstream's URL, without its secrets."""
        url = self.hub.url
        return None if url is None else self.shown_urls.get(url) or redact_url(url)

    @property
    def preamble(self) -> bytes:
        return self.settings.preamble

    @property
    def relays(self) -> set | frozenset:
        """The hub's viewers that are sibling workers, not anyone's audience."""
        return self.ownership.relays if self.ownership is not None else _NO_RELAYS

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Serve from now on: connect at once, or on demand with the first viewer."""
        self.started = True
        if not self.settings.ondemand:
            self._run()

    def stop(self) -> None:
        """Close every viewer and the upstream; the stream serves nobody any more."""
        self.started = False
        self.hub.set_enabled(False)
        with self._turn:
            self._cancel_idle()
            self._runner.stop()

    # -- state ---------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """On demand, enabled and not connected: the next viewer connects it."""
        return self.settings.ondemand and self.hub.enabled and not self._runner.running

    @property
    def state(self) -> str:
        """One of :data:`STATES`."""
        return "idle" if self.idle else self.hub.state

    @property
    def accepting(self) -> bool:
        """A new viewer may join: never refused for being idle or connecting."""
        return self.idle or self.hub.accepting

    @property
    def serving(self) -> bool:
        """What the check API reports: online, or idle and ready to connect."""
        return self.hub.enabled and (self.hub.online or self.idle)

    # -- on demand -----------------------------------------------------------

    def demand(self) -> None:
        """A viewer is about to join: an on-demand stream keeps, or gets, its upstream."""
        if not self.settings.ondemand:
            return
        with self._turn:
            self._cancel_idle()
            if self.started and not self._runner.running:
                _log.info("stream connecting", stream=self.serve,
                              reason="a viewer arrived (ondemand)")
                self._run()

    def unwatched(self) -> None:
        """A viewer left or was turned away: with none left, an on-demand stream
        closes its upstream after ``idletimeout`` seconds.

        A follower worker (``gunicorn -w N``) lets go of its owner's socket at
        once: it is a viewer of the owner's hub, so the owner times
        ``idletimeout`` from the last viewer of any worker, instead of a
        follower's timeout and then its own.
        """
        if (self.settings.ondemand and not self.hub.viewers and self._runner.running
                and self._idle_timer is None):
            following = self.ownership is not None and not self.ownership.owner
            self._idle_timer = gevent.spawn_later(0 if following else self.settings.idletimeout,
                                                  self._close_idle, following)

    def _close_idle(self, following: bool) -> None:
        with self._turn:
            self._idle_timer = None
            if self.hub.viewers or not self._runner.running:
                return
            _log.info("stream idle", stream=self.serve,
                          reason="no viewer in this worker; its owner keeps it for idletimeout"
                          if following else f"no viewer for {self.settings.idletimeout:g} s (idletimeout)")
            self._runner.stop()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.kill(block=False)
            self._idle_timer = None

    # -- reload --------------------------------------------------------------

    def reconfigure(self, resource: StreamConfig, settings: Settings) -> None:
        """Serve a reloaded resource's settings, keeping the hub and its viewers.

        Only a change of what the connection is opened with replaces the
        upstream; the viewers are held for the grace period meanwhile, as
        for any lost connection.
        """
        old, self.settings, self.resource = self.settings, settings, resource
        self.shown_urls = _shown_urls(settings.remotes)
        self._configure_hub()
        with self._turn:
            if settings.connection != old.connection:
                was_running = self._runner.running
                self._runner.stop()
                if settings.tsanalysis != old.tsanalysis:
                    self.analyser = Analyser() if settings.tsanalysis else None
                self.upstream, self.ownership = self._connection()
                if was_running:
                    self._run()
            else:
                self.upstream.reconnect = settings.reconnect
                self.upstream.readtimeout = settings.readtimeout
            if not settings.ondemand:
                self._cancel_idle()
                if self.started:
                    self._run()
        self.unwatched()


def _verify(resource: StreamConfig, config: Config) -> bool | str:
    """What HTTPS upstreams are checked against: requests' ``verify``."""
    if resource.insecure:
        return False
    return resolve_path(config.base_dir, config.cafile) if config.cafile else True


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


def _read_preamble(resource: StreamConfig, config: Config) -> bytes:
    if not resource.preamble:
        return b""
    path = resolve_path(config.base_dir, resource.preamble)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(config.source, f"{resource.where}.preamble",
                          f"cannot read {path}: {describe(e)}") from None


def viewer_count(streams: Iterable[Stream]) -> int:
    """Viewers connected to any of ``streams``."""
    return sum(len(s.hub.viewers) - len(s.relays) for s in streams)
