"""RTP multicast upstreams: RTP/AVP MPEG-TS datagrams written by the test to a
group on lo (TTL 0), reordered and thinned as a real network does."""

import json
import os
import socket
import struct
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import poll
from tests.support.procs import udp_ports
from tests.support.ts import PACKET_SIZE, assert_aligned, assert_joined

PER_DATAGRAM = 7 * PACKET_SIZE
RATE = 20_000_000  # bit/s: thousands of datagrams within seconds


def group(offset):
    """A multicast group of this test run's own."""
    return f"239.254.{os.getpid() % 250}.{(os.getpid() // 250 + offset) % 250 + 1}"


class RTPSender:
    """Sends ``payload`` in RTP/AVP datagrams (payload type 33) to a group on lo,
    datagram i carrying sequence number i (from 65500, so the numbers wrap):
    every 40th pair swapped (``swap``), every 1000th left out (``drop``), each
    with a CSRC list, a header extension and padding (``dress``).  ``sent`` is
    the TS of the datagrams sent, in sequence order."""

    def __init__(self, group, ports, payload, count, swap=False, drop=False, dress=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        # Each stream bound a port of its own, and its group's address: sent to
        # every port, a datagram reaches only the socket of its group.
        self.addresses = [(group, port) for port in ports]
        self.dropped = 0
        self.sent = bytearray()
        self.datagrams = []
        for index in range(count):
            body = payload[index * PER_DATAGRAM % len(payload):][:PER_DATAGRAM]
            if len(body) < PER_DATAGRAM:
                body += payload[:PER_DATAGRAM - len(body)]
            if drop and index % 1000 == 500:
                self.dropped += 1
                continue
            self.sent += body
            self.datagrams.append(_datagram((65500 + index) & 0xFFFF, body, dress))
        if swap:
            for index in range(39, len(self.datagrams) - 1, 40):
                self.datagrams[index], self.datagrams[index + 1] = self.datagrams[index + 1], self.datagrams[index]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        began = time.monotonic()
        for index, datagram in enumerate(self.datagrams):
            due = began + index * PER_DATAGRAM * 8 / RATE
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for address in self.addresses:
                self.sock.sendto(datagram, address)
        self.done.set()


def _datagram(sequence, body, dress):
    if not dress:
        return struct.pack("!BBHII", 0x80, 33, sequence, sequence * 3600, 0x1234) + body
    # V=2, P, X, CC=2; two CSRCs; a 2-word extension; 3 bytes of padding.
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 33, sequence, sequence * 3600, 0x1234)
    header += struct.pack("!II", 1, 2) + struct.pack("!HH", 0xBEDE, 2) + b"\xff" * 8
    return header + body + b"\0\0\3"


def test_rtp_multicast_reordered_and_lossy(restreamer, viewer, sample):
    swapped, lossy = group(0), group(1)
    rs = restreamer({"reconnect": 0.2, "graceperiod": 5, "resources": [
        {"type": "stream", "serve": "/swapped.ts", "remote": f"rtp://{swapped}:0", "clientinterface": "lo"},
        {"type": "stream", "serve": "/lossy.ts", "remote": f"rtp://@{lossy}:0", "clientinterface": "lo"},
        {"type": "api", "api": "statistics", "serve": "/stats"},
        {"type": "api", "api": "prometheus", "serve": "/metrics"}]})
    poll(lambda: len(rs.find_logs("upstream connected")), lambda n: n == 2, 10, "both groups joined")
    ports = udp_ports(rs.proc.pid)
    viewers = {}
    for serve in ("/swapped.ts", "/lossy.ts"):
        viewers[serve] = viewer(rs.url(serve))  # waits for the first packet
    count = 6000
    senders = {"/swapped.ts": RTPSender(swapped, ports, sample, count, swap=True, dress=True),
               "/lossy.ts": RTPSender(lossy, ports, sample, count, drop=True)}
    for serve, client in viewers.items():
        assert client.wait_status() == 200
    for sender in senders.values():
        assert sender.done.wait(10)

    # Every 40th pair swapped: the viewer gets the stream in order, byte for byte.
    received = viewers["/swapped.ts"].wait_bytes(len(senders["/swapped.ts"].sent) // 2)
    whole = received[:len(received) // PACKET_SIZE * PACKET_SIZE]
    assert_aligned(whole)
    assert_joined(whole, bytes(senders["/swapped.ts"].sent))

    # One in 1000 lost: counted exactly, in statistics and Prometheus, and no packet torn.
    lossy_sender = senders["/lossy.ts"]
    assert lossy_sender.dropped == 6

    def stats():
        with urllib.request.urlopen(rs.url("/stats"), timeout=5) as response:
            return json.load(response)["streams"]

    streams = poll(stats, lambda s: s["/lossy.ts"]["total_missing"] >= lossy_sender.dropped, 5,
                   "the losses counted")
    assert streams["/lossy.ts"]["total_missing"] == lossy_sender.dropped
    assert streams["/swapped.ts"]["total_missing"] == 0
    with urllib.request.urlopen(rs.url("/metrics"), timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    samples = {s.labels["stream"]: s.value for s in families["restreamer_upstream_missing"].samples
               if s.name.endswith("_total")}
    assert samples == {"/swapped.ts": 0, "/lossy.ts": lossy_sender.dropped}
    received = viewers["/lossy.ts"].data
    assert_aligned(received[:len(received) // PACKET_SIZE * PACKET_SIZE])
