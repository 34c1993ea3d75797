"""The version numbers of a stream's output PAT and PMTs, across its upstream connections.

A receiver re-reads a PAT or PMT only when its version_number changes.  Two
upstreams (a failover, a reconnect to a re-started encoder) may both send
version 0 of different programs, and a set-top box that caches tables by
version keeps the dead program.  So the output's versions are the input's
plus an offset per PID, kept for the stream's life: a section whose content
differs from the last one output on its PID, under the same output version,
moves that offset on by one.  Sections with the same content keep the
output's version, so a reconnect to the same upstream changes nothing.

Rewriting is per chunk (``bytes.find`` on the PSI PIDs' unit starts) and only
while some offset is not zero; a rewritten packet is cached, since a PAT or
PMT repeats unchanged several times a second.  A section longer than its
first packet keeps the input's version (no PAT or PMT of a single program is
that long in practice).
"""

from __future__ import annotations

from .packets import PACKET_SIZE
from .psi import crc32, unit_starts

#: Rewritten packets kept: a few tables, a few versions each.
CACHED_PACKETS = 32


def _body(section: bytes) -> bytes:
    """A section without its version number and CRC: what it says."""
    return section[:5] + bytes((section[5] & 0xC1,)) + section[6:-4]


class OutputVersions:
    """Per PSI PID: the last section body output, its output version, and the offset applied."""

    __slots__ = ("_last", "_offsets", "_cache")

    def __init__(self) -> None:
        self._last: dict[int, tuple[bytes, int]] = {}
        self._offsets: dict[int, int] = {}  # only the PIDs whose offset is not zero
        self._cache: dict[bytes, bytes] = {}

    def observe(self, pid: int, section: bytes) -> None:
        """A new section of a PAT or PMT on ``pid`` (whole, CRC checked) from the upstream."""
        version = section[5] >> 1 & 0x1F
        body = _body(section)
        offset = self._offsets.get(pid, 0)
        output = (version + offset) & 0x1F
        last = self._last.get(pid)
        if last is not None:
            if last[0] == body:
                output = last[1]
            elif output == last[1]:
                output = (output + 1) & 0x1F
            offset = (output - version) & 0x1F
        if offset:
            self._offsets[pid] = offset
        else:
            self._offsets.pop(pid, None)
        self._last[pid] = (body, output)

    def offset(self, pid: int) -> int:
        return self._offsets.get(pid, 0)

    def patch(self, data: bytes) -> bytes:
        """``data`` (whole packets) with the output versions; ``data`` itself if none changes."""
        if not self._offsets:
            return data
        out = None
        for pid, offset in self._offsets.items():
            for at in unit_starts(data, pid):
                packet = data[at:at + PACKET_SIZE]
                patched = self._cache.get(packet)
                if patched is None:
                    patched = _with_version(packet, offset)
                    if len(self._cache) >= CACHED_PACKETS:
                        self._cache.clear()
                    self._cache[packet] = patched
                if patched != packet:
                    if out is None:
                        out = bytearray(data)
                    out[at:at + PACKET_SIZE] = patched
        return data if out is None else bytes(out)


def _with_version(packet: bytes, offset: int) -> bytes:
    """``packet``, a unit start of a PSI PID, with its section's version moved on by
    ``offset`` and the CRC recomputed; ``packet`` itself if the section does not fit in it."""
    control = packet[3] >> 4 & 0x03
    at = 4
    if control & 0x02:
        at += 1 + packet[4]
    if not control & 0x01 or at >= PACKET_SIZE:
        return packet
    at += 1 + packet[at]  # the pointer field
    if at + 8 > PACKET_SIZE:
        return packet
    end = at + 3 + ((packet[at + 1] & 0x0F) << 8 | packet[at + 2])
    if end > PACKET_SIZE or end - at < 12:
        return packet
    out = bytearray(packet)
    version = (out[at + 5] >> 1) + offset & 0x1F
    out[at + 5] = out[at + 5] & 0xC1 | version << 1
    out[end - 4:end] = crc32(bytes(out[at:end - 4])).to_bytes(4, "big")
    return bytes(out)
