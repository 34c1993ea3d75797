"""Where a transport stream keeps its clocks, and how to move them.

A file looped as a live stream must not go back in time at each lap: its
program clock references (PCR), presentation and decoding time stamps (PTS,
DTS) and continuity counters (CC) are carried on, lap after lap.  This module
finds those fields once (a per-packet scan, meant for a file planned once)
and writes a copy of the data with every one of them moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .packets import PACKET_SIZE, SYNC_BYTE

PCR_HZ = 27_000_000
PTS_HZ = 90_000
PTS_WRAP = 1 << 33
PCR_WRAP = PTS_WRAP * 300
NULL_PID = 0x1FFF
#: stream_ids whose PES header has no PTS/DTS fields (ISO 13818-1 2.4.3.7).
_NO_TIMESTAMPS = {0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF}


@dataclass
class Clocks:
    """The clock fields of a run of packets, by byte offset."""

    pcrs: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, pid, PCR in 27 MHz ticks)
    stamps: list[tuple[int, int, int]] = field(default_factory=list)  # (offset, pid, PTS or DTS in 90 kHz ticks)
    dts: dict[int, list[int]] = field(default_factory=dict)  # pid -> decoding times (DTS, else PTS) in order
    counters: dict[int, list[int]] = field(default_factory=dict)  # pid -> offsets of its packets
    first_cc: dict[int, int] = field(default_factory=dict)
    last_cc: dict[int, int] = field(default_factory=dict)


def scan(data: bytes) -> Clocks:
    """Find every PCR, PTS, DTS and continuity counter in whole, aligned packets."""
    clocks = Clocks()
    for offset in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        if data[offset] != SYNC_BYTE:
            continue
        pid = (data[offset + 1] & 0x1F) << 8 | data[offset + 2]
        control = data[offset + 3] >> 4 & 3
        payload = offset + 4
        if control & 2:  # adaptation field
            length = data[offset + 4]
            if length >= 7 and data[offset + 5] & 0x10:
                clocks.pcrs.append((offset + 6, pid, read_pcr(data, offset + 6)))
            payload += 1 + length
        if pid == NULL_PID:
            continue
        # Every packet of the PID moves with its counter, though only those
        # with a payload count (an adaptation-only packet repeats the last).
        clocks.counters.setdefault(pid, []).append(offset)
        if not control & 1:
            continue
        cc = data[offset + 3] & 0x0F
        clocks.first_cc.setdefault(pid, cc)
        clocks.last_cc[pid] = cc
        if data[offset + 1] & 0x40 and payload + 19 <= offset + PACKET_SIZE:
            _scan_pes(data, payload, pid, clocks)
    return clocks


def _scan_pes(data: bytes, start: int, pid: int, clocks: Clocks) -> None:
    if data[start:start + 3] != b"\0\0\1" or data[start + 3] in _NO_TIMESTAMPS:
        return
    flags = data[start + 7] >> 6
    if flags & 2:
        pts = read_stamp(data, start + 9)
        clocks.stamps.append((start + 9, pid, pts))
        decode = pts
        if flags == 3:
            decode = read_stamp(data, start + 14)
            clocks.stamps.append((start + 14, pid, decode))
        clocks.dts.setdefault(pid, []).append(decode)


def read_pcr(data: bytes, pos: int) -> int:
    b = data[pos:pos + 6]
    base = b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7
    return base * 300 + ((b[4] & 1) << 8 | b[5])


def write_pcr(buf: bytearray, pos: int, value: int) -> None:
    base, extension = divmod(value % PCR_WRAP, 300)
    buf[pos:pos + 6] = bytes((base >> 25 & 0xFF, base >> 17 & 0xFF, base >> 9 & 0xFF, base >> 1 & 0xFF,
                              (base & 1) << 7 | 0x7E | extension >> 8, extension & 0xFF))


def read_stamp(data: bytes, pos: int) -> int:
    b = data[pos:pos + 5]
    return (b[0] >> 1 & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def write_stamp(buf: bytearray, pos: int, value: int) -> None:
    value %= PTS_WRAP
    buf[pos:pos + 5] = bytes((buf[pos] & 0xF0 | value >> 29 & 0x0E | 1, value >> 22 & 0xFF,
                              value >> 14 & 0xFE | 1, value >> 7 & 0xFF, value << 1 & 0xFE | 1))


def span(clocks: Clocks) -> int:
    """90 kHz ticks from the start of the data to where a copy must start to
    carry on as the same stream: past the last PCR by one usual interval,
    and always past the end of every PID's last frame (its last decoding time
    plus its usual step), so every decoding time rises from lap to lap."""
    ticks = 0
    if len(clocks.pcrs) >= 2:
        first, last = clocks.pcrs[0][2], clocks.pcrs[-1][2]
        covered = (last - first) % PCR_WRAP
        ticks = (covered + covered // (len(clocks.pcrs) - 1)) // 300
    for times in clocks.dts.values():
        top = max((t - times[0]) % PTS_WRAP for t in times)
        steps = sorted((b - a) % PTS_WRAP for a, b in zip(times, times[1:]))
        frame = steps[len(steps) // 2] if steps else 0
        ticks = max(ticks, top + max(frame, 1))
    return ticks


def moved(data: bytes, clocks: Clocks, ticks: int, lap: int) -> bytes:
    """A copy of ``data`` as lap ``lap`` of a loop: every clock ``lap * ticks``
    (90 kHz) later, every continuity counter carried on from the lap before."""
    if lap == 0:
        return data
    buf = bytearray(data)
    shift = lap * ticks
    for pos, _, value in clocks.pcrs:
        write_pcr(buf, pos, value + shift * 300)
    for pos, _, value in clocks.stamps:
        write_stamp(buf, pos, value + shift)
    for pid, offsets in clocks.counters.items():
        if pid not in clocks.first_cc:
            continue
        step = (clocks.last_cc[pid] + 1 - clocks.first_cc[pid]) * lap % 16
        if step:
            for offset in offsets:
                b = buf[offset + 3]
                buf[offset + 3] = b & 0xF0 | (b + step) & 0x0F
    return bytes(buf)


def first_pts(data: bytes, packets: int = 64) -> int | None:
    """The PTS (90 kHz) of the first PES header among the first ``packets``
    packets of ``data`` (whole, aligned packets), or None.  Read once where a
    segment starts, so the few packets looked at cost nothing per packet."""
    end = min(len(data), packets * PACKET_SIZE) - PACKET_SIZE
    for offset in range(0, end + 1, PACKET_SIZE):
        if data[offset] != SYNC_BYTE or not data[offset + 1] & 0x40:
            continue
        if (data[offset + 1] & 0x1F) << 8 | data[offset + 2] == NULL_PID:
            continue
        control = data[offset + 3] >> 4 & 3
        if not control & 1:
            continue
        start = offset + 4 + (1 + data[offset + 4] if control & 2 else 0)
        if (start + 14 <= offset + PACKET_SIZE and data[start:start + 3] == b"\0\0\1"
                and data[start + 3] not in _NO_TIMESTAMPS and data[start + 7] & 0x80):
            return read_stamp(data, start + 9)
    return None
