"""HTTP edge cases on a running restreamer: unknown paths and methods, HEAD,
HTTP/1.0, pipelining, oversized or endless request heads and silent clients,
each while a healthy viewer of the same stream keeps receiving every packet;
and what the CLI and the shipped gunicorn settings both refuse: lenient
request framing, slow request bodies, answers nobody reads."""

import json
import re
import socket
import sys
import time

import pytest

from tests.support.polling import poll
from tests.support.server import RestreamerProcess
from tests.support.ts import PACKET_SIZE, assert_clean_start
from tests.support.upstream import TSUpstream
from tests.support.viewer import HttpViewer, http_get, http_request

RATE = 2_000_000
#: What a healthy viewer must still get after the test's doing: 0.2 s of the stream, 200 packets.
FLOWING = 200 * PACKET_SIZE
DROPTIMEOUT = 1  # also how long a client may take to send its request head


@pytest.fixture(scope="module")
def source(sample):
    server = TSUpstream(sample, rate=RATE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rs(source, tmp_path_factory):
    config = {"droptimeout": DROPTIMEOUT, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": source.url},
        {"type": "api", "api": "health", "serve": "/health"},
    ]}
    process = RestreamerProcess(config, tmp_path_factory.mktemp("http")).start()
    process.wait_log("stream online")
    yield process
    process.close()
    print(process.output_tail())


@pytest.fixture
def healthy(rs, source):
    """A viewer of /s.ts that must get an unbroken run of the upstream by the end of the test."""
    mark = rs.mark()
    client = HttpViewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(PACKET_SIZE * 7)
    # Its log line is read from the server's output by a thread of the test's:
    # wait for it, or a test that looks for "viewer connected" could see it.
    rs.wait_log("viewer connected", since=mark)
    yield client
    before = len(client.data)
    client.wait_bytes(before + FLOWING)  # still flowing after whatever the test did
    data = client.data
    client.close()
    assert_clean_start(data[:len(data) - len(data) % PACKET_SIZE], source.connections[0].sent)


def exchange(rs, raw: bytes, timeout: float = 5) -> bytes:
    """Send `raw` on a fresh connection, half-close, and return all the server says
    until it closes (or resets the connection, having refused to read all of `raw`)."""
    with socket.create_connection(("127.0.0.1", rs.port), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while len(answer) < 1_000_000 and (chunk := sock.recv(65536)):
                answer += chunk  # (a stream would never end: the limit keeps this bounded)
        except ConnectionResetError:
            pass
        return answer


def statuses(answer: bytes) -> list[int]:
    """The status codes of every response head in `answer`, in order (bodies have no
    trailing newline, so a pipelined status line may follow one directly)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", answer)]


def test_unknown_paths_are_404(rs, healthy):
    for path in ("/", "/nope", "/s.ts/", "/s.ts/x", "/S.TS", "/health/x", "/s.tsx"):
        assert http_get(rs.url(path))[0] == 404, path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_on_a_stream_are_405(rs, healthy, method):
    status, headers, _ = http_request(method, rs.url("/s.ts"), body=b"x")
    assert status == 405
    assert set(headers["Allow"].replace(" ", "").split(",")) >= {"GET", "HEAD"}
    assert "POST" not in headers["Allow"]
    assert http_request(method, rs.url("/health"), body=b"")[0] == 405


def test_head_on_a_stream_answers_without_a_body_or_a_viewer(rs, healthy):
    mark = rs.mark()
    client = HttpViewer(rs.url("/s.ts"), method="HEAD")
    try:
        assert client.wait_status() == 200
        assert client.headers["Content-Type"] == "video/mpeg"
        assert client.wait_closed() == b""
    finally:
        client.close()
    assert not rs.find_logs("viewer connected", since=mark)
    poll(lambda: json.loads(http_get(rs.url("/health"))[2])["viewer"], lambda n: n == 1, 5,
         "the healthy viewer alone in the viewer count")


def test_http10_viewer_gets_a_close_delimited_stream(rs, healthy, source):
    client = HttpViewer(rs.url("/s.ts"), http10=True)
    try:
        assert client.wait_status() == 200
        assert "chunked" not in client.headers.get("Transfer-Encoding", "")
        assert client.headers.get("Content-Length") is None
        data = client.wait_bytes(50_000)
    finally:
        client.close()
    assert_clean_start(data[:len(data) - len(data) % PACKET_SIZE], source.connections[0].sent)


def test_pipelined_requests_are_answered_in_order(rs, healthy):
    one = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = exchange(rs, one + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" + one
                      + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(answer) == [200, 404, 200, 200]
    assert answer.count(b'"status": "ok"') == 3


def test_a_stream_requested_after_a_pipelined_api_call_streams(rs, healthy):
    with socket.create_connection(("127.0.0.1", rs.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /s.ts HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while answer.count(b"\r\n\r\n") < 2 or len(answer) < 10_000:
            chunk = sock.recv(65536)
            assert chunk, answer[:300]
            answer += chunk
    assert statuses(answer[:answer.index(b"\r\n\r\n", answer.index(b"\r\n\r\n") + 4)]) == [200, 200]
    body = answer.split(b"\r\n\r\n", 2)[2]
    assert body[0] == 0x47


@pytest.mark.parametrize("raw, status", [
    (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /s.ts HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"GET /s.ts HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8200 + b"\r\n\r\n", 431),
    (b"GET /s.ts HTTP/1.1\r\nHost: x\r\n" + b"X-Many: yes\r\n" * 100 + b"\r\n", 431),
    (b"GET /s.ts HTTP/1.1\r\nHost: x\r\n" + (b"X-Big: " + b"a" * 8000 + b"\r\n") * 9 + b"\r\n", 431),
    (b"GET /s.ts HTTP/x.y\r\nHost: x\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
])
def test_oversized_and_malformed_heads_are_refused(rs, healthy, raw, status):
    mark = rs.mark()
    assert statuses(exchange(rs, raw)) == [status]
    rs.wait_log("request refused", since=mark)
    assert not rs.find_logs("viewer connected", since=mark)
    assert rs.stderr_lines == []  # one JSON log line, never a traceback


def test_a_client_silent_mid_head_is_disconnected_after_droptimeout(rs, healthy):
    mark = rs.mark()
    silent = []
    for partial in (b"", b"GET /s.ts HTTP/1.1\r\n", b"GET /s.ts HTTP/1.1\r\nHost: x\r\nX-A"):
        sock = socket.create_connection(("127.0.0.1", rs.port), timeout=DROPTIMEOUT + 5)
        sock.sendall(partial)
        silent.append(sock)
    try:
        for sock in silent:
            # The server hangs up (EOF, or an error response then EOF) by itself.
            while sock.recv(65536):
                pass
    finally:
        for sock in silent:
            sock.close()
    assert not rs.find_logs("viewer connected", since=mark)
    assert rs.stderr_lines == []


# Heads that parsers read differently (request smuggling behind a front proxy):
# refused with 400 and a close, as gunicorn does (RFC 9112).  Each is followed
# by a pipelined request that must never be answered.
SMUGGLING = {
    "CL and TE": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "differing CL": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
    "differing CL in one": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 5\r\n\r\n",
    "TE chunked, identity": b"GET /health HTTP/1.1\r\nHost: x\r\n"
                            b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "TE identity": b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
    "space before colon": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
    "obs-fold": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "CL +5": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello",
    "CL -0": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n",
    "NUL in name": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A\x00B: c\r\n\r\n",
    "NUL in value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n",
    "CTL in value": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: b\x1bc\r\n\r\n",
    "no Host": b"GET /health HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_ambiguous_request_heads_are_refused_and_closed(rs, healthy, name):
    mark = rs.mark()
    answer = exchange(rs, SMUGGLING[name] + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [400], answer[:300]
    assert b"Connection: close" in answer
    rs.wait_log("request refused", since=mark)
    assert rs.stderr_lines == []


@pytest.mark.parametrize("raw", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n0\r\nX-Trailer: y\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /health HTTP/1.1\r\nHost: x\r\nX-Tab:\ta\tb \r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Many: yes\r\n" * 99 + b"\r\n",
    b"GET /health HTTP/1.0\r\n\r\n",
])
def test_unambiguous_heads_are_still_served(rs, raw):
    answer = exchange(rs, raw)
    assert statuses(answer) == [200], answer[:300]


def test_the_whole_head_has_one_deadline_against_slowloris(rs, healthy):
    """Clients that trickle their head a byte at a time, faster than any
    per-read timeout, are all cut off droptimeout after they connect."""
    head = b"GET /s.ts HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    clients = {}
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", rs.port), timeout=5)
        sock.setblocking(False)
        clients[sock] = time.monotonic()
    lasted = []
    sent = 0
    try:
        while clients and time.monotonic() < max(clients.values()) + DROPTIMEOUT + 5:
            for sock in list(clients):
                try:
                    sock.send(head[sent:sent + 1])
                    if sock.recv(65536) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    continue
                except OSError:  # EOF, reset or broken pipe: the server hung up
                    lasted.append(time.monotonic() - clients.pop(sock))
                    sock.close()
            sent += 1
            time.sleep(DROPTIMEOUT / 4)  # the pace of the attack
    finally:
        for sock in clients:
            sock.close()
    assert not clients, f"{len(clients)} of 200 still connected"
    assert max(lasted) <= DROPTIMEOUT + 1, max(lasted)


# --- Both ways to serve: the CLI and the shipped gunicorn settings ----------------


@pytest.fixture(scope="module", params=["cli", "gunicorn"])
def server(request, source, tmp_path_factory):
    """A restreamer serving /health, /s.ts and a 4 MB static file, by the CLI or
    by gunicorn with config/gunicorn.conf.py."""
    directory = tmp_path_factory.mktemp(request.param)
    big = directory / "big.bin"
    big.write_bytes(b"x" * 4_000_000)
    config = {"droptimeout": DROPTIMEOUT, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": source.url},
        {"type": "static", "serve": "/big.bin", "remote": f"file://{big}", "cache": 60},
        {"type": "api", "api": "health", "serve": "/health"},
    ]}
    if request.param == "cli":
        process = RestreamerProcess(config, directory).start()
    else:
        process = RestreamerProcess(
            config, directory, env={"RESTREAMER_WORKERS": "1"},
            cmd=[sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                 "-b", "127.0.0.1:0", "wsgi:app"])
        process.env["RESTREAMER_CONFIG"] = str(process.config_path)
        process.launch()
        process.wait_gunicorn_port()
    process.wait_log("stream online", timeout=15)
    yield process
    process.close()
    print(process.output_tail())


# Requests gunicorn refuses with 400 and a close, which pywsgi would serve.
# Each is followed by a pipelined request that must never be answered.
LENIENCIES = {
    "bare LF": b"GET /health HTTP/1.1\nHost: x\n\n",
    "HTTP/0.9": b"GET /health\r\n\r\n",
    "identical Content-Lengths": b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                b"Content-Length: 0\r\n\r\n",
    "tab in request line": b"GET\t/health HTTP/1.1\r\nHost: x\r\n\r\n",
    "two spaces in request line": b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "lowercase method": b"get /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/1.10": b"GET /health HTTP/1.10\r\nHost: x\r\n\r\n",
    "NUL in target": b"GET /health\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    "chunk-size line in bare LF": b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"5\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(LENIENCIES))
def test_lenient_requests_are_refused_and_closed(server, name):
    mark = server.mark()
    answer = exchange(server, LENIENCIES[name] + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [400], answer[:300]
    assert b"Connection: close" in answer
    server.wait_log("request refused", since=mark)
    assert server.stderr_lines == []


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_slow_request_body_is_cut_off_at_droptimeout(server, framing):
    """A body trickled a byte at a time, faster than any per-read timeout,
    gets no answer and is closed droptimeout after its head."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + (
        b"Transfer-Encoding: chunked\r\n\r\n" if framing == "chunked" else b"Content-Length: 100000\r\n\r\n")
    body = b"1\r\na\r\n" * 1000 if framing == "chunked" else b"a" * 100_000
    mark = server.mark()
    with socket.create_connection(("127.0.0.1", server.port), timeout=DROPTIMEOUT + 5) as sock:
        sock.sendall(head)
        began = time.monotonic()
        sock.setblocking(False)
        answer, sent = b"", 0
        while time.monotonic() - began < DROPTIMEOUT + 5:
            try:
                sock.send(body[sent:sent + 1])
                sent += 1
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            except BlockingIOError:
                pass
            except OSError:  # reset or broken pipe: the server hung up
                break
            time.sleep(DROPTIMEOUT / 8)  # the pace of the attack
        lasted = time.monotonic() - began
    assert lasted <= DROPTIMEOUT + 1, lasted
    assert statuses(answer) in ([], [400]), answer[:300]
    server.wait_log(lambda e: e.get("event") == "request refused" and "body" in e["reason"], since=mark)
    assert server.stderr_lines == []


def test_answers_nobody_reads_are_dropped_at_droptimeout(server, healthy_viewer):
    """40 clients ask for 4 MB each and read nothing: each connection is reset
    droptimeout after its answer began, while a viewer keeps streaming."""
    clients = []
    for _ in range(40):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(sock)
    began = time.monotonic()
    try:
        server.wait_log("answer not taken", timeout=DROPTIMEOUT + 10)
        poll(lambda: len(server.find_logs("answer not taken")), lambda n: n >= 40, DROPTIMEOUT + 10,
             "40 answers dropped")
        assert time.monotonic() - began <= DROPTIMEOUT + 10
        for sock in clients:
            # Reset: what was queued is thrown away, reading ends in an error.
            sock.settimeout(5)
            with pytest.raises(ConnectionResetError):
                while sock.recv(1 << 20):
                    pass
    finally:
        for sock in clients:
            sock.close()
    assert server.stderr_lines == []


@pytest.fixture
def healthy_viewer(server, source):
    client = HttpViewer(server.url("/s.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(PACKET_SIZE * 7)
    yield client
    before = len(client.data)
    client.wait_bytes(before + FLOWING)
    client.close()
