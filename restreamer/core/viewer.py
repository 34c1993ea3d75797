"""One HTTP client of a stream: a bounded queue the hub fills and a generator
that drains it to the client's socket."""

from __future__ import annotations

import errno
import time
from typing import Iterator

import gevent
from gevent.queue import Queue

from .counters import Traffic
from ..ts.packets import PACKET_SIZE

#: Put in a viewer's queue to end its response.
_CLOSE = b""


class Viewer(Traffic):
    """A viewer's queue and counters.

    The queue holds shared chunks (never copies) and is bounded in packets by
    ``limit`` (the config's ``outputbuffer``): a chunk that does not fit is
    dropped for this viewer only and counted.  One queue slot beyond the limit
    is kept free so that :meth:`close` always fits.
    """

    __slots__ = (
        "queue", "queued", "limit", "remote", "stream", "started", "closed",
        "dropping_since", "_greenlet",
    )

    def __init__(self, limit: int, remote: str = "", stream: str = ""):
        self.queue: Queue = Queue(limit + 1)
        self.queued = 0  # packets in the queue
        self.limit = limit
        self.remote = remote
        self.stream = stream
        self.started = time.monotonic()
        self.closed = False
        super().__init__()
        self.dropping_since: float | None = None  # first drop since the last write
        self._greenlet = None  # the greenlet writing to the client

    def offer(self, chunk: bytes, packets: int) -> None:
        """Queue a chunk if it fits, else count it as dropped.  Never blocks."""
        if self.closed:
            return
        if self.queued + packets > self.limit:
            self.packets_dropped += packets
            self.bytes_dropped += len(chunk)
            if self.dropping_since is None:
                self.dropping_since = time.monotonic()
            return
        self.queued += packets
        self.queue.put_nowait(chunk)

    def close(self) -> None:
        """End the response once what is queued has been sent."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(_CLOSE)

    def evict(self) -> None:
        """Disconnect a viewer that takes nothing, wherever its writer waits.

        The writer is usually blocked sending to a socket that accepts nothing;
        a broken pipe is what both pywsgi and gunicorn take as a client gone
        away, so they close the connection quietly and the response's close()
        frees the viewer.
        """
        self.closed = True
        if self._greenlet is not None:
            gevent.kill(self._greenlet, BrokenPipeError(errno.EPIPE, "viewer stalled (droptimeout)"))

    def chunks(self) -> Iterator[bytes]:
        """Everything queued since the last write, as one piece per write."""
        self._greenlet = gevent.getcurrent()
        queue = self.queue
        get, get_nowait = queue.get, queue.get_nowait
        while True:
            data = get()
            waiting = queue.qsize()
            if waiting:
                # Several chunks are ready: one write for all of them.
                parts = [data]
                parts.extend(get_nowait() for _ in range(waiting))
                data = b"".join(parts)
                if parts[-1] is _CLOSE:
                    self._count(data)
                    yield data
                    return
            elif data is _CLOSE:
                return
            self._count(data)
            yield data
            self.dropping_since = None  # the write went through

    def _count(self, data: bytes) -> None:
        packets = len(data) // PACKET_SIZE
        self.queued -= packets
        self.packets_sent += packets
        self.bytes_sent += len(data)

    @property
    def duration(self) -> float:
        return time.monotonic() - self.started
