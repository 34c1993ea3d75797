"""A stream cut into HLS media segments, from the chunks its hub appends.

The hub hands every chunk it appends to its backlog to a
:class:`Segmenter` (see :meth:`Segmenter.chunk`), saying whether the chunk
begins where a viewer may start (a RAP after its PAT and PMT, or a PAT for a
stream without video).  A segment is whole GOPs, from one start to a later
one, with the PAT and PMT in front, so that it plays on its own; it holds
references to the hub's chunks (no copy per viewer), joined once when it is
first served.  Segments are cut up to a target duration, measured by the
PTS at each start (arrival times where the PTS says nothing sensible), and
kept for a sliding window, plus a few more that players may still be
fetching after they left the playlist (RFC 8216, 6.2.2).

The segmenter knows nothing of the hub, sockets or time: the caller passes
the monotonic ``now`` with each chunk and a wall clock for
``EXT-X-PROGRAM-DATE-TIME``, so tests drive both.
"""

from __future__ import annotations

import math
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from gevent.event import Event

from ..ts.timestamps import PTS_HZ, PTS_WRAP, first_pts

#: Segments kept after they left the playlist, for players still fetching them.
KEPT_AFTER_WINDOW = 3
#: A PTS step between two starts beyond this many seconds is not believed
#: (a clock reset, a wrap gone wrong): the arrival times measure the segment.
MAX_MEDIA_STEP = 60.0
#: Starts in a row without a PTS behind them, after which the stream is taken
#: to carry none (scrambled, or no PES at all) and is cut by arrival times.
UNTIMED_STARTS = 50


class Segment:
    """One media segment: a sequence number, its chunks, its duration."""

    __slots__ = ("sequence", "_pieces", "_data", "duration", "discontinuity", "date")

    def __init__(self, sequence: int, pieces: list[bytes], duration: float, discontinuity: bool,
                 date: float):
        self.sequence = sequence
        self._pieces: list[bytes] | None = pieces
        self._data: bytes | None = None
        self.duration = duration
        self.discontinuity = discontinuity  # the first segment of a new connection
        self.date = date  # wall clock (Unix seconds) of its first frame

    @property
    def data(self) -> bytes:
        """The segment's bytes: its chunks joined once, on first use, and kept instead of them."""
        if self._data is None:
            self._data = b"".join(self._pieces)
            self._pieces = None
        return self._data


class Segmenter:
    """Cuts one stream into segments of whole GOPs up to ``target`` seconds,
    listing the newest ``window`` of them."""

    def __init__(self, target: float = 2.0, window: int = 6,
                 wall: Callable[[], float] = time.time):
        self.target = target
        self.window = window
        self.wall = wall
        self.segments: deque[Segment] = deque()
        self.sequence = 0  # the next segment's number
        self.discontinuities = 0  # segments ever marked as a discontinuity
        self.longest = 0  # seconds, rounded: the longest segment so far
        self.added = Event()  # set when a segment is added (then replaced by a new one)
        self._pieces: list[bytes] | None = None  # the open segment, None while waiting for a start
        self._began = 0.0  # arrival of the open segment's first chunk
        self._last_arrival = 0.0
        self._pts: int | None = None  # PTS at the open segment's start
        self._gop_pts: int | None = None  # PTS at the latest start
        self._gop_began = 0.0
        self._gop = 0.0  # seconds of the latest whole GOP
        self._gap = False  # the next segment follows a new connection
        self._date: float | None = None  # when the open segment's first frame was, if known
        self._untimed = 0  # starts in a row without a PTS right behind them
        self._playlist: tuple[str, bytes] | None = None  # (prefix, encoded text) of the segments now

    # -- fed by the hub --------------------------------------------------------

    def chunk(self, piece: bytes, start: bytes | None, now: float) -> None:
        """One chunk appended to the stream.  ``start`` is None where a viewer
        may not start at it; else the PAT and PMT packets to send before it
        (empty where the chunk itself begins with the PAT)."""
        if start is not None:
            pts = first_pts(piece)
            if pts is None and self._untimed < UNTIMED_STARTS:
                # A PAT with no PES right behind it (radio repeats its PAT
                # often): cut where the time is known, unless it never is.
                self._untimed += 1
                start = None
            elif pts is not None:
                self._untimed = 0
        if start is not None:
            if self._pieces is not None:
                since_gop = self._media(self._gop_pts, pts, now - self._gop_began)
                elapsed = self._media(self._pts, pts, now - self._began)
                if elapsed >= self.target or elapsed + min(self._gop, since_gop) > self.target + 0.01:
                    self._close(elapsed)
                self._gop = since_gop
            self._gop_pts, self._gop_began = pts, now
            if self._pieces is None:
                self._begin(start, pts, now)
        if self._pieces is not None:
            self._pieces.append(piece)
            self._last_arrival = now

    def discontinuity(self, now: float) -> None:
        """A new upstream connection: what was gathered of the old one becomes
        a segment (measured by arrival), the next starts with a discontinuity.
        After a long silence (an on-demand stream that went idle) the old
        segments are dropped instead: nobody is playing them any more."""
        if self.expire(now):
            self._pieces = None
        if self._pieces:
            # to its last start by the PTS, the rest by arrival
            whole = self._media(self._pts, self._gop_pts, self._gop_began - self._began)
            self._close(max(whole + self._last_arrival - self._gop_began, 0.001))
        self._pieces = None
        self._gop_pts = None
        self._gop = 0.0
        if self.segments:
            self._gap = True

    def expire(self, now: float) -> bool:
        """Drop every segment if the stream has sent nothing for a window's
        worth of segments (whatever is listed then is past); True if dropped."""
        if now - self._last_arrival <= self.window * self.target_duration:
            return False
        self.segments.clear()
        self._playlist = None
        self._pieces = None
        self._gap = False
        return True

    # -- cutting -----------------------------------------------------------------

    def _begin(self, prefix: bytes, pts: int | None, now: float) -> None:
        self._pieces = [prefix] if prefix else []
        self._pts = pts
        self._began = self._last_arrival = now
        last = self.segments[-1] if self.segments else None
        if last is None or self._gap:
            self._date = self.wall()
        else:
            self._date = last.date + last.duration

    @staticmethod
    def _media(begin: int | None, end: int | None, arrival: float) -> float:
        """Seconds between two starts: by their PTS, else by arrival."""
        if begin is not None and end is not None:
            step = (end - begin) % PTS_WRAP / PTS_HZ
            if 0 < step < MAX_MEDIA_STEP:
                return step
        return arrival

    def _close(self, duration: float) -> None:
        segment = Segment(self.sequence, self._pieces, duration, self._gap, self._date)
        self.sequence += 1
        self.discontinuities += self._gap
        self._gap = False
        self._pieces = None
        self.longest = max(self.longest, round(duration))
        segments = self.segments
        segments.append(segment)
        while len(segments) > self.window + KEPT_AFTER_WINDOW:
            segments.popleft()
        self._playlist = None
        added, self.added = self.added, Event()
        added.set()

    # -- served ------------------------------------------------------------------

    @property
    def listed(self) -> list[Segment]:
        """The segments the playlist lists now: the newest ``window``."""
        segments = self.segments
        return list(segments)[-self.window:] if segments else []

    def get(self, sequence: int) -> Segment | None:
        """A segment still held (listed, or recently so), by number."""
        segments = self.segments
        if not segments:
            return None
        index = sequence - segments[0].sequence
        return segments[index] if 0 <= index < len(segments) else None

    @property
    def ready(self) -> bool:
        """A segment is listed: ffmpeg and Safari start from one (a player that
        wants more, as Chromium does, reloads until it has it)."""
        return bool(self.segments)

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: at least every segment's rounded duration, never less than the key."""
        return max(math.ceil(self.target), self.longest, 1)

    def playlist(self, prefix: str) -> bytes:
        """The live media playlist (RFC 8216), encoded: no end tag, the window's
        segments, each at ``prefix`` + ``NUMBER.ts``.  Made once per segment
        added, for every player polling it."""
        cached = self._playlist
        if cached is not None and cached[0] == prefix:
            return cached[1]
        text = self._render(prefix).encode()
        self._playlist = (prefix, text)
        return text

    def _render(self, prefix: str) -> str:
        listed = self.listed
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{self.target_duration}",
                 f"#EXT-X-MEDIA-SEQUENCE:{listed[0].sequence if listed else self.sequence}"]
        before = self.discontinuities - sum(s.discontinuity for s in listed)
        if before:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{before}")
        for segment in listed:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append("#EXT-X-PROGRAM-DATE-TIME:" + _iso(segment.date))
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(f"{prefix}{segment.sequence}.ts")
        return "\n".join(lines) + "\n"


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
