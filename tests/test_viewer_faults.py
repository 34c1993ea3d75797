"""Misbehaving viewers next to a healthy one: a viewer that never reads, one
that reads at half the stream rate, and thousands that connect and vanish.
The healthy viewer must get every packet, the stalled one must be evicted
after droptimeout, and drops must be counted per viewer and per stream."""

import json
import socket
import struct
import threading

from restreamer.ts.splice import is_discontinuity_packet
from tests.support.polling import poll
from tests.support.ts import PACKET_SIZE, assert_clean_runs, assert_clean_start, packets_of
from tests.support.viewer import SlowReader, http_get
from tests.support.ts import whole

RATE = 8_000_000  # 1 MB/s: a non-reader's ~1 MB of socket buffers fill in about a second
DROPTIMEOUT = 1


def config(url, **top):
    return {"droptimeout": DROPTIMEOUT, "reconnect": 0.2, **top, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": url},
        {"type": "api", "api": "health", "serve": "/health"},
        {"type": "api", "api": "statistics", "serve": "/statistics"},
    ]}


def viewers(rs):
    return json.loads(http_get(rs.url("/health"))[2])["viewer"]


def resumed(data):
    """Whether ``data`` holds a skip's resume (the splice marks it begins with)."""
    return any(map(is_discontinuity_packet, packets_of(whole(data))))


def test_stalled_and_slow_viewers_leave_a_healthy_one_untouched(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    # A backlog of two GOPs: the half-speed viewer falls out of it within seconds.
    rs = restreamer(config(up.url, backlogseconds=2))
    rs.wait_log("stream online")
    healthy = viewer(rs.url("/s.ts"))
    assert healthy.wait_status() == 200
    stalled = viewer(rs.url("/s.ts"), rcvbuf=4096)
    stalled.pause()  # takes the response head and never reads again
    assert stalled.wait_status() == 200
    slow = SlowReader(rs.port, RATE / 8 / 2)
    try:
        assert poll(lambda: viewers(rs), lambda n: n == 3, 5, "three viewers") == 3

        evicted = rs.wait_log("viewer evicted", timeout=10)
        assert evicted["dropped_packets"] > 0 and "droptimeout" in evicted["reason"]
        gone = rs.wait_log("viewer disconnected")
        assert gone["dropped_packets"] > 0
        assert poll(lambda: viewers(rs), lambda n: n == 2, 5, "the stalled viewer's slot freed") == 2
        stalled.resume()  # what the kernel still held for it, then the end
        assert len(stalled.wait_closed(10)) > 0 and stalled.error is None

        # The slow viewer loses packets but keeps taking some: 3 x droptimeout
        # more of the stream (measured by the healthy viewer) and it is still there.
        seen = len(healthy.data)
        reads = slow.reads
        healthy.wait_bytes(seen + 3 * DROPTIMEOUT * RATE // 8, timeout=10)
        assert len(rs.find_logs("viewer evicted")) == 1
        assert viewers(rs) == 2 and slow.reads > reads

        stats = json.loads(http_get(rs.url("/statistics"))[2])["streams"]["/s.ts"]
        assert stats["total_packets_dropped"] > evicted["dropped_packets"]
        assert stats["connections"] == 2
        # The run after a skip reaches the reader only once it has read what
        # the socket buffers held before it (~1 MB, 2 s at its pace).
        poll(lambda: resumed(slow.body()), bool, 10, "the slow viewer's data after a skip")
    finally:
        mark = rs.mark()
        slow.close()
    slow_gone = rs.wait_log("viewer disconnected", since=mark)
    assert slow_gone["dropped_packets"] > 0
    runs = [n for n in assert_clean_runs(whole(slow.body()), *[up.connections[0].sent] * 1000) if n]
    assert len(runs) > 1  # whole GOPs were lost between runs; each resumes at PAT, PMT, RAP

    data = whole(healthy.data)
    mark = rs.mark()
    healthy.close()
    assert rs.wait_log("viewer disconnected", since=mark)["dropped_packets"] == 0
    assert len(data) > 3 * DROPTIMEOUT * RATE // 8
    assert_clean_start(data, up.connections[0].sent)


# -- clients that connect and vanish ------------------------------------------------


def _rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


REQUEST = b"GET /s.ts HTTP/1.1\r\nHost: x\r\n\r\n"


def _vanish(port, kind):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == "silent":  # connects, says nothing, hangs up
        sock.close()
    elif kind == "mid-head":  # half a request line, then hangs up
        sock.sendall(REQUEST[:20])
        sock.close()
    elif kind == "mid-head-rst":
        sock.sendall(REQUEST[:35])
        _rst(sock)
    elif kind == "unread":  # whole request, hangs up before reading anything
        sock.sendall(REQUEST)
        sock.close()
    elif kind == "rst":  # takes some stream, then resets
        sock.sendall(REQUEST)
        sock.recv(4096)
        _rst(sock)
    elif kind == "half-close":  # half-closes after its request, reads a bit, then goes
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(4096)
        sock.close()


KINDS = ["silent", "mid-head", "mid-head-rst", "unread", "rst", "half-close"]


def test_thousands_of_vanishing_clients_leave_a_healthy_viewer_untouched(upstream, restreamer, viewer):
    # A slower stream and a deeper queue: the healthy viewer's thread shares
    # this process with 20 busy client threads, and must still keep up.
    up = upstream(rate=RATE // 4)
    rs = restreamer(config(up.url, outputbuffer=2000))
    rs.wait_log("stream online")
    healthy = viewer(rs.url("/s.ts"))
    assert healthy.wait_status() == 200
    healthy.wait_bytes(PACKET_SIZE * 7)
    total, threads = 3000, 20
    failures = []

    def run(offset):
        for i in range(offset, total, threads):
            try:
                _vanish(rs.port, KINDS[i % len(KINDS)])
            except OSError as e:
                failures.append((KINDS[i % len(KINDS)], e))

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(40)
    assert not failures, failures[:5]

    assert poll(lambda: viewers(rs), lambda n: n == 1, 10, "only the healthy viewer left") == 1
    seen = len(healthy.data)
    healthy.wait_bytes(seen + 200_000)  # and it is still flowing
    data = whole(healthy.data)
    mark = rs.mark()
    healthy.close()
    assert rs.wait_log("viewer disconnected", since=mark)["dropped_packets"] == 0
    assert_clean_start(data, up.connections[0].sent)
    assert rs.proc.poll() is None and rs.stderr_lines == []
