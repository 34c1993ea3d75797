"""The udpxy gateway end to end: multicast groups on lo (TTL 0, written by the
test), asked for by URL, joined with their first viewer, refused outside
``allow`` (403), malformed (400) or over ``maxgroups`` (503), and left after
``idletimeout``."""

import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

from tests.support.server import event
from tests.support.ts import PACKET_SIZE, assert_aligned, assert_joined, keyframes, strip_start

PER_DATAGRAM = 7 * PACKET_SIZE
RATE = 4_000_000  # bit/s


def group(offset):
    """A multicast group of this test run's own, in 239.253.0.0/16."""
    return f"239.253.{os.getpid() % 250}.{(os.getpid() // 250 + offset) % 250 + 1}"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GroupSender:
    """Sends ``payload`` to a group on lo (TTL 0) in 7-packet datagrams, paced,
    RTP/AVP-wrapped (payload type 33) with ``rtp``; ``first`` is when the first
    one went out, ``sent`` the TS sent so far."""

    def __init__(self, address, payload, rtp=False):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        self.address, self.payload, self.rtp = address, payload, rtp
        self.first = None
        self.sent = bytearray()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        began = time.monotonic()
        index = 0
        while not self.stopped.is_set():
            body = self.payload[index * PER_DATAGRAM % len(self.payload):][:PER_DATAGRAM]
            header = struct.pack("!BBHII", 0x80, 33, index & 0xFFFF, index * 3600, 0x1234) if self.rtp else b""
            self.sent += body
            self.sock.sendto(header + body, self.address)
            if self.first is None:
                self.first = time.monotonic()
            index += 1
            delay = began + index * PER_DATAGRAM * 8 / RATE - time.monotonic()
            if delay > 0:
                self.stopped.wait(delay)

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.sock.close()


def answer(url, method="GET"):
    """(status, body) of a request answered with a refusal."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def joined_groups():
    """The IPv4 groups lo is a member of (the kernel prints each address as a host-order word)."""
    with open("/proc/net/igmp") as table:
        lines = table.read().split("\n")
    groups, on_lo = set(), False
    for line in lines[1:]:
        if line and not line[0].isspace():
            on_lo = line.split()[1] == "lo"
        elif on_lo and line.strip():
            groups.add(socket.inet_ntoa(struct.pack("=I", int(line.split()[0], 16))))
    return groups


def test_groups_by_url_refusals_and_idle_leave(restreamer, viewer, sample):
    udp, rtp, third = group(0), group(1), group(2)
    udp_port, rtp_port = free_port(), free_port()
    rs = restreamer({"graceperiod": 5, "idletimeout": 0.5, "maxgroups": 2, "resources": [
        {"type": "udpxy", "serve": "/", "allow": ["239.253.0.0/16"], "clientinterface": "lo"},
        {"type": "api", "api": "statistics", "serve": "/stats"}]})
    udp_path, rtp_path = f"/udp/{udp}:{udp_port}", f"/rtp/{rtp}:{rtp_port}"

    # Malformed, unicast and outside allow: one line saying why, in the body and the log.
    for path, status, reason in [(f"/udp/{udp}", 400, "is not GROUP:PORT"),
                                 (f"/udp/{udp}:99999", 400, "is not a number from 1 to 65535"),
                                 ("/udp/127.0.0.1:5000", 400, "127.0.0.1 is not a multicast group"),
                                 ("/rtp/239.1.1.1:5000", 403, "not in the gateway's allow list")]:
        code, body = answer(rs.url(path))
        assert (code, body.count(b"\n")) == (status, 1) and reason in body.decode(), (path, code, body)
        assert rs.wait_log(event("viewer refused", path=path, status=status))["reason"] == body.decode().strip()
    assert answer(rs.url("/status"))[0] == 404

    # udpxy's "@" form: the viewer joins the group, waits for its first datagram,
    # and has TS within a second of it.  The group is met mid-GOP, as a zap
    # meets a group that flows anyway: the viewer begins at its next start.
    first = viewer(rs.url(f"/udp/@{udp}:{udp_port}"))
    rs.wait_log(event("upstream connected", stream=udp_path))
    assert udp in joined_groups()
    raps = keyframes(sample)
    udp_sender = GroupSender((udp, udp_port), sample[raps[0] + 20 * PACKET_SIZE:])
    try:
        assert first.wait_status() == 200
        first.wait_bytes(PACKET_SIZE)
        latency = time.monotonic() - udp_sender.first
        assert latency < 1.0
        print(f"first TS byte {latency * 1000:.1f} ms after the group's first datagram")
        assert strip_start(first.wait_bytes(20 * PACKET_SIZE)).startswith(sample[raps[1]:raps[1] + PACKET_SIZE])
        # The plain form is the same group: one stream, two viewers.
        second = viewer(rs.url(udp_path))
        assert second.wait_status() == 200

        rtp_viewer = viewer(rs.url(rtp_path))
        rs.wait_log(event("upstream connected", stream=rtp_path))
        rtp_sender = GroupSender((rtp, rtp_port), sample, rtp=True)
        try:
            assert rtp_viewer.wait_status() == 200
            received = rtp_viewer.wait_bytes(100 * PACKET_SIZE)
            whole = received[:len(received) // PACKET_SIZE * PACKET_SIZE]
            assert_aligned(whole)
            assert_joined(whole, bytes(rtp_sender.sent))

            # Two groups open, as many as maxgroups allows: a third is refused.
            code, body = answer(rs.url(f"/udp/{third}:{udp_port}"))
            assert code == 503 and b"maxgroups" in body
            with urllib.request.urlopen(rs.url("/stats"), timeout=5) as response:
                streams = json.load(response)["streams"]
            assert (streams[udp_path]["connections"], streams[rtp_path]["connections"]) == (2, 1)
            assert streams[udp_path]["state"] == streams[rtp_path]["state"] == "online"

            # Without viewers a group is left after idletimeout (its datagrams
            # still arriving), and forgotten.
            for client in (first, second, rtp_viewer):
                client.close()
            for path in (udp_path, rtp_path):
                assert "idletimeout" in rs.wait_log(event("stream idle", stream=path))["reason"]
                rs.wait_log(event("group closed", stream=path))
            assert not {udp, rtp} & joined_groups()
        finally:
            rtp_sender.stop()
    finally:
        udp_sender.stop()
    with urllib.request.urlopen(rs.url("/stats"), timeout=5) as response:
        assert not {udp_path, rtp_path} & set(json.load(response)["streams"])
    # Their places are free again.
    assert answer(rs.url(f"/udp/{third}:{udp_port}"), "HEAD")[0] == 200
