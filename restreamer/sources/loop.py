"""Looped, real-time paced file upstreams: ``loop:path/to/file.ts``.

Like ``ffmpeg -re -stream_loop -1``: the file is played forever at the pace
its program clock reference (PCR) dictates, so a file behaves as a live
encoder would.  Each lap carries the clocks on (PCR, PTS, DTS and continuity
counters continue from the lap before), so players see one endless stream.
A relative path resolves against the config file's directory; ``loop:sample``
names the small demo stream bundled with restreamer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import gevent

from ..ts.packets import PACKET_SIZE, SYNC_BYTE
from ..ts.timestamps import PCR_HZ, PCR_WRAP, PTS_HZ, Clocks, moved, scan, span
from .base import SourceError, SourceSettings, resolve_path

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sample.ts")
#: A gap between two PCRs longer than this (the standard allows 0.1 s) is a
#: jump in the file, not a pause to play: it is paced as a usual interval.
MAX_PCR_GAP = 1.0


@dataclass(frozen=True)
class _Plan:
    data: bytes
    clocks: Clocks
    schedule: tuple[tuple[int, int, float], ...]  # (begin, end, seconds after the lap's start)
    period: float  # seconds one lap is played in
    ticks: int  # 90 kHz ticks each lap moves the clocks on by


class LoopConnection:
    """Hands out the file in slices, each at the moment its PCR is due."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        name = unquote(parts.netloc + parts.path)
        path = SAMPLE if name == "sample" else resolve_path(settings.base_dir, name)
        try:
            self._plan = _plan(os.path.realpath(path))
        except OSError as e:
            raise SourceError.from_os_error(e, path) from None
        self._lap_data = self._plan.data
        self._index = 0
        self._lap = 0
        self._start = time.monotonic()
        self._closed = False

    def read(self) -> bytes:
        if self._closed:
            return b""
        plan = self._plan
        begin, end, due = plan.schedule[self._index]
        delay = self._start + self._lap * plan.period + due - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        data = self._lap_data[begin:end]
        self._index += 1
        if self._index == len(plan.schedule):
            self._index = 0
            self._lap += 1
            self._lap_data = moved(plan.data, plan.clocks, plan.ticks, self._lap)
        return data

    def close(self) -> None:
        self._closed = True


@lru_cache(maxsize=8)
def _plan(path: str) -> _Plan:
    """Split the file at the packets that carry a PCR, and find its clocks.

    Runs once per file, so the per-packet scan is fine here.
    """
    with open(path, "rb") as f:
        raw = f.read()
    start = raw.find(bytes([SYNC_BYTE]))
    data = raw[start:start + (len(raw) - start) // PACKET_SIZE * PACKET_SIZE] if start >= 0 else b""
    clocks = scan(data)
    pcr_pid = clocks.pcrs[0][1] if clocks.pcrs else None
    # (offset of the packet, PCR) on the first PID that carries one
    marks = [(pos - pos % PACKET_SIZE, value) for pos, pid, value in clocks.pcrs if pid == pcr_pid]
    if len(marks) < 2:
        raise SourceError(f"{path}: no program clock reference to pace by; is it MPEG-TS?")
    gaps = [((b - a) % PCR_WRAP) / PCR_HZ for (_, a), (_, b) in zip(marks, marks[1:])]
    usual = sorted(gaps)[len(gaps) // 2]
    paced = [gap if gap <= MAX_PCR_GAP else usual for gap in gaps]
    # Slice i runs up to (not including) the i+1th PCR packet and is due at the
    # i-th PCR; the head before the first PCR goes with the first slice.
    dues = [0.0]
    for gap in paced:
        dues.append(dues[-1] + gap)
    bounds = [0] + [offset for offset, _ in marks[1:]] + [len(data)]
    schedule = tuple((bounds[i], bounds[i + 1], due) for i, due in enumerate(dues))
    ticks = span(clocks)
    # A lap lasts as long as its clocks move on, so the stream keeps real
    # time; a file with a jump is paced over its usual intervals instead.
    period = ticks / PTS_HZ if paced == gaps else dues[-1] + usual
    return _Plan(data, clocks, schedule, period, ticks)
