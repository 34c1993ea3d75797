"""One program of a multi-program transport stream (a whole transponder, say).

:class:`ProgramFilter` passes on the packets of one program: its PMT and the
PIDs the PMT lists (and its PCR PID), with the PAT rewritten to list that
program only (same transport_stream_id, a continuity counter of its own).

Per chunk, not per packet: each packet's PID is looked up in a table of
8192 bytes by ``map`` over the chunk's strided PID bytes (no Python code runs
per packet), and a regular expression over those codes finds the runs of kept
packets, each passed on as one slice.  Only PAT and PMT packets, a few a
second, are handled one by one.
"""

from __future__ import annotations

import re
from itertools import repeat
from operator import lshift, or_

from .packets import PACKET_SIZE, SYNC_BYTE
from .psi import PAT_PID, SectionAssembler, SectionError, crc32, parse_pat, parse_pmt

_DROP, _KEEP, _PAT, _PMT = b"\0", b"\1", b"\2", b"\3"
#: A run of kept packets, or one PAT or PMT packet.
_RUNS = re.compile(b"\1+|\2|\3")
#: The PID's high bits from a packet's second byte.
_HIGH_BITS = bytes(byte & 0x1F for byte in range(256))


class ProgramGone(Exception):
    """The PAT no longer lists the program (or never did)."""


class ProgramFilter:
    """Filters whole packets down to program ``number``; raises :class:`ProgramGone`
    from :meth:`feed` when a PAT does not list it."""

    def __init__(self, number: int):
        self.number = number
        self._pat = SectionAssembler()
        self._pmt = SectionAssembler()
        self._pmt_pid: int | None = None
        self._pmt_version: int | None = None
        self._codes = self._table(set())
        self._pat_packet = b""  # the rewritten PAT, its continuity counter left 0
        self._pat_entries = None  # (transport_stream_id, PMT PID) it lists
        self._pat_version = 0
        self._cc = 0

    def feed(self, chunk: bytes) -> bytes:
        """The packets of the program in ``chunk`` (whole packets), the PAT rewritten."""
        codes = bytes(map(self._codes.__getitem__,
                          map(or_, map(lshift, chunk[1::PACKET_SIZE].translate(_HIGH_BITS), repeat(8)),
                              chunk[2::PACKET_SIZE])))
        view = memoryview(chunk)
        out = []
        for run in _RUNS.finditer(codes):
            start, end = run.start() * PACKET_SIZE, run.end() * PACKET_SIZE
            kind = run.group()[:1]
            if kind == _KEEP:
                out.append(view[start:end])
            else:
                before = self._codes
                if kind == _PAT:
                    out.extend(self._on_pat(chunk, start))
                else:
                    out.append(view[start:end])
                    self._on_pmt(chunk, start)
                if self._codes is not before:
                    # The PIDs kept have changed: the rest by the new table.
                    out.append(self.feed(chunk[end:]))
                    break
        return b"".join(out)

    def _on_pat(self, chunk: bytes, offset: int) -> list[bytes]:
        out = []
        for section in self._pat.feed(chunk, offset):
            try:
                pat = parse_pat(section)
            except SectionError:
                continue
            if self.number not in pat.programs:
                listed = ", ".join(map(str, sorted(pat.programs))) or "none"
                raise ProgramGone(f"program {self.number} is not in the PAT (it lists {listed})")
            entries = (pat.transport_stream_id, pat.programs[self.number])
            if entries != self._pat_entries:
                self._rewrite(*entries)
            out.append(self._next_pat())
        return out

    def _rewrite(self, transport_stream_id: int, pmt_pid: int) -> None:
        if self._pat_entries is not None:
            self._pat_version = (self._pat_version + 1) & 0x1F
        self._pat_entries = (transport_stream_id, pmt_pid)
        body = bytes((0x00, 0xB0, 13, transport_stream_id >> 8, transport_stream_id & 0xFF,
                      0xC1 | self._pat_version << 1, 0, 0,
                      self.number >> 8, self.number & 0xFF, 0xE0 | pmt_pid >> 8, pmt_pid & 0xFF))
        section = body + crc32(body).to_bytes(4, "big")
        header = bytes((SYNC_BYTE, 0x40 | PAT_PID >> 8, PAT_PID & 0xFF, 0x10, 0))
        self._pat_packet = (header + section).ljust(PACKET_SIZE, b"\xff")
        if pmt_pid != self._pmt_pid:
            self._pmt_pid, self._pmt_version = pmt_pid, None
            self._pmt = SectionAssembler()
            self._codes = self._table(set())

    def _next_pat(self) -> bytes:
        packet = bytearray(self._pat_packet)
        packet[3] = 0x10 | self._cc
        self._cc = (self._cc + 1) & 0x0F
        return bytes(packet)

    def _on_pmt(self, chunk: bytes, offset: int) -> None:
        for section in self._pmt.feed(chunk, offset):
            try:
                pmt = parse_pmt(section)
            except SectionError:
                continue
            if pmt.program_number != self.number or pmt.version == self._pmt_version:
                continue
            self._pmt_version = pmt.version
            pids = {stream.pid for stream in pmt.streams} | {pmt.pcr_pid}
            pids.discard(0x1FFF)  # "no PCR"
            table = self._table(pids)
            if table != self._codes:
                self._codes = table

    def _table(self, pids: set[int]) -> bytes:
        """The code of every PID: the PAT, the program's PMT, its PIDs, or dropped."""
        codes = bytearray(_DROP * 8192)
        for pid in pids:
            codes[pid & 0x1FFF] = _KEEP[0]
        if self._pmt_pid is not None:
            codes[self._pmt_pid] = _PMT[0]
        codes[PAT_PID] = _PAT[0]
        return bytes(codes)
