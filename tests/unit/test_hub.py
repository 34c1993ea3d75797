"""The hub: fan-out of shared chunks, whole-chunk drops, the grace period,
viewers arriving while a stream starts, eviction and the on/off switch."""

import time

import gevent
from gevent.event import Event

from restreamer.core.hub import Hub
from tests.support.ts import PACKET_SIZE, make_packets
from tests.unit.conftest import wait_log

PACKETS = make_packets(30)


def chunk(first: int, count: int) -> bytes:
    return PACKETS[first * PACKET_SIZE:(first + count) * PACKET_SIZE]


def online_hub(outputbuffer: int = 100, graceperiod: float = 10) -> Hub:
    """A hub whose upstream has connected and delivered its first packet."""
    hub = Hub("/s.ts", outputbuffer, graceperiod)
    hub.upstream_connected("tcp://up:1")
    hub.publish(chunk(0, 1))  # no viewer yet: only counted, and the stream is online
    return hub


def drain(viewer, timeout: float = 2) -> bytes:
    """Everything the viewer's response sends until it ends."""
    with gevent.Timeout(timeout):
        return b"".join(viewer.chunks())


def test_every_viewer_gets_the_same_chunk_object_once_per_window():
    hub = online_hub()
    a, b = hub.join("10.0.0.1"), hub.join("10.0.0.2")
    for i in range(3):
        hub.publish(chunk(1 + 2 * i, 2))
    assert a.queue.qsize() == 0  # gathered until the window ends
    first = a.queue.get(timeout=1)
    assert first == chunk(1, 6)
    assert b.queue.get(timeout=1) is first  # one shared chunk, never a copy per viewer
    assert (hub.packets_received, hub.bytes_received) == (7, 7 * PACKET_SIZE)


def test_a_viewer_whose_queue_is_full_loses_whole_chunks_and_they_are_counted():
    hub = online_hub(outputbuffer=4)
    slow, fast = hub.join("slow"), hub.join("fast")
    fast_writes = fast.chunks()  # the fast viewer's response sends each chunk at once
    received = []
    for i in range(4):
        hub.publish(chunk(1 + 2 * i, 2), at_once=True)
        received.append(next(fast_writes))
    assert b"".join(received) == chunk(1, 8)
    # The slow viewer's queue took two chunks (4 packets); the next two did
    # not fit and were dropped whole, not cut to fit.
    assert [slow.queue.get_nowait() for _ in range(slow.queue.qsize())] == [chunk(1, 2), chunk(3, 2)]
    assert (slow.packets_dropped, slow.bytes_dropped) == (4, 4 * PACKET_SIZE)
    assert slow.dropping_since is not None
    assert (fast.packets_dropped, fast.dropping_since) == (0, None)
    assert hub.traffic().packets_dropped == 4


def test_a_chunk_larger_than_the_queue_is_cut_into_queue_sized_whole_packet_pieces():
    hub = online_hub(outputbuffer=3)
    viewer = hub.join()
    hub.publish(chunk(1, 7), at_once=True)
    # Pieces of 3, 3 and 1 packets: the first fills the queue, the others are dropped.
    assert viewer.queue.qsize() == 1
    assert viewer.queue.get_nowait() == chunk(1, 3)
    assert (viewer.packets_dropped, viewer.bytes_dropped) == (4, 4 * PACKET_SIZE)


def test_a_departed_viewer_keeps_counting_in_the_totals():
    hub = online_hub()
    viewer = hub.join()
    hub.publish(chunk(1, 5), at_once=True)
    viewer.close()
    assert drain(viewer) == chunk(1, 5)
    hub.leave(viewer)
    hub.leave(viewer)  # a second release changes nothing
    assert not hub.viewers
    totals = hub.traffic()
    assert (totals.packets_sent, totals.bytes_sent) == (5, 5 * PACKET_SIZE)
    assert totals.stream_time > 0


def test_viewers_wait_out_the_grace_period_and_are_closed_when_it_expires(logs):
    hub = online_hub(graceperiod=0.05)
    viewer = hub.join("10.0.0.1")
    hub.publish(chunk(1, 2))
    hub.upstream_lost()  # what was gathered goes out first
    assert wait_log(logs, "stream waiting", viewers=1, graceperiod=0.05)
    assert hub.accepting  # a new viewer may still join while the upstream may return
    assert drain(viewer) == chunk(1, 2)
    offline = wait_log(logs, "stream offline")
    assert offline["reason"] == "upstream did not come back within the grace period"
    assert not hub.accepting and hub.join() is None


def test_an_upstream_back_within_the_grace_period_keeps_the_viewers(logs):
    hub = online_hub(graceperiod=0.2)
    viewer = hub.join()
    hub.upstream_lost()
    hub.upstream_connected("tcp://up:2")
    hub.publish(chunk(1, 2), at_once=True)
    assert wait_log(logs, "stream online", url="tcp://up:2")
    gevent.sleep(0.3)  # past the grace period: nothing announces that nothing happened
    assert not viewer.closed
    assert viewer.queue.get_nowait() == chunk(1, 2)
    assert not [e for e in logs if e["event"] == "stream offline"]


def starting_hub(graceperiod: float) -> Hub:
    """A hub whose upstream has just started (as Upstream.start() tells it)."""
    hub = Hub("/s.ts", 100, graceperiod)
    hub.upstream_starting()
    return hub


def test_a_hub_without_an_upstream_is_not_starting_until_one_starts():
    hub = Hub("/s.ts", 100, graceperiod=5)  # an idle on-demand stream's, say
    assert not hub.starting and hub.state == "offline" and hub.join() is None
    hub.upstream_starting()
    assert hub.starting and hub.state == "connecting"


def test_a_viewer_joining_during_the_first_attempt_waits_and_gets_the_first_packet(logs):
    hub = starting_hub(graceperiod=5)
    joining = gevent.spawn(hub.join, "10.0.0.1")
    assert wait_log(logs, "viewer waiting", remote="10.0.0.1")
    assert hub.starting and not joining.ready()
    hub.publish(chunk(0, 3))
    viewer = joining.get(timeout=1)
    assert viewer.queue.get(timeout=1) == chunk(0, 3)  # from the very first packet


def test_a_viewer_joining_during_a_failed_first_attempt_gets_none(logs):
    hub = starting_hub(graceperiod=5)
    joining = gevent.spawn(hub.join)
    wait_log(logs, "viewer waiting")
    hub.first_attempt_over()  # the attempt failed without a packet
    assert joining.get(timeout=1) is None
    assert not hub.viewers and not hub.accepting


def test_a_viewer_joining_during_the_first_attempt_waits_at_most_the_grace_period():
    hub = starting_hub(graceperiod=0.05)
    began = time.monotonic()
    assert hub.join() is None
    assert 0.04 <= time.monotonic() - began < 1
    assert not hub.viewers


def test_a_viewer_that_only_drops_for_droptimeout_is_evicted(logs):
    hub = online_hub(outputbuffer=2)
    stalled, fine = hub.join("stalled"), hub.join("fine")
    blocked = Event()

    def stuck_writer():  # a response whose socket takes nothing more
        for _ in stalled.chunks():
            blocked.wait()

    writer = gevent.spawn(stuck_writer)
    fine_writes = fine.chunks()
    for i in range(3):
        hub.publish(chunk(1 + 2 * i, 2), at_once=True)
        gevent.sleep(0)  # the first time, the writer takes the chunk and blocks on its "send"
        next(fine_writes)
    # The stalled viewer's queue holds the second chunk; the third was dropped.
    assert hub.evict_stalled(droptimeout=60, now=time.monotonic()) == 0
    assert hub.evict_stalled(droptimeout=0.01, now=time.monotonic() + 1) == 1
    entry = wait_log(logs, "viewer evicted", remote="stalled")
    assert entry["dropped_packets"] == 2
    writer.join(timeout=1)
    assert isinstance(writer.exception, BrokenPipeError)
    assert not fine.closed


def test_switching_a_stream_off_closes_its_viewers_and_refuses_new_ones():
    hub = online_hub()
    viewer = hub.join()
    hub.publish(chunk(1, 1))
    hub.set_enabled(False)
    assert drain(viewer) == chunk(1, 1)  # what was accepted still goes out
    assert hub.join() is None
    hub.set_enabled(True)
    assert hub.join() is not None
