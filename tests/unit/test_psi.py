"""restreamer.ts.psi on the bundled sample (ffmpeg-made H.264/AAC, a keyframe
every 25 frames) and on hand-built packets."""

import pytest

from restreamer.ts.packets import PACKET_SIZE
from restreamer.ts.psi import (NULL_PACKET, SectionAssembler, SectionError, crc32, is_rap,
                               packet_pid, parse_pat, parse_pmt, payload, random_access,
                               starts_keyframe, unit_starts)
from tests.support.ts import load_sample

SAMPLE = load_sample()
VIDEO_PID, AUDIO_PID, PMT_PID = 0x100, 0x101, 0x1000


def _sections(pid):
    assembler = SectionAssembler()
    for offset in range(0, len(SAMPLE), PACKET_SIZE):
        if packet_pid(SAMPLE, offset) == pid:
            yield from assembler.feed(SAMPLE, offset)


def test_the_pat_names_the_pmt():
    pat = parse_pat(next(_sections(0)))
    assert pat.programs == {1: PMT_PID}


def test_the_pmt_names_codecs_and_the_pcr_pid():
    pmt = parse_pmt(next(_sections(PMT_PID)))
    assert pmt.program_number == 1
    assert pmt.pcr_pid == VIDEO_PID
    assert [(s.pid, s.codec, s.kind) for s in pmt.streams] == [
        (VIDEO_PID, "h264", "video"), (AUDIO_PID, "aac", "audio")]
    assert pmt.video.pid == VIDEO_PID


def test_every_repeated_section_is_read():
    # the muxer repeats PAT and PMT (resend_headers): each copy parses the same
    pats = [parse_pat(s) for s in _sections(0)]
    assert len(pats) > 10 and len(set(p.programs[1] for p in pats)) == 1


def test_a_corrupt_section_is_refused():
    section = bytearray(next(_sections(0)))
    section[9] ^= 0x01
    with pytest.raises(SectionError, match="CRC"):
        parse_pat(bytes(section))
    with pytest.raises(SectionError, match="table_id"):
        parse_pmt(next(_sections(0)))
    assert crc32(next(_sections(0))) == 0


def test_unit_starts_finds_each_video_pes_by_its_header_only():
    starts = list(unit_starts(SAMPLE, VIDEO_PID))
    assert all(o % PACKET_SIZE == 0 and packet_pid(SAMPLE, o) == VIDEO_PID for o in starts)
    assert all(SAMPLE[o + 1] & 0x40 for o in starts)
    # one PES per frame: the sample has 150 frames
    assert len(starts) == 150


def test_keyframes_are_found_by_flag_and_by_content_alike():
    starts = list(unit_starts(SAMPLE, VIDEO_PID))
    by_flag = [o for o in starts if random_access(SAMPLE, o)]
    by_content = [o for o in starts if starts_keyframe(payload(SAMPLE, o), "h264")]
    assert len(by_flag) == 6  # 150 frames, a GOP of 25
    assert by_content == by_flag
    assert [o for o in starts if is_rap(SAMPLE, o, "h264")] == by_flag


def test_audio_never_starts_a_keyframe():
    assert not any(starts_keyframe(payload(SAMPLE, o), "aac") for o in unit_starts(SAMPLE, AUDIO_PID))


def test_a_null_packet_is_a_null_packet():
    assert len(NULL_PACKET) == PACKET_SIZE and packet_pid(NULL_PACKET) == 0x1FFF
    assert payload(NULL_PACKET) == b"\xff" * 184


def _pmt_with(streams: int) -> bytes:
    """A valid PMT section listing ``streams`` AAC streams (5 bytes each)."""
    body = bytes((0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00))
    for i in range(streams):
        pid = 0x200 + i
        body += bytes((0x0F, 0xE0 | pid >> 8, pid & 0xFF, 0xF0, 0x00))
    length = len(body) + 4
    head = bytes((0x02, 0xB0 | length >> 8, length & 0xFF))
    section = head + body
    return section + crc32(section).to_bytes(4, "big")


def _packets(pid: int, section: bytes, first_cc: int = 0) -> list[bytes]:
    """``section`` carried on ``pid``: a pointer field, then continuation packets, stuffed."""
    data = b"\x00" + section
    packets = []
    for i, start in enumerate(range(0, len(data), 184)):
        piece = data[start:start + 184]
        header = bytes((0x47, (0x40 if i == 0 else 0) | pid >> 8, pid & 0xFF,
                        0x10 | (first_cc + i) & 0x0F))
        packets.append(header + piece + b"\xff" * (184 - len(piece)))
    return packets


def test_a_section_spread_over_packets_is_reassembled():
    section = _pmt_with(60)  # 317 bytes: two packets
    first, second = _packets(PMT_PID, section)
    assembler = SectionAssembler()
    assert assembler.feed(first) == []
    assert assembler.feed(second) == [section]
    assert len(parse_pmt(section).streams) == 60


def test_a_lost_packet_drops_its_section_and_the_next_one_is_read():
    section = _pmt_with(60)
    first, _lost = _packets(PMT_PID, section)
    again = _packets(PMT_PID, section, first_cc=2)
    assembler = SectionAssembler()
    assert assembler.feed(first) == []
    assert assembler.feed(again[0]) == []  # the torn section is dropped, not spliced
    assert assembler.feed(again[1]) == [section]
