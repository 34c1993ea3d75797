"""RTP upstreams: MPEG-TS over RTP/AVP (RFC 2250, payload type 33), as IPTV
multicast carries it.

``rtp://GROUP:PORT`` (or udpxy's ``rtp://@GROUP:PORT``, or
``rtp://SOURCE@GROUP:PORT`` for source-specific multicast) joins a group as
``udp://`` does, with the same ``clientinterface``; ``rtp://:PORT`` receives
unicast.  Each datagram's RTP header (its CSRC list, extension and padding
included) is stripped; datagrams that arrive out of order within
:data:`WINDOW` are put back in order by sequence number, and the numbers
that never arrive are counted in :attr:`RTPConnection.missing`.  A sender
that begins again (a restarted encoder numbers from anywhere) is followed
from its new numbers, as a break in the stream, once :data:`WINDOW` of its
datagrams have come that no reordering explains.
"""

from __future__ import annotations

import os
import struct

from .base import READ_SIZE, SourceError, SourceSettings
from .datagram import UDPConnection

#: Datagrams held back waiting for an earlier one before it is given up as lost.
WINDOW = 16
#: Sequence numbers further ahead than this are no loss but a sender that began again (RFC 3550's MAX_DROPOUT).
JUMP = 3000
#: RTP's payload type for MPEG-2 transport streams (RFC 3551).
MP2T = 33

_HEADER = struct.Struct("!BBH")  # V P X CC, M PT, sequence number


class RTPConnection(UDPConnection):
    """A UDP socket as ``udp://`` opens it; reads return RTP payloads, in sequence order."""

    def __init__(self, url: str, settings: SourceSettings):
        super().__init__(url, settings)
        self._fd = self._sock.fileno()
        self._order = Resequencer()

    @property
    def missing(self) -> int:
        """Sequence numbers that never arrived."""
        return self._order.missing

    @property
    def breaks(self) -> int:
        return self._order.breaks

    def read(self) -> bytes:
        """The payloads of every datagram that has arrived (at least one), in order."""
        recv, mru, fd, order = self._sock.recv, self._mru, self._fd, self._order
        while True:
            try:
                datagram = recv(mru)
            except OSError as e:
                raise SourceError.from_os_error(e) from None
            if not datagram:
                continue
            self._take(datagram)
            size = len(datagram)
            # What else is waiting, without yielding: one read per burst.
            while size < READ_SIZE:
                try:
                    datagram = os.read(fd, mru)
                except BlockingIOError:
                    break
                except OSError as e:
                    raise SourceError.from_os_error(e) from None
                self._take(datagram)
                size += len(datagram)
            if order.out:
                out, order.out = order.out, []
                return b"".join(out)

    def _take(self, datagram: bytes) -> None:
        """Strip one datagram's header and queue its payload in sequence order."""
        first, kind, sequence = _HEADER.unpack_from(datagram) if len(datagram) >= 12 else (0, 0, 0)
        if first >> 6 != 2 or kind & 0x7F != MP2T:
            if not self._order.started:  # judged by the first: a stray datagram later is skipped
                raise SourceError(f"not RTP/AVP MPEG-TS (payload type 33): a datagram of {len(datagram)} "
                                  f"bytes with version {first >> 6}, payload type {kind & 0x7F}")
            return
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # a header extension: 4 bytes, then its length in 32-bit words
            start += 4 + 4 * int.from_bytes(datagram[start + 2:start + 4], "big")
        end = len(datagram) - datagram[-1] if first & 0x20 else len(datagram)
        self._order.take(sequence, datagram[start:end])


class Resequencer:
    """Payloads by RTP sequence number in, in sequence order out (``out``):
    one that comes early is held until those before it arrive, or until
    :data:`WINDOW` are held, when the numbers still missing before the
    earliest held are given up as lost and counted in ``missing``."""

    def __init__(self) -> None:
        self.missing = 0  # sequence numbers that never arrived
        # A lost datagram costs its packets, not the stream's continuity; a
        # sender that began again does.
        self.breaks = 0
        self.out: list[bytes] = []  # payloads in order, not yet taken
        self._next: int | None = None  # the sequence number due next
        self._held: dict[int, bytes] = {}  # arrived early, by sequence number
        self._strays = 0  # datagrams in a row neither due nor early (behind, or a jump ahead)

    @property
    def started(self) -> bool:
        return self._next is not None

    def take(self, sequence: int, payload: bytes) -> None:
        expected = self._next
        if expected is None or sequence == expected:
            self._strays = 0
            self.out.append(payload)
            self._next = (sequence + 1) & 0xFFFF
            if self._held:
                self._release()
            return
        ahead = (sequence - expected) & 0xFFFF
        if ahead > JUMP:
            # Behind (a duplicate, or one already given up as lost), or too far
            # ahead to be a loss; more than a window of them in a row is no
            # straggler but a sender numbering anew, which would never be due.
            self._strays += 1
            if self._strays > WINDOW:
                self._begin_again(sequence, payload)
            return
        self._strays = 0
        self._held[sequence] = payload
        if len(self._held) > WINDOW:
            self._give_up_due()

    def _begin_again(self, sequence: int, payload: bytes) -> None:
        """Follow the sender from ``sequence`` on, after what it sent before."""
        while self._held:
            self._give_up_due()
        self.breaks += 1
        self._strays = 0
        self.out.append(payload)
        self._next = (sequence + 1) & 0xFFFF

    def _give_up_due(self) -> None:
        """Count the numbers due before the earliest held as lost, and continue there."""
        due = self._next
        earliest = min(self._held, key=lambda held: (held - due) & 0xFFFF)
        self.missing += (earliest - due) & 0xFFFF
        self._next = earliest
        self._release()

    def _release(self) -> None:
        """Queue the held payloads that now follow in order."""
        held, due = self._held, self._next
        while due in held:
            self.out.append(held.pop(due))
            due = (due + 1) & 0xFFFF
        self._next = due
