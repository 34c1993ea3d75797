"""Traffic statistics: totals read from the hubs' counters, rates over a sliding window.

Counting happens on the data path per chunk (see :mod:`restreamer.core.hub`);
this module only reads those counters, once a second and when asked, so it
costs the data path nothing.  Reading thousands of streams yields to the
event loop every few hundred, so viewers are never held up for long.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

from ..core.counters import Traffic
from ..core.stream import viewer_count
from .sampler import Sampler
from .snapshot import sliced
from .tshealth import ts_report

if TYPE_CHECKING:
    from ..core.stream import Stream

#: Seconds the per-second rates are averaged over.
WINDOW = 5.0
#: Seconds between samples; the rates are at most this old.
INTERVAL = 1.0

#: Every counter a report lists, in the original's order: the upstream's and
#: the viewers' (:attr:`Traffic.COUNTERS`) interleaved.
_COUNTERS = ("packets_received", "packets_sent", "packets_dropped",
             "bytes_received", "bytes_sent", "bytes_dropped")


@dataclass(frozen=True)
class Limits:
    """The viewer limits health and statistics report against."""

    maxconnections: int = 0
    fullconnections: int = 0

    def status(self, connections: int) -> str:
        """overload at ``maxconnections``, full at ``fullconnections``, else ok."""
        if self.maxconnections and connections >= self.maxconnections:
            return "overload"
        if self.fullconnections and connections >= self.fullconnections:
            return "full"
        return "ok"


def stream_totals(stream: "Stream") -> dict[str, int]:
    """Counters of one stream since start, viewers still connected included."""
    hub = stream.hub
    traffic = hub.traffic()
    relays = stream.relays
    if stream.ownership is None:
        received = (hub.packets_received, hub.bytes_received)
    else:
        traffic = _audience(traffic, relays)
        received = _from_remotes(stream)
    traffic.add(stream.audience.traffic())  # HLS viewers
    # A follower worker's switches mirror its owner's: only the owner's count.
    switching = stream.ownership is None or stream.ownership.owner
    return dict(traffic.as_dict(), connections=len(hub.viewers) - len(relays) + len(stream.audience),
                packets_received=received[0], bytes_received=received[1],
                stream_time_ns=int(traffic.stream_time * 1e9),
                switches=hub.switches if switching else 0,
                switch_gap_ns=int(hub.switch_gap * 1e9) if switching else 0)


def _audience(traffic: Traffic, relays: Iterable) -> Traffic:
    """``traffic`` without what went to sibling workers (they count their own viewers')."""
    for relay in relays:
        for name in Traffic.COUNTERS:
            setattr(traffic, name, getattr(traffic, name) - getattr(relay, name))
        traffic.stream_time -= relay.duration
    return traffic


def _from_remotes(stream: "Stream") -> tuple[int, int]:
    """(packets, bytes) received from the stream's remotes, not from its owner worker."""
    remotes = set(stream.resource.remotes)
    received = [counts for url, counts in stream.hub.received_by_url().items() if url in remotes]
    return sum(p for p, _ in received), sum(b for _, b in received)


def all_totals(streams: Mapping[str, "Stream"]) -> dict[str, dict[str, int]]:
    """:func:`stream_totals` of every stream, by path."""
    totals = {}
    for path, stream in sliced(streams.items()):
        totals[path] = stream_totals(stream)
    return totals


def _sum(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = collections.Counter()
    for part in parts:
        total.update(part)
    return dict(total)


class Statistics(Sampler):
    """What the health and statistics APIs report; zeros when ``nostats`` is set."""

    interval = INTERVAL

    def __init__(self, streams: Mapping[str, "Stream"], limits: Limits, enabled: bool = True):
        self.streams = streams
        self.limits = limits
        self.enabled = enabled
        self._samples: collections.deque = collections.deque()
        self._rates: dict[str, dict[str, float]] = {}

    def start(self) -> None:
        if self.enabled:
            super().start()

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
        viewers = viewer_count(self.streams.values()) if self.enabled else 0
        sent_per_second = sum(r["bytes_sent"] for r in self._rates.values()) if self.enabled else 0
        return self.health_report(viewers, sent_per_second, self.states())

    def health_report(self, viewers: int, sent_per_second: float, states: Mapping[str, str]) -> dict:
        limits = self.limits
        return {
            "status": "ok" if limits.status(viewers) == "ok" else "full",
            "viewer": viewers,
            "limit": limits.fullconnections,
            "max": limits.maxconnections,
            "bandwidth": int(sent_per_second * 8 / 1024),
            "streams": dict(states),
        }

    def states(self) -> dict[str, str]:
        """Each stream's state (see :data:`restreamer.core.stream.STATES`)."""
        return {path: stream.state for path, stream in self.streams.items()}

    def statistics(self) -> dict:
        # With nostats nothing is read and nothing was sampled: all zeros.
        totals = all_totals(self.streams) if self.enabled else dict.fromkeys(self.streams, {})
        connected = {path: bool(self.enabled and s.hub.online) for path, s in self.streams.items()}
        upstream = {path: s.shown_upstream if self.enabled else None for path, s in self.streams.items()}
        return self.assemble(totals, self._rates, connected, upstream, self.states())

    def assemble(self, totals: Mapping[str, dict], rates: Mapping[str, dict],
                 connected: Mapping[str, bool], upstream: Mapping[str, str | None],
                 states: Mapping[str, str]) -> dict:
        """The statistics API's answer from per-stream totals, rates and upstream state."""
        streams = {}
        for path, stream in sliced(self.streams.items()):
            streams[path] = dict(self._report(totals.get(path, {}), rates.get(path, {})),
                                 connected=connected.get(path, False), upstream=upstream.get(path),
                                 ts=ts_report(stream) if self.enabled else None,
                                 state=states.get(path))
        return dict(self._report(_sum(totals.values()), _sum(rates.values())), streams=streams)

    def _report(self, totals: dict, rates: dict) -> dict:
        limits = self.limits
        connections = totals.get("connections", 0)
        report = {
            "status": limits.status(connections),
            "connections": connections,
            "max_connections": limits.maxconnections,
            "full_connections": limits.fullconnections,
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
        return report

