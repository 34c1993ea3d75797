"""Which worker pulls an upstream under gunicorn -w N (core/claims.py): one lock
per upstream, held once by all of a worker's streams of it.  Two Claims on
one directory are two workers (a lock belongs to an open file, so they
exclude each other as two processes would); their streams are members that
note what the claim tells them."""

import contextlib

import gevent
import gevent.socket

from restreamer.config import from_dict
from restreamer.core import runtime
from restreamer.core.census import allocate
from restreamer.core.claims import POLL, Claims, lock_name
from restreamer.core.relay import Relay
from restreamer.core.reload import apply, make_plan
from restreamer.core.stream import Stream
from restreamer.core.view import StreamView
from tests.unit.clock import FakeClock
from tests.unit.conftest import first_bytes, wait_until
from tests.unit.test_program import es, pat, pmt
from tests.unit.test_pull import BOTH, Opener, config, deliver, pids, stream, watch

KEY = "(('tcp://transponder:1',), ...)"


class Member:
    """A stream's part in a claim, as its ownership would take it."""

    def __init__(self):
        self.serving = False
        self.role: str | None = None
        self.watched = 0

    def serve(self):
        self.serving = True

    def unserve(self):
        self.serving = False

    def lead(self):
        self.role = "lead"

    def follow(self):
        self.role = "follow"

    def watch(self):
        self.watched += 1


def workers(tmp_path):
    clock = FakeClock()
    return clock, Claims(tmp_path, clock), Claims(tmp_path, clock)


def poll(clock):
    clock.advance(POLL)
    gevent.idle()  # the poll's check runs in a greenlet of its own


def test_the_streams_of_one_upstream_share_one_hold_and_the_last_to_stop_gives_it_up(tmp_path):
    clock, a, b = workers(tmp_path)
    ours, theirs = a.of(KEY), b.of(KEY)
    one, two, two_there = Member(), Member(), Member()
    ours.enlist(one)
    ours.enlist(two)
    theirs.enlist(two_there)

    ours.hold(one)
    # The owner serves every stream of the upstream, the one not running too.
    assert ours.owned and (one.role, two.role) == ("lead", None) and one.serving and two.serving
    assert (tmp_path / lock_name(KEY)).exists()
    theirs.hold(two_there)
    assert not theirs.owned and two_there.role == "follow" and not two_there.serving
    ours.hold(two)
    assert two.role == "lead"

    ours.release(one)  # one of two: the hold stays
    poll(clock)
    assert ours.owned and not theirs.owned and one.serving and two.serving
    ours.release(one)  # again: nothing more
    poll(clock)
    assert ours.owned and not theirs.owned

    ours.release(two)  # the last: the lock goes, and the sockets with it
    assert not ours.owned and not one.serving and not two.serving
    assert two_there.role == "follow"  # until its next poll
    poll(clock)
    assert theirs.owned and two_there.role == "lead" and two_there.serving


def test_a_worker_that_runs_no_stream_of_the_upstream_neither_polls_nor_serves(tmp_path):
    clock, a, b = workers(tmp_path)
    ours, theirs = a.of(KEY), b.of(KEY)
    idle, running = Member(), Member()
    ours.enlist(idle)
    theirs.enlist(running)
    theirs.hold(running)
    ours_seen = []
    for _ in range(3):
        poll(clock)
        ours_seen.append((ours.owned, idle.serving, idle.watched))
    assert ours_seen == [(False, False, 0)] * 3
    # The owner watches every stream of the upstream it serves, once a poll.
    assert theirs.owned and running.watched == 3
    # It starts: the lock is taken, and it follows.
    ours.hold(idle)
    assert idle.role == "follow" and not ours.owned


def test_a_claim_is_the_same_while_a_stream_uses_it_and_forgotten_after(tmp_path):
    _, a, _ = workers(tmp_path)
    claim = a.of(KEY)
    assert a.of(KEY) is claim and a.get("another upstream") is None
    member = Member()
    claim.enlist(member)
    claim.hold(member)
    claim.release(member)
    assert a.get(KEY) is claim  # still enlisted: its socket is served whenever it is owned
    claim.withdraw(member)
    assert a.get(KEY) is None and a.of(KEY) is not claim
    assert lock_name(KEY) == lock_name(KEY) != lock_name(KEY + " ")


def test_streams_of_identical_remotes_have_one_key_spelt_without_addresses():
    config = from_dict({"resources": [
        {"type": "stream", "serve": "/one.ts", "remotes": ["tcp://a:1", "tcp://b:1"], "program": 1},
        {"type": "stream", "serve": "/two.ts", "remotes": ["tcp://b:1", "tcp://a:1"], "program": 2},
        {"type": "stream", "serve": "/apart.ts", "remotes": ["tcp://a:1", "tcp://b:1"],
         "clientinterface": "lo"}]})
    one, two, apart = (Stream(s, config).pull.key_text for s in config.streams)
    assert one == two != apart
    assert "0x" not in one  # the opener by name: the same text in every worker


class Unix:
    """A follower's connection to its owner's socket, read through gevent (the
    unit tier patches nothing; the ``unix://`` source itself is the e2e tier's)."""

    def __init__(self, url: str):
        self.sock = gevent.socket.socket(gevent.socket.AF_UNIX)
        self.sock.connect(url[len("unix://"):])

    def read(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


class Openers(Opener):
    """The transponder faked, the owner's sockets real."""

    def __call__(self, url, settings):
        return Unix(url) if url.startswith("unix://") else super().__call__(url, settings)


def arrives(job, owner, connection, data):
    """What ``job`` returns once ``data``, sent by ``connection`` again and again,
    has gone through the owner's hub and socket into the follower's."""
    while not job.ready():
        deliver(owner, connection, data)
        gevent.sleep(0.01)  # the socket's bytes reach the follower's hub, which hands out
    return job.get()


def sees(viewer, pid) -> bool:
    """Whether ``viewer`` gets a packet of ``pid`` (waits for it until it ends)."""
    return any(pid in pids(piece) for piece in viewer.chunks())


def test_a_follower_starts_a_stream_its_owner_has_no_viewer_of_on_the_upstream_it_pulls(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.ENV, str(tmp_path))
    allocate(tmp_path)
    opener, clock = Openers(), FakeClock()
    both = config(stream("/one.ts", program=1, ondemand=True), stream("/two.ts", program=2, ondemand=True))
    owner, follower = Relay(both, opener, clock), Relay(both, opener, clock)
    owner.start()
    follower.start()
    try:
        joining = gevent.spawn(watch, owner, "/one.ts")
        (connection,) = wait_until(lambda: opener.connections, what="the connection")
        deliver(owner, connection, BOTH + es(0x100))
        joining.get(timeout=1)
        two = owner.streams["/two.ts"]
        assert two.state == "idle" and two.ownership.owner

        # The follower's viewer of /two.ts: its socket client starts the
        # owner's /two.ts, as one more pull of the upstream that runs.
        joining = gevent.spawn(watch, follower, "/two.ts")
        wait_until(lambda: two.pull.running, what="the owner's /two.ts to start")
        data = BOTH + es(0x100) + es(0x200)
        viewer = arrives(joining, owner, connection, data)
        assert pids(arrives(gevent.spawn(first_bytes, viewer, 5), owner, connection, data))[:2] == [0, 0x1001]
        assert StreamView(owner.streams["/one.ts"]).shared_with == ["/two.ts"]
        assert not follower.streams["/two.ts"].ownership.owner
        # The dashboard's "one pull with": in the follower, its streams that follow the one owner.
        assert StreamView(follower.streams["/two.ts"]).shared_with == []
        arrives(gevent.spawn(watch, follower, "/one.ts"), owner, connection, data)
        assert StreamView(follower.streams["/two.ts"]).shared_with == ["/one.ts"]
        assert len(opener.connections) == 1
    finally:
        follower.stop()
        owner.stop()
    assert connection.closed


@contextlib.contextmanager
def owner_and_follower(tmp_path, monkeypatch):
    """Two workers with /one.ts and /two.ts, programs of one upstream: the
    first started owns it and has pulled it (``shared``) when the second starts."""
    monkeypatch.setenv(runtime.ENV, str(tmp_path))
    allocate(tmp_path)
    opener, clock = Openers(), FakeClock()
    both = config(stream("/one.ts", program=1), stream("/two.ts", program=2))
    owner = Relay(both, opener, clock)
    owner.start()
    follower = Relay(both, opener, clock)
    try:
        (shared,) = wait_until(lambda: opener.connections, what="the connection")
        follower.start()
        yield opener, clock, owner, follower, shared
    finally:
        follower.stop()
        owner.stop()


def test_a_reload_that_moves_a_stream_to_another_upstream_moves_its_followers_along(tmp_path, monkeypatch):
    with owner_and_follower(tmp_path, monkeypatch) as (opener, clock, owner, follower, shared):
        two = owner.streams["/two.ts"]
        viewer = arrives(gevent.spawn(watch, follower, "/two.ts"), owner, shared, BOTH + es(0x200))
        arrives(gevent.spawn(first_bytes, viewer, 5), owner, shared, BOTH + es(0x200))
        moved = two.ownership.key
        apply(owner, make_plan(owner, config(stream("/one.ts", program=1),
                                             stream("/two.ts", "tcp://elsewhere:1", program=2))))
        assert two.ownership.key != moved
        assert owner.claims.get(moved).members == {owner.streams["/one.ts"].ownership}
        elsewhere = wait_until(lambda: opener.connections[1:], what="the new remote's connection")[0]
        assert elsewhere.url == "tcp://elsewhere:1" and not shared.closed
        # The follower's socket connection was ended: it reconnects, and its
        # viewer, held meanwhile, plays what the new remote sends (its own PID).
        assert arrives(gevent.spawn(sees, viewer, 0x300), owner, elsewhere, pat({2: 0x1001}) + pmt(0x1001, 2, [0x300]) + es(0x300))
        assert len(opener.connections) == 2 and not viewer.closed


def test_when_the_owner_goes_the_follower_takes_every_stream_of_the_upstream_over(tmp_path, monkeypatch):
    with owner_and_follower(tmp_path, monkeypatch) as (opener, clock, owner, follower, shared):
        data = BOTH + es(0x100) + es(0x200)
        viewers = {path: arrives(gevent.spawn(watch, follower, path), owner, shared, data)
                   for path in ("/one.ts", "/two.ts")}
        owner.stop()  # its lock goes, as a dead worker's does
        assert shared.closed
        clock.advance(POLL)
        (taken,) = wait_until(lambda: opener.connections[1:], what="the follower's own connection")
        assert all(follower.streams[path].ownership.owner for path in viewers)
        # Both streams' viewers, held meanwhile, play on from the one new
        # connection (which lists PIDs of its own).
        anew = (pat({1: 0x1000, 2: 0x1001}) + pmt(0x1000, 1, [0x301]) + pmt(0x1001, 2, [0x302])
                + es(0x301) + es(0x302))
        for path, pid in (("/one.ts", 0x301), ("/two.ts", 0x302)):
            assert arrives(gevent.spawn(sees, viewers[path], pid), follower, taken, anew)
            assert not viewers[path].closed
        assert len(opener.connections) == 2
