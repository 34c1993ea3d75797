"""HLS media playlists read, and checked against RFC 8216's rules for a live one."""

from __future__ import annotations

import math
import time
import re
from dataclasses import dataclass, field
from datetime import datetime

from restreamer.ts.psi import is_rap
from restreamer.ts.timestamps import PTS_HZ, moved, scan, span
from tests.support.ts import PACKET_SIZE, packet_pid


@dataclass
class Entry:
    uri: str
    duration: float
    sequence: int
    discontinuity: bool
    date: datetime | None


@dataclass
class Playlist:
    version: int
    target: int
    media_sequence: int
    discontinuity_sequence: int
    ended: bool
    entries: list[Entry] = field(default_factory=list)


def parse(text: str) -> Playlist:
    """A live media playlist, each rule of RFC 8216 that a player relies on asserted."""
    lines = text.splitlines()
    assert lines and lines[0] == "#EXTM3U", "4.3.1.1: the first line is #EXTM3U"
    tags: dict[str, str] = {}
    entries: list[Entry] = []
    pending: dict = {}
    for line in lines[1:]:
        assert line == line.strip() and line, f"no blank or padded lines: {line!r}"
        if line.startswith("#EXTINF:"):
            duration, _, _title = line[8:].partition(",")
            assert re.fullmatch(r"\d+(\.\d+)?", duration), f"4.3.2.1: EXTINF duration {duration!r}"
            pending["duration"] = float(duration)
        elif line == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pending["date"] = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00"))
        elif line.startswith("#EXT-X-"):
            name, _, value = line.partition(":")
            assert name not in tags, f"4.3.3: {name} appears once"
            assert not entries, f"4.3.3: {name} comes before the first segment"
            tags[name] = value
        elif line.startswith("#"):
            continue
        else:
            assert "duration" in pending, f"4.3.2.1: every segment has an EXTINF: {line}"
            entries.append(Entry(line, pending["duration"], 0, pending.get("discontinuity", False),
                                 pending.get("date")))
            pending = {}
    assert not pending, "tags after the last segment"
    assert "#EXT-X-TARGETDURATION" in tags, "4.3.3.1: EXT-X-TARGETDURATION is required"
    target = int(tags["#EXT-X-TARGETDURATION"])
    version = int(tags.get("#EXT-X-VERSION", "1"))
    # 7: non-integer EXTINF durations need version 3
    if any(e.duration != int(e.duration) for e in entries):
        assert version >= 3
    for e in entries:
        assert round(e.duration) <= target, f"4.3.3.1: {e.duration} rounds above the target {target}"
        assert e.duration > 0
    sequence = int(tags.get("#EXT-X-MEDIA-SEQUENCE", "0"))
    for i, e in enumerate(entries):
        e.sequence = sequence + i
    assert "#EXT-X-PLAYLIST-TYPE" not in tags or tags["#EXT-X-PLAYLIST-TYPE"] == "EVENT"
    ended = "#EXT-X-ENDLIST" in tags
    dated = [e for e in entries if e.date is not None]
    for before, after in zip(dated, dated[1:]):
        if not after.discontinuity:
            gap = (after.date - before.date).total_seconds()
            assert math.isclose(gap, before.duration, abs_tol=0.01) or after.sequence > before.sequence + 1
    return Playlist(version, target, sequence, int(tags.get("#EXT-X-DISCONTINUITY-SEQUENCE", "0")),
                    ended, entries)


def assert_segment_starts_clean(data: bytes, video_pid: int | None = 0x100, codec: str = "h264") -> None:
    """A segment plays on its own: PAT, then the PMT, then a keyframe of the
    video (without video: PAT and PMT), and whole packets throughout."""
    assert data and len(data) % PACKET_SIZE == 0, f"{len(data)} bytes is not whole packets"
    assert packet_pid(data[:PACKET_SIZE]) == 0, "a segment begins with the PAT"
    second = packet_pid(data[PACKET_SIZE:2 * PACKET_SIZE])
    assert second not in (0, 0x1FFF), "the PMT follows the PAT"
    if video_pid is not None:
        assert packet_pid(data[2 * PACKET_SIZE:3 * PACKET_SIZE]) == video_pid, "then the video"
        assert is_rap(data, 2 * PACKET_SIZE, codec), "whose first packet is a keyframe"


def poll(read, timeout: float, message: str, every: float = 0.05):
    """``read()`` again and again, as a player polls, until it gives something
    truthy (returned); a bounded poll of another process, which offers no
    event to wait on."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(every)


def continuous(data: bytes, laps: int) -> tuple[bytes, float]:
    """``data`` played ``laps`` times as one stream, its clocks carried on (as
    ``loop:`` does), and the bit rate that plays it in real time."""
    clocks = scan(data)
    ticks = span(clocks)
    payload = b"".join(moved(data, clocks, ticks, lap) for lap in range(laps))
    return payload, len(payload) * 8 / (laps * ticks / PTS_HZ)
