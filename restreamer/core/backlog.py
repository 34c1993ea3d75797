"""A stream's backlog: the shared, immutable chunks of its recent past.

Every chunk the hub hands out is kept here once, whatever the number of
viewers; a viewer is only a position in it (a chunk index).  Chunks are
numbered from the stream's start, so a position stays valid while older
chunks are dropped.  Where a viewer may start (a RAP with the PAT and PMT to
send before it) a chunk is split, so every start is the beginning of a chunk.
The backlog is bounded in bytes and in seconds.
"""

from __future__ import annotations

from collections import deque


class Backlog:
    """Chunks ``first`` to ``end - 1`` of a stream, and the starts among them."""

    __slots__ = ("max_bytes", "max_seconds", "chunks", "_positions", "_times", "first", "size",
                 "total", "starts")

    def __init__(self, max_bytes: int, max_seconds: float):
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.chunks: deque[bytes] = deque()
        self._positions: deque[int] = deque()  # stream byte offset of each chunk
        self._times: deque[float] = deque()  # when each chunk arrived
        self.first = 0  # index of chunks[0]
        self.size = 0  # bytes held
        self.total = 0  # stream bytes ever appended: the byte offset of chunk ``end``
        self.starts: deque[tuple[int, bytes]] = deque()  # (chunk index, PAT and PMT to send first)

    @property
    def end(self) -> int:
        """The index the next chunk will have."""
        return self.first + len(self.chunks)

    def chunk(self, index: int) -> bytes:
        return self.chunks[index - self.first]

    def position(self, index: int) -> int:
        """The stream byte offset of chunk ``index`` (``end`` included)."""
        if index >= self.end:
            return self.total
        return self._positions[index - self.first]

    def append(self, chunk: bytes, now: float, starts: list[tuple[int, bytes]] = ()) -> int:
        """Add ``chunk``, split at the ``starts`` found in it (offset, prefix); the index of its first piece."""
        first = self.end
        cut = 0
        for offset, prefix in starts:
            if offset > cut:
                self._add(chunk[cut:offset], now)
            cut = offset
            self.starts.append((self.end, prefix))
        self._add(chunk[cut:] if cut else chunk, now)
        return first

    def _add(self, piece: bytes, now: float) -> None:
        self.chunks.append(piece)
        self._positions.append(self.total)
        self._times.append(now)
        self.size += len(piece)
        self.total += len(piece)

    def time(self, index: int) -> float:
        """When chunk ``index`` arrived."""
        return self._times[index - self.first]

    def pieces(self, index: int, limit: int) -> list[bytes]:
        """Chunks from ``index`` on, as many as it takes to hold ``limit`` bytes (or all there are)."""
        out = []
        size = 0
        for position in range(index - self.first, len(self.chunks)):
            chunk = self.chunks[position]
            out.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return out

    def appended(self, first: int, new_starts: int) -> list[tuple[bytes, bytes | None]]:
        """The chunks from ``first`` on (just appended, with ``new_starts`` new
        starts among them), each with its start's PAT and PMT, or None."""
        held = len(self.starts)
        starts = dict(self.starts[i] for i in range(held - new_starts, held))
        return [(self.chunk(index), starts.get(index)) for index in range(first, self.end)]

    def excess(self, now: float) -> int:
        """How many of the oldest chunks are beyond the bounds (the newest always stays)."""
        drop = 0
        size = self.size
        times, chunks = self._times, self.chunks
        limit = len(chunks) - 1
        while drop < limit and (size > self.max_bytes or now - times[drop] > self.max_seconds):
            size -= len(chunks[drop])
            drop += 1
        return drop

    def drop(self, count: int) -> None:
        """Forget the ``count`` oldest chunks."""
        for _ in range(count):
            self.size -= len(self.chunks.popleft())
            self._positions.popleft()
            self._times.popleft()
        self.first += count
        starts = self.starts
        while starts and starts[0][0] < self.first:
            starts.popleft()

    def start_from(self, index: int) -> tuple[int, bytes] | None:
        """The oldest start at or after chunk ``index``."""
        for start in self.starts:
            if start[0] >= index:
                return start
        return None

    def newest_start(self) -> tuple[int, bytes] | None:
        return self.starts[-1] if self.starts else None

    def clear_starts(self) -> None:
        """The connection changed: its old starts must not be mixed with the new one's."""
        self.starts.clear()
