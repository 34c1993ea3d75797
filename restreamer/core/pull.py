"""One stream's pull: its share of an upstream connection, which streams whose
remotes are equal share.

An :class:`~restreamer.core.upstream.Upstream` connects and aligns; each
stream it feeds has a :class:`Pull`, which takes the aligned chunks into the
stream's program filter (``program: N``), its TS analyser and its hub, and
tells the stream's lifecycle of the connection's events.  So two streams on
two programs of one transponder, or two streams with the same remotes, cost
one connection, while each keeps its own PAT rewrite, backlog, viewers and
state.  A chunk reaches every hub as the same bytes; only a program filter
makes new ones, for its own stream.

:class:`Upstreams` holds the upstreams that run, by what they are opened
with: a pull that starts joins the one running for its remotes, or starts
it; the last pull to stop stops it.  A pull that stops (its stream stopped,
went idle, or took new remotes in a reload) leaves the others streaming.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Sequence

from ..redact import redact_url
from ..sources import SourceSettings, open_connection
from ..ts.analysis import Analyser
from ..ts.packets import PacketAligner
from ..ts.program import ProgramFilter, ProgramGone
from .hub import Hub
from .lifecycle import Lifecycle
from .upstream import Opener, Upstream


class Upstreams:
    """The upstreams running for the streams of one relay, by what they are
    opened with: the remotes (in any order), the source settings but the
    stream's name, and the opener."""

    def __init__(self):
        self._running: dict[tuple, Upstream] = {}

    def join(self, pull: "Pull") -> Upstream:
        """The upstream ``pull`` is fed by from now on: the running one for its
        remotes, or a new one."""
        key = pull.key
        upstream = self._running.get(key)
        if upstream is None:
            upstream = self._running[key] = Upstream(pull.remotes, pull.settings,
                                                     reconnect=pull.reconnect,
                                                     readtimeout=pull.readtimeout,
                                                     opener=pull.opener)
        upstream.attach(pull)
        return upstream

    def leave(self, pull: "Pull", upstream: Upstream) -> None:
        """``pull`` is fed no more; an upstream left feeding nobody stops."""
        upstream.detach(pull)
        if upstream.pulls:
            return
        if self._running.get(pull.key) is upstream:
            del self._running[pull.key]  # a pull starting while this one stops gets a new one
        upstream.stop()


class Pull:
    """One stream's pull of its remotes, through an upstream it may share.

    As the stream sees it, an upstream of its own: ``start()``, ``stop()``,
    ``running`` and the figures the dashboard shows.  A program that a PAT
    no longer lists is this stream's loss only: its viewers are held for
    the grace period, as at an upstream loss, while the connection goes on
    feeding the others; the stream comes back when a PAT lists its program
    again.
    """

    def __init__(self, hub: Hub, lifecycle: Lifecycle, remotes: Sequence[str], settings: SourceSettings, *,
                 reconnect: float, readtimeout: float, opener: Opener = open_connection,
                 analyser: Analyser | None = None, program: int | None = None,
                 upstreams: Upstreams | None = None):
        self.hub = hub
        self.lifecycle = lifecycle  # told of each connection, its data and its end
        self.log = hub.log
        self.remotes = list(remotes)
        self.settings = settings
        self.reconnect = reconnect
        self.readtimeout = readtimeout
        self.opener = opener
        self.analyser = analyser  # sees every packet the hub gets, if the stream is analysed
        self.program = program  # the one program passed on, of a multi-program stream
        self.upstreams = upstreams if upstreams is not None else Upstreams()
        #: What the upstream is opened with: pulls equal in it share one.
        self.key = (tuple(sorted(set(self.remotes))), replace(settings, stream=""), opener)
        self.upstream: Upstream | None = None
        self._select = None  # the program filter of the current connection
        self._url: str | None = None  # of the current connection
        self._aligner: PacketAligner | None = None  # of the current connection
        self._gone = False  # the current connection's PAT does not list the program
        #: Units the sources said they lost (RTP datagrams, HLS segments), while this pull was fed.
        self.missing = 0
        # What the dashboard says of a stream (wall-clock times): why it is down,
        # since when it is up, how often it has come back.
        self.last_error: tuple[str, str, float] | None = None  # (reason, URL as shown, when)
        self.connected_since: float | None = None
        self.connections = 0

    @property
    def key_text(self) -> str:
        """:attr:`key` spelt the same in every worker of a server (the opener by
        its name, not its address): what the workers own an upstream by (core/claims.py)."""
        remotes, settings, opener = self.key
        named = getattr(opener, "__qualname__", None) or type(opener).__qualname__
        return repr((remotes, settings, f"{getattr(opener, '__module__', '')}.{named}"))

    @property
    def running(self) -> bool:
        """Started and not stopped (its upstream may have given up: ``reconnect`` 0)."""
        return self.upstream is not None

    @property
    def next_attempt(self) -> float | None:
        """Wall-clock time of the upstream's next attempt, while one is awaited."""
        return self.upstream.next_attempt if self.upstream is not None else None

    @property
    def sharing(self) -> tuple["Pull", ...]:
        """The other pulls fed by the same upstream (its other streams')."""
        upstream = self.upstream
        return () if upstream is None else tuple(p for p in upstream.pulls if p is not self)

    def retune(self, reconnect: float, readtimeout: float) -> None:
        """A reload's ``reconnect`` and ``readtimeout`` (global keys: the same for every stream)."""
        self.reconnect, self.readtimeout = reconnect, readtimeout
        if self.upstream is not None:
            self.upstream.reconnect, self.upstream.readtimeout = reconnect, readtimeout

    def start(self) -> None:
        if self.upstream is None:
            self.lifecycle.begin()
            self.upstream = self.upstreams.join(self)

    def stop(self, hold: bool = True) -> None:
        """Take nothing more from the upstream; ``hold=False``: nobody is held for
        a next connection either (an on-demand stream that went idle)."""
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            self.lifecycle.hold = hold
            if self._url is not None:
                self.disconnected()
            self.upstreams.leave(self, upstream)
        self.lifecycle.attempt_over()  # nobody waits for an upstream that is gone

    # -- the upstream's events ---------------------------------------------

    def connected(self, url: str, aligner: PacketAligner) -> None:
        """A connection to ``url`` is open (or this pull joined it): viewers
        continue at its first start."""
        self._url, self._aligner = url, aligner
        self._gone = False
        self._select = ProgramFilter(self.program).feed if self.program else None
        self.connected_since = time.time()
        self.connections += 1
        self.lifecycle.connected(url)
        if self.analyser is not None:
            self.analyser.connected(aligner, time.monotonic())

    def take(self, chunk: bytes, now: float, at_once: bool) -> None:
        """One aligned chunk of the connection, which arrived at ``now``."""
        if self.upstream is None:
            return  # stopped while the upstream's hand-out ran
        select = self._select
        if select is not None:
            try:
                chunk = select(chunk)
            except ProgramGone as e:
                self._lose_program(str(e))
                return
            if not chunk:
                return
            if self._gone:  # listed again: as a new connection
                self._gone = False
                self.connected_since = time.time()
                self.lifecycle.connected(self._url)
                if self.analyser is not None:
                    self.analyser.connected(self._aligner, now)
        if self.analyser is not None:
            self.analyser.feed(chunk, now)
        lifecycle = self.lifecycle
        if not lifecycle.online:
            lifecycle.delivering()
        self.hub.publish(chunk, at_once=at_once)

    def _lose_program(self, reason: str) -> None:
        """The PAT no longer lists the program: held as at an upstream loss,
        while a fresh filter watches for a PAT that lists it again."""
        self._select = ProgramFilter(self.program).feed
        if self._gone:
            return
        self._gone = True
        shown = redact_url(self._url or "")
        self.log.warning("upstream error", url=shown, reason=reason)
        self.last_error = (reason, shown, time.time())
        self.connected_since = None
        self.lifecycle.disconnected()
        self.lifecycle.attempt_over()

    def disconnected(self) -> None:
        """The connection ended (or this pull stopped taking from it)."""
        self._url = self._aligner = self._select = None
        self._gone = False
        self.connected_since = None
        self.lifecycle.disconnected()

    def failed(self, reason: str, shown: str) -> None:
        """An attempt failed, or a connection ended in an error."""
        self.last_error = (reason, shown, time.time())
