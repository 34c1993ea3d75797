"""The hub: one shared backlog, viewers as cursors in it, hand-out per window,
fast start at PAT/PMT/RAP, clean skips, eviction and keepalive, on a clock
the test moves."""

import gevent
from gevent.event import Event

from restreamer.core.splice import FRONT_WAIT
from restreamer.core.hub import NO_PAT_SECONDS, PERIOD, Hub
from tests.support.ts import PACKET_SIZE, keyframes, load_sample, make_packets, packet_pid, strip_start
from tests.unit.clock import FakeClock
from tests.unit.conftest import first_bytes, stream_settings, wait_log

PACKETS = make_packets(30)
SAMPLE = load_sample()
NULL_PACKET = bytes((0x47, 0x1F, 0xFF, 0x10)) + b"\xff" * 184


def chunk(first: int, count: int) -> bytes:
    return PACKETS[first * PACKET_SIZE:(first + count) * PACKET_SIZE]


def hub_with(clock=None, backlogbytes: int = 1 << 20, keepalive: float = 0, **settings) -> Hub:
    return Hub("/s.ts", stream_settings(backlogbytes=backlogbytes, keepalive=keepalive, **settings),
               clock or FakeClock())


def fed_hub(**settings) -> Hub:
    """A hub whose upstream has connected and handed out its first packet.

    Its packets carry no PAT: fast start is off unless asked for, so that
    viewers join at the live edge, not after the wait for a PAT."""
    hub = hub_with(**{"faststart": False, **settings})
    hub.restart_at_rap()
    hub.publish(chunk(0, 1), at_once=True)  # no viewer yet: kept in the backlog
    return hub


def writes(viewer):
    """The viewer's response body, past its empty first piece."""
    body = viewer.chunks()
    assert next(body) == b""
    return body


def started_viewer(upto: int, **settings):
    """A hub whose first connection brought the sample up to byte ``upto``,
    and the body of a viewer that has received its start (PAT, PMT, RAP) in it."""
    hub = hub_with(**settings)
    hub.restart_at_rap()
    hub.publish(SAMPLE[:upto], at_once=True)
    body = writes(hub.add())
    assert strip_start(next(body) + next(body))
    return hub, body


def ticks(hub, seconds: float, count: int) -> None:
    """``count`` steps of ``seconds`` on the hub's clock, each followed by what they wake."""
    for _ in range(count):
        hub.clock.advance(seconds)
        gevent.idle()


def drain(viewer, timeout: float = 2) -> bytes:
    """Everything the viewer's response sends until it ends."""
    with gevent.Timeout(timeout):
        return b"".join(viewer.chunks())


def test_every_viewer_gets_the_same_chunk_object_once_per_window():
    hub = fed_hub()
    a, b = hub.add("10.0.0.1"), hub.add("10.0.0.2")
    wa, wb = writes(a), writes(b)
    for i in range(3):
        hub.publish(chunk(1 + 2 * i, 2))
    assert hub.backlog.end == 1  # gathered until the window ends
    hub.clock.advance(hub.until_next())
    assert hub.backlog.end == 2
    first = next(wa)
    assert first == chunk(1, 6)
    assert next(wb) is first  # one shared chunk, never a copy per viewer
    assert (hub.packets_received, hub.bytes_received) == (7, 7 * PACKET_SIZE)


def test_hand_outs_begin_a_period_apart_and_each_gathers_a_window():
    hub = fed_hub()  # handed out at 0
    hub.add()
    hub.publish(chunk(1, 1))
    hub.clock.advance(PERIOD - 0.001)
    assert hub.backlog.end == 1  # a window has passed, the period not yet
    hub.clock.advance(0.002)
    assert hub.backlog.end == 2
    hub.clock.advance(PERIOD)  # nothing arrives for a period
    hub.publish(chunk(2, 1))
    hub.clock.advance(hub.window - 0.001)
    assert hub.backlog.end == 2  # what comes after a lull still gathers a window
    hub.clock.advance(0.002)
    assert hub.backlog.end == 3


def test_a_viewer_joining_a_live_connection_before_its_first_pat_starts_at_its_first_rap():
    # An on-demand stream's first viewer (every zap through a udpxy gateway)
    # arrives with the connection, which begins mid-GOP.
    raps = keyframes(SAMPLE)
    hub = hub_with()
    hub.restart_at_rap()
    viewer = hub.add()
    body = writes(viewer)
    middle = raps[0] + 10 * PACKET_SIZE
    for offset in range(middle, raps[1] + 70 * PACKET_SIZE, 7 * PACKET_SIZE):
        hub.publish(SAMPLE[offset:offset + 7 * PACKET_SIZE], at_once=True)
    received = b""
    while len(received) < 40 * PACKET_SIZE:
        received += next(body)
    assert strip_start(received) == SAMPLE[raps[1]:raps[1] + len(strip_start(received))]


def test_a_viewer_waiting_for_a_pat_that_never_comes_gets_the_connection_from_its_first_packet():
    hub = hub_with()
    hub.restart_at_rap()
    viewer = hub.add()
    body = writes(viewer)
    hub.publish(chunk(0, 2), at_once=True)
    hub.clock.advance(NO_PAT_SECONDS / 2)
    hub.publish(chunk(2, 2), at_once=True)
    assert viewer.cursor.index is None  # no PAT yet: it waits
    hub.clock.advance(NO_PAT_SECONDS)
    hub.publish(chunk(4, 2), at_once=True)  # served as it comes from now on
    assert [next(body) for _ in range(3)] == [chunk(0, 2), chunk(2, 2), chunk(4, 2)]
    later = hub.add()  # the connection carries no PAT: the live edge
    hub.publish(chunk(6, 1), at_once=True)
    assert first_bytes(later) == chunk(6, 1)


def test_a_viewer_joins_the_sample_at_its_newest_rap_after_pat_and_pmt():
    hub = hub_with()
    hub.restart_at_rap()
    for offset in range(0, len(SAMPLE), 7 * PACKET_SIZE):
        hub.publish(SAMPLE[offset:offset + 7 * PACKET_SIZE], at_once=True)
    viewer = hub.add()
    body = writes(viewer)
    received = next(body) + next(body)  # the PAT and PMT, then the backlog from the RAP
    rap = SAMPLE.rfind(strip_start(received)[:PACKET_SIZE])
    assert received.endswith(SAMPLE[rap:rap + len(received) - 2 * PACKET_SIZE])
    last_rap = max(i for i in range(0, len(SAMPLE), PACKET_SIZE)
                   if packet_pid(SAMPLE[i:i + 4]) == 0x100 and SAMPLE[i + 3] & 0x20 and SAMPLE[i + 5] & 0x40)
    assert rap == last_rap


def test_a_viewer_joining_while_the_upstream_is_away_waits_for_the_next_connection():
    hub = hub_with()
    hub.restart_at_rap()
    hub.publish(SAMPLE[:200 * PACKET_SIZE], at_once=True)
    viewer = hub.add(current=False)  # the backlog is the past
    assert viewer.cursor.index is None
    hub.restart_at_rap()
    hub.publish(SAMPLE[:200 * PACKET_SIZE], at_once=True)
    assert strip_start(first_bytes(viewer) + first_bytes(viewer))


def test_a_viewer_out_of_the_backlog_loses_whole_chunks_and_they_are_counted():
    hub = fed_hub(backlogbytes=4 * PACKET_SIZE)
    slow, fast = hub.add("slow"), hub.add("fast")
    fast_writes = writes(fast)
    writes(slow)  # the slow viewer's response takes nothing more
    received = []
    for i in range(4):
        hub.publish(chunk(1 + 2 * i, 2), at_once=True)
        received.append(next(fast_writes))
    assert b"".join(received) == chunk(1, 8)
    # The backlog keeps 4 packets; the slow viewer lost the two chunks before them.
    assert (slow.packets_dropped, slow.bytes_dropped) == (4, 4 * PACKET_SIZE)
    assert slow.cursor.dropping_since == hub.clock.now()
    assert (fast.packets_dropped, fast.cursor.dropping_since) == (0, None)
    assert hub.traffic().packets_dropped == 4


def test_the_backlog_keeps_backlogseconds_of_data():
    hub = fed_hub(backlogseconds=2)
    hub.clock.advance(1.5)
    hub.publish(chunk(1, 1), at_once=True)
    hub.clock.advance(1)
    hub.publish(chunk(2, 1), at_once=True)  # the first chunk is now 2.5 s old
    assert hub.backlog.first == 1


def test_a_departed_viewer_keeps_counting_in_the_totals():
    hub = fed_hub()
    viewer = hub.add()
    hub.publish(chunk(1, 5), at_once=True)
    hub.clock.advance(2.5)
    viewer.close()
    assert drain(viewer) == chunk(1, 5)
    hub.remove(viewer)
    hub.remove(viewer)  # a second release changes nothing
    assert not hub.viewers
    totals = hub.traffic()
    assert (totals.packets_sent, totals.bytes_sent) == (5, 5 * PACKET_SIZE)
    assert totals.stream_time == 2.5


def test_a_viewer_removed_uncounted_leaves_no_trace():
    hub = fed_hub()
    viewer = hub.add()
    hub.publish(chunk(1, 5), at_once=True)
    first_bytes(viewer)
    hub.remove(viewer, counted=False)
    assert hub.traffic().packets_sent == 0


def test_a_viewer_that_only_drops_for_droptimeout_is_evicted(logs):
    hub = fed_hub(backlogbytes=2 * PACKET_SIZE)
    stalled, fine = hub.add("stalled"), hub.add("fine")
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
    assert hub.evict_stalled(droptimeout=1) == 0
    hub.clock.advance(1)
    assert hub.evict_stalled(droptimeout=1) == 1
    entry = wait_log(logs, "viewer evicted", remote="stalled", stream="/s.ts")
    assert entry["dropped_packets"] == 4
    writer.join(timeout=1)
    assert isinstance(writer.exception, BrokenPipeError)
    assert not fine.closed


def test_keepalive_sends_null_packets_only_after_a_pat_and_only_while_no_data_comes():
    hub, with_pat = started_viewer(100 * PACKET_SIZE, keepalive=1)
    raw = fed_hub(keepalive=1, clock=hub.clock)  # a stream without PAT: never a null packet
    without = writes(raw.add())
    hub.clock.advance(0.9)
    waiting = gevent.spawn(next, with_pat)
    gevent.idle()
    assert not waiting.ready()  # no data for less than keepalive: nothing yet
    hub.clock.advance(0.1)
    assert waiting.get(timeout=1) == NULL_PACKET
    waiting = gevent.spawn(next, with_pat)
    gevent.idle()  # the viewer waits for data again
    hub.clock.advance(1)
    assert waiting.get(timeout=1) == NULL_PACKET
    hub.publish(SAMPLE[100 * PACKET_SIZE:101 * PACKET_SIZE], at_once=True)
    assert next(with_pat) == SAMPLE[100 * PACKET_SIZE:101 * PACKET_SIZE]
    nothing = gevent.spawn(next, without)
    hub.clock.advance(4)  # four keepalive periods in which nothing may arrive
    gevent.idle()
    assert not nothing.ready()
    nothing.kill()


def test_close_viewers_sends_what_was_accepted_first():
    hub = fed_hub()
    viewer = hub.add()
    hub.publish(chunk(1, 1))
    hub.close_viewers()
    assert drain(viewer) == chunk(1, 1)


def reading(body, pieces: list):
    """A greenlet that collects what the viewer's response writes, piece by piece."""
    reader = gevent.spawn(lambda: pieces.extend(body))
    gevent.idle()
    return reader


def test_a_viewer_that_joined_before_the_first_pat_keeps_its_null_packets_across_a_reconnect():
    # Placed at the connection's first start, it has had its PAT; a reconnect
    # takes its position away while it waits for the new start.
    hub = hub_with(keepalive=0.05)
    hub.restart_at_rap()
    body = writes(hub.add())
    hub.publish(SAMPLE[:200 * PACKET_SIZE], at_once=True)
    first_rap = keyframes(SAMPLE)[0]
    received = b""
    while len(received) < 200 * PACKET_SIZE - first_rap:  # in pieces: the chunk is split at its start
        received += next(body)
    assert strip_start(received) == SAMPLE[first_rap:200 * PACKET_SIZE]
    hub.restart_at_rap()  # the next connection: accepted, then silent
    pieces = []
    reader = reading(body, pieces)
    ticks(hub, 0.05, 4)
    reader.kill()
    assert len(pieces) >= 3 and set(pieces) == {NULL_PACKET}


def test_viewers_waiting_for_a_new_connections_first_rap_get_null_packets_meanwhile():
    raps = keyframes(SAMPLE)
    hub, body = started_viewer(raps[1], keepalive=0.05)
    hub.restart_at_rap()
    pieces = []
    reader = reading(body, pieces)
    # The new connection starts just after a RAP: its data flows to the hub
    # at a live pace for a GOP, while the viewer waits for the next RAP.
    for offset in range(raps[0] + PACKET_SIZE, raps[1], 7 * PACKET_SIZE):
        hub.clock.advance(0.002)
        hub.publish(SAMPLE[offset:min(offset + 7 * PACKET_SIZE, raps[1])], at_once=True)
        gevent.idle()
    waited = len(pieces)
    hub.publish(SAMPLE[raps[1]:raps[1] + 7 * PACKET_SIZE], at_once=True)
    # A jump waits for every PID of the program to come after the start (its
    # marks carry their counters), at most FRONT_WAIT.
    hub.clock.advance(FRONT_WAIT + 0.01)
    hub.publish(SAMPLE[raps[1] + 7 * PACKET_SIZE:raps[1] + 14 * PACKET_SIZE], at_once=True)
    gevent.idle()
    reader.kill()
    assert waited >= 2 and pieces[:waited] == [NULL_PACKET] * waited  # about one per 0.05 s
    received = b"".join(pieces)
    nulls = 0
    while received[nulls * PACKET_SIZE:(nulls + 1) * PACKET_SIZE] == NULL_PACKET:
        nulls += 1  # and more while the jump waited
    assert strip_start(received[nulls * PACKET_SIZE:]).startswith(SAMPLE[raps[1]:raps[1] + PACKET_SIZE])


def test_a_connection_that_sends_its_first_packet_late_is_not_taken_for_one_without_pat():
    frames = keyframes(SAMPLE)
    hub, body = started_viewer(frames[1])
    hub.restart_at_rap()
    hub.clock.advance(0.6)  # answered at once, sends only now: its PAT is not late
    resume = frames[0] + PACKET_SIZE  # no PAT until the one before the next keyframe
    hub.publish(SAMPLE[resume:resume + 7 * PACKET_SIZE], at_once=True)
    hub.publish(SAMPLE[resume + 7 * PACKET_SIZE:frames[1] + 7 * PACKET_SIZE], at_once=True)
    hub.clock.advance(FRONT_WAIT + 0.01)  # the jump's wait for every PID of the program
    hub.publish(SAMPLE[frames[1] + 7 * PACKET_SIZE:frames[1] + 14 * PACKET_SIZE], at_once=True)
    with gevent.Timeout(1):
        received = next(body) + next(body)
    assert strip_start(received).startswith(SAMPLE[frames[1]:frames[1] + PACKET_SIZE])
