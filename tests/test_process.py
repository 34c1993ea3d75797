"""The process as a whole: stopping on a signal with the log file flushed,
reopening the log file on SIGHUP and SIGUSR1, and faults that stay inside one stream or
one viewer."""

import json
import os
import re
import signal
import socket
import sys
import time

import pytest

from tests.support import REPO_ROOT
from tests.support.polling import poll
from tests.support.procs import ProcessWatch
from tests.support.server import RestreamerProcess
from tests.support.ts import PACKET_SIZE, SAMPLE_PATH, assert_clean_start
from tests.support.viewer import http_get, raw_get, read_response
from tests.support.server import event

TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"


def read_log(path):
    """The JSON lines of a log file (a last line still being written is left out)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def wait_file_log(path, match, timeout=10):
    """Wait for an entry for which `match(entry)` holds in the log file at `path`."""
    entries = poll(lambda: [e for e in read_log(path) if match(e)], bool, timeout,
                   f"a matching entry in {path}")
    return entries[0]


def test_sigterm_with_viewers_and_a_forked_source_exits_0_within_5s_with_the_log_flushed(
        restreamer, viewer, tmp_path):
    log = tmp_path / "restreamer.log"
    remote = f"fork://{sys.executable}?{TSPLAY}+{SAMPLE_PATH}+2000000+helper"
    rs = restreamer({"log": str(log), "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": remote},
        {"type": "api", "api": "health", "serve": "/health"}]}, start=False).launch()
    entry = wait_file_log(log, event("listening"))
    rs.port = entry["port"]
    pids = {}
    for name in ("started", "helper"):
        line = wait_file_log(log, lambda e, n=name: e.get("event") == "child stderr"
                             and f"tsplay {n} pid=" in e.get("line", ""))["line"]
        pids[name] = int(re.search(r"pid=(\d+)", line).group(1))
    watches = [ProcessWatch(pid) for pid in pids.values()]
    try:
        wait_file_log(log, event("stream online"))
        clients = [viewer(rs.url("/s.ts")) for _ in range(3)]
        for client in clients:
            client.wait_bytes(PACKET_SIZE * 7)
        began = time.monotonic()
        assert rs.stop(signal.SIGTERM, timeout=5) == 0
        assert time.monotonic() - began < 5
        assert all(watch.wait_gone(1) for watch in watches), "forked children left running"
    finally:
        for pid in pids.values():  # only if the test failed: never leave them behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for watch in watches:
            watch.close()
    for client in clients:
        client.wait_closed(1)
    entries = read_log(log)
    assert log.read_text().endswith("\n")
    assert entries[-1]["event"] == "stopped"
    assert [e["event"] for e in entries].count("viewer disconnected") == 3
    assert rs.logs == [] and rs.stderr_lines == []  # everything went to the file


def test_a_stop_hangs_up_idle_connections_at_once_and_finishes_a_request_in_progress(
        restreamer, tmp_path):
    # More than the socket buffers hold: its answer stays in progress while unread.
    big = os.urandom(8 * 1024 * 1024)
    (tmp_path / "big.bin").write_bytes(big)
    rs = restreamer({"resources": [{"type": "static", "serve": "/big",
                                    "remote": (tmp_path / "big.bin").as_uri()}]})
    address = (rs.host, rs.port)
    silent = socket.create_connection(address, timeout=5)  # never sends a request
    kept = raw_get(address, "/big")
    assert read_response(kept) == big  # and then idle, kept alive
    busy = raw_get(address, "/big")
    assert busy.recv(12) == b"HTTP/1.1 200"
    rs.proc.send_signal(signal.SIGTERM)
    rs.wait_log("stopping")
    # Closed while the unread answer still holds the server in its grace period.
    for idle in (silent, kept):
        idle.settimeout(2)  # the grace period is 3 s
        assert idle.recv(1) == b""
    assert read_response(busy) == big
    assert busy.recv(1) == b""  # its last request
    assert rs.wait_exit(2) == 0
    assert rs.logs[-1]["event"] == "stopped"


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR1], ids=["SIGHUP", "SIGUSR1"])
def test_the_signal_reopens_the_log_file(restreamer, tmp_path, sample, upstream, sig):
    log = tmp_path / "restreamer.log"
    rotated = tmp_path / "restreamer.log.1"
    rs = restreamer({"log": str(log), "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": upstream().url},
        {"type": "api", "api": "health", "serve": "/health"}]}, start=False).launch()
    rs.port = wait_file_log(log, event("listening"))["port"]
    wait_file_log(log, event("stream online"))
    os.rename(log, rotated)
    assert http_get(rs.url("/health?before"))[0] == 200
    wait_file_log(rotated, event("request", path="/health"))  # still writing to the moved file
    rs.proc.send_signal(sig)
    # Requests until one lands in a new file at the original path: the reopen is asynchronous.
    poll(lambda: http_get(rs.url("/health"))[0] == 200 and read_log(log), bool, 5,
         f"a new log file at {log}")
    assert rs.returncode is None
    # SIGHUP also reloads the (unchanged) config, and says so in the new file.
    expected = {"request", "config reloaded"} if sig == signal.SIGHUP else {"request"}
    assert {e["event"] for e in read_log(log)} <= expected
    if sig == signal.SIGHUP:
        reloaded = wait_file_log(log, event("config reloaded"))
        assert (reloaded["added"], reloaded["removed"], reloaded["changed"]) == ([], [], [])
    moved = read_log(rotated)
    assert moved[0]["event"] == "listening"
    assert any(e["event"] == "stream online" for e in moved)
    assert rs.stop() == 0
    assert read_log(log)[-1]["event"] == "stopped"
    assert read_log(rotated)[-1]["event"] == "request"


@pytest.fixture
def faulty(upstream, tmp_path):
    """restreamer with injected faults (tests/support/faulty.py): /bad.ts's source
    crashes on every read; /good.ts is fed by `faulty.up`; a viewer asking with
    ?crash crashes after its first chunk."""
    up = upstream(rate=2_000_000)
    config = {"reconnect": 0.3, "resources": [
        {"type": "stream", "serve": "/bad.ts", "remote": "http://crash.invalid/x.ts"},
        {"type": "stream", "serve": "/good.ts", "remote": up.url},
        {"type": "api", "api": "health", "serve": "/health"}]}
    rs = RestreamerProcess(config, tmp_path, cmd=[sys.executable, "-m", "tests.support.faulty",
                                                  "{config}"])
    rs.up = up
    try:
        yield rs.start()
    finally:
        rs.close()
        print(rs.output_tail())


def watching_good(rs, viewer):
    rs.wait_log(event("stream online", stream="/good.ts"))
    healthy = viewer(rs.url("/good.ts"))
    assert healthy.wait_status() == 200
    healthy.wait_bytes(PACKET_SIZE * 7)
    return healthy


def assert_still_flowing(rs, healthy, fault):
    seen = len(healthy.data)
    data = healthy.wait_bytes(seen + 100_000)
    assert_clean_start(data[:len(data) - len(data) % PACKET_SIZE], rs.up.connections[0].sent)
    assert len(rs.up.connections) == 1  # the good stream's upstream never had to reconnect
    assert rs.returncode is None
    # Crashes are logged as JSON lines, not printed.
    assert not [line for line in rs.stderr_lines if fault in line]


def test_a_crashing_source_is_logged_and_retried_while_another_stream_flows(faulty, viewer):
    healthy = watching_good(faulty, viewer)
    # Logged with its traceback, then retried after reconnect.
    crashes = [faulty.wait_log(event("upstream crashed", stream="/bad.ts"), timeout=5)]
    mark = faulty.mark()
    crashes.append(faulty.wait_log(event("upstream crashed", stream="/bad.ts"), since=mark, timeout=5))
    assert all("RuntimeError: injected fault" in c.get("exception", "") for c in crashes)
    assert_still_flowing(faulty, healthy, "injected fault in the source")


def test_a_crashing_viewer_is_logged_and_freed_while_another_flows(faulty, viewer):
    healthy = watching_good(faulty, viewer)
    mark = faulty.mark()
    crashing = viewer(faulty.url("/good.ts?crash"))
    assert crashing.wait_status() == 200
    crashing.wait_closed(5)
    crash = faulty.wait_log("request crashed", since=mark)
    assert crash["path"] == "/good.ts" and "RuntimeError: injected fault" in crash["exception"]
    faulty.wait_log("viewer disconnected", since=mark)
    assert poll(lambda: json.loads(http_get(faulty.url("/health"))[2])["viewer"], lambda n: n == 1, 5,
                "only the healthy viewer") == 1
    assert_still_flowing(faulty, healthy, "injected fault in a viewer")


def raw_lines(rs):
    """Every line of output that is not one JSON object."""
    return [entry["raw"] for entry in rs.logs if "raw" in entry] + rs.stderr_lines


def test_a_dying_greenlet_and_a_warning_are_json_lines(faulty, viewer):
    healthy = watching_good(faulty, viewer)
    mark = faulty.mark()
    assert http_get(faulty.url("/health?orphan&warn"))[0] == 200
    died = faulty.wait_log("uncaught error", since=mark)
    assert "injected fault in a background greenlet" in died["exception"]
    warned = faulty.wait_log(lambda e: "injected warning" in e.get("event", ""), since=mark)
    assert (warned["logger"], warned["level"]) == ("py.warnings", "warning")
    assert_still_flowing(faulty, healthy, "injected fault")
    assert raw_lines(faulty) == []


def test_an_exception_at_start_up_is_one_json_line(tmp_path):
    config = {"resources": [{"type": "stream", "serve": "/s.ts",
                             "remote": "http://user:START-PW@crash-at-start.invalid/x.ts?t=TOKEN"}]}
    rs = RestreamerProcess(config, tmp_path, cmd=[sys.executable, "-m", "tests.support.faulty",
                                                  "{config}"]).launch()
    assert rs.wait_exit() == 1
    crashed, = rs.logs
    assert (crashed["event"], crashed["level"]) == ("crashed", "critical")
    assert "injected fault at start-up" in crashed["exception"]
    assert "START-PW" not in json.dumps(crashed) and "TOKEN" not in json.dumps(crashed)
    assert rs.stderr_lines == []
