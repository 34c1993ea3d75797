"""The HLS segmenter fed by a hub: segments of whole GOPs from the shared chunks,
each starting with PAT, PMT and a keyframe; durations from the PTS; the
sliding window; discontinuities after a new connection; radio cut at PATs."""

from restreamer.core.hub import Hub
from restreamer.core.segments import KEPT_AFTER_WINDOW, Segmenter
from restreamer.ts.packets import PACKET_SIZE
from restreamer.ts.psi import packet_pid
from tests.support.hls import assert_segment_starts_clean, parse
from restreamer.ts.timestamps import moved, scan, span
from tests.support.ts import load_sample
from tests.unit.clock import FakeClock
from tests.unit.conftest import stream_settings
from tests.unit.test_starts import PMT_PID, VIDEO_PID, _section, _single_packet

SAMPLE = load_sample()  # 6 GOPs of 1 s, H.264 on PID 0x100
WALL = 1_800_000_000.0


def laps(data: bytes, count: int) -> bytes:
    """``data`` played ``count`` times as one stream, clocks carried on (as loop: does)."""
    clocks = scan(data)
    ticks = span(clocks)
    return b"".join(moved(data, clocks, ticks, lap) for lap in range(count))


def fed(data: bytes, piece: int = 40 * PACKET_SIZE, target: float = 2.0, window: int = 3,
        hub: Hub | None = None) -> tuple[Hub, Segmenter]:
    """A hub with a segmenter, ``data`` published through it in pieces."""
    if hub is None:
        hub = Hub("/s.ts", stream_settings(), FakeClock())
        hub.listener = Segmenter(target, window, wall=lambda: WALL)
        hub.restart_at_rap()  # a connection begins
    for offset in range(0, len(data), piece):
        hub.publish(data[offset:offset + piece], at_once=True)
    return hub, hub.listener


def playlist(segmenter: Segmenter):
    return parse(segmenter.playlist("s.m3u8/").decode())


def test_segments_are_whole_gops_up_to_the_target_each_starting_clean():
    _, segmenter = fed(laps(SAMPLE, 3), target=2.0, window=4)
    listed = playlist(segmenter)
    assert not listed.ended and listed.version >= 3 and listed.target == 2
    # a lap's join adds to the GOP across it the time the sample's last audio
    # PES (about 0.3 s of AAC) outlasts its last video frame
    assert all(abs(e.duration - 2.0) <= 0.2 for e in listed.entries), listed.entries
    assert [e.uri for e in listed.entries] == [f"s.m3u8/{n}.ts" for n in range(4, 8)]
    assert listed.media_sequence == 4
    for entry in listed.entries:
        assert_segment_starts_clean(segmenter.get(entry.sequence).data)
    # program dates run on with the durations from the first segment's arrival
    earlier = sum(segmenter.get(n).duration for n in range(1, 4)) + 2.0  # segment 0 is gone
    assert abs(listed.entries[0].date.timestamp() - (WALL + earlier)) < 0.002
    # segments that just left the playlist are still served; older ones are gone
    assert segmenter.get(4 - KEPT_AFTER_WINDOW) is not None
    assert segmenter.get(0) is None


def test_the_chunks_are_the_hubs_own_not_copies():
    hub, segmenter = fed(laps(SAMPLE, 2), piece=len(SAMPLE) * 2)
    segment = segmenter.segments[0]
    held = {id(c) for c in hub.backlog.chunks}
    assert all(id(piece) in held for piece in segment._pieces[1:])
    joined = segment.data
    assert joined is segment.data  # joined once


def test_smaller_gops_are_grouped_and_a_longer_gop_makes_a_longer_segment():
    _, segmenter = fed(laps(SAMPLE, 3), target=3.0, window=8)
    # as many whole GOPs as fit the target (a GOP across a lap's join is up to
    # ~0.17 s longer: the sample's audio outlasts its video)
    assert all(1.95 <= s.duration <= 3.2 for s in segmenter.segments)
    assert sum(s.duration == 3.0 for s in segmenter.segments) >= 3
    _, segmenter = fed(laps(SAMPLE, 3), target=0.5)
    assert all(abs(s.duration - 1.0) <= 0.2 for s in segmenter.segments)
    assert playlist(segmenter).target in (1, 2)


def test_a_new_connection_marks_a_discontinuity_and_its_sequence_counts_on():
    hub, segmenter = fed(laps(SAMPLE, 2), window=4)
    before = segmenter.sequence
    hub.restart_at_rap()  # the next connection
    fed(laps(SAMPLE, 2), hub=hub)
    segments = list(segmenter.segments)
    tail = [s for s in segments if s.sequence == before]
    assert tail and not tail[0].discontinuity  # the old connection's last GOPs, closed
    assert tail[0].duration >= 1.0  # by the PTS up to its last keyframe
    first_new = [s for s in segments if s.sequence == before + 1][0]
    assert first_new.discontinuity
    assert_segment_starts_clean(first_new.data)
    listed = playlist(segmenter)
    flagged = [e for e in listed.entries if e.discontinuity]
    assert len(flagged) + listed.discontinuity_sequence == 1


def test_after_a_long_silence_the_old_segments_are_dropped():
    hub, segmenter = fed(SAMPLE, window=2)
    assert segmenter.segments
    last = segmenter._last_arrival
    assert not segmenter.expire(last + 1)
    assert segmenter.expire(last + 2 * segmenter.target_duration + 1)
    assert not segmenter.segments
    assert segmenter.sequence > 0  # numbers are never reused


def test_a_stream_without_video_is_cut_at_its_pats():
    radio_pmt = _single_packet(PMT_PID, _section(0x02, bytes((0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x01,
                                                              0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00))))
    packets = []
    for o in range(0, len(SAMPLE), PACKET_SIZE):
        pid = packet_pid(SAMPLE, o)
        if pid == PMT_PID:
            packets.append(radio_pmt)
        elif pid != VIDEO_PID:
            packets.append(SAMPLE[o:o + PACKET_SIZE])
    radio = laps(b"".join(packets), 2)
    _, segmenter = fed(radio, piece=4 * PACKET_SIZE)
    assert len(segmenter.segments) >= 4
    for segment in segmenter.segments:
        assert_segment_starts_clean(segment.data, video_pid=None)
        # cut where a PES follows a PAT at once (its PTS is the time), near the target
        assert 0.5 <= segment.duration <= 2.5
    assert playlist(segmenter).target == 2


def test_a_playlist_is_ready_with_its_first_segment():
    cut = len(SAMPLE) // 3 // PACKET_SIZE * PACKET_SIZE  # of six 1 s GOPs, two: one open 2 s segment
    hub, segmenter = fed(SAMPLE[:cut])
    assert not segmenter.segments and not segmenter.ready
    fed(SAMPLE[cut:], hub=hub)
    assert segmenter.ready
