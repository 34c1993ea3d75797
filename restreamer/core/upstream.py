"""The upstream greenlet: connect to the remotes in turn, align what they send
into packets and hand each chunk to the pulls of the streams it feeds.

Streams whose remotes (and the settings their sources are opened with) are
equal share one upstream: one connection, each stream's
:class:`~restreamer.core.pull.Pull` taking the same aligned chunks into its
own program filter and hub (see core/pull.py)."""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Callable, Sequence

import gevent

from .hub import MIN_WINDOW
from ..redact import redact_url
from ..sources import Connection, SourceError, SourceSettings, open_connection
from ..sources.base import READ_SIZE, describe
from ..ts.packets import PacketAligner

if TYPE_CHECKING:
    from .pull import Pull

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
#: pause lasts until the next hand-out, or less where that much of its
#: upstream's data would be more.  What arrives meanwhile waits in the kernel,
#: whose buffer may be small (a pipe's, or a socket's before Linux grows it);
#: a pause that fills it holds the upstream back, and Linux grows a socket's
#: buffer only for a reader that takes more at once than the buffer held, so a
#: reader that pauses a window whatever the pace would stay at one buffer per
#: window.
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
    """Pulls remotes for the streams attached to it (their pulls).

    Remotes are shuffled once, then tried round-robin, one per attempt;
    attempts start at least ``reconnect`` seconds apart (a connection that
    lasted longer than that is retried at once).  With ``reconnect`` 0 there
    is only one attempt and the streams stay offline after it.

    Each event of a connection (open, data, a break, its end, an error) goes
    to every attached pull, which tells its stream's lifecycle and logs it
    under its stream's name.
    """

    def __init__(self, remotes: Sequence[str], settings: SourceSettings, *,
                 reconnect: float, readtimeout: float, opener: Opener = open_connection):
        self.opener = opener
        self.remotes = random.sample(list(remotes), len(remotes))
        self.settings = settings
        self.reconnect = reconnect
        self.readtimeout = readtimeout
        #: The attached pulls: a tuple, replaced (never changed) on attach and
        #: detach, so the greenlet's hand-out loop runs over a fixed set.
        self.pulls: tuple["Pull", ...] = ()
        self._greenlet: gevent.Greenlet | None = None
        self.attempts = 0
        #: The open connection: (URL, its aligner), for a pull that attaches meanwhile.
        self.current: tuple[str, PacketAligner] | None = None
        #: Wall-clock time of the next attempt, while one is awaited.
        self.next_attempt: float | None = None

    @property
    def running(self) -> bool:
        """Started and not stopped (it may have given up: ``reconnect`` 0)."""
        return self._greenlet is not None

    def attach(self, pull: "Pull") -> None:
        """Feed ``pull`` from now on (from the next connection's start, or the
        current one's next chunk); start pulling if not yet, or again after
        giving up."""
        self.pulls += (pull,)
        if self.current is not None:
            pull.connected(*self.current)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)

    def detach(self, pull: "Pull") -> None:
        """Feed ``pull`` no more (the others go on)."""
        self.pulls = tuple(p for p in self.pulls if p is not pull)

    def stop(self) -> None:
        """End the connection and attempts."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None

    def until_next(self) -> float:
        """Seconds to the soonest hand-out of the hubs fed: how long a gathering
        connection's data may wait to be read."""
        return min((pull.hub.until_next() for pull in self.pulls), default=MIN_WINDOW)

    def _log(self, level: str, event: str, **fields) -> None:
        """One line per stream fed, each under its stream's name."""
        for pull in self.pulls:
            getattr(pull.log, level)(event, **fields)

    def _run(self) -> None:
        while True:
            url = self.remotes[self.attempts % len(self.remotes)]
            self.attempts += 1
            began = time.monotonic()
            try:
                self._pull(url)
            except Exception:  # a bug in one stream's source must not end the stream for good
                self._log("exception", "upstream crashed", url=redact_url(url))
            for pull in self.pulls:
                pull.lifecycle.attempt_over()
            if self.reconnect <= 0:
                self._log("info", "stream stays offline", reason="reconnect is 0: no further attempts")
                for pull in self.pulls:
                    pull.lifecycle.given_up()
                return
            delay = max(0.0, began + self.reconnect - time.monotonic())
            self.next_attempt = time.time() + delay
            gevent.sleep(delay)
            self.next_attempt = None

    def _pull(self, url: str) -> None:
        """One attempt: connect, stream until the end, log how it ended."""
        shown = redact_url(url)  # the URL itself may hold a password or token
        self._log("info", "upstream connecting", url=shown, attempt=self.attempts)
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
            self._failed(e, shown)
            return
        aligner = PacketAligner()
        self.current = (url, aligner)
        for pull in self.pulls:
            pull.connected(url, aligner)
        self._log("info", "upstream connected", url=shown)
        try:
            self._stream(connection, aligner, began)
            self._log("info", "upstream closed", url=shown, reason="end of stream",
                      packets=aligner.packets, skipped_bytes=aligner.skipped)
        except (SourceError, OSError, ReadTimeout) as e:
            self._failed(e, shown, packets=aligner.packets, skipped_bytes=aligner.skipped)
        finally:
            self.current = None
            connection.close()
            for pull in self.pulls:
                pull.disconnected()

    def _failed(self, error: BaseException, shown: str, **fields) -> None:
        reason = _reason(error)
        self._log("warning", "upstream error", url=shown, reason=reason, **fields)
        for pull in self.pulls:
            pull.failed(reason, shown)

    def _stream(self, connection, aligner: PacketAligner, began: float) -> None:
        """Move data from the connection to the pulls until it ends (the
        attempt ``began`` then, by ``time.monotonic()``).

        A connection may count ``breaks`` (its next read does not continue the
        last: the hubs restart their viewers at a keyframe) and ``missing``
        (units it knows it lost, added to each pull's count).

        An upstream that sends no packet at all (an HTML error page, say) is a
        failed attempt, not a stream that ended: it raises SourceError.  So is
        one that goes bad later: no valid packet for ``readtimeout`` seconds
        (silence or garbage alike), or, with ``readtimeout`` 0, bytes that
        hold no valid packet for :data:`NO_PACKET_LIMIT` seconds.
        """
        read, feed = connection.read, aligner.feed
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
        breaks = missing = 0
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
                    for pull in self.pulls:
                        pull.hub.restart_at_rap()
                if connection.missing != missing:
                    for pull in self.pulls:
                        pull.missing += connection.missing - missing
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
                # The same bytes to every pull: each filters (or not) for its own hub.
                for pull in self.pulls:
                    pull.take(chunk, last_packet, gathers)
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
                # Drained: let data arrive until the soonest hand-out, or PAUSE_BYTES
                # at the pace of the upstream since the last pause began.
                now = clock()
                gevent.sleep(min(self.until_next(), PAUSE_BYTES * (now - paused_at) / max(since_pause, 1)))
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
        if tail:
            now = time.monotonic()
            for pull in self.pulls:
                pull.take(tail, now, False)
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
