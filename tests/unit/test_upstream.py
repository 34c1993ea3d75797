"""The upstream greenlet, driven through an injected opener: the order and
spacing of attempts, how each ends, and what reaches the hub (through a
stream's pull)."""

import time

import gevent
import pytest
from gevent.event import Event

from restreamer.core.admission import join
from restreamer.core.hub import MIN_WINDOW, Hub
from restreamer.core.lifecycle import Lifecycle
from restreamer.core.pull import Pull
from restreamer.core.upstream import NOT_TS_LIMIT
from restreamer.sources import SourceError, SourceSettings
from restreamer.sources.base import READ_SIZE
from tests.support.ts import PACKET_SIZE, make_packets
from tests.unit.conftest import first_bytes, source_settings, stream_settings, wait_log, wait_until

PACKETS = make_packets(20)


class Script:
    """A connection that hands out the given reads, then ends (or blocks, or raises)."""

    def __init__(self, *reads, then=b""):
        self.reads = list(reads)
        self.then = then
        self.closed = False
        self.closed_at = None
        self.on_close = lambda: None

    def read(self) -> bytes:
        if self.reads:
            return self.reads.pop(0)
        if isinstance(self.then, BaseException):
            raise self.then
        if self.then is None:
            Event().wait()  # a stalled upstream: nothing ever arrives
        return self.then

    def close(self) -> None:
        self.closed = True
        self.closed_at = time.monotonic()
        self.on_close()


class Opener:
    """Records every attempt (URL, start time) and answers with ``make(url)``;
    ``enough`` is set once ``stop_after`` attempts have ended."""

    def __init__(self, make, stop_after: int):
        self.make = make
        self.attempts: list[tuple[str, float]] = []
        self.connections: list[Script] = []
        self.stop_after = stop_after
        self.ended = 0
        self.enough = Event()

    def __call__(self, url: str, settings: SourceSettings):
        self.attempts.append((url, time.monotonic()))
        try:
            connection = self.make(url)
        except BaseException:
            self._ended()
            raise
        connection.on_close = self._ended
        self.connections.append(connection)
        return connection

    def _ended(self) -> None:
        self.ended += 1
        if self.ended >= self.stop_after:
            self.enough.set()

    @property
    def urls(self) -> list[str]:
        return [url for url, _ in self.attempts]


def run(opener: Opener, remotes=("tcp://a:1",), reconnect=0.01, readtimeout=0.0, lifecycle=None):
    """Run an upstream until the opener has seen enough attempts; return its lifecycle."""
    lifecycle = lifecycle or _lifecycle(0)
    upstream = Pull(lifecycle.hub, lifecycle, remotes, source_settings(), reconnect=reconnect,
                    readtimeout=readtimeout, opener=opener)
    upstream.start()
    try:
        assert opener.enough.wait(timeout=5), f"only {len(opener.attempts)} attempts"
    finally:
        upstream.stop()
    return lifecycle


def test_remotes_are_shuffled_once_then_tried_round_robin():
    remotes = [f"tcp://r{i}:1" for i in range(4)]
    opener = Opener(lambda url: Script(PACKETS[:PACKET_SIZE]), stop_after=9)
    run(opener, remotes, reconnect=0.001)
    urls = opener.urls[:9]
    assert sorted(urls[:4]) == sorted(remotes)
    assert urls[4:8] == urls[:4] and urls[8] == urls[0]


def test_attempts_start_reconnect_seconds_apart():
    def refuse(url):
        raise SourceError("Connection refused")

    opener = Opener(refuse, stop_after=4)
    run(opener, reconnect=0.05)
    starts = [t for _, t in opener.attempts]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # libev's clock is read once per loop turn, so a timer may fire a hair early.
    assert all(0.045 <= gap < 1 for gap in gaps), gaps


def test_a_connection_that_lasted_longer_than_reconnect_is_retried_at_once(logs):
    def make(url):
        gevent.sleep(0.35)  # connecting (and streaming) took longer than reconnect
        return Script(PACKETS[:5 * PACKET_SIZE])

    opener = Opener(make, stop_after=2)
    run(opener, reconnect=0.3)
    (_, second) = opener.attempts[1]
    assert second - opener.connections[0].closed_at < 0.3  # no wait after the first ended
    closed = wait_log(logs, "upstream closed")
    assert (closed["reason"], closed["packets"]) == ("end of stream", 5)


def test_packets_reach_the_hub_whole_whatever_the_reads_cut(logs):
    data = PACKETS[:5 * PACKET_SIZE]
    pieces = [b"junk", data[:100], data[100:700], data[700:]]  # torn, with garbage ahead
    opener = Opener(lambda url: Script(*pieces, then=None), stop_after=1)
    lifecycle = _lifecycle(1)
    lifecycle.begin()  # as the upstream's start does, before its greenlet runs
    joining = gevent.spawn(join, lifecycle.hub, lifecycle)  # a viewer tuning in as the stream starts
    run(opener, lifecycle=lifecycle, reconnect=10, readtimeout=0.1)
    viewer = joining.get(timeout=1)
    assert first_bytes(viewer) == data
    error = wait_log(logs, "upstream error", url="tcp://a:1")
    assert (error["packets"], error["skipped_bytes"]) == (5, 4)
    assert lifecycle.hub.packets_received == 5
    assert opener.connections[0].closed


@pytest.mark.parametrize("reads, reason", [
    ([b"<html>no TS here</html>" * (NOT_TS_LIMIT // 20)], "not MPEG-TS: no packet in the first"),
    ([b"<html>short</html>"], "not MPEG-TS: ended after 18 bytes without a packet"),
    ([], "ended without sending any data"),
])
def test_an_upstream_that_sends_no_ts_is_a_failed_attempt(logs, reads, reason):
    assert b"G" not in b"".join(reads)  # no sync byte anywhere
    opener = Opener(lambda url: Script(*reads), stop_after=1)
    lifecycle = run(opener, reconnect=10)
    error = wait_log(logs, "upstream error")
    assert error["reason"].startswith(reason)
    assert lifecycle.hub.packets_received == 0 and not lifecycle.online
    assert not [e for e in logs if e["event"] == "upstream closed"]


def test_an_upstream_silent_for_readtimeout_is_closed_and_retried(logs):
    opener = Opener(lambda url: Script(PACKETS[:5 * PACKET_SIZE], then=None), stop_after=2)
    run(opener, reconnect=0.01, readtimeout=0.05)
    error = wait_log(logs, "upstream error")
    assert error["reason"] == "no valid packet for 0.05 s (readtimeout)"
    assert error["packets"] == 5
    assert opener.connections[0].closed


def test_readtimeout_counts_from_the_connect(logs):
    # A remote that accepts and never answers (the opener waits for ever):
    # given up readtimeout after the attempt began; and one whose first
    # packet comes later than that after the connect is given up too.
    def mute(url):
        Event().wait()

    opener = Opener(mute, stop_after=2)
    run(opener, remotes=("tcp://a:1", "tcp://b:1"), reconnect=0.01, readtimeout=0.1)
    error = wait_log(logs, "upstream error")
    assert error["reason"] == "no valid packet for 0.1 s (readtimeout)"
    (first, began), (second, again) = opener.attempts[:2]
    assert first != second and 0.095 <= again - began < 0.5

    def slow_head(url):
        gevent.sleep(0.08)  # connected, the first packet 0.08 + 0.08 s after the attempt began
        return _late(PACKETS[:PACKET_SIZE], 0.08)

    logs.clear()
    opener = Opener(slow_head, stop_after=1)
    lifecycle = run(opener, reconnect=10, readtimeout=0.1)
    assert wait_log(logs, "upstream error")["reason"] == "no valid packet for 0.1 s (readtimeout)"
    assert lifecycle.hub.packets_received == 0


def _late(data: bytes, delay: float) -> Script:
    """A connection whose first read returns ``data`` after ``delay`` s, then stalls."""
    script = Script(then=None)
    read = script.read

    def first_read() -> bytes:
        script.read = read
        gevent.sleep(delay)
        return data

    script.read = first_read
    return script


def test_a_crash_in_a_source_is_logged_and_retried(logs):
    opener = Opener(lambda url: Script(then=RuntimeError("a bug in a source")), stop_after=2)
    run(opener, reconnect=0.01)
    crashed = wait_log(logs, "upstream crashed", url="tcp://a:1")
    assert crashed["log_level"] == "error" and crashed["exc_info"]
    assert len(opener.attempts) >= 2  # the stream lives on


@pytest.mark.parametrize("error, reason", [
    (SourceError("HTTP 404 Not Found"), "HTTP 404 Not Found"),
    (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
])
def test_a_failed_connect_is_one_error_line_with_its_reason(logs, error, reason):
    def make(url):
        raise error

    opener = Opener(make, stop_after=1)
    run(opener, reconnect=10)
    entry = wait_log(logs, "upstream error")
    assert (entry["url"], entry["reason"], entry["stream"]) == ("tcp://a:1", reason, "/s.ts")


def test_with_reconnect_0_the_stream_stays_offline_after_one_attempt(logs):
    opener = Opener(lambda url: Script(), stop_after=1)
    lifecycle = _lifecycle(0)
    upstream = Pull(lifecycle.hub, lifecycle, ["tcp://a:1"], source_settings(), reconnect=0, readtimeout=0,
                    opener=opener)
    upstream.start()
    assert wait_log(logs, "stream stays offline")["reason"] == "reconnect is 0: no further attempts"
    wait_until(lambda: upstream.upstream._greenlet.dead, what="the upstream greenlet to end")
    assert len(opener.attempts) == 1
    upstream.stop()
    assert not lifecycle.connecting  # nobody waits for a first packet any more


def _lifecycle(graceperiod: float) -> Lifecycle:
    # Its packets carry no PAT: fast start would hold viewers till they count as such.
    return Lifecycle(Hub("/s.ts", stream_settings(keepalive=0, faststart=False)), graceperiod)


class Telling(Script):
    """A connection that counts breaks and missing units, as HLS and RTP do:
    the second read follows a break, after 3 lost units."""

    breaks = missing = 0

    def read(self) -> bytes:
        if len(self.reads) == 1:
            self.breaks, self.missing = 1, 3
        return super().read()


def test_a_break_a_connection_tells_restarts_viewers_at_a_rap_and_losses_are_counted(monkeypatch):
    restarts = []
    lifecycle = _lifecycle(0)
    hub = lifecycle.hub
    monkeypatch.setattr(hub, "restart_at_rap", lambda: restarts.append(hub.packets_received))
    opener = Opener(lambda url: Telling(PACKETS[:10 * PACKET_SIZE], PACKETS[10 * PACKET_SIZE:]),
                    stop_after=1)
    upstream = Pull(hub, lifecycle, ["http://a/l.m3u8"], source_settings(), reconnect=10,
                    readtimeout=0, opener=opener)
    upstream.start()
    try:
        assert opener.enough.wait(timeout=5)
    finally:
        upstream.stop()
    # At the connection's start, and once more at the break: after the first
    # read's packets, before the second's.
    assert restarts == [0, 10]
    assert upstream.missing == 3


class Buffered:
    """A gathering connection to a live sender of ``rate`` bytes a second,
    behind a loopback socket's buffer of ``capacity`` bytes that Linux has not
    grown: the sender is held back while the buffer is full, gets in again
    only once a reader has taken all it held (a partly read buffer keeps its
    memory, and the window stays shut; measured: reads of 64 KiB, then the
    rest, and nothing new in between), and then sends what it owes.  A read
    returns what waits, up to READ_SIZE, and waits itself only while nothing
    does."""

    gathers = True
    STREAM = make_packets(1000)  # longer than a read

    def __init__(self, rate: float, capacity: int):
        self.rate, self.capacity = rate, capacity
        self.start = time.monotonic()
        self.sent = self.taken = self.reads = 0

    def read(self) -> bytes:
        while self.sent == self.taken:  # empty: the sender gets in
            owed = self.rate * (time.monotonic() - self.start) - self.sent
            self.sent += int(min(owed, self.capacity)) if owed > 0 else 0
            if self.sent == self.taken:
                gevent.sleep((1316 - owed) / self.rate)  # the sender's next write
        size = min(self.sent - self.taken, READ_SIZE)
        at = self.taken % len(self.STREAM)
        self.taken += size
        self.reads += 1
        return (self.STREAM * 2)[at:at + size]

    def drained(self) -> float:
        """The share of what the sender owes since it started that was read."""
        return self.taken / (self.rate * (time.monotonic() - self.start))

    def close(self) -> None:
        pass


def _pull(connection: Buffered, seconds: float) -> None:
    lifecycle = _lifecycle(0)
    upstream = Pull(lifecycle.hub, lifecycle, ["tcp://a:1"], source_settings(), reconnect=10,
                    readtimeout=0, opener=lambda url, settings: connection)
    upstream.start()
    gevent.sleep(seconds)  # the span measured: the upstream reads meanwhile
    upstream.stop()


@pytest.mark.parametrize("capacity", [95_232, 116_000])  # what such sockets were seen to hold
def test_a_fast_upstream_behind_an_ungrown_socket_buffer_is_drained_at_its_pace(capacity):
    # 100 Mbit/s: a window's worth (256 KB) is more than the buffer holds, so
    # a reader that pauses a window after each drained read is held to one
    # buffer per window (37-45 Mbit/s).
    connection = Buffered(100e6 / 8, capacity)
    _pull(connection, 0.6)
    assert connection.drained() > 0.9, f"read {connection.drained():.0%} of what the upstream sent"


def test_a_slow_upstream_is_still_read_once_a_window():
    # 4 Mbit/s in an encoder's 1316-byte writes: reading each as it comes
    # would wake the stream ~380 times a second.
    connection = Buffered(4e6 / 8, 116_000)
    _pull(connection, 0.6)
    assert connection.drained() > 0.9
    assert connection.reads <= 1.25 * 0.6 / MIN_WINDOW, f"{connection.reads} reads in 0.6 s"
