"""Statistics and health: totals read from the hubs' counters, rates over the
sampling window, the limits' verdicts, and zeros under ``nostats``."""

import pytest

import restreamer.ops.statistics as statistics_module
from restreamer.config import from_dict
from restreamer.core.admission import join
from restreamer.core.limits import Limits
from restreamer.core.stream import Stream
from restreamer.core.view import StreamViews
from restreamer.ops.statistics import Statistics
from tests.support.ts import PACKET_SIZE, make_packets

PACKETS = make_packets(10)


class Clock:
    """The statistics module's view of time, moved by the test."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(statistics_module, "time", clock)
    return clock


def streams(*paths, **top):
    # faststart off: the packets carry no PAT, so viewers join at the live edge at once.
    config = from_dict({"faststart": False, **top, "resources": [{"type": "stream", "serve": p, "remote": f"tcp://up{i}:1"}
                                      for i, p in enumerate(paths)]})
    return {s.serve: Stream(s, config) for s in config.streams}


def feed(stream, packets: int, url: str = "tcp://up0:1") -> None:
    """The upstream delivers ``packets`` packets to every viewer of the stream."""
    lifecycle = stream.lifecycle
    if lifecycle.url is None:
        lifecycle.connected(url)
        lifecycle.delivering()
    stream.hub.publish(PACKETS[:packets * PACKET_SIZE], at_once=True)


def test_totals_add_up_viewers_connected_and_departed_across_streams():
    s = streams("/a.ts", "/b.ts")
    a, b = s["/a.ts"], s["/b.ts"]
    feed(a, 1)  # online, nobody watching yet
    stays, leaves = join(a.hub, a.lifecycle, "1"), join(a.hub, a.lifecycle, "2")
    feed(b, 1)
    b_viewer = join(b.hub, b.lifecycle, "3")
    feed(a, 3)
    feed(b, 2)
    leaves.close()
    assert b"".join(leaves.chunks()) == PACKETS[:3 * PACKET_SIZE]
    a.hub.remove(leaves)
    assert stays.packets_sent == 0 and b_viewer.packets_sent == 0  # in the backlog, not yet sent
    report = Statistics(StreamViews(s), Limits()).statistics()
    per_a, per_b = report["streams"]["/a.ts"], report["streams"]["/b.ts"]
    assert (per_a["connections"], per_a["total_packets_received"], per_a["total_packets_sent"],
            per_a["total_bytes_sent"]) == (1, 4, 3, 3 * PACKET_SIZE)
    assert (per_b["connections"], per_b["total_packets_received"], per_b["total_packets_sent"]) == (1, 3, 0)
    assert (per_a["connected"], per_a["upstream"]) == (True, "tcp://up0:1")
    assert (report["connections"], report["total_packets_received"],
            report["total_bytes_received"]) == (2, 7, 7 * PACKET_SIZE)
    assert report["total_stream_time_ns"] > 0  # the departed viewer's time is kept


def test_a_dropped_chunk_counts_for_its_stream_and_in_total():
    s = streams("/a.ts", backlogbytes=2 * PACKET_SIZE)
    a = s["/a.ts"]
    feed(a, 1)
    join(a.hub, a.lifecycle)  # a viewer that takes nothing
    feed(a, 2)
    feed(a, 3)  # the backlog keeps only this chunk: the viewer loses the 2 packets before it
    report = Statistics(StreamViews(s), Limits()).statistics()
    assert report["total_packets_dropped"] == report["streams"]["/a.ts"]["total_packets_dropped"] == 2
    assert report["total_bytes_dropped"] == 2 * PACKET_SIZE


def test_rates_are_the_counters_change_over_the_sampled_window(clock):
    s = streams("/a.ts")
    a = s["/a.ts"]
    stats = Statistics(StreamViews(s), Limits())
    feed(a, 1)
    stats.sample()
    clock.now += 2
    feed(a, 5)
    stats.sample()
    rates = stats.statistics()
    assert rates["packets_per_second_received"] == 2.5
    assert rates["bytes_per_second_received"] == round(5 * PACKET_SIZE / 2, 1)
    assert rates["streams"]["/a.ts"]["packets_per_second_received"] == 2.5
    # Past the window, older samples stop counting: nothing new, rate 0.
    clock.now += statistics_module.WINDOW + 1
    stats.sample()
    clock.now += 1
    stats.sample()
    assert stats.statistics()["packets_per_second_received"] == 0


def test_health_reports_viewers_bandwidth_and_full_against_the_limits(clock):
    s = streams("/a.ts")
    a = s["/a.ts"]
    stats = Statistics(StreamViews(s), Limits(max_viewers=3, full_viewers=2))
    feed(a, 1)
    viewers = [join(a.hub, a.lifecycle, str(i)) for i in range(2)]
    writes = [v.chunks() for v in viewers]
    stats.sample()
    clock.now += 1
    feed(a, 8)
    for w in writes:
        assert next(w) == b""  # the response head goes out at once
        next(w)
    stats.sample()
    health = stats.health()
    assert health == {"status": "full", "viewer": 2, "limit": 2, "max": 3,
                      "bandwidth": int(2 * 8 * PACKET_SIZE * 8 / 1024),
                      "streams": {path: "online" for path in stats.streams}}
    assert stats.statistics()["status"] == "full"
    join(a.hub, a.lifecycle, "3")
    assert stats.statistics()["status"] == "overload"
    assert stats.health()["status"] == "full"  # health knows only ok and full, as the original


def test_nostats_reports_zeros():
    s = streams("/a.ts")
    feed(s["/a.ts"], 1)
    join(s["/a.ts"].hub, s["/a.ts"].lifecycle)
    stats = Statistics(StreamViews(s), Limits(full_viewers=1), collecting=False)
    assert stats.health()["viewer"] == 0 and stats.health()["status"] == "ok"
    report = stats.statistics()
    assert (report["connections"], report["total_packets_received"]) == (0, 0)
    assert report["streams"]["/a.ts"]["connected"] is False
