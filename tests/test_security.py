"""Security: secrets in config URLs and client requests never reach the log,
a config with passwords readable by others is warned about, static resources
serve exactly their file, and nothing a client sends changes where restreamer
connects.  (Credentials in Authorization headers: tests/test_auth.py.)"""

import json
import os
import socket

import pytest

from tests.support.sink import RecordingHTTPServer
from tests.support.ts import PACKET_SIZE
from tests.support.viewer import Viewer, http_get

SECRETS = ["UPSTREAM-PW", "STATIC-PW", "NOTIFY-PW", "QUERY-TOKEN", "HEADER-TOKEN"]


def log_text(rs):
    return "\n".join([json.dumps(entry, ensure_ascii=False) for entry in rs.logs] + rs.stderr_lines)


def raw_request(rs, raw: bytes) -> bytes:
    """`raw` on a fresh connection; what comes back until the server closes (at most 64 KB)."""
    with socket.create_connection(("127.0.0.1", rs.port), timeout=5) as sock:
        sock.sendall(raw)
        answer = b""
        try:
            while len(answer) < 65536 and (chunk := sock.recv(65536)):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.fixture
def sink():
    server = RecordingHTTPServer()
    yield server
    server.stop()


def test_passwords_in_urls_and_tokens_in_requests_are_never_logged(restreamer, upstream, sink):
    up = upstream()
    host = f"127.0.0.1:{up.port}"
    sink_host = sink.url("").split("//")[1]
    rs = restreamer({"reconnect": 0.2, "heartbeatinterval": 0.2, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": f"http://user:UPSTREAM-PW@{host}/stream.ts"},
        {"type": "stream", "serve": "/dead.ts", "remote": "http://user:UPSTREAM-PW@127.0.0.1:1/x.ts"},
        {"type": "static", "serve": "/r.txt", "remote": "http://user:STATIC-PW@127.0.0.1:1/r.txt"},
        {"type": "api", "api": "health", "serve": "/health"}],
        "notifications": [{"event": "heartbeat", "url": f"http://hook:NOTIFY-PW@{sink_host}/hook"}]})
    rs.wait_log("stream online")
    assert up.wait_connections(1)[0].request_headers["authorization"].startswith("Basic ")
    rs.wait_log(lambda e: e.get("event") == "upstream error" and e.get("stream") == "/dead.ts")
    assert http_get(rs.url("/r.txt"))[0] == 502
    rs.wait_log("static fetch failed")
    sink.wait_requests(1, "/hook")
    rs.wait_log("notification sent")
    client = Viewer(rs.url("/s.ts?token=QUERY-TOKEN"), headers={"X-Api-Key": "HEADER-TOKEN"})
    client.wait_bytes(PACKET_SIZE)
    client.close()
    rs.wait_log("viewer disconnected")
    # Refused and malformed requests: pywsgi quotes a bad request line in its log.
    raw_request(rs, b"GET /s.ts?token=QUERY-TOKEN HTTP/x.y\r\nHost: x\r\n\r\n")
    raw_request(rs, b"GET /nope?token=QUERY-TOKEN HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs.wait_log("http server error")
    text = log_text(rs)
    assert [s for s in SECRETS if s in text] == []
    assert "user:***@" in text  # the URLs are still there, for the operator


def test_a_config_with_passwords_readable_by_others_is_warned_about(restreamer):
    config = {"userlist": {"alice": {"password": "pw"}},
              "resources": [{"type": "stream", "serve": "/s.ts", "remote": "loop:sample"}]}
    open_to_all = restreamer(config, start=False)
    os.chmod(open_to_all.config_path, 0o644)
    warning = open_to_all.start().wait_log("config warning")
    assert "other users may read it" in warning["detail"] and "chmod o-r" in warning["detail"]
    assert "pw" not in json.dumps(warning).replace("passwords", "")

    private = restreamer(config, start=False)
    os.chmod(private.config_path, 0o600)
    private.start().wait_log("stream online")
    assert private.find_logs("config warning") == []


def test_a_static_resource_serves_its_file_and_nothing_else(restreamer, tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    (public / "page.txt").write_text("the page")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (public / "secret-link.txt").symlink_to(tmp_path / "secret.txt")
    (public / "page-link.txt").symlink_to(public / "page.txt")
    rs = restreamer({"resources": [
        {"type": "static", "serve": "/pub/page.txt", "remote": (public / "page.txt").as_uri()},
        {"type": "static", "serve": "/linked.txt", "remote": (public / "page-link.txt").as_uri()}]})
    assert http_get(rs.url("/pub/page.txt"))[::2] == (200, b"the page")
    assert http_get(rs.url("/linked.txt"))[::2] == (200, b"the page")  # the configured link itself
    hostile = [
        "/pub/", "/pub/secret-link.txt", "/pub/page-link.txt", "/pub/../secret.txt", "/pub/page.txt/..",
        "/pub/page.txt/../secret-link.txt", "/pub/%2e%2e/secret.txt", "/pub%2fpage.txt",
        "/pub/page.txt%2f..%2fsecret-link.txt", "/pub/page.txt%00", "/pub/page.txt/", "/secret.txt",
        "/pub/./secret-link.txt", "/pub//secret-link.txt", "/linked.txt/../pub/secret-link.txt",
        "/pub/..%2f..%2fsecret.txt", "/pub/page.txt?file=../secret.txt",
    ]
    for path in hostile:
        answer = raw_request(rs, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert b"TOP SECRET" not in answer, path
        assert answer.startswith(b"HTTP/1.1 404 ") or answer.endswith(b"\r\n\r\nthe page"), (path, answer[:200])


EVIL_HEADERS = {"Host": "evil.example:6666", "X-Forwarded-Host": "evil.example",
                "X-Forwarded-For": "10.6.6.6", "X-Forwarded-Proto": "https", "Forwarded": "host=evil.example",
                "X-Original-URL": "/other.ts", "X-Rewrite-URL": "/other.ts"}


def test_nothing_a_client_sends_changes_where_restreamer_connects(restreamer, upstream, sink, viewer):
    up = upstream()
    sink.respond("/file.txt", b"static body")
    rs = restreamer({"reconnect": 0.2, "graceperiod": 5, "fullconnections": 1, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": up.url},
        {"type": "static", "serve": "/r.txt", "remote": sink.url("/file.txt")}],
        "notifications": [{"event": "limit_hit", "url": sink.url("/hit?from=config")}]})
    rs.wait_log("stream online")
    attempts = [f"/s.ts?url=http://evil.example/&remote={sink.url('/x')}", "/s.ts?../../etc/passwd"]
    clients = [viewer(rs.url(path), headers=EVIL_HEADERS) for path in attempts]
    for client in clients:
        assert client.wait_status() == 200
    # An absolute-form request target, as to a forward proxy.
    answer = raw_request(rs, b"GET http://evil.example/s.ts HTTP/1.1\r\nHost: evil.example\r\n"
                             b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 ")
    for path in ("/r.txt?remote=http://evil.example/", "/r.txt/../x", "/r.txt"):
        http_get(rs.url(path), headers=EVIL_HEADERS)
    sink.wait_requests(1, "/hit")

    # The upstream drops: restreamer reconnects while those viewers wait.
    mark = rs.mark()
    up.close_all()
    rs.wait_log("stream online", since=mark)
    up.wait_connections(2)
    for conn in up.connections:
        assert conn.request_line == "GET /stream.ts HTTP/1.1"
        assert conn.request_headers["host"] == f"127.0.0.1:{up.port}"
        assert not any("evil" in v or "10.6.6.6" in v for v in conn.request_headers.values())
    assert {(r.path, r.query) for r in sink.received()} <= {("/file.txt", ""), ("/hit", "from=config")}
    assert all("evil" not in json.dumps(r.headers) for r in sink.received())
