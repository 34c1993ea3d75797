"""Prometheus metrics, through prometheus_client.

Names and labels are those of the original restreamer.  prometheus_client
appends ``_total`` to counters in the exposition, so the original's
``streaming_packets_sent`` is scraped as ``streaming_packets_sent_total``.
Values are read from the hubs' per-chunk counters at scrape time; the data
path never calls into this module.  A scrape yields to the event loop every
few hundred streams it reads and every few hundred samples it formats, so
with thousands of streams it never holds the viewers up for long.  URLs are
shown redacted.

The metric names stay the original's, so existing scrapes and dashboards
keep working, even where our words differ: ``streaming_connections`` counts
a stream's viewers, and ``streaming_source_connected`` is 1 for the remote
that is online (delivering) now.  Whether the control API has switched a
stream off (enabled) is ``restreamer_stream_state{state="disabled"}``.
"""

from __future__ import annotations

import collections
import copy
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Mapping

import gevent
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from ..core.lifecycle import STATES
from ..core.view import StreamView
from .snapshot import PAUSE, sliced
from .tshealth import TSCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Samples formatted between two yields to the event loop.
SAMPLES_PER_SLICE = 500
#: Bytes reserved per sample in a worker's multiprocess files: a sample's key
#: (its name, labels and help as JSON) and value take about 240 with a URL label.
_SAMPLE_BYTES = 384
_RESERVE_STEP = 1 << 16


@dataclass(frozen=True)
class _Family:
    """One per-stream metric family: its name, help and labels, and for a gauge
    how prometheus_client's multiprocess mode combines the workers' values."""

    name: str
    help: str
    labels: tuple[str, ...] = ("stream",)
    gauge: str | None = None  # None: a counter


#: Every per-stream family, by the key :func:`_samples` reports it under.
FAMILIES = {
    "packets_sent": _Family("streaming_packets_sent", "Total packets sent to viewers."),
    "bytes_sent": _Family("streaming_bytes_sent", "Total bytes sent to viewers."),
    "packets_dropped": _Family("streaming_packets_dropped", "Total packets dropped for slow viewers."),
    "bytes_dropped": _Family("streaming_bytes_dropped", "Total bytes dropped for slow viewers."),
    "viewers": _Family("streaming_connections", "Number of connected viewers.", gauge="livesum"),
    "stream_time_ns": _Family("streaming_duration",
                              "Total time viewers spent streaming, in nanoseconds."),
    "online": _Family("streaming_source_connected", "Connection status, 0=disconnected 1=connected.",
                         ("stream", "url"), gauge="livemax"),
    "packets_received": _Family("streaming_packets_received",
                                "Total packets received from the upstream.", ("stream", "url")),
    "bytes_received": _Family("streaming_bytes_received", "Total bytes received from the upstream.",
                              ("stream", "url")),
    # 1 for the state a stream is in; under workers, the whole server's (MetricsMirror).
    "state": _Family("restreamer_stream_state", "1 for the state the stream is in (idle, connecting, "
                     "online, waiting, offline, disabled), 0 for the others.",
                     ("stream", "state"), gauge="livemax"),
    "switches": _Family("restreamer_upstream_switches",
                        "Upstream connections replaced while viewers were held."),
    "backlog_bytes": _Family("restreamer_backlog_bytes", "Bytes of the stream held in its backlog.",
                             gauge="livesum"),
    "switch_gap": _Family("restreamer_upstream_switch_gap_seconds",
                          "Total time held viewers saw no data across switches."),
    "missing": _Family("restreamer_upstream_missing",
                       "RTP datagrams (by sequence number) and HLS segments the upstream lost."),
}
_PER_VIEWER = ("packets_sent", "bytes_sent", "packets_dropped", "bytes_dropped", "viewers",
               "stream_time_ns")


def _samples(path: str, stream: StreamView, every_url: bool) -> Iterator[tuple[str, tuple, float]]:
    """(family key, label values, value) of every per-stream sample of ``stream``.

    Received counts are per remote; ``every_url`` adds the URLs the stream
    had before a reload changed its remotes, where a worker's mirror leaves
    out its owner's socket too.
    """
    totals = stream.totals()
    for key in _PER_VIEWER:
        yield key, (path,), totals[key]
    current = stream.state
    for name in STATES:
        yield "state", (path, name), 1 if name == current else 0
    yield "switches", (path,), totals["switches"]
    yield "switch_gap", (path,), totals["switch_gap_ns"] / 1e9
    yield "backlog_bytes", (path,), totals["backlog_bytes"]
    yield "missing", (path,), totals["missing"]
    for received in stream.received(every_url):
        labels = (path, received.url)
        yield "online", labels, 1 if received.online else 0
        yield "packets_received", labels, received.packets_received
        yield "bytes_received", labels, received.bytes_received


class StreamCollector:
    """Collects every stream's counters when Prometheus scrapes."""

    def __init__(self, streams: Mapping[str, StreamView]):
        self.streams = streams

    def describe(self) -> list:
        return []  # collected freshly at scrape time; nothing to pre-register

    def collect(self) -> Iterator[Metric]:
        families = {key: (GaugeMetricFamily if f.gauge else CounterMetricFamily)(
                        f.name, f.help, labels=list(f.labels))
                    for key, f in FAMILIES.items()}
        for path, stream in sliced(self.streams.items()):
            for key, labels, value in _samples(path, stream, every_url=True):
                families[key].add_metric(labels, value)
        yield from families.values()


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


def create_registry(streams: Mapping[str, StreamView]) -> CollectorRegistry:
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
    gunicorn's ``child_exit`` hook marks them dead).

    A stream's state is not mirrored: no multiprocess mode combines one-hot
    gauges into one state (``livemax`` gives 1 for each state some worker is
    in: a follower's idle beside its owner's online).  It is the whole
    server's, from ``server_states`` (the statistics' own combination, the
    worker closest to serving the stream), read at each scrape.
    """

    def __init__(self, streams: Mapping[str, StreamView]):
        from prometheus_client import Counter, Gauge

        self.streams = streams
        self._reserve()
        self.metrics = {
            key: (Gauge(f.name, f.help, f.labels, registry=None, multiprocess_mode=f.gauge)
                  if f.gauge else Counter(f.name, f.help, f.labels, registry=None))
            for key, f in FAMILIES.items() if key != "state"}
        self._mirrored: dict[tuple, float] = {}
        #: Each stream's state across the workers; None: this worker's own.
        self.server_states: Callable[[], Mapping[str, str]] | None = None

    def _reserve(self) -> None:
        """This worker's multiprocess files, made and allocated before
        prometheus_client maps them.

        prometheus_client makes each file sparse (and grows it so), and a
        write through the map to a page a full disk cannot hold kills the
        worker with SIGBUS, again at every restart.  A file that exists keeps
        its size as prometheus_client's capacity, so allocating it here for
        the samples this config needs makes a full disk ENOSPC now: one line,
        and the worker stops (restreamer.wsgi).  The files are named as
        prometheus_client names them (``{type}_{pid}.db``, gauges with their
        mode), as its ``mark_process_dead`` finds them.
        """
        samples: collections.Counter[str] = collections.Counter()
        for stream in self.streams.values():
            for key, family in FAMILIES.items():
                if key != "state":
                    prefix = f"gauge_{family.gauge}" if family.gauge else "counter"
                    samples[prefix] += len(stream.remotes) if "url" in family.labels else 1
        directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        for prefix, count in samples.items():
            size = -(-count * _SAMPLE_BYTES // _RESERVE_STEP) * _RESERVE_STEP
            path = os.path.join(directory, f"{prefix}_{os.getpid()}.db")
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as e:
                raise OSError(e.errno, e.strerror, path) from None
            finally:
                os.close(fd)

    def sync(self) -> None:
        for path, stream in self.streams.items():
            for key, labels, value in _samples(path, stream, every_url=False):
                if key == "state":
                    continue
                metric = self.metrics[key].labels(*labels)
                if FAMILIES[key].gauge:
                    metric.set(value)
                else:
                    # A counter only goes up: by what this worker's grew since the last sync.
                    increase = value - self._mirrored.get((key, labels), 0)
                    if increase > 0:
                        metric.inc(increase)
                        self._mirrored[(key, labels)] = value

    def describe(self) -> list:
        return []

    def collect(self) -> Iterator[Metric]:
        self.sync()  # this worker's figures fresh; the others' are a sample old
        f = FAMILIES["state"]
        family = GaugeMetricFamily(f.name, f.help, labels=list(f.labels))
        states = (self.server_states() if self.server_states is not None
                  else {path: stream.state for path, stream in self.streams.items()})
        for path, current in states.items():
            for name in STATES:
                family.add_metric((path, name), 1 if name == current else 0)
        yield family


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
