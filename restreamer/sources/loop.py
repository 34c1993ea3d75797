"""Looped, real-time paced file upstreams: ``loop:path/to/file.ts``.

Like ``ffmpeg -re -stream_loop -1``: the file is played forever at the pace
its program clock reference (PCR) dictates, so a file behaves as a live
encoder would.  Each PID's continuity counters run on from lap to lap (as a
remuxer's would), so the joins are no continuity errors.  A relative path resolves against the config file's directory;
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
        self._steps = _counter_steps(self._data)
        self._counters = b""  # the continuity-counter bytes of this lap, if not the file's
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
        if self._counters:
            piece = bytearray(self._data[begin:end])
            piece[3::PACKET_SIZE] = self._counters[begin // PACKET_SIZE:end // PACKET_SIZE]
        else:
            piece = self._data[begin:end]
        self._index += 1
        if self._index == len(self._schedule):
            self._index = 0
            self._lap += 1
            self._counters = _lap_counters(self._data, self._steps, self._lap)
        return bytes(piece)

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


@lru_cache(maxsize=8)
def _counter_steps(data: bytes) -> bytes:
    """Per packet: how far its continuity counter moves from one lap to the next.

    That is the number of its PID's packets that carry payload (those that
    count), modulo 16; zero for packets that do not count and for null packets.
    """
    pids = [(data[o + 1] & 0x1F) << 8 | data[o + 2] if data[o + 3] & 0x10 else None
            for o in range(0, len(data), PACKET_SIZE)]
    counts: dict[int | None, int] = {}
    for pid in pids:
        counts[pid] = counts.get(pid, 0) + 1
    counts[None] = counts[0x1FFF] = 0
    return bytes(counts[pid] & 0x0F for pid in pids)


def _lap_counters(data: bytes, steps: bytes, lap: int) -> bytes:
    """The fourth header byte of every packet in lap ``lap``; b"" when it is the file's own.

    Once a lap, per packet: a few milliseconds for a minute of a 4 Mbit/s file.
    """
    if not lap % 16 or not any(steps):
        return b""
    return bytes(b & 0xF0 | (b + lap * step) & 0x0F for b, step in zip(data[3::PACKET_SIZE], steps))


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
