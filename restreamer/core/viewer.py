"""One HTTP client of a stream: a position in the stream's backlog, and the two
ways its bytes reach the client.

- The direct path (:meth:`Viewer.serve`), where restreamer's own server owns
  the client's socket: while the viewer keeps up, the hub's greenlet writes
  each new chunk to its socket with a non-blocking send; the viewer's own
  greenlet sleeps, and is woken only when its socket is full, to wait for
  the socket and catch up from its position.
- The generator path (:meth:`Viewer.chunks`), for any WSGI server (gunicorn's
  gevent worker, a host app): the viewer's greenlet is woken for new chunks
  and yields them one by one, as they are, to the server.

Neither copies a chunk: the backlog's chunks are shared by every viewer.
"""

from __future__ import annotations

import errno
import time
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

import gevent
from gevent.event import Event

from .counters import Traffic
from ..ts.packets import PACKET_SIZE

if TYPE_CHECKING:
    from .hub import Hub


class Sink(Protocol):
    """A viewer's socket, as the web layer hands it to the core."""

    #: Non-blocking: the bytes taken (perhaps fewer than given); raises
    #: BlockingIOError when none fit, another OSError when the client is gone.
    send: Callable[[bytes], int]

    def wait_writable(self) -> None:
        """Block the calling greenlet until ``send`` can take bytes."""


class Viewer(Traffic):
    """A viewer's place in its stream and its counters.

    ``next`` is the backlog index of the chunk to send next (None while the
    viewer waits for a place to start), ``offset`` the bytes of it already
    sent, ``pos`` the stream byte offset that is (kept while the viewer is not
    written to by the hub), ``head`` bytes to send before that chunk (the
    preamble, the PAT and PMT before a RAP, a null packet, the end of a packet
    cut short).
    """

    __slots__ = (
        "hub", "remote", "stream", "started", "closed", "dropping_since",
        "next", "offset", "pos", "head", "psi", "keepalive", "start_index", "send", "live", "idle",
        "stop_at", "_wake", "_greenlet",
    )

    def __init__(self, hub: "Hub", remote: str = "", stream: str = "", head: bytes = b""):
        super().__init__()
        self.hub = hub
        self.remote = remote
        self.stream = stream
        self.started = time.monotonic()
        self.closed = False
        self.dropping_since: float | None = None  # first drop since the last write
        self.next: int | None = None
        self.offset = 0
        self.pos = 0
        self.head = head
        self.psi = False  # has been sent a PAT (keepalive null packets only after one)
        self.keepalive = True  # gets null packets while its stream waits for data
        self.start_index = 0  # where a viewer that joined at the live edge began
        self.send: Callable[[bytes], int] | None = None  # the direct path's sink.send
        self.live = False  # in the hub's set of viewers it writes to itself
        self.idle = False  # waiting for the hub: for data, or for a place to start
        self.stop_at: int | None = None  # after close(): the end of what it still gets
        self._wake = Event()
        self._greenlet = None  # the greenlet writing to the client

    # -- the hub's side ------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """End the response once what the backlog holds for it now has been sent."""
        if not self.closed:
            self.closed = True
            self.stop_at = self.hub.backlog.end
            self.hub.fall_behind(self, 0)
            self._wake.set()

    def evict(self) -> None:
        """Disconnect a viewer that takes nothing, wherever its writer waits.

        The writer is usually blocked sending to a socket that accepts nothing;
        a broken pipe is what both pywsgi and gunicorn take as a client gone
        away, so they close the connection quietly and the response's close()
        frees the viewer.
        """
        self.closed = True
        self.stop_at = self.hub.backlog.end
        self.hub.fall_behind(self, 0)
        if self._greenlet is not None:
            gevent.kill(self._greenlet, BrokenPipeError(errno.EPIPE, "viewer stalled (droptimeout)"))

    # -- the generator path --------------------------------------------------

    def chunks(self) -> Iterator[bytes]:
        """The response body: an empty piece first (so that a server which
        sends the head with the first write sends it now), then the head and
        each chunk as it comes."""
        self._greenlet = gevent.getcurrent()
        yield b""
        wake = self._wake
        take = self._take
        while True:
            data = take()
            if data is None:
                if self.closed:
                    return
                wake.clear()
                self.idle = True
                wake.wait()
                self.idle = False
                continue
            yield data
            self.dropping_since = None  # the write went through

    def _take(self) -> bytes | None:
        """The next piece to write, counted as sent; None if there is none now."""
        head = self.head
        if head:
            self.head = b""
            data = bytes(head)
            self.bytes_sent += len(data)
            self.packets_sent = self.bytes_sent // PACKET_SIZE
            return data
        index = self.next
        backlog = self.hub.backlog
        end = backlog.end if self.stop_at is None else self.stop_at
        if index is None or index >= end:
            return None
        chunk = backlog.chunk(index)
        if self.offset:
            chunk = chunk[self.offset:]
            self.offset = 0
        self.next = index + 1
        self.pos += len(chunk)
        self.bytes_sent += len(chunk)
        self.packets_sent = self.bytes_sent // PACKET_SIZE
        return chunk

    # -- the direct path -----------------------------------------------------

    def serve(self, sink: Sink) -> None:
        """Send the stream to ``sink`` until the response ends (run by the client's greenlet)."""
        self._greenlet = gevent.getcurrent()
        self.send = sink.send
        wake = self._wake
        hub = self.hub
        while True:
            if self._pump():
                if self.closed:
                    return
                wake.clear()
                if self.next is not None and not self.head:
                    hub.go_live(self)
                else:
                    self.idle = True
                wake.wait()
                self.idle = False
            else:
                sink.wait_writable()

    def _pump(self) -> bool:
        """Send what there is without blocking: True once all of it went out,
        False when the socket is full."""
        send = self.send
        backlog = self.hub.backlog
        while True:
            head = self.head
            if head:
                sent = _send(send, head)
                self.bytes_sent += sent
                self.packets_sent = self.bytes_sent // PACKET_SIZE
                if sent < len(head):
                    self.head = memoryview(head)[sent:]
                    return False
                self.head = b""
                self.dropping_since = None
                continue
            index = self.next
            end = backlog.end if self.stop_at is None else self.stop_at
            if index is None or index >= end:
                return True
            chunk = backlog.chunk(index)
            data = memoryview(chunk)[self.offset:] if self.offset else chunk
            sent = _send(send, data)
            self.bytes_sent += sent
            self.packets_sent = self.bytes_sent // PACKET_SIZE
            self.pos += sent
            if sent < len(data):
                self.offset += sent
                return False
            self.next = index + 1
            self.offset = 0
            self.dropping_since = None

    @property
    def duration(self) -> float:
        return time.monotonic() - self.started


def _send(send: Callable[[bytes], int], data) -> int:
    try:
        return send(data)
    except BlockingIOError:
        return 0
