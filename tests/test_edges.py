"""One origin, two edges (separate restreamer processes) behind Debian's haproxy
running the shipped deploy/haproxy.cfg, all on loopback."""

import time

import pytest

from tests.support.haproxy import HAProxy
from tests.support.polling import poll
from tests.support.viewer import HttpViewer

RATE = 1_000_000
ENOUGH = 20_000
CHANNELS = [f"/ch{n}.ts" for n in range(4)]
RECONNECT = 0.5


@pytest.fixture
def cluster(upstream, restreamer):
    """cluster(fullconnections=0) -> (upstreams, origin, [edge1, edge2], haproxy)."""
    proxies = []

    def make(fullconnections=0):
        ups = [upstream(rate=RATE) for _ in CHANNELS]
        origin = restreamer({"resources": [{"type": "stream", "serve": ch, "remote": up.url}
                                           for ch, up in zip(CHANNELS, ups)]})
        edge_config = {
            "reconnect": RECONNECT, "graceperiod": 5, "fullconnections": fullconnections,
            "resources": [*({"type": "stream", "serve": ch, "remote": origin.url(ch)} for ch in CHANNELS),
                          {"type": "api", "api": "health", "serve": "/health"}]}
        edges = [restreamer(edge_config) for _ in range(2)]
        for edge in edges:
            for ch in CHANNELS:
                edge.wait_log(lambda e: e.get("event") == "stream online" and e["stream"] == ch)
        proxy = HAProxy([f"127.0.0.1:{edge.port}" for edge in edges])
        proxies.append(proxy)
        return ups, origin, edges, proxy

    yield make
    for proxy in proxies:
        proxy.close()


def edges_serving(edges, channel, since=(0, 0)):
    """Index of each edge that logged a viewer of ``channel`` (since its mark)."""
    return [i for i, edge in enumerate(edges) for _ in edge.find_logs(
        lambda e: e.get("event") == "viewer connected" and e["stream"] == channel, since=since[i])]


def reconnect(url, deadline):
    """A viewer that retries until it is answered 200, as a player does; fails after ``deadline``."""
    while True:
        client = HttpViewer(url)
        try:
            if client.wait_status(max(0.1, deadline - time.monotonic())) == 200:
                return client
        except AssertionError:
            pass
        client.close()
        assert time.monotonic() < deadline, f"{url}: not answered 200 in time (last: {client.status})"
        time.sleep(0.05)


def test_each_channel_sits_on_one_edge_and_survives_losing_it(cluster):
    ups, origin, edges, proxy = cluster()
    viewers = [HttpViewer(proxy.url(ch)) for ch in CHANNELS for _ in range(5)]
    try:
        for client in viewers:
            assert client.wait_status() == 200
            client.wait_bytes(ENOUGH)
        homes = {}
        for ch in CHANNELS:
            serving = poll(lambda: edges_serving(edges, ch), lambda got: len(got) >= 5, 5,
                           f"{ch}'s viewers' log lines")
            assert len(serving) == 5 and len(set(serving)) == 1, f"{ch} spread over edges {serving}"
            homes[ch] = serving[0]
        assert [len(up.connections) for up in ups] == [1] * len(CHANNELS)

        # The edge with the most channels dies; its viewers come back through
        # HAProxy on the other edge.
        victim = max((0, 1), key=list(homes.values()).count)
        orphans = [c for c in viewers if homes["/" + c.url.rpartition("/")[2]] == victim]
        edges[victim].proc.kill()
        killed = time.monotonic()
        for client in orphans:
            client.wait_closed()
        deadline = killed + RECONNECT + 2
        again = [reconnect(client.url, deadline) for client in orphans]
        viewers += again
        for client in again:
            client.wait_bytes(ENOUGH, max(0.1, deadline - time.monotonic()))
        assert time.monotonic() < deadline, "the killed edge's viewers took too long to play again"
        survivor = 1 - victim
        for ch in homes:
            if homes[ch] == victim:
                # A fast-started viewer has its bytes before its edge's log line may be read.
                poll(lambda: edges_serving(edges, ch).count(survivor), lambda n: n >= 5, 5,
                     f"{ch}'s viewers logged by the surviving edge")
                assert edges_serving(edges, ch).count(survivor) == 5
        for client in viewers:
            if client not in orphans:
                client.wait_bytes(len(client.data) + ENOUGH)
        assert [len(up.connections) for up in ups] == [1] * len(CHANNELS)
    finally:
        for client in viewers:
            client.close()


def test_an_edge_at_fullconnections_takes_no_new_viewers(cluster):
    ups, origin, edges, proxy = cluster(fullconnections=2)
    channel = CHANNELS[0]
    mark = proxy.mark()
    first = [HttpViewer(proxy.url(channel)) for _ in range(2)]
    try:
        for client in first:
            assert client.wait_status() == 200
        home = poll(lambda: edges_serving(edges, channel), lambda got: len(got) >= 2, 5,
                    "the first viewers' log lines")
        assert len(set(home)) == 1
        full = home[0]
        proxy.wait_line(f"edges/edge{full + 1} is DOWN", since=mark)
        marks = [edge.mark() for edge in edges]
        later = [HttpViewer(proxy.url(channel)) for _ in range(2)]
        first += later
        for client in later:
            assert client.wait_status() == 200
            client.wait_bytes(ENOUGH)
        poll(lambda: edges_serving(edges, channel, since=marks), lambda got: len(got) >= 2, 5,
             "the later viewers' log lines")
        assert edges_serving(edges, channel, since=marks) == [1 - full] * 2
        for client in first[:2]:  # the full edge keeps the viewers it has
            client.wait_bytes(len(client.data) + ENOUGH)
            assert not client.closed.is_set()
    finally:
        for client in first:
            client.close()
