"""Prometheus metrics, through prometheus_client.

Names and labels are those of the original restreamer.  prometheus_client
appends ``_total`` to counters in the exposition, so the original's
``streaming_packets_sent`` is scraped as ``streaming_packets_sent_total``.
Values are read from the hubs' per-chunk counters at scrape time; the data
path never calls into this module.  A scrape yields to the event loop every
few hundred streams it reads and every few hundred samples it formats, so
with thousands of streams it never holds the viewers up for long.  URLs are
shown redacted.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

import gevent
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from ..core.stream import STATES
from .snapshot import PAUSE, sliced
from .statistics import stream_totals
from .tshealth import TSCollector

if TYPE_CHECKING:
    from ..core.stream import Stream

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Samples formatted between two yields to the event loop.
SAMPLES_PER_SLICE = 500


class StreamCollector:
    """Collects every stream's counters when Prometheus scrapes."""

    def __init__(self, streams: Mapping[str, "Stream"]):
        self.streams = streams

    def describe(self) -> list:
        return []  # collected freshly at scrape time; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        per_viewer = {
            "packets_sent": CounterMetricFamily(
                "streaming_packets_sent", "Total packets sent to viewers.", labels=["stream"]),
            "bytes_sent": CounterMetricFamily(
                "streaming_bytes_sent", "Total bytes sent to viewers.", labels=["stream"]),
            "packets_dropped": CounterMetricFamily(
                "streaming_packets_dropped", "Total packets dropped for slow viewers.", labels=["stream"]),
            "bytes_dropped": CounterMetricFamily(
                "streaming_bytes_dropped", "Total bytes dropped for slow viewers.", labels=["stream"]),
        }
        connections = GaugeMetricFamily(
            "streaming_connections", "Number of connected viewers.", labels=["stream"])
        duration = CounterMetricFamily(
            "streaming_duration", "Total time viewers spent streaming, in nanoseconds.", labels=["stream"])
        connected = GaugeMetricFamily(
            "streaming_source_connected", "Connection status, 0=disconnected 1=connected.",
            labels=["stream", "url"])
        packets_received = CounterMetricFamily(
            "streaming_packets_received", "Total packets received from the upstream.",
            labels=["stream", "url"])
        bytes_received = CounterMetricFamily(
            "streaming_bytes_received", "Total bytes received from the upstream.",
            labels=["stream", "url"])
        state = GaugeMetricFamily(
            "restreamer_stream_state", "1 for the state the stream is in (idle, connecting, "
            "online, waiting, offline, disabled), 0 for the others.", labels=["stream", "state"])
        switches = CounterMetricFamily(
            "restreamer_upstream_switches",
            "Upstream connections replaced while viewers were held.", labels=["stream"])
        switch_gap = CounterMetricFamily(
            "restreamer_upstream_switch_gap_seconds",
            "Total time held viewers saw no data across switches.", labels=["stream"])
        for path, stream in sliced(self.streams.items()):
            totals = stream_totals(stream)
            for name, family in per_viewer.items():
                family.add_metric([path], totals[name])
            connections.add_metric([path], totals["connections"])
            current = stream.state
            for name in STATES:
                state.add_metric([path, name], 1 if name == current else 0)
            switches.add_metric([path], totals["switches"])
            switch_gap.add_metric([path], totals["switch_gap_ns"] / 1e9)
            duration.add_metric([path], totals["stream_time_ns"])
            received = dict.fromkeys(stream.resource.remotes, (0, 0))
            received.update(stream.hub.received_by_url())
            for url, (packets, size) in received.items():
                shown = [path, stream.shown_urls.get(url, url)]
                connected.add_metric(shown, 1 if stream.hub.online and stream.hub.url == url else 0)
                packets_received.add_metric(shown, packets)
                bytes_received.add_metric(shown, size)
        yield from per_viewer.values()
        yield from (connections, duration, connected, packets_received, bytes_received,
                    state, switches, switch_gap)


class _ConnectionCollector:
    """Greenlets serving client connections, as the server counts them (leak check)."""

    def __init__(self, count: Callable[[], int]):
        self.count = count

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("restreamer_greenlets",
                                "Greenlets serving client connections (leak check).",
                                value=self.count())


def register_connection_gauge(registry: CollectorRegistry, count: Callable[[], int]) -> None:
    """Export ``count()`` as ``restreamer_greenlets``; the server calls this once."""
    registry.register(_ConnectionCollector(count))


def create_registry(streams: Mapping[str, "Stream"]) -> CollectorRegistry:
    """A registry of these streams' metrics plus the process's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StreamCollector(streams))
    registry.register(TSCollector(streams))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsMirror:
    """This worker's counters, mirrored into prometheus_client's multiprocess
    files at every statistics sample and scrape, so that any worker's scrape
    sums every worker's (the dead ones' counters included, their gauges not:
    gunicorn's ``child_exit`` hook marks them dead)."""

    def __init__(self, streams: Mapping[str, "Stream"]):
        from prometheus_client import Counter, Gauge

        self.streams = streams
        per_stream, per_url = ["stream"], ["stream", "url"]
        self.counters = {
            "packets_sent": Counter("streaming_packets_sent", "Total packets sent to viewers.",
                                    per_stream, registry=None),
            "bytes_sent": Counter("streaming_bytes_sent", "Total bytes sent to viewers.",
                                  per_stream, registry=None),
            "packets_dropped": Counter("streaming_packets_dropped",
                                       "Total packets dropped for slow viewers.", per_stream, registry=None),
            "bytes_dropped": Counter("streaming_bytes_dropped", "Total bytes dropped for slow viewers.",
                                     per_stream, registry=None),
            "stream_time_ns": Counter("streaming_duration",
                                      "Total time viewers spent streaming, in nanoseconds.",
                                      per_stream, registry=None),
        }
        self.received = {
            "packets": Counter("streaming_packets_received", "Total packets received from the upstream.",
                               per_url, registry=None),
            "bytes": Counter("streaming_bytes_received", "Total bytes received from the upstream.",
                             per_url, registry=None),
        }
        self.connections = Gauge("streaming_connections", "Number of connected viewers.", per_stream,
                                 registry=None, multiprocess_mode="livesum")
        self.connected = Gauge("streaming_source_connected",
                               "Connection status, 0=disconnected 1=connected.", per_url,
                               registry=None, multiprocess_mode="livemax")
        self.switches = Counter("restreamer_upstream_switches",
                                "Upstream connections replaced while viewers were held.", per_stream,
                                registry=None)
        self.switch_gap = Counter("restreamer_upstream_switch_gap_seconds",
                                  "Total time held viewers saw no data across switches.", per_stream,
                                  registry=None)
        # 1 for each state some live worker's stream is in.
        self.state = Gauge("restreamer_stream_state", "1 for the state the stream is in (idle, "
                           "connecting, online, waiting, offline, disabled), 0 for the others.",
                           ["stream", "state"], registry=None, multiprocess_mode="livemax")
        self._mirrored: dict[tuple, float] = {}

    def _advance(self, counter, labels: tuple, value: float) -> None:
        key = (id(counter), labels)
        increase = value - self._mirrored.get(key, 0)
        if increase > 0:
            counter.labels(*labels).inc(increase)
            self._mirrored[key] = value

    def sync(self) -> None:
        for path, stream in self.streams.items():
            totals = stream_totals(stream)
            for name, counter in self.counters.items():
                self._advance(counter, (path,), totals[name])
            self.connections.labels(path).set(totals["connections"])
            self._advance(self.switches, (path,), totals["switches"])
            self._advance(self.switch_gap, (path,), totals["switch_gap_ns"] / 1e9)
            current = stream.state
            for name in STATES:
                self.state.labels(path, name).set(1 if name == current else 0)
            received = dict.fromkeys(stream.resource.remotes, (0, 0))
            received.update((url, counts) for url, counts in stream.hub.received_by_url().items()
                            if url in received)
            for url, (packets, size) in received.items():
                labels = (path, stream.shown_urls.get(url, url))
                self._advance(self.received["packets"], labels, packets)
                self._advance(self.received["bytes"], labels, size)
                self.connected.labels(*labels).set(
                    1 if stream.hub.online and stream.hub.url == url else 0)

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Metric]:
        self.sync()  # this worker's figures fresh; the others' are a sample old
        return iter(())


def create_shared_registry(mirror: MetricsMirror) -> CollectorRegistry:
    """A registry that answers for every worker sharing ``$PROMETHEUS_MULTIPROC_DIR``."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry(auto_describe=False)
    registry.register(mirror)  # first: it writes what the next one reads
    multiprocess.MultiProcessCollector(registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``, formatted by prometheus_client a
    slice of each family at a time."""
    return b"".join(_format(family) for family in registry.collect())


def _format(family: Metric) -> bytes:
    samples = family.samples
    if len(samples) <= SAMPLES_PER_SLICE:
        return generate_latest(_Families([family]))
    parts = []
    for start in range(0, len(samples), SAMPLES_PER_SLICE):
        piece = copy.copy(family)
        piece.samples = samples[start:start + SAMPLES_PER_SLICE]
        text = generate_latest(_Families([piece]))
        if start:  # HELP and TYPE once per family
            text = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(b"#"))
        parts.append(text)
        gevent.sleep(PAUSE)
    return b"".join(parts)


class _Families:
    """Metric families already collected, as generate_latest takes them."""

    def __init__(self, families: Iterable[Metric]):
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families
