"""A viewer's two write paths over a real socket pair: the generator a WSGI
server drains, and the direct path where the hub sends to the socket itself
and the viewer's greenlet only catches up when the socket was full."""

import socket

import gevent
from gevent import socket as gsocket

from restreamer.core.hub import Hub
from restreamer.web.server import SocketSink
from tests.support.ts import PACKET_SIZE, keyframes, load_sample, make_packets
from tests.unit.clock import FakeClock
from tests.unit.conftest import stream_settings

PACKETS = make_packets(4000)
SAMPLE = load_sample()


def online_hub() -> Hub:
    # Its packets carry no PAT: fast start would hold viewers till they count as such.
    hub = Hub("/s.ts", stream_settings(backlogbytes=1 << 24, backlogseconds=60, keepalive=0,
                                       faststart=False), FakeClock())
    hub.restart_at_rap()
    hub.publish(PACKETS[:PACKET_SIZE], at_once=True)
    return hub


def read_exactly(sock, n: int) -> bytes:
    data = bytearray()
    with gevent.Timeout(5):
        while len(data) < n:
            data += sock.recv(65536)
    return bytes(data)


def test_the_generator_yields_the_head_then_each_chunk_as_it_is():
    hub = online_hub()
    viewer = hub.add(head=b"preamble")
    body = viewer.chunks()
    assert next(body) == b""
    assert next(body) == b"preamble"
    piece = PACKETS[PACKET_SIZE:8 * PACKET_SIZE]
    hub.publish(piece, at_once=True)
    assert next(body) is hub.backlog.chunk(1)  # the backlog's own chunk, not a copy
    assert (viewer.packets_sent, viewer.bytes_sent) == (7, 7 * PACKET_SIZE + len(b"preamble"))


def test_the_direct_path_is_byte_exact_through_a_full_socket_and_back():
    hub = online_hub()
    server_end, client_end = gsocket.socketpair()
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    viewer = hub.add()
    sink = SocketSink(server_end)
    serving = gevent.spawn(viewer.serve, sink)
    gevent.idle()  # caught up: it waits for the hub
    hub.publish(PACKETS[PACKET_SIZE:2 * PACKET_SIZE], at_once=True)
    assert viewer.cursor.direct  # the hub writes to it now
    sent = PACKETS[2 * PACKET_SIZE:3000 * PACKET_SIZE]
    for offset in range(0, len(sent), 64 * PACKET_SIZE):  # far more than the socket holds
        hub.publish(sent[offset:offset + 64 * PACKET_SIZE], at_once=True)
    assert not viewer.cursor.direct  # the socket filled up: its own greenlet catches up
    sent = PACKETS[PACKET_SIZE:3000 * PACKET_SIZE]
    assert read_exactly(client_end, len(sent)) == sent
    gevent.idle()
    last = PACKETS[3000 * PACKET_SIZE:3001 * PACKET_SIZE]
    hub.publish(last, at_once=True)  # caught up again: the hub writes it
    assert viewer.cursor.direct and viewer.bytes_sent == len(sent) + PACKET_SIZE
    assert read_exactly(client_end, PACKET_SIZE) == last
    viewer.close()
    serving.join(timeout=1)
    sink.close()
    server_end.close()
    client_end.close()


def test_a_direct_viewer_whose_client_is_gone_ends_quietly():
    hub = online_hub()
    server_end, client_end = gsocket.socketpair()
    viewer = hub.add()
    serving = gevent.spawn(viewer.serve, SocketSink(server_end))
    gevent.idle()
    client_end.close()
    hub.publish(PACKETS[PACKET_SIZE:2 * PACKET_SIZE], at_once=True)
    serving.join(timeout=1)
    assert serving.successful() and viewer.closed
    server_end.close()


def test_a_direct_viewer_whose_client_is_gone_ends_at_a_keepalive_while_the_stream_stalls():
    clock = FakeClock()
    hub = Hub("/s.ts", stream_settings(backlogbytes=1 << 24, backlogseconds=60, keepalive=1), clock)
    hub.restart_at_rap()
    raps = keyframes(SAMPLE)
    hub.publish(SAMPLE[:raps[0] + 20 * PACKET_SIZE], at_once=True)
    server_end, client_end = gsocket.socketpair()
    viewer = hub.add()
    serving = gevent.spawn(viewer.serve, SocketSink(server_end))
    gevent.idle()  # sent its start, caught up
    hub.publish(SAMPLE[raps[0] + 20 * PACKET_SIZE:raps[0] + 21 * PACKET_SIZE], at_once=True)
    assert viewer.cursor.direct
    client_end.close()  # and no more data comes
    for _ in range(8):  # two keepalive periods
        clock.advance(0.25)
        gevent.idle()
    serving.join(timeout=1)
    assert serving.successful() and viewer.closed
    server_end.close()


def test_evict_breaks_the_writer_wherever_it_waits():
    hub = online_hub()
    viewer = hub.add()
    writer = gevent.spawn(lambda: list(viewer.chunks()))
    gevent.sleep(0)
    viewer.evict()
    writer.join(timeout=1)
    assert isinstance(writer.exception, BrokenPipeError)
    assert viewer.closed


def test_a_direct_viewer_closed_gets_nothing_more_and_nothing_twice():
    hub = online_hub()
    server_end, client_end = gsocket.socketpair()
    viewer = hub.add()
    serving = gevent.spawn(viewer.serve, SocketSink(server_end))
    gevent.idle()
    hub.publish(PACKETS[PACKET_SIZE:3 * PACKET_SIZE], at_once=True)
    assert viewer.cursor.direct
    viewer.close()
    hub.publish(PACKETS[3 * PACKET_SIZE:4 * PACKET_SIZE], at_once=True)  # after the end
    serving.join(timeout=1)
    assert serving.successful()
    server_end.close()
    with gevent.Timeout(5):
        received = b"".join(iter(lambda: client_end.recv(65536), b""))
    assert received == PACKETS[PACKET_SIZE:3 * PACKET_SIZE]  # joined at the live edge
    assert viewer.bytes_sent == 2 * PACKET_SIZE
    client_end.close()
