"""Splices a receiver accepts: a slow viewer's skips and a new connection
with another program are marked, complete every payload unit they leave,
and give the output's PAT a new version when the program changes."""

from restreamer.core.hub import Hub
from restreamer.ts.analysis import Analyser
from restreamer.ts.packets import PACKET_SIZE
from restreamer.ts.psi import SectionAssembler, crc32, parse_pat
from restreamer.ts.splice import is_discontinuity_packet, marks, tail
from restreamer.ts.versions import OutputVersions
from tests.support.ts import load_sample, packet_cc, packet_pid, packets_of, seamless_laps
from tests.unit.clock import FakeClock
from tests.unit.conftest import stream_settings

SAMPLE = load_sample()
VIDEO = 0x100


def _pat(pmt_pid: int, version: int = 0) -> bytes:
    body = bytes((0x00, 0xB0, 13, 0, 1, 0xC1 | version << 1, 0, 0, 0, 1, 0xE0 | pmt_pid >> 8, pmt_pid & 0xFF))
    return body + crc32(body).to_bytes(4, "big")


def _packet(pid: int, section: bytes, counter: int = 0) -> bytes:
    packet = bytes((0x47, 0x40 | pid >> 8, pid & 0xFF, 0x10 | counter, 0)) + section
    return packet + b"\xff" * (PACKET_SIZE - len(packet))


def _pat_version(packet: bytes) -> int:
    (section,) = SectionAssembler().feed(packet)
    return parse_pat(section).version  # parse_pat checks the CRC too


def test_a_pat_naming_another_pmt_under_the_same_version_gets_the_next_one():
    versions = OutputVersions()
    first, other = _pat(0x1000), _pat(0x1100)
    versions.observe(0, first)
    assert versions.patch(_packet(0, first)) == _packet(0, first)  # nothing to change: no copy
    versions.observe(0, other)  # a failover: version 0 of another program
    assert _pat_version(versions.patch(_packet(0, other, 5))) == 1
    versions.observe(0, other)  # the same PAT repeated: the same version
    assert _pat_version(versions.patch(_packet(0, other, 6))) == 1
    versions.observe(0, first)  # back to the first upstream
    assert _pat_version(versions.patch(_packet(0, first, 7))) == 2
    versions.observe(0, _pat(0x1000, 3))  # its encoder restarted: same program, other version
    assert _pat_version(versions.patch(_packet(0, _pat(0x1000, 3)))) == 2


def _video_packets(data: bytes) -> list[bytes]:
    return [p for p in packets_of(data) if packet_pid(p) == VIDEO and p[3] & 0x10]


def test_a_tail_completes_each_unit_and_marks_continue_each_counter():
    video = _video_packets(SAMPLE)
    starts = [i for i, p in enumerate(video) if p[1] & 0x40]
    middle = starts[3] + 2  # inside a PES
    offset = SAMPLE.index(video[middle])
    rest = tail([SAMPLE], offset, {VIDEO}, 1 << 20)
    assert packets_of(rest) == video[middle:starts[4]]
    assert tail([SAMPLE[:offset], SAMPLE[offset:]], offset, {VIDEO}, 1 << 20) == rest  # across chunks
    assert tail([SAMPLE], offset, {VIDEO}, 2 * PACKET_SIZE) == b""  # out of reach: nothing
    found, missing = marks([SAMPLE[SAMPLE.index(video[starts[4]]):]], {VIDEO, 0x1234})
    assert missing == {0x1234}
    assert is_discontinuity_packet(found) and packet_pid(found) == VIDEO
    assert (packet_cc(found) + 1) & 0x0F == packet_cc(video[starts[4]])


def test_a_slow_viewers_skips_are_marked_and_leave_no_unit_cut_short():
    clock = FakeClock()
    hub = Hub("/s.ts", stream_settings(backlogbytes=120 * 1024, keepalive=0), clock)
    hub.restart_at_rap()
    viewer = hub.add("slow")
    body = viewer.chunks()
    assert next(body) == b""
    received = []
    piece = 16 * PACKET_SIZE
    laps = seamless_laps(SAMPLE, 4)
    for lap, at in enumerate(range(0, len(laps), piece)):
        hub.publish(laps[at:at + piece], at_once=True)
        clock.advance(0.01)
        if lap % 3 == 0:  # takes one write in three: falls out of the backlog again and again
            received.append(next(body))
    assert viewer.packets_dropped > 0
    output = b"".join(received)
    analyser = Analyser()
    analyser.feed(output, clock.now())
    assert analyser.error_counts()["Continuity_count_error"] == 0
    # Every run a skip leaves ends where its video PES ends.
    packets = packets_of(output)
    jumps = [i for i, p in enumerate(packets) if is_discontinuity_packet(p) and packet_pid(p) == VIDEO]
    assert len(jumps) >= 2
    video = _video_packets(laps)
    for jump in jumps:
        before = next(p for p in reversed(packets[:jump]) if packet_pid(p) == VIDEO and p[3] & 0x10)
        after = video[(video.index(before) + 1) % len(video)]
        assert after[1] & 0x40, "the run before a skip ends inside a video PES"
