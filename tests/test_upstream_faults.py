"""Upstream faults not covered elsewhere: an upstream that trickles one byte at
a time, one that tears packets, and one that comes back after the grace
period. Viewers that keep up must see only 188-byte packets on sync bytes, in
order, and the stream must recover by itself."""

import threading
from datetime import datetime

from restreamer.core.upstream import NO_PACKET_LIMIT
from restreamer.sources.http import HEAD_TIMEOUT
from tests.support.server import event
from tests.support.ts import (PACKET_SIZE, assert_aligned, assert_clean_start, assert_joined,
                              make_packets, packet_seq, packets_of)
from tests.support.viewer import http_get
from tests.support.ts import whole

RATE = 2_000_000


def stream_config(url, **top):
    return {"reconnect": 0.2, "graceperiod": 2, "timeout": 2, **top,
            "resources": [{"type": "stream", "serve": "/s.ts", "remote": url}]}


def test_an_upstream_trickling_one_byte_per_write_still_gives_whole_packets(upstream, restreamer, viewer):
    # One byte per send() (headers included): every read is a fragment.
    up = upstream(rate=200_000, trickle=True)
    rs = restreamer(stream_config(up.url))
    rs.wait_log("stream online")
    clients = [viewer(rs.url("/s.ts")) for _ in range(2)]
    for client in clients:
        assert client.wait_status() == 200
        client.wait_bytes(20 * PACKET_SIZE)
    sent = up.connections[0].sent
    for client in clients:
        data = whole(client.data)
        assert_aligned(data)
        assert assert_clean_start(data, sent) % PACKET_SIZE == 0


def test_torn_packets_are_cut_out_where_the_next_packet_shows_the_tear(upstream, restreamer, viewer):
    # Every 40th packet is cut short (torn) and followed straight by the next
    # one. A tear shows when the next packet's sync byte is not 188 bytes on:
    # then the torn packet is dropped. When the torn packet is the last thing
    # a read brought, nothing shows the tear yet and, rather than hold every
    # read's last packet back, restreamer passes it on as 188 bytes (the torn
    # packet and the start of the next, which is then lost). Either way every
    # packet is 188 bytes on a sync byte, in order, and nothing else is lost.
    packets = packets_of(make_packets(2000))
    torn = {seq for seq in range(len(packets)) if seq % 40 == 20}
    payload = b"".join(p[:100] if seq in torn else p for seq, p in enumerate(packets))
    up = upstream(payload, rate=RATE)
    rs = restreamer(stream_config(up.url))
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(1500 * PACKET_SIZE)
    received = packets_of(whole(client.data))
    seqs = [packet_seq(p) for p in received]
    passed_on = set()
    for packet, seq in zip(received, seqs):
        if seq in torn:
            assert packet == packets[seq][:100] + packets[seq + 1][:88], f"packet {seq} altered"
            passed_on.add(seq)
        else:
            assert packet == packets[seq], f"packet {seq} arrived altered"
    # Between wraps of the looping upstream: in order, and only torn packets
    # (or the packet a passed-on torn one swallowed) missing.
    runs, start = [], 0
    for i in range(1, len(seqs)):
        if seqs[i] <= seqs[i - 1]:
            runs.append(seqs[start:i])
            start = i
    runs.append(seqs[start:])
    seen_torn = set()
    for run in runs:
        span = range(run[0], run[-1] + 1)
        seen_torn |= torn & set(span)
        assert run == [s for s in span if (s not in torn or s in passed_on) and s - 1 not in passed_on]
    # Reads bring many packets each, so most tears are visible and cut out.
    assert len(passed_on) <= len(seen_torn) // 2, f"{len(passed_on)} of {len(seen_torn)} torn packets passed"


def test_the_stream_recovers_when_its_upstream_returns_after_the_grace_period(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, graceperiod=0.5))
    rs.wait_log("stream online")
    first = viewer(rs.url("/s.ts"))
    assert first.wait_status() == 200
    first.wait_bytes(10_000)
    # The upstream answers 503 for a while: past the grace period, viewers are closed.
    mark = rs.mark()
    up.status = 503
    up.close_all()
    failed = rs.wait_log(lambda e: e.get("event") == "upstream error" and "503" in e.get("reason", ""),
                         since=mark)
    assert failed["url"] == up.url
    rs.wait_log("stream offline", since=mark)
    first.wait_closed()
    assert first.error is None
    assert http_get(rs.url("/s.ts"))[0] == 404
    # It comes back: the stream goes online by itself and new viewers get it.
    up.status = 200
    rs.wait_log("stream online", since=mark)
    later = viewer(rs.url("/s.ts"))
    assert later.wait_status() == 200
    data = whole(later.wait_bytes(20_000))
    assert_aligned(data)
    assert_clean_start(data, up.connections[-1].sent)


def seconds_between(earlier, later):
    """Seconds between two log entries' ISO timestamps."""
    return (datetime.fromisoformat(later["time"].rstrip("Z"))
            - datetime.fromisoformat(earlier["time"].rstrip("Z"))).total_seconds()


def test_an_upstream_that_turns_to_garbage_is_dropped_after_readtimeout(upstream, restreamer):
    # Valid TS for 0.4 s, then non-TS bytes at the same rate: bytes keep
    # coming, but no packet does.
    up = upstream(rate=RATE, garbage_after_bytes=100_000)
    rs = restreamer(stream_config(up.url, readtimeout=3, reconnect=0.5))
    connected = rs.wait_log("upstream connected")
    failed = rs.wait_log("upstream error", timeout=15)
    assert failed["reason"].startswith("no valid packet for 3 s"), failed
    assert failed["url"] == up.url and failed["packets"] > 0
    # Its last packet came 0.4 s after connecting (1.5 s of slack for load).
    assert 3 <= seconds_between(connected, failed) < 3 + 0.4 + 1.5
    again = rs.wait_log(lambda e: e.get("event") == "upstream connecting" and e["attempt"] == 2)
    assert seconds_between(failed, again) < 0.5 + 1.5


def test_garbage_and_an_unanswered_request_are_given_up_without_readtimeout_or_timeout(upstream, restreamer):
    # With neither limit set, built-in ones still end both attempts; the two
    # upstreams are two streams of one process, so the limits run side by side.
    garbage = upstream(rate=RATE, garbage_after_bytes=50_000)
    silent = upstream(gate=threading.Event())  # reads the request, never answers
    rs = restreamer({"reconnect": 0.2, "graceperiod": 2, "timeout": 0, "resources": [  # readtimeout 0
        {"type": "stream", "serve": "/garbage.ts", "remote": garbage.url},
        {"type": "stream", "serve": "/silent.ts", "remote": silent.url}]})
    connected = rs.wait_log(event("upstream connected", stream="/garbage.ts"))
    connecting = rs.wait_log(event("upstream connecting", stream="/silent.ts"))
    dropped = rs.wait_log(event("upstream error", stream="/garbage.ts"), timeout=NO_PACKET_LIMIT + 5)
    assert dropped["reason"].startswith(f"no valid packet for {NO_PACKET_LIMIT:g} s"), dropped
    assert NO_PACKET_LIMIT <= seconds_between(connected, dropped) < NO_PACKET_LIMIT + 2
    unanswered = rs.wait_log(event("upstream error", stream="/silent.ts"), timeout=HEAD_TIMEOUT + 5)
    assert unanswered["reason"] == f"no response within {HEAD_TIMEOUT:g} s"
    assert HEAD_TIMEOUT <= seconds_between(connecting, unanswered) < HEAD_TIMEOUT + 2
    rs.wait_log(event("upstream connecting", stream="/silent.ts", attempt=2))


def test_a_pause_shorter_than_readtimeout_0_is_waited_out_whatever_timeout_says(upstream, restreamer, viewer):
    # timeout bounds connecting and the response head only, as in the Go original.
    up = upstream(rate=RATE, pause_after_bytes=60_000, pause_seconds=3)
    rs = restreamer(stream_config(up.url, timeout=1, readtimeout=0))
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    data = whole(client.wait_bytes(100_000, timeout=10))  # only after the pause
    # During the pause the viewer gets keepalive null packets; around them, the stream.
    null = bytes((0x47, 0x1F, 0xFF, 0x10)) + b"\xff" * 184
    sent = up.connections[0].sent

    def without_nulls(d):
        return b"".join(p for p in packets_of(whole(d)) if p != null)

    assert_joined(without_nulls(data), without_nulls(sent))
    assert len(up.connections) == 1
    assert rs.find_logs("upstream error") == []


def test_readtimeout_counts_from_the_connect_so_a_mute_remote_gives_way(upstream, restreamer):
    # Two remotes that accept and never answer: each attempt ends readtimeout
    # after it began, and the next remote is tried reconnect after that began.
    mute = [upstream(gate=threading.Event()) for _ in range(2)]
    rs = restreamer({"reconnect": 1, "readtimeout": 2, "timeout": 0, "resources": [
        {"type": "stream", "serve": "/s.ts", "remotes": [up.url for up in mute]}]})
    first = rs.wait_log("upstream connecting")
    failed = rs.wait_log("upstream error", timeout=HEAD_TIMEOUT)
    assert failed["reason"] == "no valid packet for 2 s (readtimeout)"
    second = rs.wait_log(lambda e: e.get("event") == "upstream connecting" and e["attempt"] == 2)
    assert second["url"] != first["url"]
    assert 2 <= seconds_between(first, failed) < 2.5
    assert seconds_between(first, second) < 3
