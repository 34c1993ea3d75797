"""RTP multicast upstreams: RTP/AVP MPEG-TS datagrams written by the test to a
group on lo (TTL 0), reordered and thinned as a real network does, and
overflowing the restreamer's receive buffers as a busy machine does."""

import json
import os
import signal
import socket
import struct
import threading
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from restreamer.sources.rtp import WINDOW
from tests.support.polling import poll
from tests.support.procs import udp_ports, udp_sockets
from tests.support.ts import PACKET_SIZE, keyframes, strip_start

PER_DATAGRAM = 7 * PACKET_SIZE
RATE = 20_000_000  # bit/s: thousands of datagrams within seconds
#: Datagrams sent last, at once, into an emptied receive buffer: enough to
#: follow any loss before them by more than the reordering window.
TAIL = WINDOW + 1


def group(offset):
    """A multicast group of this test run's own."""
    return f"239.254.{os.getpid() % 250}.{(os.getpid() // 250 + offset) % 250 + 1}"


class RTPSender:
    """Sends ``payload`` in RTP/AVP datagrams (payload type 33) to a group on lo,
    datagram i carrying sequence number i (from 65500, so the numbers wrap):
    every 40th pair swapped (``swap``), every 1000th left out (``drop``), each
    with a CSRC list, a header extension and padding (``dress``).  ``bodies``
    is the TS of each datagram sent, in sequence order.  All but the last
    :data:`TAIL` are sent at ``RATE`` (``done`` is set then); :meth:`finish`
    sends those."""

    def __init__(self, group, ports, payload, count, swap=False, drop=False, dress=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        # Each stream bound a port of its own, and its group's address: sent to
        # every port, a datagram reaches only the socket of its group.
        self.addresses = [(group, port) for port in ports]
        self.dropped = 0
        self.bodies = []
        self.datagrams = []
        for index in range(count):
            body = payload[index * PER_DATAGRAM % len(payload):][:PER_DATAGRAM]
            if len(body) < PER_DATAGRAM:
                body += payload[:PER_DATAGRAM - len(body)]
            if drop and index % 1000 == 500:
                self.dropped += 1
                continue
            self.bodies.append(body)
            self.datagrams.append(_datagram((65500 + index) & 0xFFFF, body, dress))
        if swap:
            for index in range(39, len(self.datagrams) - 1, 40):
                self.datagrams[index], self.datagrams[index + 1] = self.datagrams[index + 1], self.datagrams[index]
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        began = time.monotonic()
        for index, datagram in enumerate(self.datagrams[:-TAIL]):
            due = began + index * PER_DATAGRAM * 8 / RATE
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._send(datagram)
        self.done.set()

    def finish(self):
        for datagram in self.datagrams[-TAIL:]:
            self._send(datagram)

    def _send(self, datagram):
        for address in self.addresses:
            self.sock.sendto(datagram, address)


def _datagram(sequence, body, dress):
    if not dress:
        return struct.pack("!BBHII", 0x80, 33, sequence, sequence * 3600, 0x1234) + body
    # V=2, P, X, CC=2; two CSRCs; a 2-word extension; 3 bytes of padding.
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 33, sequence, sequence * 3600, 0x1234)
    header += struct.pack("!II", 1, 2) + struct.pack("!HH", 0xBEDE, 2) + b"\xff" * 8
    return header + body + b"\0\0\3"


def assert_in_order(received, bodies, serve):
    """``received`` is whole datagram payloads, each one of ``bodies`` after
    the one before it: in sequence order, none torn, none repeated."""
    assert len(received) % PER_DATAGRAM == 0, f"{serve}: {len(received)} bytes are not whole datagrams"
    at = 0
    for offset in range(0, len(received), PER_DATAGRAM):
        try:
            at = bodies.index(received[offset:offset + PER_DATAGRAM], at) + 1
        except ValueError:
            raise AssertionError(f"{serve}: the payload at byte {offset} is no datagram sent after "
                                 f"datagram {at - 1}") from None


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
    groups = {"/swapped.ts": swapped, "/lossy.ts": lossy}
    rap = keyframes(sample)[0]
    for serve, client in viewers.items():
        assert client.wait_status() == 200

    # A busy machine: the restreamer gets no CPU for longer than its receive
    # buffers hold at this rate (~86 ms), and the kernel drops what does not
    # fit.  Those losses are the network's too: counted, as the sender's are.
    viewers["/lossy.ts"].wait_bytes(1_000_000)
    os.kill(rs.proc.pid, signal.SIGSTOP)
    time.sleep(0.3)  # the stall itself
    os.kill(rs.proc.pid, signal.SIGCONT)
    for sender in senders.values():
        assert sender.done.wait(10)

    def sockets():
        return {address: counts for (address, _), counts in udp_sockets(rs.proc.pid).items()}

    # Into emptied buffers, the tails reach the restreamer whole: every loss
    # before them is followed by more than a window of datagrams.
    poll(sockets, lambda s: s[swapped].queued == s[lossy].queued == 0, 5, "every datagram that came read")
    for sender in senders.values():
        sender.finish()

    def counts():
        with urllib.request.urlopen(rs.url("/stats"), timeout=5) as response:
            streams = json.load(response)["streams"]
        return {serve: streams[serve]["total_missing"] for serve in groups}, sockets()

    # Every lost sequence number counted exactly: the sender's one in 1000 and
    # the kernel's drops, in statistics and Prometheus.
    lossy_sender = senders["/lossy.ts"]
    assert lossy_sender.dropped == 6
    missing, kernel = poll(counts, lambda c: c[0] == {"/swapped.ts": c[1][swapped].drops,
                                                       "/lossy.ts": lossy_sender.dropped + c[1][lossy].drops},
                           5, "the losses counted: (missing, kernel drops)")
    with urllib.request.urlopen(rs.url("/metrics"), timeout=5) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    samples = {s.labels["stream"]: s.value for s in families["restreamer_upstream_missing"].samples
               if s.name.endswith("_total")}
    assert samples == missing

    # Every 40th pair swapped: each viewer gets every datagram that reached the
    # restreamer, in sequence order, and nothing else.
    for serve, sender in senders.items():
        delivered = (len(sender.bodies) - kernel[groups[serve]].drops) * PER_DATAGRAM
        received = viewers[serve].wait_bytes(3 * PACKET_SIZE)
        head = len(received) - len(strip_start(received))  # the PAT and PMT before the keyframe
        # Each viewer came first, so it begins at the stream's first start: the
        # first keyframe, after the PAT and PMT.
        received = strip_start(viewers[serve].wait_bytes(head + delivered - rap))
        assert len(received) == delivered - rap
        received = b"".join(sender.bodies)[:rap] + received
        assert_in_order(received, sender.bodies, serve)
