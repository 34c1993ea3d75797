"""Static resources: a real file, or a real HTTP server on loopback in a
thread, answered through Flask's test client."""

import http.server
import threading

import pytest
from flask import Flask, request

from restreamer.config import from_dict
from restreamer.base.outbound import USER_AGENT
from restreamer.web.static import MAX_SIZE, StaticResource
from tests.unit.conftest import wait_log


def client(remote: str, base_dir: str, cache: float = 0, timeout: float = 0):
    config = from_dict({"timeout": timeout, "resources": [
        {"type": "static", "serve": "/page", "remote": remote, "cache": cache}]},
        base_dir=base_dir)
    static = StaticResource(config.resources[0], config)
    app = Flask(__name__)
    app.add_url_rule("/page", view_func=lambda: static.respond(request))
    return app.test_client()


def test_a_file_is_served_with_its_type_an_etag_and_its_cache_time(tmp_path):
    (tmp_path / "page.html").write_bytes(b"<p>hello</p>")
    web = client("file:page.html", str(tmp_path), cache=60)  # relative to the config's folder
    response = web.get("/page")
    assert (response.status_code, response.data) == (200, b"<p>hello</p>")
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "max-age=60"
    etag = response.headers["ETag"]
    again = web.get("/page", headers={"If-None-Match": etag})
    assert (again.status_code, again.data) == (304, b"")
    assert web.get("/page", headers={"If-None-Match": '"other"'}).status_code == 200


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "page.txt").write_bytes(b"at home")
    web = client("file:~/page.txt", "/nonexistent")
    assert web.get("/page").data == b"at home"


def test_within_cache_time_the_fetched_content_is_served(tmp_path):
    page = tmp_path / "page.txt"
    page.write_bytes(b"one")
    cached, uncached = client(f"file://{page}", "/", cache=60), client(f"file://{page}", "/")
    assert cached.get("/page").data == uncached.get("/page").data == b"one"
    page.write_bytes(b"two")
    assert cached.get("/page").data == b"one"
    assert uncached.get("/page").data == b"two"


@pytest.mark.parametrize("make, status, reason", [
    (lambda p: None, 404, "no such file"),
    (lambda p: p.mkdir(), 403, "is a directory"),
    (lambda p: p.write_bytes(b"\0" * (MAX_SIZE + 1)), 502, f"more than {MAX_SIZE}"),
])
def test_a_file_that_cannot_be_served_is_one_log_line_and_a_status(tmp_path, logs, make, status, reason):
    make(tmp_path / "page")
    response = client("file:page", str(tmp_path)).get("/page")
    assert response.status_code == status
    entry = wait_log(logs, "static fetch failed", status=status)
    assert reason in entry["reason"] and entry["serve"] == "/page"


class _Upstream(http.server.BaseHTTPRequestHandler):
    """Answers /ok, /no-length, /missing; remembers the request headers; /stall never answers."""

    seen: list = []
    stall = threading.Event()

    def do_GET(self):
        type(self).seen.append(dict(self.headers))
        if self.path == "/stall":
            self.stall.wait(5)
            return
        body = b"from upstream"
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("Content-Type", "text/plain")
        if self.path != "/no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _Upstream.seen.clear()
    _Upstream.stall.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Upstream.stall.set()
    server.shutdown()
    server.server_close()


def test_a_url_is_fetched_with_our_user_agent(upstream, tmp_path):
    response = client(f"{upstream}/ok", str(tmp_path)).get("/page")
    assert (response.status_code, response.data) == (200, b"from upstream")
    assert response.headers["Content-Type"] == "text/plain"
    assert _Upstream.seen[0]["User-Agent"] == USER_AGENT


@pytest.mark.parametrize("path, reason", [
    ("/missing", "HTTP 404 Not Found"),
    ("/no-length", "upstream sent neither a Content-Length nor chunks"),
])
def test_a_failing_url_is_a_bad_gateway(upstream, tmp_path, logs, path, reason):
    response = client(f"{upstream}{path}", str(tmp_path)).get("/page")
    assert response.status_code == 502
    assert wait_log(logs, "static fetch failed")["reason"] == reason


def test_a_url_that_does_not_answer_within_timeout_is_a_bad_gateway(upstream, tmp_path, logs):
    response = client(f"{upstream}/stall", str(tmp_path), timeout=0.2).get("/page")
    assert response.status_code == 502
    assert wait_log(logs, "static fetch failed")["reason"] == "ReadTimeout"
