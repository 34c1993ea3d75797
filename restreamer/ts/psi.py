"""Program-specific information and random-access points, read from packets.

What the engine needs to start a viewer cleanly (the latest PAT and PMT, the
packets where a video GOP begins) and what the analyser needs to name a
stream's programs and codecs.  Lookups run per chunk: the packets of one PID
that start a payload unit are found with ``bytes.find`` on their 3-byte
header, so only those packets (a few dozen a second) are looked at in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .packets import PACKET_SIZE, SYNC_BYTE

PAT_PID = 0x0000
NULL_PID = 0x1FFF
#: A null packet: PID 0x1FFF, payload only, payload all 0xFF (ISO 13818-1 2.4.3.3).
NULL_PACKET = bytes((SYNC_BYTE, 0x1F, 0xFF, 0x10)) + b"\xff" * (PACKET_SIZE - 4)

TABLE_PAT = 0x00
TABLE_PMT = 0x02

#: stream_type -> (codec name as ffprobe spells it, kind).  Private data (0x06)
#: is named by its descriptors, see :data:`_PRIVATE_DESCRIPTORS`.
STREAM_TYPES: dict[int, tuple[str, str]] = {
    0x01: ("mpeg1video", "video"),
    0x02: ("mpeg2video", "video"),
    0x03: ("mp2", "audio"),
    0x04: ("mp2", "audio"),
    0x0F: ("aac", "audio"),
    0x10: ("mpeg4", "video"),
    0x11: ("aac_latm", "audio"),
    0x15: ("id3", "data"),
    0x1B: ("h264", "video"),
    0x24: ("hevc", "video"),
    0x33: ("vvc", "video"),
    0x42: ("cavs", "video"),
    0x81: ("ac3", "audio"),
    0x82: ("dts", "audio"),
    0x86: ("scte35", "data"),
    0x87: ("eac3", "audio"),
    0xD1: ("dirac", "video"),
    0xEA: ("vc1", "video"),
}
_PRIVATE_DESCRIPTORS = {
    0x56: ("dvb_teletext", "subtitle"),
    0x59: ("dvb_subtitle", "subtitle"),
    0x6A: ("ac3", "audio"),
    0x7A: ("eac3", "audio"),
    0x7B: ("dts", "audio"),
}
_REGISTRATIONS = {b"AC-3": ("ac3", "audio"), b"EAC3": ("eac3", "audio"),
                  b"HEVC": ("hevc", "video"), b"Opus": ("opus", "audio")}


# -- packets -----------------------------------------------------------------


def packet_pid(data: bytes, offset: int = 0) -> int:
    return (data[offset + 1] & 0x1F) << 8 | data[offset + 2]


def unit_starts(chunk: bytes, pid: int) -> Iterator[int]:
    """Offsets of the packets of ``pid`` in ``chunk`` that start a payload unit (PES or section).

    ``chunk`` holds whole, aligned packets.  The search is for the header
    bytes themselves (sync, PUSI and PID; error and priority bits clear), so a
    match inside a payload is told apart by its offset.
    """
    needle = bytes((SYNC_BYTE, 0x40 | pid >> 8, pid & 0xFF))
    find = chunk.find
    offset = find(needle)
    while offset >= 0:
        if offset % PACKET_SIZE == 0:
            yield offset
            offset = find(needle, offset + PACKET_SIZE)
        else:
            offset = find(needle, offset + 1)


def pid_packets(chunk: bytes, pid: int) -> list[int]:
    """Offsets of every packet of ``pid`` in ``chunk`` (payload-unit starts or not), in order.

    For PIDs that are rare in a stream (PAT, PMT): two ``bytes.find`` scans
    on the header, as :func:`unit_starts` does for one.
    """
    offsets = list(unit_starts(chunk, pid))
    needle = bytes((SYNC_BYTE, pid >> 8, pid & 0xFF))
    find = chunk.find
    offset = find(needle)
    while offset >= 0:
        if offset % PACKET_SIZE == 0:
            offsets.append(offset)
            offset = find(needle, offset + PACKET_SIZE)
        else:
            offset = find(needle, offset + 1)
    offsets.sort()
    return offsets


def payload(packet: bytes, offset: int = 0) -> bytes:
    """The payload of the packet at ``offset`` (after any adaptation field); b"" if none."""
    control = packet[offset + 3] >> 4 & 0x3
    start = offset + 4
    if control & 0x2:
        start += 1 + packet[offset + 4]
    if not control & 0x1 or start >= offset + PACKET_SIZE:
        return b""
    return packet[start:offset + PACKET_SIZE]


def random_access(packet: bytes, offset: int = 0) -> bool:
    """The adaptation field's random_access_indicator is set."""
    return bool(packet[offset + 3] & 0x20 and packet[offset + 4] and packet[offset + 5] & 0x40)


# -- sections ----------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32(data: bytes) -> int:
    """CRC-32/MPEG-2, as every PSI section ends with (0 over a whole valid section)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc << 8 & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


class SectionError(ValueError):
    """A PSI section that cannot be read: truncated, wrong table, or a bad CRC."""


class SectionAssembler:
    """Reassembles the PSI sections of one PID from its packets, in order.

    Sections are short (a PAT or PMT usually fits one packet), but may span
    several; a packet lost in between drops the section it belonged to.
    """

    __slots__ = ("_buffer", "_expected_cc")

    def __init__(self) -> None:
        self._buffer: bytearray | None = None
        self._expected_cc: int | None = None

    def feed(self, packet: bytes, offset: int = 0) -> list[bytes]:
        """The sections completed by the packet at ``offset``."""
        cc = packet[offset + 3] & 0x0F
        in_order = self._expected_cc is None or cc == self._expected_cc
        self._expected_cc = (cc + 1) & 0x0F
        data = payload(packet, offset)
        if not data:
            return []
        sections: list[bytes] = []
        if packet[offset + 1] & 0x40:  # payload_unit_start: a pointer field comes first
            pointer = data[0]
            if self._buffer is not None and in_order:
                self._buffer += data[1:1 + pointer]
                sections.extend(self._complete())
            self._buffer = bytearray(data[1 + pointer:])
        elif self._buffer is not None and in_order:
            self._buffer += data
        else:
            self._buffer = None
            return sections
        sections.extend(self._complete())
        return sections

    def _complete(self) -> list[bytes]:
        done = []
        buffer = self._buffer
        while buffer is not None and len(buffer) >= 3 and buffer[0] != 0xFF:
            length = 3 + ((buffer[1] & 0x0F) << 8 | buffer[2])
            if len(buffer) < length:
                break
            done.append(bytes(buffer[:length]))
            del buffer[:length]
        if buffer is not None and buffer[:1] == b"\xff":
            self._buffer = None  # stuffing: nothing more in this unit
        return done


def _check(section: bytes, table_id: int) -> None:
    if len(section) < 12:
        raise SectionError(f"section of {len(section)} bytes is too short")
    if section[0] != table_id:
        raise SectionError(f"table_id {section[0]:#04x}, expected {table_id:#04x}")
    if crc32(section):
        raise SectionError("CRC mismatch")


@dataclass(frozen=True)
class PAT:
    transport_stream_id: int
    version: int
    programs: dict[int, int]  # program_number -> PMT PID (program 0, the NIT, left out)


def parse_pat(section: bytes) -> PAT:
    _check(section, TABLE_PAT)
    programs = {}
    for i in range(8, len(section) - 4, 4):
        number = section[i] << 8 | section[i + 1]
        if number:
            programs[number] = (section[i + 2] & 0x1F) << 8 | section[i + 3]
    return PAT(section[3] << 8 | section[4], section[5] >> 1 & 0x1F, programs)


@dataclass(frozen=True)
class ElementaryStream:
    pid: int
    stream_type: int
    codec: str  # as ffprobe names it, or "unknown"
    kind: str  # video, audio, subtitle, data


@dataclass(frozen=True)
class PMT:
    program_number: int
    version: int
    pcr_pid: int
    streams: tuple[ElementaryStream, ...]

    @property
    def video(self) -> ElementaryStream | None:
        """The program's first video stream, the one whose keyframes start a viewer."""
        return next((s for s in self.streams if s.kind == "video"), None)


def parse_pmt(section: bytes) -> PMT:
    _check(section, TABLE_PMT)
    end = len(section) - 4
    position = 12 + ((section[10] & 0x0F) << 8 | section[11])
    streams = []
    while position + 5 <= end:
        stream_type = section[position]
        pid = (section[position + 1] & 0x1F) << 8 | section[position + 2]
        info_length = (section[position + 3] & 0x0F) << 8 | section[position + 4]
        descriptors = section[position + 5:position + 5 + info_length]
        codec, kind = _name(stream_type, descriptors)
        streams.append(ElementaryStream(pid, stream_type, codec, kind))
        position += 5 + info_length
    return PMT(section[3] << 8 | section[4], section[5] >> 1 & 0x1F,
               (section[8] & 0x1F) << 8 | section[9], tuple(streams))


def _name(stream_type: int, descriptors: bytes) -> tuple[str, str]:
    if stream_type in STREAM_TYPES:
        return STREAM_TYPES[stream_type]
    position = 0
    while position + 2 <= len(descriptors):
        tag, length = descriptors[position], descriptors[position + 1]
        if tag in _PRIVATE_DESCRIPTORS:
            return _PRIVATE_DESCRIPTORS[tag]
        if tag == 0x05:  # registration descriptor: a four-character format identifier
            known = _REGISTRATIONS.get(bytes(descriptors[position + 2:position + 6]))
            if known:
                return known
        position += 2 + length
    return "unknown", "data"


# -- keyframes ---------------------------------------------------------------


def _elementary_data(pes: bytes) -> bytes:
    """What follows the PES header, if ``pes`` begins with one."""
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
        return b""
    return pes[9 + pes[8]:]


def starts_keyframe(pes: bytes, codec: str) -> bool:
    """Whether a PES packet (its first TS payload) begins a picture a decoder can start at.

    H.264: an IDR slice (NAL type 5) or the sequence parameter set that
    precedes one; HEVC: an IRAP picture (NAL types 16 to 23) or its VPS/SPS;
    MPEG-1/2 video: a sequence header.  The fallback for encoders that do not
    set the random_access_indicator.  Parameter sets count because an
    encoder's first payload may hold them and a long SEI before the slice.
    """
    data = _elementary_data(pes)
    if codec in ("mpeg1video", "mpeg2video"):
        return data.find(b"\x00\x00\x01\xb3") >= 0
    if codec not in ("h264", "hevc"):
        return False
    position = data.find(b"\x00\x00\x01")
    while 0 <= position < len(data) - 3:
        header = data[position + 3]
        if codec == "h264":
            kind = header & 0x1F
            if kind in (5, 7):
                return True
            if kind in (1, 2):  # a non-IDR slice comes first: not a keyframe
                return False
        else:
            kind = header >> 1 & 0x3F
            if 16 <= kind <= 23 or kind in (32, 33):
                return True
            if kind < 16:
                return False
        position = data.find(b"\x00\x00\x01", position + 3)
    return False


def is_rap(packet: bytes, offset: int, codec: str) -> bool:
    """The packet at ``offset`` starts a video access unit that a decoder can start at."""
    return random_access(packet, offset) or starts_keyframe(payload(packet, offset), codec)
