"""A stream's splices: where a viewer's output jumps (a slow viewer's skip, a
new upstream connection), made so that a set-top box accepts them.

The run a viewer leaves ends with the tail that completes each PID's payload
unit (no frame is left truncated); the run it joins begins with a
discontinuity packet per PID (the counters continue from there), then the
PAT and PMT, then the start itself.  The output's PAT and PMT versions are
kept across connections here too (see :mod:`restreamer.ts.versions`).
Nothing is done for a viewer that has not sent anything yet: its first
packets are no splice.
"""

from __future__ import annotations

from .backlog import Backlog
from .cursor import Cursor
from ..ts.packets import PACKET_SIZE
from ..ts.splice import marks, pids_in, tail
from ..ts.versions import OutputVersions

#: Stream bytes searched for the rest of each PID's payload unit before a jump
#: (a video frame, an I-frame included, is well within it).
TAIL_LIMIT = 512 * 1024
#: Stream bytes searched after a start for the first packet of each PID.
FRONT_LIMIT = 512 * 1024
#: How long a jump may wait after its start arrived for the first packet of
#: each of the program's PIDs (the audio after a video keyframe): marks with
#: the right counters need it.  A PID still silent then goes unmarked.
FRONT_WAIT = 0.3


class Splices:
    """The output PSI versions of a stream, and the tails and fronts of its viewers' jumps."""

    __slots__ = ("versions", "_front")

    def __init__(self) -> None:
        self.versions = OutputVersions()
        self._front: tuple[int, int, bytes, bytes | None] = (-1, -1, b"", None)

    def leave(self, cursor: Cursor, backlog: Backlog, pids: set[int], pat_chunk: int) -> None:
        """Take ``cursor`` off its chunk, after the packets that complete the
        payload units of ``pids`` (and of the other PIDs about) it was in;
        ``pat_chunk`` holds the stream's newest PAT (see :meth:`Cursor.cut`)."""
        index, offset = cursor.index, cursor.offset
        cursor.cut(backlog, pat_chunk)
        cursor.awaiting = None
        if index is None or index >= backlog.end or not cursor.traffic.bytes_sent:
            return
        offset += -offset % PACKET_SIZE
        chunks = backlog.pieces(index, offset + TAIL_LIMIT)
        rest = tail(chunks, offset, pids | pids_in(chunks[:1]), TAIL_LIMIT)
        if rest:
            cursor.head = bytes(cursor.head) + rest

    def front(self, backlog: Backlog, index: int, prefix: bytes, pids: set[int],
              now: float) -> bytes | None:
        """What a viewer that jumps to the start at chunk ``index`` gets before
        it: discontinuity packets, then ``prefix`` (its PAT and PMT).  None
        while a PID of the program (``pids``) is yet to come after the start."""
        front_index, front_end, front_prefix, front = self._front
        if front_index == index and front_end == backlog.end and front_prefix == prefix:
            return front  # the viewers of one jump share it
        chunks = backlog.pieces(index, FRONT_LIMIT)
        ahead = pids_in([prefix])
        found, missing = marks(chunks, (pids | pids_in(chunks)) - ahead)
        if (missing and now - backlog.time(index) < FRONT_WAIT
                and sum(map(len, chunks)) < FRONT_LIMIT):
            front = None
        else:
            front = marks([prefix], ahead)[0] + found + prefix
        self._front = (index, backlog.end, prefix, front)
        return front
