"""An on-demand stream's state machine, driven through the relay with an injected
opener: idle until a viewer, connecting, online, kept for idletimeout after
the last viewer, idle again; a viewer coming back in time keeps the connection.
(tests/test_ondemand.py shows the same over real sockets.)"""

import gevent

from restreamer.config import from_dict
from restreamer.core.relay import Refusal, Relay
from tests.support.ts import make_packets
from tests.unit.clock import FakeClock
from tests.unit.conftest import Live, first_bytes, wait_log, wait_until

IDLE = 0.2


def relay_with(connections: list, graceperiod: float = 2) -> Relay:
    def opener(url, settings):
        connections.append(Live())
        return connections[-1]
    # faststart off: the packets carry no PAT, so viewers join at the live edge at once.
    relay = Relay(from_dict({"ondemand": True, "idletimeout": IDLE, "graceperiod": graceperiod, "faststart": False,
                             "resources": [{"type": "stream", "serve": "/s.ts",
                                            "remote": "tcp://upstream:1"}]}), opener,
                  FakeClock())
    relay.start()
    return relay


def test_idle_until_a_viewer_then_online_then_idle_again_after_idletimeout(logs):
    connections = []
    relay = relay_with(connections)
    stream = relay.streams["/s.ts"]
    try:
        assert stream.state == "idle" and stream.serving and connections == []
        viewer = relay.admit(stream, "10.0.0.1")
        assert not isinstance(viewer, Refusal)
        assert stream.state == "online" and len(connections) == 1
        relay.clock.advance(stream.hub.until_next())  # the first window is handed out
        assert first_bytes(viewer) == make_packets(7)  # from the first packet on
        relay.release(stream, viewer)
        relay.clock.advance(IDLE - 0.01)
        gevent.idle()
        assert stream.state == "online" and not connections[0].closed.is_set()  # kept for idletimeout
        relay.clock.advance(0.02)
        assert connections[0].closed.wait(1)
        assert wait_log(logs, "stream idle", stream="/s.ts")
        assert stream.state == "idle"
        # Closed on purpose: no viewer is held for the upstream, nor is it an outage.
        gevent.sleep(0.1)
        assert [e["event"] for e in logs if e.get("stream") == "/s.ts"
                and e["event"] in ("stream waiting", "stream offline")] == []
    finally:
        relay.stop()


def test_a_viewer_back_within_idletimeout_keeps_the_connection(logs):
    connections = []
    relay = relay_with(connections)
    stream = relay.streams["/s.ts"]
    try:
        first = relay.admit(stream, "10.0.0.1")
        relay.release(stream, first)
        second = relay.admit(stream, "10.0.0.1")
        assert not isinstance(second, Refusal)
        relay.clock.advance(IDLE * 3)
        gevent.idle()
        assert not connections[0].closed.is_set()  # the idle timer was called off
        assert len(connections) == 1 and stream.state == "online"
        relay.release(stream, second)
        relay.clock.advance(IDLE)
        assert connections[0].closed.wait(1)
    finally:
        relay.stop()


def test_a_stream_switched_offline_is_disabled_not_idle_and_refuses():
    connections = []
    relay = relay_with(connections)
    stream = relay.streams["/s.ts"]
    try:
        relay.set_stream_enabled(stream, False)
        assert stream.state == "disabled" and not stream.serving
        assert isinstance(relay.admit(stream, "10.0.0.1"), Refusal) and connections == []
        relay.set_stream_enabled(stream, True)
        assert wait_until(lambda: stream.state == "idle")
    finally:
        relay.stop()
