"""Splices a receiver accepts: where a viewer's output jumps within its stream
(a slow viewer's skip) or to a new upstream connection.

A receiver (ISO 13818-1, TR 101 290) takes a jump of a PID's
continuity_counter for lost packets, and may drop a packet whose counter
repeats as a duplicate, unless that PID's packet carries the
discontinuity_indicator; and a payload unit (PES or section) cut short
before the jump reaches its decoder as a broken frame.  So a splice is made of:

- the *tail*: for each PID, the packets that complete the payload unit it was
  in the middle of, up to the packet where its next unit starts (left out
  where that is not in reach: sending half a completion mends nothing);
- the *marks*: for each PID that follows, one adaptation-field-only packet
  with the discontinuity_indicator set and the counter its next packet
  continues from.  Marks go before the packets they announce, so the shared
  chunks are never altered (setting the flag in a packet's own adaptation
  field would need a copy per viewer, and packets without one have no room).

Both are found with ``bytes.find`` on packet headers over the chunks
concerned; only the packets found are read in Python, and only at a splice.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .packets import PACKET_SIZE, SYNC_BYTE
from .psi import NULL_PID

_PID_HIGH = bytes(b & 0x1F for b in range(256))


def discontinuity_packet(pid: int, counter: int) -> bytes:
    """An adaptation-field-only packet of ``pid`` with the discontinuity_indicator
    set: the counter of the PID's next packet with payload is ``counter + 1``."""
    return (bytes((SYNC_BYTE, pid >> 8 & 0x1F, pid & 0xFF, 0x20 | counter & 0x0F, 183, 0x80))
            + b"\xff" * (PACKET_SIZE - 6))


def is_discontinuity_packet(packet: bytes, offset: int = 0) -> bool:
    """An adaptation-field-only packet with the discontinuity_indicator set."""
    return (packet[offset + 3] & 0x30 == 0x20 and packet[offset + 4] > 0
            and bool(packet[offset + 5] & 0x80))


def pids_in(chunks: Iterable[bytes]) -> set[int]:
    """The PIDs of the packets in ``chunks`` (null packets left out)."""
    pairs: set[tuple[int, int]] = set()
    for chunk in chunks:
        pairs.update(zip(chunk[1::PACKET_SIZE].translate(_PID_HIGH), chunk[2::PACKET_SIZE]))
    pids = {high << 8 | low for high, low in pairs}
    pids.discard(NULL_PID)
    return pids


def _find(chunk: bytes, pattern: bytes, start: int) -> int:
    """The first packet at or after ``start`` whose header begins with ``pattern``; -1 if none."""
    offset = chunk.find(pattern, start)
    while offset >= 0 and offset % PACKET_SIZE:
        offset = chunk.find(pattern, offset + 1)
    return offset


def _patterns(pid: int) -> tuple[bytes, bytes]:
    """Header beginnings of ``pid``'s packets that start a payload unit, and of the others."""
    return (bytes((SYNC_BYTE, 0x40 | pid >> 8, pid & 0xFF)),
            bytes((SYNC_BYTE, pid >> 8, pid & 0xFF)))


def first_packet(chunk: bytes, pid: int, start: int = 0) -> int:
    """Offset of ``pid``'s first packet at or after ``start``; -1 if none."""
    unit, other = (_find(chunk, pattern, start) for pattern in _patterns(pid))
    if unit < 0 or 0 <= other < unit:
        return other
    return unit


def tail(chunks: Sequence[bytes], offset: int, pids: Iterable[int], limit: int) -> bytes:
    """The packets from byte ``offset`` of ``chunks[0]`` on that complete the
    payload unit each of ``pids`` is in, in stream order; each PID's are
    searched for within ``limit`` bytes."""
    found: list[tuple[int, int]] = []
    for pid in pids:
        unit_pattern, other_pattern = _patterns(pid)
        mine: list[tuple[int, int]] = []
        walked = 0
        for number, chunk in enumerate(chunks):
            begin = offset if number == 0 else 0
            reach = begin + limit - walked
            unit = _find(chunk, unit_pattern, begin)
            if not 0 <= unit < reach and reach < len(chunk):
                break  # the unit does not end within reach
            end = unit if unit >= 0 else len(chunk)
            at = _find(chunk, other_pattern, begin)
            while 0 <= at < end:
                mine.append((number, at))
                at = _find(chunk, other_pattern, at + PACKET_SIZE)
            if unit >= 0:
                found.extend(mine)
                break
            walked += len(chunk) - begin
    found.sort()
    return b"".join(chunks[number][at:at + PACKET_SIZE] for number, at in found)


def marks(chunks: Sequence[bytes], pids: Iterable[int]) -> tuple[bytes, set[int]]:
    """Discontinuity packets for ``pids``, each with the counter that the
    PID's first packet in ``chunks`` continues; and the PIDs not found there."""
    out = []
    missing = set()
    for pid in pids:
        for chunk in chunks:
            at = first_packet(chunk, pid)
            if at >= 0:
                flags = chunk[at + 3]
                # A packet without payload repeats the counter of the one before it.
                counter = (flags - 1) & 0x0F if flags & 0x10 else flags & 0x0F
                out.append(discontinuity_packet(pid, counter))
                break
        else:
            missing.add(pid)
    return b"".join(out), missing
