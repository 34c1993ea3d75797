"""Transport-stream health as operators see it: the statistics' ``ts`` object,
Prometheus metrics and a log line when a stream turns bad or clean again.

Everything here reads the streams' analysers (:mod:`restreamer.ts.analysis`)
when asked or once a second; the data path never calls in.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..log import get_logger
from .snapshot import sliced

if TYPE_CHECKING:
    from ..core.view import StreamView

#: Seconds between two log lines about one stream's health.
LOG_INTERVAL = 60.0
#: Seconds without a new error after which a stream is clean again.
CLEAN_AFTER = 60.0

#: Prometheus counter name for each TR 101 290 error (``_total`` is appended on exposition).
ERROR_METRICS = {
    "TS_sync_loss": ("restreamer_ts_sync_losses", "Losses of TS sync (TR 101 290 1.1)."),
    "Sync_byte_error": ("restreamer_ts_sync_byte_errors", "Sync bytes missing where due (TR 101 290 1.2)."),
    "PAT_error": ("restreamer_ts_pat_errors", "PAT missing for 0.5 s, foreign or scrambled (TR 101 290 1.3)."),
    "Continuity_count_error": ("restreamer_ts_continuity_errors",
                               "Continuity counter errors (TR 101 290 1.4)."),
    "PMT_error": ("restreamer_ts_pmt_errors", "PMT missing for 0.5 s or scrambled (TR 101 290 1.5)."),
    "PID_error": ("restreamer_ts_pid_errors", "PIDs a PMT lists missing for 5 s (TR 101 290 1.6)."),
}


def ts_report(stream: "StreamView", now: float | None = None) -> dict | None:
    """The statistics API's ``ts`` object of a stream; None if it is not analysed."""
    if stream.analyser is None:
        return None
    return stream.analyser.snapshot(time.monotonic() if now is None else now)


class TSCollector:
    """The analysers' figures for Prometheus, collected at scrape time.

    Per-PID series are only those of the PIDs a PMT lists, so a stream full
    of stray PIDs cannot blow up the label sets.
    """

    def __init__(self, streams: Mapping[str, "StreamView"]):
        self.streams = streams

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        errors = {name: CounterMetricFamily(metric, text, labels=["stream"])
                  for name, (metric, text) in ERROR_METRICS.items()}
        skipped = CounterMetricFamily("restreamer_ts_skipped_bytes",
                                      "Bytes skipped while out of TS sync.", labels=["stream"])
        bitrate = GaugeMetricFamily("restreamer_stream_bitrate_bits",
                                    "Bits per second arriving from the upstream.", labels=["stream"])
        pid_bitrate = GaugeMetricFamily("restreamer_ts_pid_bitrate_bits",
                                        "Bits per second of each PID a PMT lists.",
                                        labels=["stream", "pid", "codec"])
        pid_errors = CounterMetricFamily("restreamer_ts_pid_continuity_errors",
                                         "Continuity counter errors of each PID a PMT lists.",
                                         labels=["stream", "pid", "codec"])
        pcr = GaugeMetricFamily("restreamer_ts_pcr_present",
                                "1 if the program's PCR PID carried a PCR in the last second.",
                                labels=["stream", "program"])
        keyframes = GaugeMetricFamily("restreamer_ts_keyframe_interval_seconds",
                                      "Mean time between the last keyframes of the video.",
                                      labels=["stream"])
        for path, stream in sliced(self.streams.items()):
            analyser = stream.analyser
            if analyser is None:
                continue
            for name, count in analyser.error_counts().items():
                errors[name].add_metric([path], count)
            report = analyser.snapshot(now)
            skipped.add_metric([path], report["skipped_bytes"])
            bitrate.add_metric([path], report["bitrate"])
            for program in report["programs"]:
                pcr.add_metric([path, str(program["program"])], 1 if program["pcr"] else 0)
                for es in program["streams"]:
                    labels = [path, str(es["pid"]), es["codec"]]
                    pid_bitrate.add_metric(labels, es["bitrate"])
                    pid_errors.add_metric(labels, es["continuity_errors"])
            if report["keyframe_interval"] is not None:
                keyframes.add_metric([path], report["keyframe_interval"])
        yield from errors.values()
        yield from (skipped, bitrate, pid_bitrate, pid_errors, pcr, keyframes)


class HealthLog:
    """Logs when a stream starts showing TS errors, and when it is clean again.

    At most one line per stream per ``LOG_INTERVAL``: a stream that flaps
    is reported by its state when the interval is up, with the errors since
    the last line.
    """

    def __init__(self, streams: Mapping[str, "StreamView"]):
        self.streams = streams
        self._state: dict[str, _Health] = {}

    def check(self, now: float) -> None:
        for path, stream in self.streams.items():
            if stream.analyser is None:
                continue
            counts = stream.analyser.error_counts()
            health = self._state.get(path)
            if health is None:
                health = self._state[path] = _Health(dict.fromkeys(counts, 0),
                                                     get_logger("tshealth", stream=path))
            total = sum(counts.values())
            if total > health.total:
                health.total = total
                health.error_at = now
            bad = health.error_at is not None and now - health.error_at < CLEAN_AFTER
            if bad == health.logged_bad or now - health.logged_at < LOG_INTERVAL:
                continue
            since = {name: n - health.logged_counts[name] for name, n in counts.items()
                     if n > health.logged_counts[name]}
            if bad:
                health.log.warning("stream has TS errors", errors=since)
            else:
                health.log.info("stream TS clean again", errors=since,
                              clean_for=round(now - health.error_at, 1))
            health.logged_bad, health.logged_at, health.logged_counts = bad, now, counts


class _Health:
    __slots__ = ("total", "error_at", "logged_bad", "logged_at", "logged_counts", "log")

    def __init__(self, counts: dict[str, int], log: Any):
        self.log = log
        self.total = sum(counts.values())
        self.error_at: float | None = None
        self.logged_bad = False
        self.logged_at = float("-inf")
        self.logged_counts = counts
