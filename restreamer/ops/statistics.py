"""Traffic statistics: totals read from the hubs' counters, rates over a sliding window.

Counting happens on the data path per chunk (see :mod:`restreamer.core.hub`);
this module only reads those counters, once a second and when asked, so it
costs the data path nothing.  Reading thousands of streams yields to the
event loop every few hundred, so viewers are never held up for long.
"""

from __future__ import annotations

import collections
import time
from typing import Iterable, Mapping

from ..base.periodic import Periodic
from ..core.limits import Limits
from ..core.view import StreamView
from .snapshot import sliced
from .tshealth import ts_report

#: Seconds the per-second rates are averaged over.
WINDOW = 5.0
#: Seconds between samples; the rates are at most this old.
INTERVAL = 1.0

#: Every counter a report lists, in the original's order: the upstream's and
#: the viewers' (:attr:`Traffic.COUNTERS`) interleaved.
_COUNTERS = ("packets_received", "packets_sent", "packets_dropped",
             "bytes_received", "bytes_sent", "bytes_dropped")


def all_totals(streams: Mapping[str, StreamView]) -> dict[str, dict[str, int]]:
    """:meth:`StreamView.totals` of every stream, by path."""
    totals = {}
    for path, stream in sliced(streams.items()):
        totals[path] = stream.totals()
    return totals


def _sum(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = collections.Counter()
    for part in parts:
        total.update(part)
    return dict(total)


class Statistics:
    """What the health and statistics APIs report; zeros when ``nostats`` is set."""

    def __init__(self, streams: Mapping[str, StreamView], limits: Limits, collecting: bool = True):
        self.streams = streams
        self.limits = limits
        self.collecting = collecting  # false under ``nostats``
        self._samples: collections.deque = collections.deque()
        self._rates: dict[str, dict[str, float]] = {}
        self._sampler = Periodic(self.sample, INTERVAL)

    def start(self) -> None:
        """Sample every :data:`INTERVAL` seconds from now on (unless ``nostats``)."""
        if self.collecting:
            self._sampler.start()

    def stop(self) -> None:
        self._sampler.stop()

    def sample(self) -> None:
        """Record the counters now and update the rates over the window."""
        self.record(all_totals(self.streams))

    def record(self, counters: dict[str, dict[str, int]]) -> None:
        """Take ``counters`` (:func:`all_totals`) as sampled now and update the rates."""
        now = time.monotonic()
        self._samples.append((now, counters))
        while len(self._samples) > 2 and now - self._samples[1][0] >= WINDOW:
            self._samples.popleft()
        then, old = self._samples[0]
        elapsed = now - then
        rates = {}
        for path, current in counters.items():
            before = old.get(path, {})
            rates[path] = {
                name: (current[name] - before.get(name, 0)) / elapsed if elapsed > 0 else 0.0
                for name in _COUNTERS
            }
        self._rates = rates

    # -- reports -----------------------------------------------------------

    def health(self) -> dict:
        viewers = sum(s.viewers for s in self.streams.values()) if self.collecting else 0
        sent_per_second = sum(r["bytes_sent"] for r in self._rates.values()) if self.collecting else 0
        return self.health_report(viewers, sent_per_second, self.states())

    def health_report(self, viewers: int, sent_per_second: float, states: Mapping[str, str]) -> dict:
        limits = self.limits
        return {
            "status": "ok" if limits.status(viewers) == "ok" else "full",
            "viewer": viewers,
            "limit": limits.full_viewers,
            "max": limits.max_viewers,
            "bandwidth": int(sent_per_second * 8 / 1024),
            "streams": dict(states),
        }

    def states(self) -> dict[str, str]:
        """Each stream's state (see :data:`restreamer.core.lifecycle.STATES`)."""
        return {path: stream.state for path, stream in self.streams.items()}

    def statistics(self) -> dict:
        # With nostats nothing is read and nothing was sampled: all zeros.
        totals = all_totals(self.streams) if self.collecting else dict.fromkeys(self.streams, {})
        online = {path: self.collecting and s.online for path, s in self.streams.items()}
        upstream = {path: s.upstream if self.collecting else None for path, s in self.streams.items()}
        return self.assemble(totals, self._rates, online, upstream, self.states())

    def assemble(self, totals: Mapping[str, dict], rates: Mapping[str, dict],
                 online: Mapping[str, bool], upstream: Mapping[str, str | None],
                 states: Mapping[str, str]) -> dict:
        """The statistics API's answer from per-stream totals, rates and upstream state.

        The field names are the Go original's: ``connected`` says the stream
        is online, and ``connections`` counts its viewers.
        """
        streams = {}
        for path, stream in sliced(self.streams.items()):
            streams[path] = dict(self._report(totals.get(path, {}), rates.get(path, {})),
                                 connected=online.get(path, False), upstream=upstream.get(path),
                                 ts=ts_report(stream) if self.collecting else None,
                                 state=states.get(path))
        return dict(self._report(_sum(totals.values()), _sum(rates.values())), streams=streams)

    def _report(self, totals: dict, rates: dict) -> dict:
        limits = self.limits
        viewers = totals.get("viewers", 0)
        report = {
            "status": limits.status(viewers),
            "connections": viewers,
            "max_connections": limits.max_viewers,
            "full_connections": limits.full_viewers,
        }
        for name in _COUNTERS:
            report[f"total_{name}"] = totals.get(name, 0)
        report["total_stream_time_ns"] = totals.get("stream_time_ns", 0)
        for unit in ("packets", "bytes"):
            for what in ("received", "sent", "dropped"):
                value = rates.get(f"{unit}_{what}", 0.0)
                report[f"{unit}_per_second_{what}"] = round(value, 1) if unit == "bytes" else round(value, 2)
        # New: after the original's fields, so their order stays as it was.
        report["total_switches"] = totals.get("switches", 0)
        report["total_switch_gap_ns"] = totals.get("switch_gap_ns", 0)
        report["backlog_bytes"] = totals.get("backlog_bytes", 0)
        report["total_missing"] = totals.get("missing", 0)
        return report

