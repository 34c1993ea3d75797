"""Channels on demand, end to end: an on-demand stream connects to its upstream
only while it has viewers (and for `idletimeout` seconds after the last one
left), never refuses a viewer for being idle or connecting, and reports its
state in statistics, health, Prometheus and the check API."""

import json
import re
import time

from tests.support.polling import poll
from tests.support.ts import PACKET_SIZE, assert_contiguous
from tests.support.viewer import http_get
from tests.support.server import event
from tests.support.ts import keyframes, strip_start, whole

RATE = 2_000_000
CHANNELS = 200
WATCHED = (7, 42, 199)
#: Seconds a test watches the upstream to see that nothing connects to it.
OBSERVE = 3.0


def apis():
    return [{"type": "api", "api": "statistics", "serve": "/statistics"},
            {"type": "api", "api": "health", "serve": "/health"},
            {"type": "api", "api": "prometheus", "serve": "/metrics"},
            {"type": "api", "api": "check", "serve": "/check", "remote": "/c0.ts"}]


def states(rs):
    return {path: s["state"] for path, s in json.loads(http_get(rs.url("/statistics"))[2])["streams"].items()}


def prometheus_state(rs, stream):
    """The states the restreamer_stream_state gauge has at 1 for `stream`."""
    text = http_get(rs.url("/metrics"))[2].decode()
    found = set()
    for labels, value in re.findall(r"^restreamer_stream_state\{(.*)\} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if labels["stream"] == stream and float(value) == 1:
            found.add(labels["state"])
    return found


def test_200_on_demand_channels_with_3_watched_pull_exactly_3_upstreams(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    base = f"http://127.0.0.1:{up.port}"
    channels = [{"type": "stream", "serve": f"/c{i}.ts", "remote": f"{base}/c{i}.ts"}
                for i in range(CHANNELS)]
    # One channel keeps its upstream long after its viewer left, as a zapping viewer needs.
    channels[WATCHED[0]]["idletimeout"] = 60
    rs = restreamer({"ondemand": True, "idletimeout": 1, "graceperiod": 5, "timeout": 5,
                     "resources": channels + apis()})
    assert set(states(rs).values()) == {"idle"}
    assert json.loads(http_get(rs.url("/health"))[2])["streams"]["/c0.ts"] == "idle"
    assert prometheus_state(rs, "/c0.ts") == {"idle"}
    assert http_get(rs.url("/check"))[0] == 200  # idle, but it can serve
    assert up.connections == []

    began = time.monotonic()
    clients = {i: viewer(rs.url(f"/c{i}.ts")) for i in WATCHED}
    for client in clients.values():
        assert client.wait_status(timeout=10) == 200
        client.wait_bytes(PACKET_SIZE * 7, timeout=10)
    first_packets = time.monotonic() - began
    time.sleep(OBSERVE)  # an observation window: nothing else may connect meanwhile
    assert sorted(conn.path for conn in up.connections) == sorted(f"/c{i}.ts" for i in WATCHED)
    assert len(up.open_connections()) == len(WATCHED)
    watched = {f"/c{i}.ts" for i in WATCHED}
    assert {path for path, state in states(rs).items() if state != "idle"} == watched
    assert {states(rs)[path] for path in watched} == {"online"}
    assert prometheus_state(rs, "/c42.ts") == {"online"}
    for i, client in clients.items():  # each from its upstream's first start on
        conn = next(c for c in up.connections if c.path == f"/c{i}.ts")
        assert assert_contiguous(strip_start(whole(client.data)), conn.sent) == keyframes(conn.sent)[0]
    print(f"3 on-demand viewers: first packets after {first_packets:.3f} s")

    # The last viewer of a channel leaves: its upstream closes after idletimeout.
    mark = rs.mark()
    left = time.monotonic()
    clients[42].close()
    closing = next(c for c in up.connections if c.path == "/c42.ts")
    closing.wait_closed(timeout=10)  # long enough to measure a late close, not to allow it
    closed_after = time.monotonic() - left
    assert 1 <= closed_after < 1 + 1, closed_after  # idletimeout, and within a second of it
    assert rs.wait_log(event("stream idle", stream="/c42.ts"), since=mark)
    assert poll(lambda: states(rs)["/c42.ts"], lambda s: s == "idle", 5, "/c42.ts idle again")
    print(f"upstream closed {closed_after:.3f} s after the last viewer left (idletimeout 1 s)")

    # A viewer zapping back within idletimeout gets the connection still open.
    clients[WATCHED[0]].close()
    back = viewer(rs.url(f"/c{WATCHED[0]}.ts"))
    assert back.wait_status() == 200
    back.wait_bytes(PACKET_SIZE * 7)
    assert len([c for c in up.connections if c.path == f"/c{WATCHED[0]}.ts"]) == 1
    assert len(up.connections) == len(WATCHED)


def test_a_viewer_of_an_unreachable_on_demand_stream_gets_404_within_timeout(restreamer, viewer, refused_port):
    rs = restreamer({"ondemand": True, "idletimeout": 1, "graceperiod": 5, "timeout": 2,
                     "reconnect": 0.2, "resources": [
                         {"type": "stream", "serve": "/s.ts", "remote": f"tcp://127.0.0.1:{refused_port}"},
                         *apis()[:1]]})
    began = time.monotonic()
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status(timeout=5) == 404
    assert time.monotonic() - began < 2 + 1  # at most timeout, with slack
    assert rs.wait_log(event("upstream error", stream="/s.ts"))
    # Retrying, with nobody to serve, stops after idletimeout: the stream is idle again.
    rs.wait_log(event("stream idle", stream="/s.ts"))
    assert states(rs)["/s.ts"] == "idle"


def test_ondemand_per_stream_overrides_the_global_default(upstream, restreamer):
    always, lazy = upstream(rate=RATE), upstream(rate=RATE)
    rs = restreamer({"resources": [
        {"type": "stream", "serve": "/always.ts", "remote": always.url},
        {"type": "stream", "serve": "/lazy.ts", "remote": lazy.url, "ondemand": True},
        *apis()[:1]]})
    rs.wait_log(event("stream online", stream="/always.ts"))
    assert states(rs) == {"/always.ts": "online", "/lazy.ts": "idle"}
    assert lazy.connections == []
