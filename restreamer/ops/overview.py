"""What the dashboard shows: a compact summary of every stream, the last
minutes of it for sparklines, and a stream's viewers on demand.

A sampler reads the streams once a second (the same counters statistics
reads) into a small ring buffer and checks their TS health for the log.  A
dashboard poll is answered from the latest sample and the samples it has not
seen yet, so it costs the server about what an API call costs, however many
viewers there are.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Mapping

from ..version import __version__
from .sampler import Sampler
from .statistics import Limits, all_totals
from .tshealth import HealthLog

if TYPE_CHECKING:
    from ..core.stream import Stream

#: Seconds between samples.
INTERVAL = 1.0
#: Samples kept: the sparklines' span in seconds.
HISTORY = 300


class Overview(Sampler):
    """The dashboard's figures, sampled once a second."""

    interval = INTERVAL

    def __init__(self, streams: Mapping[str, "Stream"], limits: Limits,
                 controls: Mapping[str, str] | None = None):
        self.streams = streams
        self.limits = limits
        self.controls = dict(controls or {})  # stream path -> its control API's path
        self.health = HealthLog(streams)
        self.started_at = time.time()
        self.seq = 0  # number of the latest sample
        self._history: collections.deque = collections.deque(maxlen=HISTORY)
        self._last: tuple[float, dict[str, dict]] | None = None
        self._current: dict[str, dict] = {}

    def start(self) -> None:
        if self._sampler is None:
            self.started_at = time.time()
        super().start()

    def sample(self) -> None:
        totals = all_totals(self.streams)
        now = time.monotonic()
        previous = self._last
        current = {}
        for path, stream in self.streams.items():
            counters = totals[path]
            before = previous[1].get(path) if previous is not None else None
            elapsed = now - previous[0] if previous is not None else 0.0
            rate_out = rate_in = 0.0
            if before is not None and elapsed > 0:
                rate_out = (counters["bytes_sent"] - before["bytes_sent"]) * 8 / elapsed
                rate_in = (counters["bytes_received"] - before["bytes_received"]) * 8 / elapsed
            current[path] = self._stream_summary(stream, counters, rate_in, rate_out, now)
        self._last = (now, totals)
        self._current = current
        self.seq += 1
        self._history.append((self.seq, {path: (s["viewers"], s["bitrate_in"], s["bitrate_out"],
                                                s["ts"]["error_total"] if s["ts"] else 0)
                                         for path, s in current.items()}))
        self.health.check(now)

    def _stream_summary(self, stream: "Stream", counters: dict, rate_in: float, rate_out: float,
                        now: float) -> dict:
        summary = {
            "path": stream.serve,
            "state": stream.state,
            "upstream": stream.shown_upstream,
            "remotes": [stream.shown_urls[url] for url in stream.resource.remotes],
            "viewers": counters["connections"],
            "bitrate_in": round(rate_in),
            "bitrate_out": round(rate_out),
            "dropped_packets": counters["packets_dropped"],
            "control": self.controls.get(stream.serve),
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

    def summary(self, since: int = 0) -> dict:
        """Global figures, each stream's latest sample, and the samples after ``since``."""
        current = self._current
        viewers = sum(s["viewers"] for s in current.values())
        limits = self.limits
        samples = [(seq, sample) for seq, sample in self._history if seq > since]
        history = {path: {"viewers": [], "bitrate_in": [], "bitrate_out": [], "errors": []}
                   for path in current}
        for _, sample in samples:
            for path, (count, rate_in, rate_out, errors) in sample.items():
                series = history.get(path)
                if series is not None:
                    series["viewers"].append(count)
                    series["bitrate_in"].append(rate_in)
                    series["bitrate_out"].append(rate_out)
                    series["errors"].append(errors)
        return {
            "version": __version__,
            "uptime": round(time.time() - self.started_at),
            "status": limits.status(viewers),
            "viewers": viewers,
            "max_viewers": limits.maxconnections,
            "full_viewers": limits.fullconnections,
            "bandwidth": sum(s["bitrate_out"] for s in current.values()),
            "bitrate_in": sum(s["bitrate_in"] for s in current.values()),
            "seq": self.seq,
            "interval": INTERVAL,
            "streams": [dict(s, history=history[path]) for path, s in current.items()],
        }

    def viewers(self, path: str) -> list[dict] | None:
        """The viewers of one stream now, or None if there is no such stream."""
        stream = self.streams.get(path)
        if stream is None:
            return None
        wall = time.time()
        viewers = [(v, False) for v in stream.hub.viewers] + [(s, True) for s in stream.audience.sessions.values()]
        return [{"remote": v.remote, "since": round(wall - v.duration, 1), "bytes": v.bytes_sent,
                 "dropped_packets": v.packets_dropped, "hls": hls}
                for v, hls in sorted(viewers, key=lambda pair: pair[0].started)]


def _explained(stream: "Stream") -> dict:
    """What the dashboard says beyond the figures: the channel's name, its HLS
    playlist, since when it is up, how often it came back, why it is down and
    when it tries again (wall-clock seconds)."""
    upstream = stream.upstream
    error = upstream.last_error
    return {
        "name": stream.resource.name or stream.serve,
        "hls": stream.resource.playlist_path if stream.segmenter is not None else None,
        "online_since": upstream.connected_since if stream.hub.online else None,
        "reconnects": max(0, upstream.connections - 1),
        "last_error": None if error is None else {"reason": error[0], "url": error[1], "at": error[2]},
        "next_attempt": upstream.next_attempt,
    }
