"""The hub: one shared backlog, viewers as positions in it, fast start at
PAT/PMT/RAP, clean skips, the grace period, viewers arriving while a stream
starts, eviction, keepalive and the on/off switch."""

import time

import gevent
from gevent.event import Event

from restreamer.core.hub import Hub
from tests.support.ts import PACKET_SIZE, load_sample, make_packets, packet_pid, strip_start
from tests.unit.conftest import first_bytes, wait_log

PACKETS = make_packets(30)
SAMPLE = load_sample()
NULL_PACKET = bytes((0x47, 0x1F, 0xFF, 0x10)) + b"\xff" * 184


def chunk(first: int, count: int) -> bytes:
    return PACKETS[first * PACKET_SIZE:(first + count) * PACKET_SIZE]


def hub_with(graceperiod: float = 10, backlog_bytes: int = 1 << 20, backlog_seconds: float = 6,
             keepalive: float = 0, faststart: bool = True) -> Hub:
    hub = Hub("/s.ts")
    hub.configure(graceperiod=graceperiod, faststart=faststart, backlog_bytes=backlog_bytes,
                  backlog_seconds=backlog_seconds, keepalive=keepalive)
    return hub


def online_hub(**settings) -> Hub:
    """A hub whose upstream has connected and delivered its first packet."""
    hub = hub_with(**settings)
    hub.upstream_connected("tcp://up:1")
    hub.publish(chunk(0, 1), at_once=True)  # no viewer yet: kept, and the stream is online
    return hub


def writes(viewer):
    """The viewer's response body, past its empty first piece."""
    body = viewer.chunks()
    assert next(body) == b""
    return body


def drain(viewer, timeout: float = 2) -> bytes:
    """Everything the viewer's response sends until it ends."""
    with gevent.Timeout(timeout):
        return b"".join(viewer.chunks())


def test_every_viewer_gets_the_same_chunk_object_once_per_window():
    hub = online_hub()
    a, b = hub.join("10.0.0.1"), hub.join("10.0.0.2")
    wa, wb = writes(a), writes(b)
    for i in range(3):
        hub.publish(chunk(1 + 2 * i, 2))
    assert hub.backlog.end == 1  # gathered until the window ends
    first = next(wa)
    assert first == chunk(1, 6)
    assert next(wb) is first  # one shared chunk, never a copy per viewer
    assert (hub.packets_received, hub.bytes_received) == (7, 7 * PACKET_SIZE)


def test_a_viewer_joins_a_stream_without_pat_at_the_live_edge():
    hub = online_hub()
    viewer = hub.join()
    hub.publish(chunk(1, 2), at_once=True)
    assert first_bytes(viewer) == chunk(1, 2)


def test_a_viewer_joins_the_sample_at_its_newest_rap_after_pat_and_pmt():
    hub = hub_with()
    hub.upstream_connected("tcp://up:1")
    for offset in range(0, len(SAMPLE), 7 * PACKET_SIZE):
        hub.publish(SAMPLE[offset:offset + 7 * PACKET_SIZE], at_once=True)
    viewer = hub.join()
    body = writes(viewer)
    received = next(body) + next(body)  # the PAT and PMT, then the backlog from the RAP
    rap = SAMPLE.rfind(strip_start(received)[:PACKET_SIZE])
    assert received.endswith(SAMPLE[rap:rap + len(received) - 2 * PACKET_SIZE])
    last_rap = max(i for i in range(0, len(SAMPLE), PACKET_SIZE)
                   if packet_pid(SAMPLE[i:i + 4]) == 0x100 and SAMPLE[i + 3] & 0x20 and SAMPLE[i + 5] & 0x40)
    assert rap == last_rap


def test_a_viewer_out_of_the_backlog_loses_whole_chunks_and_they_are_counted():
    hub = online_hub(backlog_bytes=4 * PACKET_SIZE)
    slow, fast = hub.join("slow"), hub.join("fast")
    fast_writes = writes(fast)
    writes(slow)  # the slow viewer's response takes nothing more
    received = []
    for i in range(4):
        hub.publish(chunk(1 + 2 * i, 2), at_once=True)
        received.append(next(fast_writes))
    assert b"".join(received) == chunk(1, 8)
    # The backlog keeps 4 packets; the slow viewer lost the two chunks before them.
    assert (slow.packets_dropped, slow.bytes_dropped) == (4, 4 * PACKET_SIZE)
    assert slow.dropping_since is not None
    assert (fast.packets_dropped, fast.dropping_since) == (0, None)
    assert hub.traffic().packets_dropped == 4


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


def test_the_grace_period_starts_with_the_loss_even_with_nobody_watching(logs):
    hub = online_hub(graceperiod=5)
    hub.upstream_lost()
    assert wait_log(logs, "stream waiting", viewers=0)
    assert hub.state == "waiting" and hub.join("zapping in") is not None


def test_an_upstream_back_within_the_grace_period_keeps_the_viewers(logs):
    hub = online_hub(graceperiod=0.2)
    viewer = hub.join()
    hub.upstream_lost()
    hub.upstream_connected("tcp://up:2")
    hub.publish(chunk(1, 2), at_once=True)
    assert wait_log(logs, "stream online", url="tcp://up:2")
    gevent.sleep(0.3)  # past the grace period: nothing announces that nothing happened
    assert not viewer.closed
    assert first_bytes(viewer) == chunk(1, 2)
    assert not [e for e in logs if e["event"] == "stream offline"]


def test_after_the_last_attempt_nobody_waits_for_the_grace_period(logs):
    hub = online_hub(graceperiod=30)
    viewer = hub.join()
    hub.upstream_lost()
    hub.upstream_gone()
    assert wait_log(logs, "stream offline", reason="no further upstream attempt")
    assert drain(viewer) == b"" and not hub.accepting


def starting_hub(graceperiod: float) -> Hub:
    """A hub whose upstream has just started (as Upstream.start() tells it)."""
    hub = hub_with(graceperiod=graceperiod)
    hub.upstream_starting()
    return hub


def test_a_hub_without_an_upstream_is_not_starting_until_one_starts():
    hub = hub_with(graceperiod=5)  # an idle on-demand stream's, say
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
    assert first_bytes(viewer) == chunk(0, 3)  # from the very first packet


def test_a_viewer_joining_during_a_failed_first_attempt_gets_none(logs):
    hub = starting_hub(graceperiod=5)
    joining = gevent.spawn(hub.join)
    wait_log(logs, "viewer waiting")
    hub.first_attempt_over()  # the attempt failed without a packet
    assert joining.get(timeout=1) is None
    assert not hub.viewers and not hub.accepting


def test_a_viewer_waiting_for_a_stream_switched_off_meanwhile_gets_none(logs):
    hub = starting_hub(graceperiod=5)
    joining = gevent.spawn(hub.join)
    wait_log(logs, "viewer waiting")
    hub.set_enabled(False)
    hub.publish(chunk(0, 1))
    assert joining.get(timeout=1) is None
    assert not hub.viewers


def test_a_viewer_joining_during_the_first_attempt_waits_at_most_the_grace_period():
    hub = starting_hub(graceperiod=0.05)
    began = time.monotonic()
    assert hub.join() is None
    assert 0.04 <= time.monotonic() - began < 1
    assert not hub.viewers


def test_a_viewer_that_only_drops_for_droptimeout_is_evicted(logs):
    hub = online_hub(backlog_bytes=2 * PACKET_SIZE)
    stalled, fine = hub.join("stalled"), hub.join("fine")
    blocked = Event()

    def stuck_writer():  # a response whose socket takes nothing more
        for _ in stalled.chunks():
            blocked.wait()

    writer = gevent.spawn(stuck_writer)
    fine_writes = writes(fine)
    for i in range(3):
        hub.publish(chunk(1 + 2 * i, 2), at_once=True)
        gevent.sleep(0)  # the writer blocks on its first "send" (the response head)
        next(fine_writes)
    # The backlog keeps one chunk: the stalled viewer lost the two before it.
    assert hub.evict_stalled(droptimeout=60, now=time.monotonic()) == 0
    assert hub.evict_stalled(droptimeout=0.01, now=time.monotonic() + 1) == 1
    entry = wait_log(logs, "viewer evicted", remote="stalled")
    assert entry["dropped_packets"] == 4
    writer.join(timeout=1)
    assert isinstance(writer.exception, BrokenPipeError)
    assert not fine.closed


def test_keepalive_sends_null_packets_only_after_a_pat_and_only_while_no_data_comes():
    hub = hub_with(keepalive=0.05)
    hub.upstream_connected("tcp://up:1")
    hub.publish(SAMPLE[:100 * PACKET_SIZE], at_once=True)
    raw = online_hub(keepalive=0.05)  # a stream without PAT: never a null packet
    with_pat, without = writes(hub.join()), writes(raw.join())
    got = next(with_pat) + next(with_pat)
    assert strip_start(got)
    with gevent.Timeout(1):
        assert next(with_pat) == NULL_PACKET
        assert next(with_pat) == NULL_PACKET
    hub.publish(SAMPLE[100 * PACKET_SIZE:101 * PACKET_SIZE], at_once=True)
    assert next(with_pat) == SAMPLE[100 * PACKET_SIZE:101 * PACKET_SIZE]
    nothing = gevent.spawn(next, without)
    gevent.sleep(0.2)  # four keepalive periods in which nothing may arrive
    assert not nothing.ready()
    nothing.kill()


def test_switching_a_stream_off_closes_its_viewers_and_refuses_new_ones():
    hub = online_hub()
    viewer = hub.join()
    hub.publish(chunk(1, 1))
    hub.set_enabled(False)
    assert drain(viewer) == chunk(1, 1)  # what was accepted still goes out
    assert hub.join() is None
    hub.set_enabled(True)
    assert hub.join() is not None
