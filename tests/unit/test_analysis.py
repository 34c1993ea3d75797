"""restreamer.ts.analysis on the bundled sample, clean and with faults put in.

Chunks are fed as the upstream does (whole packets, about one hub window
each) with the arrival times a live stream at the sample's pace would have.
"""

import pytest

from restreamer.ts.analysis import Analyser
from restreamer.ts.packets import PACKET_SIZE, PacketAligner
from tests.support.ts import load_sample, packet_pid, seamless_laps

SAMPLE = load_sample()
#: The sample's pace: its bytes over its duration (150 frames at 25 fps).
BYTES_PER_SECOND = len(SAMPLE) / 6.0
VIDEO_PID, AUDIO_PID, PMT_PID = 0x100, 0x101, 0x1000
CHUNK = 28 * PACKET_SIZE


def analyse(data: bytes, analyser: Analyser | None = None, start: float = 0.0) -> Analyser:
    analyser = analyser or Analyser()
    aligner = PacketAligner()
    analyser.connected(aligner, start)
    for offset in range(0, len(data), CHUNK):
        chunk = aligner.feed(data[offset:offset + CHUNK])
        if chunk:
            analyser.feed(chunk, start + offset / BYTES_PER_SECOND)
    return analyser


def offsets_of(data: bytes, pid: int) -> list[int]:
    return [o for o in range(0, len(data), PACKET_SIZE) if packet_pid(data[o:o + 4]) == pid]


def errors(analyser: Analyser) -> dict:
    return {name: n for name, n in analyser.error_counts().items() if n}


def test_a_clean_looped_stream_has_no_errors_and_names_its_programs():
    analyser = analyse(seamless_laps(SAMPLE, 3))
    now = 3 * len(SAMPLE) / BYTES_PER_SECOND
    report = analyser.snapshot(now)
    assert errors(analyser) == {}
    assert report["skipped_bytes"] == 0
    [program] = report["programs"]
    assert (program["program"], program["pmt_pid"], program["pcr_pid"], program["pcr"]) == (
        1, PMT_PID, VIDEO_PID, True)
    assert [(s["pid"], s["codec"], s["kind"]) for s in program["streams"]] == [
        (VIDEO_PID, "h264", "video"), (AUDIO_PID, "aac", "audio")]
    # bitrates within a chunk's worth of the sample's pace, video the most of it
    assert abs(report["bitrate"] - BYTES_PER_SECOND * 8) < CHUNK * 8
    assert program["streams"][0]["bitrate"] > 0.8 * report["bitrate"]
    # a keyframe every 25 frames at 25 fps
    assert abs(report["keyframe_interval"] - 1.0) < 0.05
    assert 0 <= report["keyframe_age"] <= 1.05


def test_plain_repetition_jumps_each_counter_at_the_join():
    # what a naive loop sends: SDT, video and audio jump once per join
    analyser = analyse(SAMPLE * 2)
    assert errors(analyser) == {"Continuity_count_error": 3}
    assert dict(analyser.cc_errors) == {0x11: 1, VIDEO_PID: 1, AUDIO_PID: 1}


def test_a_lost_packet_is_one_continuity_error_on_its_pid():
    video = offsets_of(SAMPLE, VIDEO_PID)
    data = bytearray(SAMPLE)
    for offset in sorted((video[100], video[900], video[2000]), reverse=True):
        del data[offset:offset + PACKET_SIZE]
    analyser = analyse(bytes(data))
    assert errors(analyser) == {"Continuity_count_error": 3}
    assert analyser.snapshot(6.0)["programs"][0]["streams"][0]["continuity_errors"] == 3


def test_one_duplicate_is_legal_a_second_is_not():
    audio = offsets_of(SAMPLE, AUDIO_PID)[50]
    packet = SAMPLE[audio:audio + PACKET_SIZE]
    once = SAMPLE[:audio + PACKET_SIZE] + packet + SAMPLE[audio + PACKET_SIZE:]
    twice = SAMPLE[:audio + PACKET_SIZE] + packet * 2 + SAMPLE[audio + PACKET_SIZE:]
    assert errors(analyse(once)) == {}
    assert errors(analyse(twice)) == {"Continuity_count_error": 1}


def test_the_discontinuity_indicator_allows_a_jump():
    # a video packet with an adaptation field: set its discontinuity_indicator
    # and move the counter of it and of every later video packet
    video = [o for o in offsets_of(SAMPLE, VIDEO_PID) if SAMPLE[o + 3] & 0x20 and SAMPLE[o + 4]]
    mark = video[10]
    data = bytearray(SAMPLE)
    for offset in offsets_of(SAMPLE, VIDEO_PID):
        if offset >= mark:
            data[offset + 3] = data[offset + 3] & 0xF0 | (data[offset + 3] + 5) & 0x0F
    jumped = bytes(data)
    assert errors(analyse(jumped)) == {"Continuity_count_error": 1}
    data[mark + 5] |= 0x80
    assert errors(analyse(bytes(data))) == {}


def test_packets_without_payload_and_null_packets_are_not_counted():
    null = bytes((0x47, 0x1F, 0xFF, 0x10)) + b"\xff" * 184
    no_payload = bytes((0x47, 0x01, 0x00, 0x20, 183, 0)) + b"\xff" * 182  # adaptation only, CC 0
    video = offsets_of(SAMPLE, VIDEO_PID)[40]
    data = SAMPLE[:video] + null * 3 + no_payload + SAMPLE[video:]
    assert errors(analyse(data)) == {}


def without_pats(data: bytes, start: float, end: float) -> bytes:
    """``data`` without its PATs from ``start`` to ``end`` seconds (one every
    ~0.1 s in the sample), counters renumbered as an encoder that stopped
    sending it would."""
    pats = offsets_of(data, 0)
    out = bytearray(data)
    dropped = [o for o in pats if start * BYTES_PER_SECOND <= o < end * BYTES_PER_SECOND]
    for offset in (o for o in pats if o >= end * BYTES_PER_SECOND):
        out[offset + 3] = out[offset + 3] & 0xF0 | (out[offset + 3] - len(dropped)) & 0x0F
    for offset in reversed(dropped):
        del out[offset:offset + PACKET_SIZE]
    return bytes(out)


def analyse_in_bursts(data: bytes, seconds: float) -> Analyser:
    """``data`` as an upstream delivers it that sends ``seconds`` of stream at
    once, then nothing until the next burst (a sender flushing a large buffer):
    every chunk of a burst arrives at the time of the burst's end."""
    analyser = Analyser()
    aligner = PacketAligner()
    analyser.connected(aligner, 0.0)
    burst = int(seconds * BYTES_PER_SECOND) // PACKET_SIZE * PACKET_SIZE
    for start in range(0, len(data), burst):
        end = min(start + burst, len(data))
        for offset in range(start, end, CHUNK):
            chunk = aligner.feed(data[offset:min(offset + CHUNK, end)])
            if chunk:
                analyser.feed(chunk, end / BYTES_PER_SECOND)
    return analyser


def test_a_pat_gap_is_one_pat_error_however_long():
    assert errors(analyse(without_pats(SAMPLE, 2.0, 3.5))) == {"PAT_error": 1}


@pytest.mark.parametrize("seconds", [0.3, 0.8, 1.5])
def test_a_clean_stream_arriving_in_bursts_has_no_pat_or_pmt_errors(seconds):
    # The arrival gaps are longer than PAT_TIMEOUT; the stream's own clock
    # (its PCR) has a PAT every ~0.1 s.
    assert errors(analyse_in_bursts(seamless_laps(SAMPLE, 3), seconds)) == {}


@pytest.mark.parametrize("seconds", [0.3, 0.8])
def test_a_pat_gap_is_caught_in_bursts_too(seconds):
    data = without_pats(seamless_laps(SAMPLE, 2), 8.0, 9.0)
    assert errors(analyse_in_bursts(data, seconds)) == {"PAT_error": 1}


def test_without_a_pcr_arrival_time_judges():
    data = bytearray(SAMPLE)
    for offset in offsets_of(SAMPLE, VIDEO_PID):
        if data[offset + 3] & 0x20 and data[offset + 4] >= 7:
            data[offset + 5] &= ~0x10  # PCR_flag off
    analyser = analyse(bytes(data))
    assert errors(analyser) == {} and analyser.snapshot(6.0)["programs"][0]["pcr"] is False
    assert errors(analyse(without_pats(bytes(data), 2.0, 3.5))) == {"PAT_error": 1}


def test_a_missing_pmt_and_a_missing_elementary_stream():
    data = bytearray(SAMPLE)
    for offset in reversed(offsets_of(SAMPLE, AUDIO_PID)[100:]):  # audio stops after ~2 s
        del data[offset:offset + PACKET_SIZE]
    pmts = offsets_of(bytes(data), PMT_PID)
    for offset in reversed(pmts[20:34]):  # the PMT away for ~1.4 s, then back
        del data[offset:offset + PACKET_SIZE]
    analyser = Analyser(pid_timeout=2.0)
    found = errors(analyse(bytes(data), analyser))
    assert found == {"PMT_error": 1, "Continuity_count_error": 1, "PID_error": 1}
    assert dict(analyser.cc_errors) == {PMT_PID: 1}  # the PMT's packets were lost, not renumbered


def test_scrambled_or_foreign_sections_on_pid_0_are_pat_errors():
    first = offsets_of(SAMPLE, 0)[3]
    scrambled = bytearray(SAMPLE)
    scrambled[first + 3] |= 0x80
    assert errors(analyse(bytes(scrambled))) == {"PAT_error": 1}
    foreign = bytearray(SAMPLE)
    pointer = foreign[first + 4]
    foreign[first + 5 + pointer] = 0x02  # a PMT's table_id on PID 0
    assert errors(analyse(bytes(foreign))) == {"PAT_error": 1}


def test_sync_losses_and_skipped_bytes_come_from_the_aligner_across_connections():
    middle = 1000 * PACKET_SIZE
    garbage = b"\x00\x01" * 1024
    analyser = Analyser()
    analyse(SAMPLE[:middle] + garbage + SAMPLE[middle:], analyser)
    first = analyser.snapshot(6.0)
    # the packet before the garbage cannot be told from a torn one: dropped with it
    assert first["errors"]["TS_sync_loss"] == first["errors"]["Sync_byte_error"] == 1
    assert first["skipped_bytes"] == len(garbage) + PACKET_SIZE
    assert first["errors"]["Continuity_count_error"] == 1
    analyse(garbage + SAMPLE, analyser, start=10.0)  # a new connection that starts with garbage
    second = analyser.snapshot(16.0)
    assert second["errors"]["TS_sync_loss"] == 1  # a first lock is no loss
    assert second["skipped_bytes"] == 2 * len(garbage) + PACKET_SIZE
    assert second["errors"]["Continuity_count_error"] == 1  # counters start afresh per connection


def test_figures_go_stale_when_data_stops():
    analyser = analyse(SAMPLE)
    assert analyser.snapshot(6.5)["bitrate"] > 0
    report = analyser.snapshot(60.0)
    assert report["bitrate"] == 0 and report["programs"][0]["pcr"] is False


def test_the_picture_size_comes_from_the_keyframes_sps():
    # ffprobe says 640x360: 23 macroblock rows cropped by 8 lines
    assert analyse(SAMPLE).snapshot(6.0)["resolution"] == "640x360"
