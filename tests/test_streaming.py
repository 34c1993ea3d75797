"""The core streaming behaviour, end to end through real sockets: delivery,
failover, reconnects and grace periods, broken and non-TS upstreams, limits,
HEAD, headers, preamble, slow viewers, and a real player (ffprobe) on the
proxied stream."""

import json
import re
import socket
import subprocess
import threading
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import pytest

from tests.support.server import RestreamerProcess
from tests.support.ts import (PACKET_SIZE, PIECE_PACKETS, assert_aligned, assert_clean_runs,
                              assert_clean_start, assert_contiguous, assert_runs, make_packets,
                              packet_seq, packets_of)
from tests.support.upstream import TSUpstream, refusing_port
from tests.support.viewer import http_get
from tests.support.server import event
from tests.support.ts import keyframes, strip_start, whole

RATE = 2_000_000
ENOUGH = 60_000  # body bytes a viewer gets before checks (~0.25 s at RATE)
STREAM_HEADERS = {
    "Content-Type": "video/mpeg",
    "Cache-Control": "no-cache,no-store,no-transform",
    "Accept-Ranges": "none",
}
PORTAL = (b"<!DOCTYPE html>\n<html><head><title>Gateway login</title></head>\n"
          b"<body><h1>Guest WiFi Gateway</h1><form method='POST' action='/login'>"
          b"<input name='user'><input name='password' type='password'>"
          b"<button>Go</button></form></body></html>\n")


def stream_config(*remotes, **top):
    return {"reconnect": 0.2, "graceperiod": 2, "timeout": 2, **top,
            "resources": [{"type": "stream", "serve": "/s.ts", "remotes": list(remotes)}]}


def log_time(entry):
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))


def connect(rs, viewer, n, path="/s.ts"):
    """`n` viewers of `path`, each let in."""
    clients = [viewer(rs.url(path)) for _ in range(n)]
    for client in clients:
        assert client.wait_status() == 200
    return clients


# -- one shared relay for the cases that only watch logs and status codes -----

@pytest.fixture(scope="module")
def shared(sample, tmp_path_factory):
    """One restreamer with a stream per kind of upstream behaviour."""
    tmp = tmp_path_factory.mktemp("shared")
    # Every packet traceable by its sequence number; 15 s at RATE before it loops.
    numbered = make_packets(21000)
    ups = SimpleNamespace(
        live=TSUpstream(sample, rate=RATE),
        pre=TSUpstream(sample, rate=RATE),
        garbage=TSUpstream(numbered, rate=RATE, garbage_every=3),
        e404=TSUpstream(sample, status=404),
        e500=TSUpstream(sample, status=500),
        portal=TSUpstream(sample, body_override=PORTAL, content_type="text/html"),
        big_page=TSUpstream(sample, body_override=PORTAL * 1000, content_type="text/html"),
        stall=TSUpstream(sample, stall_after_headers=True),
    )
    preamble = make_packets(3, pid=0x1FF0)
    (tmp / "preamble.ts").write_bytes(preamble)
    refused = refusing_port()
    remotes = {
        "/live.ts": ups.live.url, "/garbage.ts": ups.garbage.url, "/e404.ts": ups.e404.url,
        "/e500.ts": ups.e500.url, "/portal.ts": ups.portal.url, "/big-page.ts": ups.big_page.url,
        "/stall.ts": ups.stall.url, "/preamble.ts": ups.pre.url,
        "/refused.ts": f"http://127.0.0.1:{refused.getsockname()[1]}/gone.ts",
        "/dns.ts": "http://nonexistent.invalid/stream.ts",
    }
    resources = [{"type": "stream", "serve": serve, "remote": url} for serve, url in remotes.items()]
    for resource in resources:
        if resource["serve"] == "/preamble.ts":
            resource["preamble"] = str(tmp / "preamble.ts")
    config = {"reconnect": 0.2, "readtimeout": 0.5, "timeout": 2, "graceperiod": 2,
              "resources": resources}
    rs = RestreamerProcess(config, tmp).start()
    yield SimpleNamespace(rs=rs, ups=ups, remotes=remotes, numbered=numbered, preamble=preamble)
    rs.close()
    refused.close()
    for up in vars(ups).values():
        up.stop()


def test_response_headers(shared, viewer):
    shared.rs.wait_log(event("stream online", stream="/live.ts"))
    client = viewer(shared.rs.url("/live.ts"))
    assert client.wait_status() == 200
    for name, value in STREAM_HEADERS.items():
        assert client.headers[name] == value
    modified = parsedate_to_datetime(client.headers["Last-Modified"])
    assert abs((modified - datetime.now(timezone.utc)).total_seconds()) < 60
    assert client.headers["Content-Length"] is None
    assert_aligned(whole(client.wait_bytes(ENOUGH)))


def test_head_gets_headers_and_no_body(shared, viewer):
    shared.rs.wait_log(event("stream online", stream="/live.ts"))
    mark = shared.rs.mark()
    client = viewer(shared.rs.url("/live.ts"), method="HEAD")
    assert client.wait_status() == 200
    for name, value in STREAM_HEADERS.items():
        assert client.headers[name] == value
    # A live stream has no length: "Content-Length: 0" would tell a player it is empty.
    assert "Content-Length" not in client.headers
    assert client.wait_closed() == b""
    assert client.error is None
    assert shared.rs.find_logs("viewer connected", since=mark) == []


def test_preamble_comes_first(shared, viewer):
    shared.rs.wait_log(event("stream online", stream="/preamble.ts"))
    clients = connect(shared.rs, viewer, 2, "/preamble.ts")
    for client in clients:
        data = whole(client.wait_bytes(len(shared.preamble) + ENOUGH))
        assert data.startswith(shared.preamble)
    sent = shared.ups.pre.connections[0].sent
    for client in clients:
        rest = whole(client.data)[len(shared.preamble):]
        assert assert_clean_start(rest, sent) % PACKET_SIZE == 0


def test_garbage_is_cut_out_and_viewers_get_only_whole_packets(shared, viewer):
    shared.rs.wait_log(event("stream online", stream="/garbage.ts"))
    clients = connect(shared.rs, viewer, 2, "/garbage.ts")
    original = packets_of(shared.numbered)
    # Garbage follows every 3rd piece, i.e. packet 3 * PIECE_PACKETS * k - 1; the
    # aligner cannot tell that packet from a torn one, so it may drop it too.
    period = 3 * PIECE_PACKETS
    for client in clients:
        packets = packets_of(whole(client.wait_bytes(ENOUGH)))
        seqs = [packet_seq(p) for p in packets]
        for packet, seq in zip(packets, seqs):
            assert packet == original[seq], f"packet {seq} altered"
        for before, after in zip(seqs, seqs[1:]):
            assert after == before + 1 or (after == before + 2 and (before + 2) % period == 0), (
                f"packet {before} followed by {after}")


@pytest.mark.parametrize("serve, reason", [
    ("/e404.ts", "HTTP 404 Not Found"),
    ("/e500.ts", "HTTP 500 Internal Server Error"),
    ("/refused.ts", "Connection refused"),
    ("/dns.ts", re.compile(r"name resolution failed: .+")),
])
def test_failing_upstream_is_logged_with_url_and_reason(shared, serve, reason):
    error = shared.rs.wait_log(event("upstream error", stream=serve))
    assert error["url"] == shared.remotes[serve]
    assert error["level"] == "warning"
    if isinstance(reason, str):
        assert error["reason"] == reason
    else:
        assert reason.fullmatch(error["reason"]), error["reason"]
    # It is retried, and viewers are turned away meanwhile.
    shared.rs.wait_log(event("upstream connecting", stream=serve, attempt=2))
    status, headers, body = http_get(shared.rs.url(serve))
    assert (status, body, headers["Content-Type"]) == (404, b"", "text/plain; charset=utf-8")


@pytest.mark.parametrize("serve, reason", [
    ("/portal.ts", re.compile(r"not MPEG-TS: ended after \d+ bytes without a packet")),
    ("/big-page.ts", re.compile(r"not MPEG-TS: no packet in the first \d+ bytes")),
])
def test_non_ts_upstream_is_a_failed_attempt(shared, serve, reason):
    error = shared.rs.wait_log(event("upstream error", stream=serve))
    assert reason.fullmatch(error["reason"]), error["reason"]
    shared.rs.wait_log(event("upstream connecting", stream=serve, attempt=3))
    assert shared.rs.find_logs(event("stream online", stream=serve)) == []
    status, _, body = http_get(shared.rs.url(serve))
    assert (status, body) == (404, b"")


def test_readtimeout_drops_a_stalled_upstream_and_reconnects(shared):
    error = shared.rs.wait_log(event("upstream error", stream="/stall.ts"))
    assert error["reason"] == "no valid packet for 0.5 s (readtimeout)"
    assert error["url"] == shared.ups.stall.url
    shared.ups.stall.wait_connections(2)


# -- a relay per test, for the cases that change the upstream or the limits -------

def test_an_upstream_that_never_answers_times_out(restreamer):
    # A listening socket nobody accepts on: the connection is made (by the
    # kernel), the request sent, and no response ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/s.ts"
        rs = restreamer(stream_config(url, timeout=0.3))
        error = rs.wait_log(event("upstream error", url=url))
        assert error["reason"] == "no response within 0.3 s"
        assert (log_time(error) - log_time(rs.wait_log("upstream connecting"))).total_seconds() >= 0.25


def test_failover_to_the_next_remote(upstream, restreamer, viewer, refused_port):
    good = upstream(rate=RATE)
    missing = upstream(status=404)
    refused = f"http://127.0.0.1:{refused_port}/gone.ts"
    rs = restreamer(stream_config(refused, missing.url, good.url, graceperiod=3))
    rs.wait_log(event("stream online", url=good.url))
    clients = connect(rs, viewer, 2)
    for client in clients:
        client.wait_bytes(ENOUGH)
    # Whatever order the remotes were shuffled into, the two others come
    # before the good one again once it fails.
    mark = rs.mark()
    good.close_all()
    assert rs.wait_log(event("upstream error", url=refused), since=mark)["reason"] == "Connection refused"
    assert rs.wait_log(event("upstream error", url=missing.url), since=mark)["reason"] == "HTTP 404 Not Found"
    rs.wait_log(event("stream online", url=good.url), since=mark)
    first, second = good.wait_connections(2)
    for client in clients:
        data = client.wait_bytes(len(client.data) + ENOUGH)
        assert not client.closed.is_set()
        assert assert_clean_runs(whole(data), first.sent, second.sent)[1] > 0


def test_viewers_stay_through_a_reconnect_within_graceperiod(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, graceperiod=3))
    rs.wait_log("stream online")
    clients = connect(rs, viewer, 3)
    for client in clients:
        client.wait_bytes(ENOUGH)
    mark = rs.mark()
    up.close_all()
    waiting = rs.wait_log("stream waiting", since=mark)
    assert waiting["viewers"] == 3
    rs.wait_log("stream online", since=mark)
    first, second = up.wait_connections(2)
    for client in clients:
        data = client.wait_bytes(len(client.data) + ENOUGH)
        assert not client.closed.is_set()
        # One run from each upstream connection, each whole packets, nothing torn at the seam.
        assert assert_clean_runs(whole(data), first.sent, second.sent)[1] > 0
    assert rs.find_logs("stream offline", since=mark) == []


def test_viewers_are_closed_when_the_upstream_stays_away_past_graceperiod(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, graceperiod=0.5))
    rs.wait_log("stream online")
    clients = connect(rs, viewer, 2)
    for client in clients:
        client.wait_bytes(ENOUGH)
    up.stop()  # from now on every attempt is refused
    waiting = rs.wait_log("stream waiting")
    offline = rs.wait_log("stream offline")
    # The grace timer runs on the event loop's clock, which may lag a little.
    assert (log_time(offline) - log_time(waiting)).total_seconds() >= 0.45
    sent = up.connections[0].sent
    for client in clients:
        data = client.wait_closed()
        assert client.error is None  # a clean end, not a reset
        assert_clean_start(data, sent)
        assert len(data) % PACKET_SIZE == 0
    status, _, _ = http_get(rs.url("/s.ts"))
    assert status == 404


@pytest.mark.parametrize("limitstatus", [None, 503])
def test_maxconnections_turns_extra_viewers_away(upstream, restreamer, viewer, limitstatus):
    up = upstream(rate=RATE)
    config = stream_config(up.url, maxconnections=2)
    if limitstatus is not None:
        config["limitstatus"] = limitstatus
    rs = restreamer(config)
    rs.wait_log("stream online")
    clients = connect(rs, viewer, 2)
    extra = viewer(rs.url("/s.ts"))
    assert extra.wait_status() == (limitstatus or 404)
    assert extra.wait_closed() == b""
    assert extra.headers["Content-Type"] == "text/plain; charset=utf-8"  # not video to a player
    refused = rs.wait_log("viewer refused")
    assert (refused["reason"], refused["status"]) == ("connection limit reached", limitstatus or 404)
    for client in clients:
        client.wait_bytes(ENOUGH)  # the viewers let in are unaffected
        assert_clean_start(whole(client.data), up.connections[0].sent)


def test_head_holds_no_viewer_slot(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, maxconnections=1))
    rs.wait_log("stream online")
    for _ in range(2):
        head = viewer(rs.url("/s.ts"), method="HEAD")
        assert head.wait_status() == 200
        assert head.wait_closed() == b""
    first = viewer(rs.url("/s.ts"))
    assert first.wait_status() == 200
    first.wait_bytes(ENOUGH)


def test_a_departing_viewer_frees_its_slot(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, maxconnections=1))
    rs.wait_log("stream online")
    first = viewer(rs.url("/s.ts"))
    assert first.wait_status() == 200
    first.wait_bytes(ENOUGH)
    assert viewer(rs.url("/s.ts")).wait_status() == 404
    first.close()
    rs.wait_log("viewer disconnected", timeout=2)
    again = viewer(rs.url("/s.ts"))
    assert again.wait_status() == 200
    again.wait_bytes(ENOUGH)


def test_a_stalled_viewer_drops_while_a_healthy_one_gets_every_packet(upstream, restreamer, viewer):
    # Fast enough to overflow the stalled viewer's socket buffers (the kernel
    # may grow a send buffer to 4 MB) and a backlog of 2 MB within about a
    # second.  The stalled viewer resumes at a RAP after PAT and PMT.
    up = upstream(rate=40_000_000)
    rs = restreamer(stream_config(up.url, backlogbytes=2_000_000))
    rs.wait_log("stream online")
    healthy = viewer(rs.url("/s.ts"))
    stalled = viewer(rs.url("/s.ts"), rcvbuf=4096)
    assert healthy.wait_status() == 200 and stalled.wait_status() == 200
    stalled.wait_bytes(PACKET_SIZE)
    stalled.pause()
    conn = up.connections[0]
    stall = 6_000_000
    conn.wait_sent(len(conn.sent) + stall)
    stalled.resume()
    got = whole(stalled.wait_bytes(len(stalled.data) + stall, timeout=10))
    # Everything is taken before checking: the checks hold the GIL long
    # enough to starve this process's viewer threads.
    data, sent = whole(healthy.data), conn.sent
    runs = [n for n in assert_clean_runs(got, *[sent] * 100) if n]
    assert len(runs) > 1, "the stalled viewer should have lost packets"
    assert len(data) > stall
    assert_clean_start(data, sent)


def test_an_outputbuffer_smaller_than_one_read_still_delivers(upstream, restreamer, viewer):
    # Upstream reads are 7 packets here; a 5-packet queue takes them in part.
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url, outputbuffer=5))
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    data = whole(client.wait_bytes(ENOUGH // 4))
    assert assert_runs(data, *[up.connections[0].sent] * 1000)


def test_ffprobe_reads_the_proxied_sample(restreamer):
    rs = restreamer(stream_config("loop:sample"))
    rs.wait_log("stream online")
    # A second of analysis instead of the default five keeps the test short;
    # it is still enough for the full codec parameters.
    result = subprocess.run(["ffprobe", "-v", "error", "-analyzeduration", "1000000", "-show_streams",
                             "-of", "json", rs.url("/s.ts")], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    streams = {stream["codec_type"]: stream for stream in json.loads(result.stdout)["streams"]}
    assert {kind: stream["codec_name"] for kind, stream in streams.items()} == {"video": "h264", "audio": "aac"}
    assert streams["video"]["width"] > 0 and int(streams["audio"]["sample_rate"]) > 0


def test_a_viewer_tuning_in_while_the_stream_starts_waits_and_gets_it_from_the_start(
        upstream, restreamer, viewer):
    gate = threading.Event()
    up = upstream(rate=RATE, gate=gate)
    rs = restreamer(stream_config(up.url, timeout=10))
    rs.wait_log(event("upstream connecting", attempt=1))
    early = viewer(rs.url("/s.ts"))
    rs.wait_log(event("viewer waiting", stream="/s.ts"))
    assert early.status is None  # held, not refused
    gate.set()
    assert early.wait_status() == 200
    data = early.wait_bytes(ENOUGH)
    # The connection's first start (PAT, PMT, its first keyframe) on, with nothing lost after it.
    sent = up.connections[0].sent
    assert assert_contiguous(strip_start(whole(data)), sent) == keyframes(sent)[0]


def test_a_viewer_waiting_for_a_first_attempt_that_fails_is_refused(upstream, restreamer, viewer):
    gate = threading.Event()
    up = upstream(rate=RATE, gate=gate, status=503)
    rs = restreamer(stream_config(up.url, timeout=10))
    early = viewer(rs.url("/s.ts"))
    rs.wait_log(event("viewer waiting", stream="/s.ts"))
    gate.set()
    assert early.wait_status() == 404
    refused = rs.wait_log(event("viewer refused", stream="/s.ts"))
    assert refused["reason"] == "stream offline"
    # Only the first attempt holds viewers: later ones are refused at once.
    rs.wait_log(event("upstream connecting", attempt=2))
    assert http_get(rs.url("/s.ts"))[0] == 404
