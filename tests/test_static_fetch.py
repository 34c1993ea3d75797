"""Static resources from a real HTTP server on loopback in a thread, answered
through Flask's test client: no restreamer process, but a network port."""

import http.server
import threading

import pytest
import structlog.testing

from restreamer.base.outbound import USER_AGENT
from tests.unit.conftest import wait_log
from tests.unit.test_static import client


@pytest.fixture
def logs():
    """Every log entry the test causes, as dicts (structlog's capture_logs)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


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
