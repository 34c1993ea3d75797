"""The prometheus API, read with prometheus_client's own parser."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import poll
from tests.support.server import RestreamerProcess
from tests.support.ts import PACKET_SIZE
from tests.support.upstream import TSUpstream
from tests.support.viewer import http_get

DEAD_URL = "http://127.0.0.1:1/nothing.ts"

PER_STREAM = {"streaming_packets_sent": "counter", "streaming_bytes_sent": "counter",
              "streaming_packets_dropped": "counter", "streaming_bytes_dropped": "counter",
              "streaming_connections": "gauge", "streaming_duration": "counter"}
PER_SOURCE = {"streaming_source_connected": "gauge", "streaming_packets_received": "counter",
              "streaming_bytes_received": "counter"}
STREAMS = ("/watch.ts", "/drop.ts", "/leave.ts", "/dead.ts", "/two.ts")


@pytest.fixture(scope="module")
def source(sample):
    server = TSUpstream(sample)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fast_source(sample):
    """20 Mbit/s: fills a stalled viewer's socket buffers within a second or two."""
    server = TSUpstream(sample, rate=20_000_000)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(source, fast_source, tmp_path_factory):
    def stream(serve, *remotes):
        return {"type": "stream", "serve": serve, "remotes": list(remotes)}
    # A one-second backlog: a viewer that stops reading drops soon.
    config = {"backlogseconds": 1, "reconnect": 0.2, "resources": [
        stream("/watch.ts", source.url), stream("/drop.ts", fast_source.url),
        stream("/leave.ts", source.url), stream("/dead.ts", DEAD_URL),
        stream("/two.ts", DEAD_URL, source.url),
        {"type": "api", "api": "prometheus", "serve": "/metrics"}]}
    process = RestreamerProcess(config, tmp_path_factory.mktemp("metrics")).start()
    for name in ("/watch.ts", "/drop.ts", "/leave.ts", "/two.ts"):
        process.wait_log(lambda e, name=name: e.get("event") == "stream online" and e.get("stream") == name)
    yield process
    process.close()
    print(process.output_tail())


def scrape(server):
    status, headers, body = http_get(server.url("/metrics"))
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def value(families, name, **labels):
    """The one sample of `name` (a family name) with exactly these labels."""
    family = families[name]
    suffix = "_total" if family.type == "counter" else ""
    found = [s.value for s in family.samples if s.name == name + suffix and s.labels == labels]
    assert len(found) == 1, (name, labels, family.samples)
    return found[0]


def watch(viewer, server, path, **kwargs):
    client = viewer(server.url(path), **kwargs)
    assert client.wait_status() == 200
    client.wait_bytes(PACKET_SIZE * 7)
    return client


def test_families_types_and_labels(server, source, fast_source):
    families = scrape(server)
    for name, kind in {**PER_STREAM, **PER_SOURCE}.items():
        assert families[name].type == kind, name
    for name in PER_STREAM:
        assert {tuple(sorted(s.labels.items())) for s in families[name].samples
                if not s.name.endswith("_created")} == {(("stream", path),) for path in STREAMS}, name
    for name in PER_SOURCE:
        series = {(s.labels["stream"], s.labels["url"]) for s in families[name].samples
                  if not s.name.endswith("_created")}
        assert series == {("/watch.ts", source.url), ("/drop.ts", fast_source.url),
                          ("/leave.ts", source.url),
                          ("/dead.ts", DEAD_URL), ("/two.ts", DEAD_URL), ("/two.ts", source.url)}, name
    assert families["streaming_source_connected"].documentation == (
        "Connection status, 0=disconnected 1=connected.")


def test_source_metrics(server, source):
    families = scrape(server)
    assert value(families, "streaming_source_connected", stream="/watch.ts", url=source.url) == 1
    assert value(families, "streaming_source_connected", stream="/dead.ts", url=DEAD_URL) == 0
    assert value(families, "streaming_source_connected", stream="/two.ts", url=source.url) == 1
    assert value(families, "streaming_source_connected", stream="/two.ts", url=DEAD_URL) == 0
    packets = value(families, "streaming_packets_received", stream="/watch.ts", url=source.url)
    assert packets > 0
    assert value(families, "streaming_bytes_received", stream="/watch.ts", url=source.url) == (
        packets * PACKET_SIZE)
    assert value(families, "streaming_packets_received", stream="/dead.ts", url=DEAD_URL) == 0
    assert value(families, "streaming_packets_received", stream="/two.ts", url=DEAD_URL) == 0
    later = poll(lambda: scrape(server), lambda f: value(
        f, "streaming_packets_received", stream="/watch.ts", url=source.url) > packets, 2,
        "the received counter to grow")
    assert value(later, "streaming_bytes_received", stream="/watch.ts", url=source.url) > (
        packets * PACKET_SIZE)


def test_viewer_metrics_while_watching(server, viewer):
    assert value(scrape(server), "streaming_connections", stream="/watch.ts") == 0
    client = watch(viewer, server, "/watch.ts")
    received = len(client.wait_bytes(PACKET_SIZE * 50))
    families = scrape(server)
    assert value(families, "streaming_connections", stream="/watch.ts") == 1
    sent = value(families, "streaming_bytes_sent", stream="/watch.ts")
    assert sent >= received
    assert sent == value(families, "streaming_packets_sent", stream="/watch.ts") * PACKET_SIZE
    assert value(families, "streaming_duration", stream="/watch.ts") > 0
    assert value(families, "streaming_packets_dropped", stream="/watch.ts") == 0
    assert value(families, "streaming_connections", stream="/drop.ts") == 0


def test_dropped_packets_of_a_stalled_viewer(server, viewer):
    client = watch(viewer, server, "/drop.ts", rcvbuf=4096)
    client.pause()
    families = poll(lambda: scrape(server),
                    lambda f: value(f, "streaming_packets_dropped", stream="/drop.ts") > 0, 10,
                    "packets dropped for a viewer that stopped reading")
    dropped = value(families, "streaming_packets_dropped", stream="/drop.ts")
    assert value(families, "streaming_bytes_dropped", stream="/drop.ts") == dropped * PACKET_SIZE


def test_viewer_metrics_after_leaving(server, viewer):
    client = watch(viewer, server, "/leave.ts")
    mark = server.mark()
    client.close()
    left = server.wait_log(lambda e: e.get("event") == "viewer disconnected"
                           and e.get("stream") == "/leave.ts", since=mark)
    # Scrapes may be answered from a report a few milliseconds old (ops/snapshot.py).
    families = poll(lambda: scrape(server),
                    lambda f: value(f, "streaming_duration", stream="/leave.ts") > 0
                    and value(f, "streaming_connections", stream="/leave.ts") == 0, 5,
                    "the departed viewer out of the metrics")
    assert value(families, "streaming_bytes_sent", stream="/leave.ts") == left["bytes"]
    assert value(families, "streaming_packets_sent", stream="/leave.ts") == left["packets"]
    assert value(families, "streaming_duration", stream="/leave.ts") == pytest.approx(
        left["duration"] * 1e9, abs=2e6)


def test_process_metrics(server):
    families = scrape(server)
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds",
                 "python_info", "python_gc_objects_collected"):
        assert name in families, name
    assert value(families, "process_resident_memory_bytes") > 0
