"""Looped, real-time paced file upstreams: ``loop:path/to/file.ts``.

Like ``ffmpeg -re -stream_loop -1``: the file is played forever at the pace
its program clock reference (PCR) dictates, so a file behaves as a live
encoder would.  A relative path resolves against the config file's directory;
``loop:sample`` names the small demo stream bundled with restreamer.
"""

from __future__ import annotations

import os
import time
from functools import lru_cache
from urllib.parse import unquote, urlsplit

import gevent

from ..ts.packets import PACKET_SIZE, SYNC_BYTE
from .base import SourceError, SourceSettings, resolve_path

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "sample.ts")
_PCR_HZ = 27_000_000
_PCR_WRAP = (1 << 33) * 300


class LoopConnection:
    """Hands out the file in slices, each at the moment its PCR is due."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        name = unquote(parts.netloc + parts.path)
        path = SAMPLE if name == "sample" else resolve_path(settings.base_dir, name)
        try:
            self._data, self._schedule, self._period = _plan(os.path.realpath(path))
        except OSError as e:
            raise SourceError.from_os_error(e, path) from None
        self._index = 0
        self._lap = 0
        self._start = time.monotonic()
        self._closed = False

    def read(self) -> bytes:
        if self._closed:
            return b""
        begin, end, due = self._schedule[self._index]
        delay = self._start + self._lap * self._period + due - time.monotonic()
        if delay > 0:
            gevent.sleep(delay)
        self._index += 1
        if self._index == len(self._schedule):
            self._index = 0
            self._lap += 1
        return self._data[begin:end]

    def close(self) -> None:
        self._closed = True


@lru_cache(maxsize=8)
def _plan(path: str) -> tuple[bytes, tuple[tuple[int, int, float], ...], float]:
    """Split the file at the packets that carry a PCR.

    Returns the aligned data, (begin, end, seconds after start) for each
    slice, and the length of one lap.  Runs once per file, so the per-packet
    scan is fine here.
    """
    with open(path, "rb") as f:
        raw = f.read()
    start = raw.find(bytes([SYNC_BYTE]))
    data = raw[start:start + (len(raw) - start) // PACKET_SIZE * PACKET_SIZE] if start >= 0 else b""
    marks = _pcr_marks(data)
    if len(marks) < 2:
        raise SourceError(f"{path}: no program clock reference to pace by; is it MPEG-TS?")
    first_offset, first_pcr = marks[0]
    cuts = [(offset, ((pcr - first_pcr) % _PCR_WRAP) / _PCR_HZ) for offset, pcr in marks]
    interval = cuts[-1][1] / (len(cuts) - 1)
    period = cuts[-1][1] + interval
    # Slice i runs up to (not including) the i+1th PCR packet and is due at the
    # i-th PCR; the head before the first PCR goes with the first slice.
    schedule = []
    bounds = [0] + [offset for offset, _ in cuts[1:]] + [len(data)]
    for i, (_, due) in enumerate(cuts):
        schedule.append((bounds[i], bounds[i + 1], due))
    return data, tuple(schedule), period


def _pcr_marks(data: bytes) -> list[tuple[int, int]]:
    """(byte offset, PCR in 27 MHz ticks) of each packet on the first PID carrying a PCR."""
    marks = []
    pcr_pid = None
    for offset in range(0, len(data), PACKET_SIZE):
        if data[offset] != SYNC_BYTE or not data[offset + 3] & 0x20 or data[offset + 4] < 7:
            continue  # no adaptation field, or one too short for a PCR
        if not data[offset + 5] & 0x10:
            continue  # PCR flag not set
        pid = (data[offset + 1] & 0x1F) << 8 | data[offset + 2]
        if pcr_pid is None:
            pcr_pid = pid
        elif pid != pcr_pid:
            continue
        b = data[offset + 6:offset + 12]
        base = b[0] << 25 | b[1] << 17 | b[2] << 9 | b[3] << 1 | b[4] >> 7
        extension = (b[4] & 1) << 8 | b[5]
        marks.append((offset, base * 300 + extension))
    return marks
