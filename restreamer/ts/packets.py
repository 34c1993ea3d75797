"""MPEG transport stream framing: turn arbitrary upstream reads into whole packets.

Upstreams deliver bytes in whatever pieces the network or pipe produced, may
start mid-packet, and may carry garbage or torn packets.  :class:`PacketAligner`
returns only runs of whole 188-byte packets that each start with the sync byte,
in input order.  It works per read, never per packet: sync bytes are checked by
slicing every 188th byte, so a clean stream costs a few C-level operations per
read whatever its size.
"""

from __future__ import annotations

PACKET_SIZE = 188
SYNC_BYTE = 0x47
_SYNC = b"\x47"

#: Consecutive sync bytes, 188 apart, needed to (re)gain lock.  Text such as an
#: HTML error page contains plenty of "G" (0x47); five in a row at packet
#: spacing is what makes a false lock unlikely.
LOCK_PACKETS = 5
_LOCK_SPAN = (LOCK_PACKETS - 1) * PACKET_SIZE + 1
_LOCK_PATTERN = _SYNC * LOCK_PACKETS


class PacketAligner:
    """Stateful packetiser for one upstream connection.

    ``feed()`` returns a bytes object holding zero or more whole packets; when
    the input is already aligned it returns the input object itself (no copy).
    A packet is emitted once the sync byte of the packet after it has been
    seen, or when it ends exactly where the read ended; a packet whose
    successor is not where it should be is torn and is dropped with the bytes
    up to the next lock.
    """

    __slots__ = ("_pending", "_locked", "skipped", "packets", "losses")

    def __init__(self) -> None:
        self._pending = b""
        self._locked = False
        self.skipped = 0  # bytes discarded while out of sync
        self.packets = 0  # packets emitted
        self.losses = 0  # times lock was lost: a sync byte missing where one was due

    @property
    def locked(self) -> bool:
        return self._locked

    def feed(self, data: bytes) -> bytes:
        buf = self._pending + data if self._pending else data
        out = []
        while buf:
            if not self._locked:
                buf = self._lock(buf)
                if not self._locked:
                    break
            good, buf = self._aligned_prefix(buf)
            if good:
                out.append(good)
            if self._locked:
                break  # the rest is a partial packet waiting for more data
        self._pending = buf
        if not out:
            return b""
        chunk = out[0] if len(out) == 1 else b"".join(out)
        self.packets += len(chunk) // PACKET_SIZE
        return chunk

    def flush(self) -> bytes:
        """At end of stream: the pending bytes if they are whole, aligned packets.

        This lets a clean stream shorter than the lock length through, and
        completes a locked stream whose last read ended on a packet boundary.
        """
        buf, self._pending = self._pending, b""
        if buf and len(buf) % PACKET_SIZE == 0 and _all_synced(buf):
            self.packets += len(buf) // PACKET_SIZE
            return buf
        self.skipped += len(buf)
        return b""

    def _lock(self, buf: bytes) -> bytes:
        """Find LOCK_PACKETS sync bytes at packet spacing; return buf from there."""
        find = buf.find
        pos = find(_SYNC)
        last = len(buf) - _LOCK_SPAN
        while 0 <= pos <= last:
            if buf[pos:pos + _LOCK_SPAN:PACKET_SIZE] == _LOCK_PATTERN:
                self._locked = True
                self.skipped += pos
                return buf[pos:] if pos else buf
            pos = find(_SYNC, pos + 1)
        # Keep only what could still be the start of a lock once more data comes.
        if pos < 0:
            keep = 0
        else:
            keep = len(buf) - pos
        self.skipped += len(buf) - keep
        return buf[len(buf) - keep:] if keep else b""

    def _aligned_prefix(self, buf: bytes) -> tuple[bytes, bytes]:
        """Split a locked buffer into (verified packets, remainder)."""
        marks = buf[::PACKET_SIZE]  # the first byte of every (possibly partial) packet
        synced = len(marks) - len(marks.lstrip(_SYNC))
        whole = len(buf) // PACKET_SIZE
        if synced == len(marks):
            # All in sync: a partial last packet waits for more data.
            end = whole * PACKET_SIZE
            return buf[:end], buf[end:]
        # Packet number ``synced`` has no sync byte, so the packet before it is
        # torn: keep what precedes it and search again after its sync byte.
        self._locked = False
        self.losses += 1
        if not synced:
            return b"", buf
        keep = (synced - 1) * PACKET_SIZE
        self.skipped += 1
        return buf[:keep], buf[keep + 1:]


def _all_synced(buf: bytes) -> bool:
    marks = buf[::PACKET_SIZE]
    return not marks.lstrip(_SYNC)
