"""What the dashboard shows: a compact summary of every stream, the last
minutes of it for sparklines, and a stream's viewers on demand.

A sampler reads the streams once a second (the same counters statistics
reads) into a short history per stream and checks their TS health for the
log.  A dashboard poll is answered from the latest sample and the samples it
has not seen yet, so it costs the server about what an API call costs,
however many viewers there are.  With thousands of streams a whole history
is megabytes of JSON: it is encoded in slices (:func:`sliced`), and once per
sample for every poll that asks for the same samples (every newly opened
tab asks for all of them).
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from typing import Mapping

from gevent.event import AsyncResult

from ..base.periodic import Periodic
from ..core.limits import Limits
from ..core.view import StreamView
from ..version import __version__
from .snapshot import sliced
from .statistics import all_totals
from .tshealth import HealthLog

#: Seconds between samples.
INTERVAL = 1.0
#: Samples kept: the sparklines' span in seconds.
HISTORY = 300
#: Answers kept for the latest sample: tabs ask for all of the history or
#: for the last sample, so a few suffice, and a client asking for every
#: ``since`` in turn cannot make the server keep hundreds of them.
SHARED_ANSWERS = 8
#: The figures a stream's history keeps, one series each.
SERIES = ("viewers", "bitrate_in", "bitrate_out", "errors")


class _History:
    """One stream's last :data:`HISTORY` samples of each of :data:`SERIES`."""

    __slots__ = ("seq", "series")

    def __init__(self):
        self.seq = 0  # the sample number of the newest entry
        self.series = tuple(collections.deque(maxlen=HISTORY) for _ in SERIES)

    def add(self, seq: int, values: tuple) -> None:
        self.seq = seq
        for series, value in zip(self.series, values):
            series.append(value)

    def between(self, since: int, until: int) -> dict[str, list]:
        """The samples numbered after ``since`` up to ``until``, by series."""
        length = len(self.series[0])
        end = length - max(0, self.seq - until)
        start = max(0, length - (self.seq - since))
        return {name: list(itertools.islice(series, start, max(start, end)))
                for name, series in zip(SERIES, self.series)}


class Overview:
    """The dashboard's figures, sampled once a second."""

    def __init__(self, streams: Mapping[str, StreamView], limits: Limits,
                 controls: Mapping[str, str] | None = None):
        self.streams = streams
        self.limits = limits
        self.controls = dict(controls or {})  # stream path -> its control API's path
        self.health = HealthLog(streams)
        self.started_at = time.time()
        self.seq = 0  # number of the latest sample
        self._history: dict[str, _History] = {}
        self._last: tuple[float, dict[str, dict]] | None = None
        self._current: dict[str, dict] = {}
        # Answers being or already encoded for the latest sample, by ``since``.
        self._answers: dict[int, AsyncResult] = {}
        self._answers_seq = 0
        self._sampler = Periodic(self.sample, INTERVAL)

    def start(self) -> None:
        if not self._sampler.running:
            self.started_at = time.time()
        self._sampler.start()

    def stop(self) -> None:
        self._sampler.stop()

    def sample(self) -> None:
        totals = all_totals(self.streams)
        now = time.monotonic()
        previous = self._last
        elapsed = now - previous[0] if previous is not None else 0.0
        seq = self.seq + 1
        current = {}
        history = {}
        for path, stream in sliced(list(self.streams.items())):
            counters = totals.get(path)
            if counters is None:  # added by a reload since the totals were read
                continue
            before = previous[1].get(path) if previous is not None else None
            rate_out = rate_in = 0.0
            if before is not None and elapsed > 0:
                rate_out = (counters["bytes_sent"] - before["bytes_sent"]) * 8 / elapsed
                rate_in = (counters["bytes_received"] - before["bytes_received"]) * 8 / elapsed
            summary = current[path] = self._stream_summary(stream, counters, rate_in, rate_out, now)
            series = history[path] = self._history.get(path) or _History()
            series.add(seq, (summary["viewers"], summary["bitrate_in"], summary["bitrate_out"],
                             summary["ts"]["error_total"] if summary["ts"] else 0))
        self._last = (now, totals)
        self._current, self._history, self.seq = current, history, seq
        self.health.check(now)

    def _stream_summary(self, stream: StreamView, counters: dict, rate_in: float, rate_out: float,
                        now: float) -> dict:
        summary = {
            "path": stream.path,
            "state": stream.state,
            "upstream": stream.upstream,
            "remotes": stream.remotes,
            "viewers": counters["viewers"],
            "bitrate_in": round(rate_in),
            "bitrate_out": round(rate_out),
            "dropped_packets": counters["packets_dropped"],
            "control": self.controls.get(stream.path),
            "ts": None,
        }
        summary.update(_explained(stream))
        analyser = stream.analyser
        if analyser is not None:
            errors = analyser.error_counts()
            interval = analyser.keyframe_interval()
            report = analyser.snapshot(now)
            summary["ts"] = {
                "errors": errors,
                "error_total": sum(errors.values()),
                "bitrate": report["bitrate"],
                "codecs": [es["codec"] for program in report["programs"] for es in program["streams"]],
                "resolution": report["resolution"],
                "pcr": all(program["pcr"] for program in report["programs"]) if report["programs"] else None,
                "keyframe_interval": round(interval, 2) if interval is not None else None,
                "keyframe_age": report["keyframe_age"],
            }
        return summary

    # -- answers -----------------------------------------------------------

    def summary(self, since: int = 0) -> bytes:
        """Global figures, each stream's latest sample and the samples after
        ``since``, as the members of a JSON object (the caller adds its own
        and the braces): encoded once per sample for all who ask alike."""
        seq = self.seq
        # Older than the history, or from the future: all of it, or nothing.
        since = min(max(since, seq - HISTORY, 0), seq)
        if self._answers_seq != seq:
            self._answers, self._answers_seq = {}, seq
        answer = self._answers.get(since)
        if answer is not None:
            return answer.get()
        if len(self._answers) >= SHARED_ANSWERS:
            return self._encode(since, seq)
        answer = self._answers[since] = AsyncResult()
        try:
            encoded = self._encode(since, seq)
        except BaseException as e:
            answer.set_exception(e)
            self._answers.pop(since, None)
            raise
        answer.set(encoded)
        return encoded

    def _encode(self, since: int, seq: int) -> bytes:
        current, history = self._current, self._history
        viewers = sum(s["viewers"] for s in current.values())
        limits = self.limits
        streams = [json.dumps(dict(summary, history=history[path].between(since, seq)),
                              separators=(",", ":")).encode()
                   for path, summary in sliced(current.items())]
        head = json.dumps({
            "version": __version__,
            "uptime": round(time.time() - self.started_at),
            "status": limits.status(viewers),
            "viewers": viewers,
            "max_viewers": limits.max_viewers,
            "full_viewers": limits.full_viewers,
            "bandwidth": sum(s["bitrate_out"] for s in current.values()),
            "bitrate_in": sum(s["bitrate_in"] for s in current.values()),
            "seq": seq,
            "interval": INTERVAL,
        }, separators=(",", ":")).encode()
        return b"".join((head[1:-1], b',"streams":[', b",".join(streams), b"]"))

    def viewers(self, path: str) -> list[dict] | None:
        """The viewers of one stream now, or None if there is no such stream."""
        stream = self.streams.get(path)
        if stream is None:
            return None
        wall = time.time()
        return [{"remote": v.remote, "since": round(wall - v.duration, 1), "bytes": v.bytes_sent,
                 "dropped_packets": v.packets_dropped, "hls": v.hls}
                for v in stream.audience()]


def _explained(stream: "StreamView") -> dict:
    """What the dashboard says beyond the figures: the channel's name, its HLS
    playlist, since when it is up, how often it came back, why it is down and
    when it tries again (wall-clock seconds), and the streams its upstream
    connection feeds too."""
    error = stream.last_error
    return {
        "name": stream.name,
        "hls": stream.hls,
        "online_since": stream.online_since,
        "reconnects": stream.reconnects,
        "last_error": None if error is None else {"reason": error[0], "url": error[1], "at": error[2]},
        "next_attempt": stream.next_attempt,
        "shared_with": stream.shared_with,
    }
