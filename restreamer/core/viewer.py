"""One HTTP client of a stream: a cursor in the stream's backlog, and the two
ways its bytes reach the client.

- The direct path (:meth:`Viewer.serve`), where restreamer's own server owns
  the client's socket: while the viewer keeps up, the hub's greenlet writes
  each new chunk to its socket with a non-blocking send; the viewer's own
  greenlet sleeps, and is woken only when its socket is full, to wait for
  the socket and catch up from its cursor.
- The generator path (:meth:`Viewer.chunks`), for any WSGI server (gunicorn's
  gevent worker, a host app): the viewer's greenlet is woken for new chunks
  and yields them one by one, as they are, to the server.

Neither copies a chunk: the backlog's chunks are shared by every viewer.  The
viewer never calls its hub: it advances its cursor as it sends, and the hub
finds a caught-up direct viewer idle at its next hand-out.
"""

from __future__ import annotations

import errno
from typing import Any, Callable, Iterator, Protocol

import gevent
from gevent.event import Event

from .backlog import Backlog
from .counters import Traffic
from .cursor import Cursor
from ..ts.packets import PACKET_SIZE


class Sink(Protocol):
    """A viewer's socket, as the web layer hands it to the core."""

    #: Non-blocking: the bytes taken (perhaps fewer than given); raises
    #: BlockingIOError when none fit, another OSError when the client is gone.
    send: Callable[[bytes], int]

    def wait_writable(self) -> None:
        """Block the calling greenlet until ``send`` can take bytes."""


class Viewer(Traffic):
    """A viewer of a stream: its cursor, its counters and the greenlet writing to it."""

    __slots__ = ("backlog", "remote", "log", "now", "started", "closed", "cursor", "keepalive",
                 "send", "idle", "_wake", "_greenlet")

    def __init__(self, backlog: Backlog, log: Any, now: Callable[[], float], remote: str = "",
                 head: bytes = b"", keepalive: bool = True):
        super().__init__()
        self.backlog = backlog
        self.remote = remote
        self.log = log.bind(remote=remote)
        self.now = now
        self.started = now()
        self.closed = False
        self.cursor = Cursor(self, head)
        self.keepalive = keepalive  # gets null packets while its stream waits for data
        self.send: Callable[[bytes], int] | None = None  # the direct path's sink.send
        self.idle = False  # waiting for the hub: for data, or for a place to start
        self._wake = Event()
        self._greenlet = None  # the greenlet writing to the client

    # -- the hub's side ------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """End the response once what the backlog holds for it now has been sent."""
        if not self.closed:
            self.closed = True
            self.cursor.stop(self.backlog)
            self._wake.set()

    def evict(self) -> None:
        """Disconnect a viewer that takes nothing, wherever its writer waits.

        The writer is usually blocked sending to a socket that accepts nothing;
        a broken pipe is what both pywsgi and gunicorn take as a client gone
        away, so they close the connection quietly and the response's close()
        frees the viewer.
        """
        self.closed = True
        self.cursor.stop(self.backlog)
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
        cursor = self.cursor
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
            cursor.dropping_since = None  # the write went through

    def _take(self) -> bytes | None:
        """The next piece to write, counted as sent; None if there is none now."""
        cursor = self.cursor
        head = cursor.head
        if head:
            cursor.head = b""
            data = bytes(head)
            self.bytes_sent += len(data)
            self.packets_sent = self.bytes_sent // PACKET_SIZE
            return data
        index = cursor.index
        backlog = self.backlog
        end = backlog.end if cursor.stop_at is None else cursor.stop_at
        if index is None or index >= end:
            return None
        chunk = backlog.chunk(index)
        if cursor.offset:
            chunk = chunk[cursor.offset:]
            cursor.offset = 0
        cursor.index = index + 1
        cursor.position += len(chunk)
        self.bytes_sent += len(chunk)
        self.packets_sent = self.bytes_sent // PACKET_SIZE
        return chunk

    # -- the direct path -----------------------------------------------------

    def serve(self, sink: Sink) -> None:
        """Send the stream to ``sink`` until the response ends (run by the client's greenlet).

        Once caught up it waits, idle: the hub's next hand-out makes it direct
        (see :meth:`Hub.hand_out`) and wakes it only when a send falls short.
        """
        self._greenlet = gevent.getcurrent()
        self.send = sink.send
        wake = self._wake
        while True:
            if self._pump():
                if self.closed:
                    return
                wake.clear()
                self.idle = True
                wake.wait()
                self.idle = False
            else:
                sink.wait_writable()

    def _pump(self) -> bool:
        """Send what there is without blocking: True once all of it went out,
        False when the socket is full."""
        send = self.send
        backlog = self.backlog
        cursor = self.cursor
        while True:
            head = cursor.head
            if head:
                sent = _send(send, head)
                self.bytes_sent += sent
                self.packets_sent = self.bytes_sent // PACKET_SIZE
                if sent < len(head):
                    cursor.head = memoryview(head)[sent:]
                    return False
                cursor.head = b""
                cursor.dropping_since = None
                continue
            index = cursor.index
            end = backlog.end if cursor.stop_at is None else cursor.stop_at
            if index is None or index >= end:
                return True
            chunk = backlog.chunk(index)
            data = memoryview(chunk)[cursor.offset:] if cursor.offset else chunk
            sent = _send(send, data)
            self.bytes_sent += sent
            self.packets_sent = self.bytes_sent // PACKET_SIZE
            cursor.position += sent
            if sent < len(data):
                cursor.offset += sent
                return False
            cursor.index = index + 1
            cursor.offset = 0
            cursor.dropping_since = None

    def send_now(self, data) -> int:
        """One non-blocking send on the direct path: the bytes sent (0 while
        the socket is full), or -1 if the client is gone."""
        try:
            return _send(self.send, data)
        except OSError:
            return -1

    @property
    def duration(self) -> float:
        return self.now() - self.started


def _send(send: Callable[[bytes], int], data) -> int:
    try:
        return send(data)
    except BlockingIOError:
        return 0
