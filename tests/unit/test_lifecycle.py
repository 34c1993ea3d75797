"""A stream's life, driven by upstream events on a clock the test moves: online,
waiting out the grace period, switches, the first attempt and its waiting
viewers (admission), giving up, and the control API's switch."""

import time

import gevent

from restreamer.core.admission import join
from restreamer.core.hub import Hub
from restreamer.core.lifecycle import Lifecycle
from tests.support.ts import PACKET_SIZE, make_packets
from tests.unit.clock import FakeClock
from tests.unit.conftest import first_bytes, stream_settings, wait_log

PACKETS = make_packets(30)


def chunk(first: int, count: int) -> bytes:
    return PACKETS[first * PACKET_SIZE:(first + count) * PACKET_SIZE]


def lifecycle_with(graceperiod: float = 10, ondemand: bool = False, pulling=lambda: True) -> Lifecycle:
    clock = FakeClock()
    # Its packets carry no PAT: fast start would hold viewers till they count as such.
    hub = Hub("/s.ts", stream_settings(keepalive=0, faststart=False), clock)
    return Lifecycle(hub, graceperiod, ondemand, pulling, clock)


def connect(lifecycle: Lifecycle, url: str = "tcp://up:1", packets: bytes = chunk(0, 1)) -> None:
    """A connection to ``url`` that delivers ``packets``, as the upstream tells it."""
    lifecycle.connected(url)
    lifecycle.delivering()
    lifecycle.hub.publish(packets, at_once=True)


def online(**settings) -> Lifecycle:
    lifecycle = lifecycle_with(**settings)
    lifecycle.begin()
    connect(lifecycle)
    return lifecycle


def drain(viewer, timeout: float = 2) -> bytes:
    with gevent.Timeout(timeout):
        return b"".join(viewer.chunks())


def events(logs, name):
    return [e for e in logs if e["event"] == name]


def test_viewers_wait_out_the_grace_period_and_are_closed_when_it_expires(logs):
    lifecycle = online(graceperiod=5)
    hub = lifecycle.hub
    viewer = join(hub, lifecycle, "10.0.0.1")
    hub.publish(chunk(1, 2))
    lifecycle.disconnected()  # what was gathered goes out first
    assert events(logs, "stream waiting")[-1]["viewers"] == 1
    assert lifecycle.state == "waiting" and lifecycle.accepting  # the upstream may return
    lifecycle.clock.advance(4.9)
    assert not viewer.closed and not events(logs, "stream offline")
    lifecycle.clock.advance(0.1)
    (offline,) = events(logs, "stream offline")
    assert offline["reason"] == "upstream did not come back within the grace period"
    assert offline["stream"] == "/s.ts"
    assert drain(viewer) == chunk(1, 2)
    assert lifecycle.state == "offline" and join(hub, lifecycle) is None


def test_the_grace_period_starts_with_the_loss_even_with_nobody_watching(logs):
    lifecycle = online(graceperiod=5)
    lifecycle.disconnected()
    assert events(logs, "stream waiting")[-1]["viewers"] == 0
    assert lifecycle.state == "waiting"
    viewer = join(lifecycle.hub, lifecycle, "zapping in")
    assert viewer is not None


def test_an_upstream_back_within_the_grace_period_keeps_the_viewers_and_counts_a_switch(logs):
    lifecycle = online(graceperiod=0.2)
    viewer = join(lifecycle.hub, lifecycle)
    lifecycle.disconnected()
    lifecycle.clock.advance(0.15)
    connect(lifecycle, "tcp://up:2", chunk(1, 2))
    assert events(logs, "stream online")[-1]["url"] == "tcp://up:2"
    (switch,) = events(logs, "upstream switched")
    assert (switch["old_url"], switch["new_url"], switch["gap"]) == ("tcp://up:1", "tcp://up:2", 0.15)
    assert lifecycle.switches == 1 and abs(lifecycle.switch_gap - 0.15) < 1e-9
    lifecycle.clock.advance(1)  # past the grace period: nothing announces that nothing happened
    assert not viewer.closed and not events(logs, "stream offline")
    assert first_bytes(viewer) == chunk(1, 2)


def test_a_reconnect_with_nobody_watching_is_no_switch():
    lifecycle = online(graceperiod=1)
    lifecycle.disconnected()
    connect(lifecycle, "tcp://up:2")
    assert lifecycle.state == "online" and lifecycle.switches == 0


def test_what_each_url_delivered_is_counted_across_connections():
    lifecycle = online()
    lifecycle.disconnected()
    connect(lifecycle, "tcp://up:2", chunk(1, 3))
    lifecycle.disconnected()
    connect(lifecycle, "tcp://up:1", chunk(4, 2))
    assert lifecycle.received_by_url() == {"tcp://up:1": (3, 3 * PACKET_SIZE),
                                           "tcp://up:2": (3, 3 * PACKET_SIZE)}


def test_after_the_last_attempt_nobody_waits_for_the_grace_period(logs):
    lifecycle = online(graceperiod=30)
    viewer = join(lifecycle.hub, lifecycle)
    lifecycle.disconnected()
    lifecycle.given_up()
    assert events(logs, "stream offline")[-1]["reason"] == "no further upstream attempt"
    assert drain(viewer) == b"" and not lifecycle.accepting


def test_without_a_grace_period_viewers_are_closed_with_the_connection():
    lifecycle = online(graceperiod=0)
    viewer = join(lifecycle.hub, lifecycle)
    lifecycle.disconnected()
    assert viewer.closed and lifecycle.state == "offline"


def test_a_stream_without_an_upstream_is_not_connecting_until_one_starts():
    lifecycle = lifecycle_with(graceperiod=5)  # an idle on-demand stream's, say
    assert not lifecycle.connecting and lifecycle.state == "offline"
    assert join(lifecycle.hub, lifecycle) is None
    lifecycle.begin()
    assert lifecycle.connecting and lifecycle.state == "connecting"


def test_an_on_demand_stream_is_idle_while_not_pulling_and_accepts():
    pulling = []
    lifecycle = lifecycle_with(ondemand=True, pulling=lambda: bool(pulling))
    assert lifecycle.state == "idle" and lifecycle.accepting and lifecycle.serving
    pulling.append(True)
    lifecycle.begin()
    assert lifecycle.state == "connecting" and not lifecycle.serving
    lifecycle.set_enabled(False)
    assert lifecycle.state == "disabled" and not lifecycle.accepting


def test_a_viewer_joining_during_the_first_attempt_waits_and_gets_the_first_packet(logs):
    lifecycle = lifecycle_with(graceperiod=5)
    lifecycle.begin()
    joining = gevent.spawn(join, lifecycle.hub, lifecycle, "10.0.0.1")
    assert wait_log(logs, "viewer waiting", remote="10.0.0.1", stream="/s.ts")
    assert lifecycle.connecting and not joining.ready()
    connect(lifecycle, packets=chunk(0, 3))
    viewer = joining.get(timeout=1)
    assert first_bytes(viewer) == chunk(0, 3)  # from the very first packet


def test_a_viewer_joining_during_a_failed_first_attempt_gets_none(logs):
    lifecycle = lifecycle_with(graceperiod=5)
    lifecycle.begin()
    joining = gevent.spawn(join, lifecycle.hub, lifecycle)
    wait_log(logs, "viewer waiting")
    lifecycle.attempt_over()  # the attempt failed without a packet
    assert joining.get(timeout=1) is None
    assert not lifecycle.hub.viewers and not lifecycle.accepting


def test_a_viewer_waiting_for_a_stream_switched_off_meanwhile_gets_none(logs):
    lifecycle = lifecycle_with(graceperiod=5)
    lifecycle.begin()
    joining = gevent.spawn(join, lifecycle.hub, lifecycle)
    wait_log(logs, "viewer waiting")
    lifecycle.set_enabled(False)
    connect(lifecycle)
    assert joining.get(timeout=1) is None
    assert not lifecycle.hub.viewers


def test_a_viewer_joining_during_the_first_attempt_waits_at_most_the_grace_period():
    lifecycle = lifecycle_with(graceperiod=0.05)
    lifecycle.begin()
    began = time.monotonic()
    assert join(lifecycle.hub, lifecycle) is None
    assert 0.04 <= time.monotonic() - began < 1
    assert not lifecycle.hub.viewers


def test_switching_a_stream_off_closes_its_viewers_and_refuses_new_ones():
    lifecycle = online()
    hub = lifecycle.hub
    viewer = join(hub, lifecycle)
    hub.publish(chunk(1, 1))
    lifecycle.set_enabled(False)
    assert lifecycle.state == "disabled"
    assert drain(viewer) == chunk(1, 1)  # what was accepted still goes out
    assert join(hub, lifecycle) is None
    lifecycle.set_enabled(True)
    assert join(hub, lifecycle) is not None
