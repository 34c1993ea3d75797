"""Security: secrets in config URLs and client requests never reach the log
nor any answer (planted secrets, grepped for everywhere), a config with
passwords readable by others is warned about, static resources
serve exactly their file, and nothing a client sends changes where restreamer
connects.  (Credentials in Authorization headers: tests/test_auth.py.)"""

import base64
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT
from tests.support.sink import RecordingHTTPServer
from tests.support.ts import PACKET_SIZE, SAMPLE_PATH
from tests.support.viewer import HttpViewer, http_get

TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"
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
    client = HttpViewer(rs.url("/s.ts?token=QUERY-TOKEN"), headers={"X-Api-Key": "HEADER-TOKEN"})
    client.wait_bytes(PACKET_SIZE)
    client.close()
    rs.wait_log("viewer disconnected")
    # Refused and malformed requests: pywsgi quotes a bad request line in its log.
    raw_request(rs, b"GET /s.ts?token=QUERY-TOKEN HTTP/x.y\r\nHost: x\r\n\r\n")
    raw_request(rs, b"GET /nope?token=QUERY-TOKEN HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs.wait_log("request refused")
    text = log_text(rs)
    assert [s for s in SECRETS if s in text] == []
    assert "http://127.0.0.1:1/r.txt" in text  # the URLs are still there, for the operator


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


PLANTED = ["UPSTREAM-PW", "p@ssw0rd-AT", "SECRETKEY", "SPACE-SECRET", "QUERY-TOKEN", "CAMPASS",
           "FORK-SECRET", "STATIC-PW", "NOTIFY-TOKEN", "BEARER-TOKEN", "USERLIST-PW"]


def test_planted_secrets_appear_in_no_log_line_and_no_answer(restreamer, upstream, sink, tmp_path):
    up = upstream()
    host = f"127.0.0.1:{up.port}"
    sink_host = sink.url("").split("//")[1]
    fork = (f"fork://{sys.executable}?{TSPLAY}+{SAMPLE_PATH}+2000000"
            "+rtsp://camuser:CAMPASS@cam.example/FORK-SECRET")
    config = {"reconnect": 0.3, "heartbeatinterval": 0.3, "userlist": {
        "admin": {"password": "USERLIST-PW"}, "hook": {"password": "BEARER-TOKEN"}},
        "resources": [
            {"type": "stream", "serve": "/s.ts", "remote": f"http://user:UPSTREAM-PW@{host}/stream.ts?token=QUERY-TOKEN"},
            {"type": "stream", "serve": "/f.ts", "remote": fork},
            {"type": "stream", "serve": "/odd.ts", "remotes": [
                "http://user:p@ssw0rd-AT@127.0.0.1:1/x.ts", "http://SECRETKEY@127.0.0.1:1/x.ts",
                "http://user:pass SPACE-SECRET@127.0.0.1:1/x.ts"]},
            {"type": "static", "serve": "/r.txt", "remote": "http://user:STATIC-PW@127.0.0.1:1/r.txt?k=QUERY-TOKEN"},
            {"type": "api", "api": "health", "serve": "/health"},
            {"type": "api", "api": "statistics", "serve": "/statistics"},
            {"type": "api", "api": "prometheus", "serve": "/metrics"},
            {"type": "api", "api": "check", "serve": "/check", "remote": "/s.ts"},
            {"type": "api", "api": "control", "serve": "/control", "remote": "/f.ts",
             "authentication": {"type": "basic", "users": ["admin"]}}],
        "notifications": [{"event": "heartbeat", "url": f"http://{sink_host}/hook?key=NOTIFY-TOKEN",
                           "authentication": {"type": "bearer", "user": "hook"}}]}
    rs = restreamer(config)
    for stream in ("/s.ts", "/f.ts"):
        rs.wait_log(lambda e: e.get("event") == "stream online" and e.get("stream") == stream)
    for _ in range(3):
        rs.wait_log(lambda e: e.get("event") == "upstream error" and e.get("stream") == "/odd.ts")
    rs.wait_log("notification sent")
    admin = "Basic " + base64.b64encode(b"admin:USERLIST-PW").decode()
    answers = [http_get(rs.url(path), headers) for path, headers in [
        ("/health", None), ("/statistics", None), ("/metrics", None), ("/check", None),
        ("/r.txt", None), ("/nope?token=QUERY-TOKEN", None), ("/control?offline", None),
        ("/control?offline", {"Authorization": "Basic " + base64.b64encode(b"admin:wrong").decode()}),
        ("/control?offline", {"Authorization": admin}), ("/control?online", {"Authorization": admin})]]
    answers.append(raw_request(rs, b"GET /s.ts?token=QUERY-TOKEN HTTP/x.y\r\nHost: x\r\n\r\n"))
    rs.wait_log("request refused")
    assert [status for status, _, _ in answers[:-1]] == [200, 200, 200, 200, 502, 404, 403, 403, 202, 202]
    checked = subprocess.run([sys.executable, "-m", "restreamer", "--check", str(rs.config_path)],
                             capture_output=True, text=True, timeout=30)
    bad_url = tmp_path / "bad-url.json"
    bad_url.write_text(json.dumps({"resources": [
        {"type": "stream", "serve": "/b.ts", "remote": "http://user:UPSTREAM-PW@[::1/x?t=QUERY-TOKEN"}]}))
    refused = subprocess.run([sys.executable, "-m", "restreamer", "--check", str(bad_url)],
                             capture_output=True, text=True, timeout=30)
    assert (checked.returncode, refused.returncode) == (0, 2)

    everything = "\n".join([log_text(rs), checked.stdout, checked.stderr, refused.stdout, refused.stderr]
                           + [repr(answer) for answer in answers])
    assert [s for s in PLANTED if s in everything] == []
    # What is shown instead: scheme://host:port/path.
    streams = json.loads(answers[1][2])["streams"]
    assert streams["/s.ts"]["upstream"] == f"http://{host}/stream.ts"
    assert streams["/f.ts"]["upstream"] == f"fork://{sys.executable}"
    metrics = answers[2][2].decode()
    assert f'streaming_source_connected{{stream="/s.ts",url="http://{host}/stream.ts"}} 1.0' in metrics
    assert 'url="http://127.0.0.1:1/x.ts #3"' in metrics  # remotes differing only in secrets
    assert "invalid URL" in refused.stderr
