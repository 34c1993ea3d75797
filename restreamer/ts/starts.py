"""Where a viewer can start watching a stream without a broken picture.

A decoder needs the PAT, then the PMT, then a random-access point (RAP) of
the video.  :class:`StartPoints` follows a stream chunk by chunk, keeps the
latest PAT and PMT packets, and reports the offsets at which a viewer may
start, each with the PAT and PMT packets to send first.  A program without
video (radio, data) may be started at any PAT.  Lookups run per chunk
(``bytes.find`` on packet headers); only the few packets found that way are
read in Python.
"""

from __future__ import annotations

from .packets import PACKET_SIZE
from .psi import (NULL_PID, PAT_PID, TABLE_PAT, TABLE_PMT, SectionAssembler, SectionError, is_rap,
                  parse_pat, parse_pmt, pid_packets, unit_starts)
from .versions import OutputVersions

#: Video payload units without a single RAP after which the video's RAPs are
#: taken to be unrecognisable (an encrypted or unknown codec) and viewers
#: start at PATs instead: waiting for a RAP that never comes would hold them forever.
NO_RAP_UNITS = 600
#: Packets kept of one section; a PAT or PMT this long is not a PAT or PMT.
MAX_SECTION_PACKETS = 8


class _Table:
    """The latest section of one PSI PID and the packets that carried it."""

    __slots__ = ("pid", "table_id", "assembler", "unit", "section", "packets", "parsed", "versions")

    def __init__(self, pid: int, table_id: int, versions: OutputVersions | None = None):
        self.versions = versions
        self.pid = pid
        self.table_id = table_id
        self.assembler = SectionAssembler()
        self.unit: list[bytes] = []
        self.section: bytes | None = None
        self.packets = b""
        self.parsed = None

    def feed(self, chunk: bytes, offset: int) -> bool:
        """Feed one packet; True if it completed a section that differs from the last."""
        packet = chunk[offset:offset + PACKET_SIZE]
        if packet[1] & 0x40:
            self.unit = [packet]
        elif len(self.unit) < MAX_SECTION_PACKETS:
            self.unit.append(packet)
        changed = False
        for section in self.assembler.feed(packet):
            if section[0] != self.table_id:
                continue
            if section != self.section:
                try:
                    parsed = parse_pat(section) if self.table_id == TABLE_PAT else parse_pmt(section)
                except SectionError:
                    continue  # a corrupt copy: the last good one stays
                self.section, self.parsed, changed = section, parsed, True
                if self.versions is not None:
                    self.versions.observe(self.pid, section)
            self.packets = b"".join(self.unit)
        return changed


class StartPoints:
    """Follows one connection's stream and finds where viewers may start in it."""

    __slots__ = ("_pat", "_pmts", "video", "codec", "pats", "_units_without_rap", "_raps",
                 "_versions")

    def __init__(self, versions: OutputVersions | None = None) -> None:
        """``versions``: told of every new PAT and PMT section (the output's versions)."""
        self._versions = versions
        self._pat = _Table(PAT_PID, TABLE_PAT, versions)
        self._pmts: dict[int, _Table] = {}
        self.video: int | None = None  # the PID whose RAPs start viewers
        self.codec = ""
        self.pats = 0  # PAT packets seen
        self._units_without_rap = 0
        self._raps = False  # a RAP has been recognised on the video PID

    @property
    def known(self) -> bool:
        """The PAT and every PMT it lists have been read."""
        return self._pat.parsed is not None and all(t.parsed is not None for t in self._pmts.values())

    @property
    def at_pats(self) -> bool:
        """Viewers start at PATs: no video, or a video whose RAPs cannot be recognised."""
        return self.video is None or (not self._raps and self._units_without_rap >= NO_RAP_UNITS)

    @property
    def pids(self) -> set[int]:
        """The PIDs of the PAT, the PMTs and what they list (elementary streams, PCR)."""
        pids = {PAT_PID, *self._pmts}
        for table in self._pmts.values():
            if table.parsed is not None:
                pids.add(table.parsed.pcr_pid)
                pids.update(stream.pid for stream in table.parsed.streams)
        pids.discard(NULL_PID)
        return pids

    def prefix(self) -> bytes:
        """The latest PAT and PMT packets, in the PAT's order."""
        return self._pat.packets + b"".join(t.packets for t in self._pmts.values())

    def scan(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """The offsets in ``chunk`` where a viewer may start, each with the
        PAT and PMT packets to send before it (empty where the start is a PAT)."""
        points: list[tuple[int, bytes]] = []
        start = 0
        while start is not None:
            start = self._scan(chunk, start, points)
        return points

    def _scan(self, chunk: bytes, start: int, points: list[tuple[int, bytes]]) -> int | None:
        """Scan from ``start``; where the PIDs to look at change, the offset to rescan from."""
        events = [(o, PAT_PID) for o in pid_packets(chunk, PAT_PID) if o >= start]
        for pid in self._pmts:
            events.extend((o, pid) for o in pid_packets(chunk, pid) if o >= start)
        video = self.video
        if video is not None and self.known:
            events.extend((o, -1) for o in unit_starts(chunk, video) if o >= start)
        events.sort()
        for offset, pid in events:
            if pid == PAT_PID:
                self.pats += 1
                if chunk[offset + 1] & 0x40 and self.known and self.at_pats:
                    points.append((offset, b""))
                if self._pat.feed(chunk, offset):
                    self._programs_changed()
                    return offset + PACKET_SIZE
            elif pid >= 0:
                if self._pmts[pid].feed(chunk, offset) and self._choose_video():
                    return offset + PACKET_SIZE
            elif is_rap(chunk, offset, self.codec):
                self._raps = True
                self._units_without_rap = 0
                if not self.at_pats:
                    points.append((offset, self.prefix()))
            else:
                self._units_without_rap += 1
        return None

    def _programs_changed(self) -> None:
        programs = self._pat.parsed.programs
        self._pmts = {pid: self._pmts.get(pid) or _Table(pid, TABLE_PMT, self._versions) for pid in programs.values()}
        self._choose_video()

    def _choose_video(self) -> bool:
        """Take the first program's video (in PAT order) as the one to start at; True if it changed."""
        chosen = (None, "")
        for table in self._pmts.values():
            stream = table.parsed.video if table.parsed is not None else None
            if stream is not None:
                chosen = (stream.pid, stream.codec)
                break
        if chosen == (self.video, self.codec):
            return False
        self.video, self.codec = chosen
        self._units_without_rap = 0
        self._raps = False
        return True
