"""The upstream greenlet of a stream: connect to the remotes in turn, align what
they send into packets and publish it to the hub."""

from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import gevent

from .hub import Hub
from .lifecycle import Lifecycle
from ..redact import redact_url
from ..sources import Connection, SourceError, SourceSettings, open_connection
from ..sources.base import READ_SIZE, describe
from ..ts.analysis import Analyser
from ..ts.packets import PacketAligner
from ..ts.program import ProgramFilter, ProgramGone

#: Bytes an upstream may send without a single MPEG-TS packet before it is
#: judged not to be a transport stream at all (an HTML error page, say).
NOT_TS_LIMIT = 65536

#: With ``readtimeout`` 0, seconds an upstream may keep sending bytes that hold
#: no valid packet (garbage after a good start, or a trickle too slow to
#: complete one) before the attempt fails.  Silence alone is still waited out.
NO_PACKET_LIMIT = 10.0
#: Bytes already waiting that are read together into one hand-out: a window of
#: a fast upstream, but never so much that viewers wait on one reader.
GATHER_LIMIT = 4 * READ_SIZE
#: Bytes a gathering source lets arrive while it pauses after draining: its
#: pause is a window, or shorter where a window of its upstream's data would
#: be more.  What arrives meanwhile waits in the kernel, whose buffer may be
#: small (a pipe's, or a socket's before Linux grows it); a pause that fills
#: it holds the upstream back, and Linux grows a socket's buffer only for a
#: reader that takes more at once than the buffer held, so a reader that
#: pauses a window whatever the pace would stay at one buffer per window.
PAUSE_BYTES = READ_SIZE // 2
#: Longest a source whose reads never wait holds the event loop in one turn
#: (seconds), whatever the bytes: a stream of small HTTP chunks is parsed far
#: slower per byte than it arrives, so a byte budget alone is not a bound.
TURN = 0.005

#: Opens a connection to a remote URL: :func:`restreamer.sources.open_connection`,
#: or a test's stand-in that injects faults.
Opener = Callable[[str, SourceSettings], Connection]


class ReadTimeout(Exception):
    """No data for ``readtimeout`` seconds."""


class Upstream:
    """Pulls one stream from its remotes.

    Remotes are shuffled once, then tried round-robin, one per attempt;
    attempts start at least ``reconnect`` seconds apart (a connection that
    lasted longer than that is retried at once).  With ``reconnect`` 0 there
    is only one attempt and the stream stays offline after it.
    """

    def __init__(self, hub: Hub, lifecycle: Lifecycle, remotes: Sequence[str],
                 settings: SourceSettings, *,
                 reconnect: float, readtimeout: float,
                 opener: Opener = open_connection, analyser: Analyser | None = None,
                 program: int | None = None):
        self.hub = hub
        self.lifecycle = lifecycle  # told of each connection, its data and its end
        self.log = hub.log
        self.analyser = analyser  # sees every packet the hub gets, if the stream is analysed
        self.opener = opener
        self.remotes = random.sample(list(remotes), len(remotes))
        self.settings = settings
        self.reconnect = reconnect
        self.readtimeout = readtimeout
        self.program = program  # the one program passed on, of a multi-program stream
        self._greenlet: gevent.Greenlet | None = None
        self._connection = None
        self.attempts = 0
        #: Units the sources said they lost (RTP datagrams, HLS segments), over all connections.
        self.missing = 0
        # What the dashboard says of a stream (wall-clock times): why it is down, when it
        # tries again, since when it is up, how often it has come back.
        self.last_error: tuple[str, str, float] | None = None  # (reason, URL as shown, when)
        self.next_attempt: float | None = None
        self.connected_since: float | None = None
        self.connections = 0

    @property
    def running(self) -> bool:
        """Started and not stopped (it may have given up: ``reconnect`` 0)."""
        return self._greenlet is not None

    def start(self) -> None:
        if self._greenlet is None:
            self.lifecycle.begin()
            self._greenlet = gevent.spawn(self._run)

    def stop(self, hold: bool = True) -> None:
        """End the connection and attempts; ``hold=False``: nobody is held for
        a next connection either (an on-demand stream that went idle)."""
        if self._greenlet is not None:
            self.lifecycle.hold = hold
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        self.lifecycle.attempt_over()  # nobody waits for an upstream that is gone

    def _run(self) -> None:
        while True:
            url = self.remotes[self.attempts % len(self.remotes)]
            self.attempts += 1
            began = time.monotonic()
            try:
                self._pull(url)
            except Exception:  # a bug in one stream's source must not end the stream for good
                self.log.exception("upstream crashed", url=redact_url(url))
            self.lifecycle.attempt_over()
            if self.reconnect <= 0:
                self.log.info("stream stays offline", reason="reconnect is 0: no further attempts")
                self.lifecycle.given_up()
                return
            delay = max(0.0, began + self.reconnect - time.monotonic())
            self.next_attempt = time.time() + delay
            gevent.sleep(delay)
            self.next_attempt = None

    def _pull(self, url: str) -> None:
        """One attempt: connect, stream until the end, log how it ended."""
        shown = redact_url(url)  # the URL itself may hold a password or token
        log = self.log.bind(url=shown)
        log.info("upstream connecting", attempt=self.attempts)
        # readtimeout counts from the connect: a remote that accepts and never
        # answers is given up as soon as one that stops sending.
        began = time.monotonic()
        limit = self.readtimeout
        try:
            if limit > 0:
                with gevent.Timeout(limit, ReadTimeout(f"no valid packet for {limit:g} s (readtimeout)")):
                    connection = self.opener(url, self.settings)
            else:
                connection = self.opener(url, self.settings)
        except (SourceError, OSError, ReadTimeout) as e:
            log.warning("upstream error", reason=_reason(e))
            self.last_error = (_reason(e), shown, time.time())
            return
        self._connection = connection
        self.connected_since = time.time()
        self.connections += 1
        self.lifecycle.connected(url)
        log.info("upstream connected")
        aligner = PacketAligner()
        if self.analyser is not None:
            self.analyser.connected(aligner, time.monotonic())
        try:
            self._stream(connection, aligner, began)
            log.info("upstream closed", reason="end of stream",
                     packets=aligner.packets, skipped_bytes=aligner.skipped)
        except (SourceError, OSError, ReadTimeout, ProgramGone) as e:
            log.warning("upstream error", reason=_reason(e),
                        packets=aligner.packets, skipped_bytes=aligner.skipped)
            self.last_error = (_reason(e), shown, time.time())
        finally:
            self._connection = None
            self.connected_since = None
            connection.close()
            self.lifecycle.disconnected()

    def _stream(self, connection, aligner: PacketAligner, began: float) -> None:
        """Move data from the connection to the hub until it ends (the
        attempt ``began`` then, by ``time.monotonic()``).

        A connection may count ``breaks`` (its next read does not continue the
        last: the hub restarts its viewers at a keyframe) and ``missing``
        (units it knows it lost, added to :attr:`missing`).

        An upstream that sends no packet at all (an HTML error page, say) is a
        failed attempt, not a stream that ended: it raises SourceError.  So is
        one that goes bad later: no valid packet for ``readtimeout`` seconds
        (silence or garbage alike), or, with ``readtimeout`` 0, bytes that
        hold no valid packet for :data:`NO_PACKET_LIMIT` seconds.
        """
        read, feed, publish = connection.read, aligner.feed, self.hub.publish
        limit = self.readtimeout
        garbage_limit = limit if limit > 0 else NO_PACKET_LIMIT
        # A connection whose read returns everything that has arrived is read
        # once per window and its chunk handed out at once: one wake-up per
        # window whatever the upstream's pace, where waking for every piece
        # an encoder writes (~400 a second at 4 Mbit/s) would cost more than
        # the viewers do at low counts.  Data waits at most one window, as
        # with the hub's own window timer.  What is already waiting behind a
        # short read (urllib3 returns one HTTP read at a time) is read with it,
        # so a window's data is still one hand-out.  A read that fills
        # READ_SIZE, or a gathering that reached GATHER_LIMIT, is followed by
        # another after one turn of the loop, so a fast upstream is drained,
        # never throttled to a read per window, while viewers and other
        # streams still run between reads.
        gathers = getattr(connection, "gathers", False)
        pending = getattr(connection, "pending", None)
        # A connection that knows where its stream breaks off (HLS) or what it
        # lost (RTP) says so by counters, read once per read.
        tells = hasattr(connection, "breaks")
        # A program's PAT is rewritten per connection: its own state each time.
        select = ProgramFilter(self.program).feed if self.program else None
        breaks = missing = 0
        hub = self.hub
        lifecycle = self.lifecycle
        analyse = self.analyser.feed if self.analyser is not None else None
        clock = time.monotonic
        last_packet = began
        unyielded = 0  # bytes read since this greenlet last let others run
        turn_ends = clock() + TURN
        paused_at, since_pause = clock(), 0  # when the last pause began, bytes read since
        expired = ReadTimeout(f"no valid packet for {limit:g} s (readtimeout)")
        while True:
            if limit > 0:
                left = last_packet + limit - clock()
                if left <= 0:
                    raise expired
                with gevent.Timeout(left, expired):
                    data = read()
            else:
                data = read()
            if not data:
                break
            if tells:
                if connection.breaks != breaks:
                    # What follows does not continue what came before: as at a failover.
                    breaks = connection.breaks
                    hub.restart_at_rap()
                self.missing += connection.missing - missing
                missing = connection.missing
            ended = False
            if pending is not None:
                # Judged now: data that arrives while this is handed out
                # belongs to the next window.
                data, ended, drained = _gather(read, pending, data, turn_ends, clock)
            else:
                drained = len(data) < READ_SIZE
            chunk = feed(data)
            if chunk:
                last_packet = clock()
                if select is not None:
                    chunk = select(chunk)
                if chunk:
                    if analyse is not None:
                        analyse(chunk, last_packet)
                    if not lifecycle.online:
                        lifecycle.delivering()
                    publish(chunk, at_once=gathers)
            elif not aligner.packets and aligner.skipped > NOT_TS_LIMIT:
                raise SourceError(f"not MPEG-TS: no packet in the first {aligner.skipped} bytes")
            elif clock() - last_packet >= garbage_limit:
                raise SourceError(f"no valid packet for {garbage_limit:g} s"
                                  f" ({aligner.skipped} bytes skipped in all)")
            if ended:
                break
            unyielded += len(data)
            since_pause += len(data)
            if gathers and drained:
                # Drained: let a window's worth arrive, or PAUSE_BYTES at the
                # pace of the upstream since the last pause began.
                now = clock()
                gevent.sleep(min(hub.window, PAUSE_BYTES * (now - paused_at) / since_pause))
                paused_at, since_pause, unyielded = now, 0, 0
                turn_ends = clock() + TURN
            elif drained:
                turn_ends = clock() + TURN  # the next read waits: a turn of its own
            elif unyielded >= READ_SIZE or clock() >= turn_ends:
                # Data keeps coming without a read ever waiting: take turns.
                _pass_turn()
                unyielded = 0
                turn_ends = clock() + TURN
        tail = aligner.flush()
        if tail and select is not None:
            tail = select(tail)
        if tail:
            if analyse is not None:
                analyse(tail, time.monotonic())
            if not lifecycle.online:
                lifecycle.delivering()
            publish(tail)
        if not aligner.packets:
            raise SourceError(f"not MPEG-TS: ended after {aligner.skipped} bytes without a packet"
                              if aligner.skipped else "ended without sending any data")


def _gather(read: Callable[[], bytes], pending: Callable[[], bool], data: bytes,
            turn_ends: float, clock: Callable[[], float]) -> tuple[bytes, bool, bool]:
    """``data`` and what is already waiting behind it, up to GATHER_LIMIT bytes
    or the end of the turn; whether the stream ended meanwhile, and whether
    nothing was left waiting (rather than the budget running out)."""
    pieces = [data]
    size = len(data)
    while size < GATHER_LIMIT and clock() < turn_ends:
        if not pending():
            return (data if len(pieces) == 1 else b"".join(pieces)), False, True
        more = read()
        if not more:
            return b"".join(pieces), True, True
        pieces.append(more)
        size += len(more)
    return (data if len(pieces) == 1 else b"".join(pieces)), False, False


def _pass_turn() -> None:
    """Let every other greenlet run, I/O polled first.  A timer, not sleep(0):
    sleep(0) is a callback, and the loop runs up to 50 callbacks in a row
    before it polls, so a greenlet that keeps calling it holds the loop for
    50 of its turns."""
    hub = gevent.get_hub()
    hub.wait(hub.loop.timer(0))


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        return describe(error) or type(error).__name__
    return str(error) or type(error).__name__
