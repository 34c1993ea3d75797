"""Streams whose remotes are equal share one upstream connection, driven through
the relay with an injected opener and a FakeClock: each stream gets its own
program, loses it alone, and comes and goes (on demand, by reload) without
disturbing the others.  (tests/test_programs.py shows it over real sockets.)"""

import gevent
from gevent.queue import Queue

from restreamer.config import from_dict
from restreamer.core.relay import Refusal, Relay
from restreamer.core.reload import apply, make_plan
from restreamer.core.view import StreamView
from tests.support.ts import make_packets, packets_of, packet_pid
from tests.unit.clock import FakeClock
from tests.unit.conftest import first_bytes, wait_log, wait_until
from tests.unit.test_program import es, pat, pmt

REMOTE = "tcp://transponder:1"
IDLE = 0.2
BOTH = pat({1: 0x1000, 2: 0x1001}) + pmt(0x1000, 1, [0x100]) + pmt(0x1001, 2, [0x200])


class Live:
    """A live connection: reads what the test pushes, waits in between."""

    def __init__(self, url: str, settings):
        self.url, self.settings = url, settings
        self._queue = Queue()
        self.closed = False

    def push(self, data: bytes) -> None:
        self._queue.put(data)

    def read(self) -> bytes:
        return self._queue.get()

    def close(self) -> None:
        self.closed = True


class Opener:
    def __init__(self):
        self.connections: list[Live] = []

    def __call__(self, url, settings):
        self.connections.append(Live(url, settings))
        return self.connections[-1]

    def open(self) -> list[Live]:
        return [c for c in self.connections if not c.closed]


def stream(serve, remote=REMOTE, **extra):
    return {"type": "stream", "serve": serve, "remote": remote, **extra}


def config(*resources, **top):
    return from_dict({"faststart": False, "graceperiod": 2, "idletimeout": IDLE, **top,
                      "resources": list(resources)})


def relay_of(opener, *resources, **top) -> Relay:
    relay = Relay(config(*resources, **top), opener, FakeClock())
    relay.start()
    return relay


def watch(relay: Relay, path: str):
    viewer = relay.admit(relay.streams[path], "10.0.0.1")
    assert not isinstance(viewer, Refusal), viewer
    return viewer


def deliver(relay: Relay, connection: Live, data: bytes) -> None:
    """``data`` from the upstream, handed out by every hub it reaches."""
    connection.push(data)
    wait_until(lambda: connection._queue.empty(), what="the upstream to read")
    gevent.idle()
    relay.clock.advance(0.05)  # past every hub's window


def pids(data: bytes) -> list[int]:
    return [packet_pid(p) for p in packets_of(data)]


def test_streams_on_programs_of_one_remote_share_one_connection_each_with_its_program(logs):
    opener = Opener()
    relay = relay_of(opener, stream("/one.ts", program=1), stream("/two.ts", program=2),
                     stream("/all.ts"), stream("/apart.ts", clientinterface="lo"))
    try:
        wait_until(lambda: len(opener.connections) == 2, what="the connections")
        shared, apart = sorted(opener.connections, key=lambda c: c.settings.clientinterface or "")
        assert (shared.url, apart.url) == (REMOTE, REMOTE)  # a different interface: a pull apart
        joining = {path: gevent.spawn(watch, relay, path) for path in ("/one.ts", "/two.ts", "/all.ts")}
        gevent.idle()
        deliver(relay, shared, BOTH + es(0x100) + es(0x200))
        viewers = {path: job.get(timeout=1) for path, job in joining.items()}
        assert pids(first_bytes(viewers["/one.ts"])) == [0, 0x1000, 0x100, 0x100, 0x100]
        assert pids(first_bytes(viewers["/two.ts"])) == [0, 0x1001, 0x200, 0x200, 0x200]
        assert first_bytes(viewers["/all.ts"]) == BOTH + es(0x100) + es(0x200)
        assert len(opener.connections) == 2
        assert StreamView(relay.streams["/one.ts"]).shared_with == ["/all.ts", "/two.ts"]
        assert StreamView(relay.streams["/apart.ts"]).shared_with == []
        # Each stream logs the connection under its own name.
        for path in ("/one.ts", "/two.ts", "/all.ts"):
            assert wait_log(logs, "upstream connected", stream=path)["url"] == REMOTE
    finally:
        relay.stop()
    assert shared.closed and apart.closed


def test_a_program_gone_from_the_pat_holds_its_stream_alone_until_it_is_listed_again(logs):
    opener = Opener()
    relay = relay_of(opener, stream("/one.ts", program=1), stream("/two.ts", program=2))
    one, two = relay.streams["/one.ts"], relay.streams["/two.ts"]
    try:
        wait_until(lambda: opener.connections, what="the connection")
        (connection,) = opener.connections
        deliver(relay, connection, BOTH + es(0x100) + es(0x200))
        assert one.state == two.state == "online"
        viewer = watch(relay, "/one.ts")
        deliver(relay, connection, pat({1: 0x1000}) + es(0x100) + es(0x200))
        error = wait_log(logs, "upstream error", stream="/two.ts")
        assert error["reason"] == "program 2 is not in the PAT (it lists 1)"
        assert (one.state, two.state) == ("online", "waiting")
        assert pids(first_bytes(viewer)) == [0, 0x100, 0x100, 0x100]
        assert two.pull.last_error[0] == error["reason"]
        # Each PAT without it is no news: one error line, not one per PAT.
        deliver(relay, connection, pat({1: 0x1000}) + es(0x200))
        assert len([e for e in logs if e["event"] == "upstream error"]) == 1
        two_viewer = watch(relay, "/two.ts")  # a waiting stream takes viewers
        deliver(relay, connection, BOTH + es(0x200))
        assert two.state == "online" and not connection.closed and len(opener.connections) == 1
        assert pids(first_bytes(two_viewer)) == [0, 0x1001, 0x200, 0x200, 0x200]
        assert two.lifecycle.switches == 1  # its viewer waited for the program to come back
    finally:
        relay.stop()


def test_on_demand_streams_share_a_connection_while_either_has_viewers(logs):
    opener = Opener()
    relay = relay_of(opener, stream("/one.ts", program=1), stream("/two.ts", program=2), ondemand=True)
    one, two = relay.streams["/one.ts"], relay.streams["/two.ts"]
    try:
        assert opener.connections == []
        first = gevent.spawn(watch, relay, "/one.ts")
        wait_until(lambda: opener.connections, what="the connection")
        (connection,) = opener.connections
        deliver(relay, connection, BOTH + es(0x100))
        first = first.get(timeout=1)
        second = gevent.spawn(watch, relay, "/two.ts")
        gevent.idle()
        deliver(relay, connection, BOTH + es(0x200))
        second = second.get(timeout=1)
        assert len(opener.connections) == 1
        taken = one.hub.packets_received
        relay.release(one, first)
        relay.clock.advance(IDLE + 0.01)
        wait_until(lambda: one.state == "idle", what="/one.ts to go idle")
        assert not connection.closed and two.state == "online"  # /two.ts still watched
        assert one.pull.sharing == () and two.pull.sharing == ()
        deliver(relay, connection, BOTH + es(0x200))
        assert one.hub.packets_received == taken  # nothing since it left
        assert two.state == "online", [(e["event"], e.get("stream")) for e in logs]
        relay.release(two, second)
        relay.clock.advance(IDLE + 0.01)
        wait_until(lambda: connection.closed, what="the connection to close")
        assert one.state == two.state == "idle"
        again = gevent.spawn(watch, relay, "/two.ts")
        wait_until(lambda: len(opener.connections) == 2, what="a new connection")
        deliver(relay, opener.connections[1], BOTH + es(0x200))
        assert not isinstance(again.get(timeout=1), Refusal)
    finally:
        relay.stop()


def test_a_reload_moves_one_stream_off_the_shared_connection_and_back_and_the_other_plays_on():
    opener = Opener()
    relay = relay_of(opener, stream("/a.ts"), stream("/b.ts"))
    a, b = relay.streams["/a.ts"], relay.streams["/b.ts"]
    try:
        wait_until(lambda: opener.connections, what="the connection")
        (shared,) = opener.connections
        before = make_packets(10)
        deliver(relay, shared, before)
        viewer = watch(relay, "/b.ts")
        apply(relay, make_plan(relay, config(stream("/a.ts", "tcp://elsewhere:1"), stream("/b.ts"))))
        wait_until(lambda: len(opener.connections) == 2, what="a's own connection")
        assert not shared.closed and opener.connections[1].url == "tcp://elsewhere:1"
        after = make_packets(5, start_cc=10)
        deliver(relay, shared, after)
        received = first_bytes(viewer)
        assert received and after.startswith(received)  # b saw no gap
        assert b.pull.sharing == () and b.state == "online"
        # Back to b's remote: a joins the running connection, its own one closes.
        apply(relay, make_plan(relay, config(stream("/a.ts"), stream("/b.ts"))))
        assert opener.open() == [shared] and len(opener.connections) == 2
        assert a.pull.sharing == (b.pull,)
        # b removed: a keeps the connection.
        apply(relay, make_plan(relay, config(stream("/a.ts"))))
        assert opener.open() == [shared] and viewer.closed
        deliver(relay, shared, make_packets(5))
        assert a.state == "online"
    finally:
        relay.stop()
