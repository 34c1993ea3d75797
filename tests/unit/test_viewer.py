"""A viewer's bounded queue and the writes its response makes of it."""

import gevent

from restreamer.core.viewer import Viewer
from tests.support.ts import PACKET_SIZE, make_packets

PACKETS = make_packets(10)
ONE, TWO, THREE = PACKETS[:PACKET_SIZE], PACKETS[PACKET_SIZE:3 * PACKET_SIZE], PACKETS[3 * PACKET_SIZE:6 * PACKET_SIZE]


def test_chunks_that_fit_are_queued_and_one_that_does_not_is_dropped_whole():
    viewer = Viewer(limit=3)
    viewer.offer(ONE, 1)
    viewer.offer(TWO, 2)
    viewer.offer(THREE, 3)  # 6 packets would exceed the limit of 3
    assert viewer.queued == 3
    assert (viewer.packets_dropped, viewer.bytes_dropped) == (3, len(THREE))
    assert viewer.dropping_since is not None


def test_what_queued_up_between_writes_goes_out_as_one_write_and_is_counted():
    viewer = Viewer(limit=10)
    writes = viewer.chunks()
    viewer.offer(ONE, 1)
    assert next(writes) is ONE  # a single chunk goes out as it is, not copied
    viewer.offer(TWO, 2)
    viewer.offer(THREE, 3)
    assert next(writes) == TWO + THREE
    assert (viewer.packets_sent, viewer.bytes_sent, viewer.queued) == (6, 6 * PACKET_SIZE, 0)


def test_a_write_that_goes_through_ends_the_dropping_spell():
    viewer = Viewer(limit=1)
    writes = viewer.chunks()
    viewer.offer(ONE, 1)
    viewer.offer(ONE, 1)  # dropped: the queue is full
    assert viewer.dropping_since is not None
    next(writes)
    viewer.offer(ONE, 1)
    next(writes)  # resumes after the first write went out
    assert viewer.dropping_since is None


def test_close_ends_the_response_after_what_is_queued_and_later_offers_are_ignored():
    viewer = Viewer(limit=1)
    viewer.offer(ONE, 1)  # the queue is full; close still fits
    viewer.close()
    viewer.close()
    viewer.offer(ONE, 1)
    assert list(viewer.chunks()) == [ONE]
    assert (viewer.packets_sent, viewer.packets_dropped) == (1, 0)


def test_a_waiting_response_wakes_for_the_next_chunk():
    viewer = Viewer(limit=5)
    writer = gevent.spawn(lambda: list(viewer.chunks()))
    gevent.sleep(0)  # the writer now waits on the empty queue
    viewer.offer(TWO, 2)
    viewer.close()
    assert writer.get(timeout=1) == [TWO]


def test_evict_breaks_the_writer_wherever_it_waits():
    viewer = Viewer(limit=5)
    writer = gevent.spawn(lambda: list(viewer.chunks()))
    gevent.sleep(0)
    viewer.evict()
    writer.join(timeout=1)
    assert isinstance(writer.exception, BrokenPipeError)
    assert viewer.closed
