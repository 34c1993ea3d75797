"""A viewer's position in its stream's backlog.

The hub moves a cursor (places it at a start, cuts it off a dropped chunk,
hands it back to the viewer's greenlet when a direct send falls short); the
viewer advances it as its bytes go out.  Neither writes the other's fields:
this is the one object both work on.
"""

from __future__ import annotations

from .backlog import Backlog
from .counters import Traffic
from ..ts.packets import PACKET_SIZE


class Cursor:
    """Where a viewer is in the backlog, and what it gets before that.

    ``index`` is the backlog index of the chunk to send next (None while the
    viewer waits for a place to start), ``offset`` the bytes of it already
    sent, ``position`` the stream byte offset that is (kept up to date while
    the viewer's own greenlet sends; a direct viewer's is the live edge),
    ``head`` bytes to send before that chunk (the preamble, the PAT and PMT
    before a RAP, a null packet, the end of a packet cut short).
    """

    __slots__ = ("traffic", "index", "offset", "position", "head", "had_pat", "first_index",
                 "stop_at", "direct", "dropping_since", "awaiting", "front")

    def __init__(self, traffic: Traffic, head: bytes = b""):
        self.traffic = traffic  # where skipped bytes are counted as dropped
        self.index: int | None = None
        self.offset = 0
        self.position = 0
        self.head = head
        self.had_pat = False  # a PAT was sent (keepalive null packets only after one)
        self.first_index = 0  # the chunk this viewer started at
        self.stop_at: int | None = None  # once closed: the end of what it still gets
        self.direct = False  # written to by the hub's greenlet, not its own
        self.dropping_since: float | None = None  # first drop since the last write
        self.awaiting: int | None = None  # after a jump: the start it waits to be placed at
        self.front = 0  # bytes at the end of ``head`` that lead into the start it was placed at

    def at_edge(self, backlog: Backlog) -> None:
        """Start at the live edge: the next chunk, whatever it holds."""
        self.index = self.first_index = backlog.end
        self.position = backlog.total

    def place(self, index: int, position: int, prefix: bytes, had_pat: bool) -> None:
        """Continue at chunk ``index`` (a start), after ``prefix`` (its PAT and PMT)."""
        if had_pat:
            self.had_pat = True
        if prefix:
            self.head = bytes(self.head) + prefix
        self.front = len(prefix)
        self.skip_to(position)
        self.index = self.first_index = index
        self.offset = 0
        self.awaiting = None

    def skip_to(self, position: int) -> None:
        """Move on to stream byte ``position``; what is passed over is counted as dropped."""
        if position > self.position:
            if self.position:  # a viewer that has not begun skips nothing
                skipped = position - self.position
                self.traffic.bytes_dropped += skipped
                self.traffic.packets_dropped += skipped // PACKET_SIZE
            self.position = position

    def resume(self, index: int, offset: int, position: int) -> None:
        """No longer direct: the viewer's own greenlet goes on from byte ``offset`` of chunk ``index``."""
        self.index = index
        self.offset = offset
        self.position = position
        self.direct = False

    def heard_pat(self, pat_chunk: int) -> bool:
        """Whether a PAT was sent: known, or told by the position (chunk
        ``pat_chunk`` holds the stream's newest PAT) and settled from it."""
        if self.index is not None and self.first_index <= pat_chunk < self.index:
            self.had_pat = True
        return self.had_pat

    def cut(self, backlog: Backlog, pat_chunk: int) -> None:
        """Take the cursor off its chunk, finishing the packet it is in the middle
        of (viewers get whole packets only).  What its head still holds of the
        way into that chunk (a start's PAT and PMT, a null packet) goes too; what
        comes before that (the end of the run before a jump) stays.  Whether it
        has had a PAT is settled first: its position tells, and goes."""
        self.heard_pat(pat_chunk)
        if self.traffic.bytes_sent:
            before = max(len(self.head) - self.front, 0)
            torn = before or len(self.head) % PACKET_SIZE
            self.head = self.head[:torn] if torn else b""
        self.front = 0
        if self.offset % PACKET_SIZE:
            chunk = backlog.chunk(self.index)
            tail = PACKET_SIZE - self.offset % PACKET_SIZE
            self.head = bytes(self.head) + chunk[self.offset:self.offset + tail]
            self.position += tail
        self.index = None
        self.offset = 0

    def stop(self, backlog: Backlog) -> None:
        """Closed: what the backlog holds now is the last the viewer gets."""
        self.stop_at = backlog.end
        if self.direct:
            self.resume(backlog.end, 0, backlog.total)

    def caught_up(self, index: int) -> bool:
        """Nothing left to send before chunk ``index``, and no end set."""
        return self.index == index and not self.head and self.stop_at is None
