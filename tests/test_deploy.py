"""The other ways to run restreamer: gunicorn's gevent worker on wsgi:app,
and the blueprint mounted in someone else's Flask app under a prefix."""

import os
import signal
import socket
import sys
import time

import pytest

from tests.support import REPO_ROOT
from tests.support.polling import poll
from tests.support.procs import ProcessWatch
from tests.support.ts import PACKET_SIZE, SAMPLE_PATH, assert_aligned, assert_clean_start
from tests.support.viewer import http_get

RATE = 2_000_000
TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"
ENOUGH = 60_000
DROPTIMEOUT = 2


def stream_config(url, serve="/s.ts"):
    return {"reconnect": 0.2, "graceperiod": 2, "droptimeout": DROPTIMEOUT,
            "resources": [{"type": "stream", "serve": serve, "remote": url}]}


def assert_viewers_get(clients, sent):
    for client in clients:
        assert client.wait_status() == 200
        assert client.headers["Content-Type"] == "video/mpeg"
        client.wait_bytes(ENOUGH)
    received = [client.data for client in clients]
    source = sent()
    for data in received:
        data = data[:len(data) - len(data) % PACKET_SIZE]
        assert_aligned(data)
        assert assert_clean_start(data, source) % PACKET_SIZE == 0


@pytest.mark.parametrize("worker", ["-k gevent", "-c config/gunicorn.conf.py"])
def test_gunicorn_serves_a_stream(upstream, restreamer, viewer, worker):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url), start=False,
                    cmd=[sys.executable, "-m", "gunicorn", *worker.split(), "-b", "127.0.0.1:0",
                         "--workers", "1", "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch().wait_gunicorn_port()
    # The worker starts the upstream itself; its logs are restreamer's JSON.
    rs.wait_log("stream online", timeout=15)
    clients = [viewer(rs.url("/s.ts")) for _ in range(2)]
    assert_viewers_get(clients, lambda: up.connections[0].sent)
    assert len(up.connections) == 1  # one worker, one upstream connection
    # gunicorn's own writer frames a stream in chunks; the deployment config's
    # worker sends it close-delimited, as the CLI does.
    framing = {client.headers.get("Transfer-Encoding") for client in clients}
    assert framing == ({"chunked"} if worker == "-k gevent" else {None})
    for client in clients:
        client.close()
    if worker != "-k gevent":
        assert_silent_client_closed_after(rs, DROPTIMEOUT)
    assert rs.stop(signal.SIGTERM) == 0
    if worker != "-k gevent":
        # gunicorn's own lines too: every line of output is one JSON object.
        assert [e["raw"] for e in rs.logs if "raw" in e] + rs.stderr_lines == []
        assert rs.find_logs(lambda e: e.get("logger") == "gunicorn.error")


def assert_silent_client_closed_after(rs, deadline):
    """A client that sends half a request head and falls silent is cut off
    after ``deadline`` seconds (the worker's head deadline, droptimeout)."""
    with socket.create_connection(("127.0.0.1", rs.port), timeout=deadline + 5) as sock:
        began = time.monotonic()
        sock.sendall(b"GET /s.ts HTTP/1.1\r\nHost: x\r\n")
        while sock.recv(65536):
            pass
        assert time.monotonic() - began < deadline + 1.5


def test_blueprint_serves_under_a_host_apps_url_prefix(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url), cmd=[sys.executable, "-m", "tests.support.embed", "{config}"])
    rs.wait_log("stream online")
    clients = [viewer(rs.url("/tv/s.ts")) for _ in range(2)]
    assert_viewers_get(clients, lambda: up.connections[0].sent)
    assert http_get(rs.url("/"))[::2] == (200, b"host app index\n")
    assert http_get(rs.url("/s.ts"))[0] == 404  # only under the prefix
    connected = rs.wait_log("viewer connected")
    assert (connected["stream"], connected["path"]) == ("/s.ts", "/tv/s.ts")
    assert rs.stop(signal.SIGTERM) == 0


def test_gunicorn_worker_reaps_forked_children_on_shutdown(restreamer):
    # Nobody calls relay.stop() in a gunicorn worker; the exit hook must. The
    # helper holds no end of the stream's pipe: only a stop that signals the
    # child's process group ends it.
    url = f"fork://{sys.executable}?{TSPLAY}+{SAMPLE_PATH}+2000000+helper"
    rs = restreamer(stream_config(url), start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-k", "restreamer.web.worker.Worker",
                         "-b", "127.0.0.1:0", "--workers", "1", "--graceful-timeout", "3",
                         "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch()
    line = rs.wait_log(lambda e: e.get("event") == "child stderr" and "helper" in e["line"],
                       timeout=15)["line"]
    with ProcessWatch(int(line.split(" pid=")[1])) as helper:
        rs.wait_log("stream online")
        assert rs.stop(signal.SIGTERM) == 0
        assert helper.wait_gone(5), "the forked child's helper outlived the gunicorn worker"


def test_sigusr1_to_gunicorns_master_reopens_restreamers_log_file_in_the_worker(restreamer, tmp_path):
    log, rotated = tmp_path / "restreamer.log", tmp_path / "restreamer.log.1"
    config = dict(stream_config("loop:sample"), log=str(log),
                  resources=stream_config("loop:sample")["resources"] + [
                      {"type": "api", "api": "health", "serve": "/health"}])
    rs = restreamer(config, start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                         "-b", "127.0.0.1:0", "--workers", "1", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch().wait_gunicorn_port()
    poll(lambda: "stream online" in log.read_text() if log.exists() else False, bool, 15,
         f"stream online in {log}")
    os.rename(log, rotated)
    rs.proc.send_signal(signal.SIGUSR1)
    # Requests until one lands in a new file at the original path: the reopen is asynchronous.
    poll(lambda: http_get(rs.url("/health"))[0] == 200 and log.exists() and log.read_text(), bool, 10,
         f"a new log file at {log}")
    assert '"event": "request"' in log.read_text()
    assert "stream online" in rotated.read_text() and "stream online" not in log.read_text()
    assert rs.stop(signal.SIGTERM) == 0


def test_a_host_app_under_flasks_development_server_is_told_why_not(restreamer):
    # Its threads never run gevent's loop, so upstreams would never run:
    # every request to the relay gets the reason at once, not a 404 later.
    rs = restreamer(stream_config("loop:sample"),
                    cmd=[sys.executable, "-m", "tests.support.devserver", "{config}"])
    status, headers, body = http_get(rs.url("/tv/s.ts"))
    assert (status, headers["Content-Type"]) == (500, "text/plain; charset=utf-8")
    assert b"gunicorn -k gevent" in body and b"gevent.pywsgi.WSGIServer" in body
    assert http_get(rs.url("/tv/s.ts"))[0] == 500
    assert http_get(rs.url("/"))[::2] == (200, b"host app index\n")  # the host's own pages work
    assert [e["event"] for e in rs.logs if e.get("level") == "error"] == ["no gevent server"]
    assert not rs.find_logs("upstream connecting")
    assert rs.stop(signal.SIGTERM) == 0
