"""restreamer.ts.starts and restreamer.core.backlog on the bundled sample
(H.264/AAC, a keyframe every 25 frames), fed in pieces of any size."""

import pytest

from restreamer.core.backlog import Backlog
from restreamer.ts.packets import PACKET_SIZE
from restreamer.ts.psi import crc32, packet_pid, random_access, unit_starts
from restreamer.ts.starts import StartPoints
from tests.support.ts import load_sample, make_packets

SAMPLE = load_sample()
VIDEO_PID, PMT_PID = 0x100, 0x1000
RAPS = [o for o in unit_starts(SAMPLE, VIDEO_PID) if random_access(SAMPLE, o)]


def _starts(data: bytes, piece: int) -> list[tuple[int, bytes]]:
    points = StartPoints()
    found = []
    for base in range(0, len(data), piece):
        found.extend((base + o, prefix) for o, prefix in points.scan(data[base:base + piece]))
    return found


@pytest.mark.parametrize("piece", [PACKET_SIZE, 7 * PACKET_SIZE, 64 * PACKET_SIZE, len(SAMPLE)])
def test_every_keyframe_after_the_first_pat_and_pmt_is_a_start(piece):
    starts = _starts(SAMPLE, piece)
    assert [o for o, _ in starts] == RAPS
    for offset, prefix in starts:
        assert [packet_pid(prefix, o) for o in range(0, len(prefix), PACKET_SIZE)] == [0, PMT_PID]
        # the latest copies before the RAP: their continuity counters run on into the stream
        pat, pmt = prefix[:PACKET_SIZE], prefix[PACKET_SIZE:]
        assert SAMPLE.rfind(pat, 0, offset) >= 0 and SAMPLE.rfind(pmt, 0, offset) >= 0
        later_pat = SAMPLE.find(b"\x47\x40\x00", offset)
        if later_pat >= 0 and later_pat % PACKET_SIZE == 0:
            assert SAMPLE[later_pat + 3] & 0x0F == (pat[3] + 1) & 0x0F


def test_a_stream_without_video_starts_at_each_pat():
    # the sample as a radio stream: no video packets, a PMT that lists only the AAC
    radio_pmt = _single_packet(PMT_PID, _section(0x02, bytes((0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x01,
                                                              0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00))))
    packets = []
    for o in range(0, len(SAMPLE), PACKET_SIZE):
        pid = packet_pid(SAMPLE, o)
        if pid == PMT_PID:
            packets.append(radio_pmt)
        elif pid != VIDEO_PID:
            packets.append(SAMPLE[o:o + PACKET_SIZE])
    radio = b"".join(packets)
    starts = _starts(radio, 7 * PACKET_SIZE)
    pats = [o for o in range(0, len(radio), PACKET_SIZE) if packet_pid(radio, o) == 0]
    assert starts and all(prefix == b"" for _, prefix in starts)
    assert [o for o, _ in starts] == pats[1:]  # every PAT once the first PAT and PMT are known


def _section(table_id: int, body: bytes) -> bytes:
    length = len(body) + 4
    section = bytes((table_id, 0xB0 | length >> 8, length & 0xFF)) + body
    return section + crc32(section).to_bytes(4, "big")


def _single_packet(pid: int, section: bytes) -> bytes:
    data = b"\x00" + section
    return bytes((0x47, 0x40 | pid >> 8, pid & 0xFF, 0x10)) + data + b"\xff" * (184 - len(data))


def test_packets_without_a_pat_give_no_start():
    points = StartPoints()
    assert points.scan(make_packets(500)) == [] and points.pats == 0 and not points.known


def test_the_backlog_splits_at_starts_and_keeps_its_bounds():
    backlog = Backlog(max_bytes=len(SAMPLE) // 2, max_seconds=100)
    points = StartPoints()
    piece = 64 * PACKET_SIZE
    now = 0.0
    for base in range(0, len(SAMPLE), piece):
        chunk = SAMPLE[base:base + piece]
        backlog.append(chunk, now, points.scan(chunk))
        backlog.drop(backlog.excess(now))
    assert backlog.size <= len(SAMPLE) // 2 + piece
    assert b"".join(backlog.chunks) == SAMPLE[len(SAMPLE) - backlog.size:]
    for index, prefix in backlog.starts:
        chunk = backlog.chunk(index)
        assert random_access(chunk, 0) and backlog.position(index) in RAPS


def test_the_backlog_drops_by_age_but_keeps_the_newest_chunk():
    backlog = Backlog(max_bytes=10**9, max_seconds=1)
    backlog.append(make_packets(10), 0.0)
    backlog.append(make_packets(10), 0.5)
    assert backlog.excess(2.0) == 1
    backlog.drop(1)
    assert backlog.first == 1 and backlog.end == 2 and backlog.position(1) == 10 * PACKET_SIZE
