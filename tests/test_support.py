"""Tests of the test-support layer itself: the pieces checked against each other."""

import gc
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from tests.support.server import RestreamerProcess
from tests.support.ts import (PACKET_SIZE, PIECE_SIZE, SAMPLE_PATH, assert_aligned, assert_clean_runs,
                              assert_contiguous, keyframes, make_packets, packet_cc, packet_pid, packet_seq, packets_of)
from tests.support.upstream import GARBAGE_PATTERN, iter_pieces
from tests.support.viewer import http_get, http_request
from tests.support.waiting import WaitTimeout


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """Read n bytes from a blocking socket with a timeout set."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection closed after {len(data)} of {n} bytes"
        data += chunk
    return data


# -- ts.py ------------------------------------------------------------------

def test_sample_is_small_aligned_ts(sample):
    assert 100_000 < len(sample) < 2_000_000
    assert_aligned(sample)


def test_sample_has_one_h264_and_one_aac_stream():
    result = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                             "-of", "json", str(SAMPLE_PATH)],
                            capture_output=True, text=True, timeout=30, check=True)
    codecs = sorted(stream["codec_name"] for stream in json.loads(result.stdout)["streams"])
    assert codecs == ["aac", "h264"]


def test_make_packets_are_valid_and_numbered():
    packets = packets_of(make_packets(20, pid=0x1FF, start_cc=14))
    assert len(packets) == 20
    assert [packet_pid(p) for p in packets] == [0x1FF] * 20
    assert [packet_cc(p) for p in packets] == [(14 + i) % 16 for i in range(20)]
    assert [packet_seq(p) for p in packets] == list(range(20))


def test_assert_aligned_rejects_misalignment():
    data = make_packets(3)
    with pytest.raises(AssertionError, match="not a whole number"):
        assert_aligned(data[:-1])
    with pytest.raises(AssertionError, match="packet 1"):
        assert_aligned(data[:PACKET_SIZE] + b"\x00" + data[PACKET_SIZE + 1:])


def test_assert_contiguous():
    sent = make_packets(50)
    assert assert_contiguous(sent[1000:5000], sent) == 1000
    with pytest.raises(AssertionError, match="differs"):
        assert_contiguous(sent[1000:3000] + sent[3100:5000], sent)


def test_clean_runs_may_end_inside_a_fast_start(sample):
    # The sample's first start: its PAT and PMT (packets 1 and 2), then its first keyframe.
    pat, pmt = sample[PACKET_SIZE:2 * PACKET_SIZE], sample[2 * PACKET_SIZE:3 * PACKET_SIZE]
    rap = keyframes(sample)[0]
    run = sample[rap:rap + 100 * PACKET_SIZE]
    mark = bytes([0x47, 0x01, 0x00, 0x20, 0xB7, 0x80]) + b"\xff" * (PACKET_SIZE - 6)  # a splice's mark
    assert assert_clean_runs(pat + pmt + run, sample) == [len(run)]
    # The viewer hung up inside the next start: after its mark, after its PAT, after its PMT.
    for cut in (mark, mark + pat, mark + pat + pmt, pat + pmt):
        assert assert_clean_runs(pat + pmt + run + cut, sample, sample) == [len(run), 0]
    # What follows a start's PAT and PMT is no cut start unless it is one.
    with pytest.raises(AssertionError):
        assert_clean_runs(pat + pmt + run + pat + pmt + sample[:PACKET_SIZE], sample, sample)


def test_iter_pieces_loop_seamlessly():
    payload = make_packets(10)  # not a multiple of the piece size
    pieces = list(zip(range(9), iter_pieces(payload)))
    joined = b"".join(piece for _, piece in pieces)
    assert all(len(piece) == PIECE_SIZE for _, piece in pieces)
    assert joined == (payload * 7)[:len(joined)]
    assert b"".join(iter_pieces(payload, loop=False)) == payload
    burst = 3 * len(payload) + 5  # a first piece longer than the payload, then the usual size
    pieces = list(zip(range(4), iter_pieces(payload, first=burst)))
    assert [len(piece) for _, piece in pieces] == [burst] + [PIECE_SIZE] * 3
    joined = b"".join(piece for _, piece in pieces)
    assert joined == (payload * 9)[:len(joined)]
    assert b"".join(iter_pieces(payload, loop=False, first=burst)) == payload


# -- TSUpstream ---------------------------------------------------------------

def test_http_upstream_streams_what_it_records(upstream, viewer, sample):
    server = upstream()
    client = viewer(server.url)
    assert client.wait_status() == 200
    assert client.headers["content-type"] == "video/mpeg"
    assert client.version == "HTTP/1.1"
    data = client.wait_bytes(50_000)
    conn = server.wait_connections(1)[0]
    assert conn.request_line == "GET /stream.ts HTTP/1.1"
    assert conn.request_headers["user-agent"] == "restreamer-tests"
    assert conn.sent.startswith(data)
    assert sample.startswith(data[:len(sample)])
    client.close()
    assert conn.wait_closed() == "peer"


def test_http10_status_line(upstream, viewer):
    client = viewer(upstream(http_version="1.0").url, http10=True)
    assert client.wait_status() == 200
    assert client.version == "HTTP/1.0"


def test_tcp_upstream_sends_raw_bytes(upstream, sample):
    server = upstream(mode="tcp")
    assert server.url == f"tcp://127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        data = recv_exactly(sock, 20_000)
    assert data == sample[:20_000]
    assert server.wait_connections(1)[0].sent.startswith(data)


def test_upstream_paces_to_the_bitrate(upstream, viewer):
    client = viewer(upstream(rate=2_000_000).url)
    client.wait_status()
    started = time.monotonic()
    client.wait_bytes(125_000)  # 0.5 s at 2 Mbit/s
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 3, elapsed


def test_upstream_loops_or_ends(upstream, viewer):
    payload = make_packets(30)
    looping = viewer(upstream(payload, rate=None).url)
    assert looping.wait_bytes(3 * len(payload))[:3 * len(payload)] == payload * 3
    server = upstream(payload, rate=None, loop=False)
    once = viewer(server.url)
    assert once.wait_closed() == payload
    assert server.wait_connections(1)[0].wait_closed() == "eof"


def test_status_and_body_override_knobs_apply_per_connection(upstream):
    server = upstream(status=404)
    status, _, body = http_get(server.url)
    assert (status, body) == (404, b"404 Not Found\n")
    server.status, server.body_override, server.content_type = 200, b"<html>portal</html>", "text/html"
    status, headers, body = http_get(server.url)
    assert (status, headers["Content-Type"], body) == (200, "text/html", b"<html>portal</html>")
    assert [c.wait_closed() for c in server.wait_connections(2)] == ["response", "response"]


def test_close_after_bytes(upstream, viewer, sample):
    server = upstream(rate=None, close_after_bytes=10_000)
    assert viewer(server.url).wait_closed() == sample[:10_000]
    conn = server.wait_connections(1)[0]
    assert conn.wait_closed() == "limit"
    assert conn.sent == sample[:10_000]


def test_stall_after_headers_until_dropped(upstream, viewer):
    server = upstream(stall_after_headers=True)
    client = viewer(server.url)
    assert client.wait_status() == 200
    with pytest.raises(WaitTimeout):
        client.wait_bytes(1, timeout=0.3)
    server.close_all()
    assert client.wait_closed() == b""
    assert server.connections[0].close_reason == "dropped"


def test_garbage_is_inserted_between_pieces_and_recorded(upstream, viewer):
    payload = make_packets(70)
    server = upstream(payload, rate=None, garbage_every=2, garbage_len=5)
    data = viewer(server.url).wait_bytes(4 * PIECE_SIZE + 10)
    garbage = GARBAGE_PATTERN[:4] + GARBAGE_PATTERN[:1]
    expected = payload[:2 * PIECE_SIZE] + garbage + payload[2 * PIECE_SIZE:4 * PIECE_SIZE] + garbage
    assert data[:len(expected)] == expected
    assert server.wait_connections(1)[0].sent.startswith(expected)


def test_trickle_sends_byte_by_byte(upstream, viewer, sample):
    server = upstream(rate=None, trickle=True)
    client = viewer(server.url)
    assert client.wait_status() == 200
    assert client.wait_bytes(2000)[:2000] == sample[:2000]


def test_wait_connections_times_out_with_a_message(upstream):
    with pytest.raises(WaitTimeout, match="1 connection"):
        upstream().wait_connections(1, timeout=0.2)


def test_close_all_drops_connections_but_keeps_serving(upstream, viewer):
    server = upstream()
    first = viewer(server.url)
    first.wait_bytes(1000)
    server.close_all()
    first.wait_closed()
    second = viewer(server.url)
    assert second.wait_bytes(1000)


def test_unix_upstream(unix_upstream, sample):
    server = unix_upstream(rate=None)
    assert server.url == f"unix://{server.path}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(server.path)
        data = recv_exactly(sock, 10_000)
    assert data == sample[:10_000]
    server.stop()
    assert not os.path.exists(server.path)


def test_udp_sender_sends_paced_datagrams(udp_sender, sample):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sender = udp_sender(sock.getsockname()[1])
        datagrams = [sock.recv(65536) for _ in range(5)]
    assert [len(d) for d in datagrams] == [PIECE_SIZE] * 5
    assert b"".join(datagrams) == sample[:5 * PIECE_SIZE]
    assert sender.wait_sent(5 * PIECE_SIZE).startswith(b"".join(datagrams))


# -- HttpViewer and http_get ----------------------------------------------------

class _FramingHandler(http.server.BaseHTTPRequestHandler):
    """Serves fixed bodies with each kind of HTTP framing."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"hello ", b"chunked", b" world"):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"fixed")

    do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def framing_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FramingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_viewer_dechunks(framing_server, viewer):
    client = viewer(framing_server + "/chunked")
    assert client.wait_closed() == b"hello chunked world"
    assert client.complete and client.error is None


def test_viewer_content_length_and_head(framing_server, viewer):
    client = viewer(framing_server + "/fixed")
    assert client.wait_closed() == b"fixed"
    assert client.complete
    head = viewer(framing_server + "/fixed", method="HEAD")
    assert head.wait_status() == 200
    assert head.wait_closed() == b""


def test_viewer_pause_stops_reading(upstream, viewer):
    client = viewer(upstream(rate=None).url, rcvbuf=4096)
    client.wait_bytes(10_000)
    client.pause()
    paused_at = len(client.data)
    with pytest.raises(WaitTimeout):
        client.wait_bytes(paused_at + 65536 + 1, timeout=0.3)  # at most one read in flight
    client.resume()
    client.wait_bytes(paused_at + 500_000)


def test_http_request_methods(framing_server):
    status, headers, body = http_request("HEAD", framing_server + "/fixed")
    assert (status, headers["Content-Length"], body) == (200, "5", b"")


# -- RestreamerProcess, against a stand-in server ------------------------------

FAKE_SERVER = r'''
import json, signal, socket, sys, yaml

config = yaml.safe_load(open(sys.argv[1]))
if config.get("fail"):
    sys.exit("fake: refusing to start: " + config["fail"])
host, _, port = config["listen"].rpartition(":")
sock = socket.create_server((host, int(port)))

def log(**fields):
    print(json.dumps(fields), flush=True)

def terminate(signum, frame):
    log(event="stopping")
    sys.exit(0)

signal.signal(signal.SIGTERM, signal.SIG_IGN if config.get("ignore_term") else terminate)
print("plain text line", flush=True)
log(event="listening", port=sock.getsockname()[1], args=sys.argv[2:])
while True:
    conn, _ = sock.accept()
    conn.recv(65536)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.close()
    log(event="request")
'''


@pytest.fixture
def fake_cmd(tmp_path):
    script = tmp_path / "fake_restreamer.py"
    script.write_text(FAKE_SERVER)
    return [sys.executable, str(script), "{config}"]


def test_restreamer_process_lifecycle(restreamer, fake_cmd):
    proc = restreamer({"streams": {}}, cmd=fake_cmd, extra_args=["--flag"])
    assert proc.port and proc.base_url == f"http://127.0.0.1:{proc.port}"
    assert proc.wait_log("listening")["args"] == ["--flag"]
    assert {"raw": "plain text line"} in proc.logs
    mark = proc.mark()
    assert http_get(proc.url("/anything"))[::2] == (200, b"ok")
    assert proc.wait_log(lambda e: e.get("event") == "request", since=mark)
    assert proc.stop() == 0
    assert proc.find_logs("stopping")


def test_restreamer_process_yaml_config(restreamer, fake_cmd):
    proc = restreamer({"streams": {"a": {"remote": "x"}}}, cmd=fake_cmd, fmt="yaml")
    assert proc.config_path.suffix == ".yaml"
    assert yaml.safe_load(proc.config_path.read_text())["streams"] == {"a": {"remote": "x"}}


def test_restreamer_process_reports_startup_failure(restreamer, fake_cmd):
    proc = restreamer({"fail": "bad config"}, cmd=fake_cmd, start=False)
    with pytest.raises(AssertionError, match="(?s)exited \\(code 1\\).*refusing to start: bad config"):
        proc.start()


def test_restreamer_process_wait_exit(restreamer, fake_cmd):
    proc = restreamer({"fail": "no streams"}, cmd=fake_cmd, start=False).launch()
    assert proc.wait_exit() == 1
    assert proc.stderr_lines == ["fake: refusing to start: no streams"]


def test_restreamer_process_stop_kills_a_hung_process(restreamer, fake_cmd):
    proc = restreamer({"ignore_term": True}, cmd=fake_cmd)
    with pytest.raises(AssertionError, match="did not exit"):
        proc.stop(timeout=0.5)
    assert proc.returncode == -9


def test_restreamer_process_killed_when_garbage_collected(tmp_path, fake_cmd):
    proc = RestreamerProcess({"ignore_term": True}, tmp_path, cmd=fake_cmd).start()
    child = proc.proc
    del proc
    gc.collect()
    assert child.wait(5) == -9
