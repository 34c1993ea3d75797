"""The ``python -m restreamer`` command: config errors, --check, formats, and
stopping on SIGTERM/SIGINT with forked upstreams reaped."""

import json
import re
import signal
import sys

import pytest

from tests.support import REPO_ROOT
from tests.support.procs import ProcessWatch
from tests.support.ts import PACKET_SIZE, SAMPLE_PATH, assert_aligned

TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"
LOOP = {"type": "stream", "serve": "/s.ts", "remote": "loop:sample"}


def run_to_exit(restreamer, config, **kwargs):
    """Launch restreamer, wait for it to exit by itself; return (code, process)."""
    rs = restreamer(config, start=False, **kwargs).launch()
    return rs.wait_exit(), rs


@pytest.mark.parametrize("config, fmt, where, problem", [
    ({"resources": [{"type": "stream", "serve": "/s.ts"}]}, "json",
     "resources[0].remote", "a stream needs at least one remote"),
    ({"resources": [{**LOOP, "remote": "rtsp://cam/1"}]}, "yaml",
     "resources[0].remote", "unsupported URL scheme in 'rtsp://cam/1'"),
    ({"reconnect": "soon", "resources": [LOOP]}, "json", "reconnect", "expected a number of seconds"),
])
def test_bad_config_exits_2_with_one_line_naming_file_key_and_problem(restreamer, config, fmt, where, problem):
    code, rs = run_to_exit(restreamer, config, fmt=fmt)
    assert code == 2
    (line,) = rs.stderr_lines
    assert line.startswith(f"restreamer: {rs.config_path}: {where}: ") and problem in line, line
    assert rs.find_logs("listening") == []


def test_syntax_error_exits_2_naming_file_and_line(restreamer):
    code, rs = run_to_exit(restreamer, '{"resources": [\n  {"type": "stream",}\n]}')
    assert code == 2
    assert len(rs.stderr_lines) == 1
    assert re.fullmatch(rf"restreamer: {re.escape(str(rs.config_path))}: line 2 column \d+: invalid JSON: .+",
                        rs.stderr_lines[0])


def test_missing_config_file_exits_2(restreamer, tmp_path):
    missing = tmp_path / "absent.yaml"
    code, rs = run_to_exit(restreamer, {}, cmd=[sys.executable, "-m", "restreamer", str(missing)])
    assert code == 2
    assert rs.stderr_lines == [f"restreamer: {missing}: cannot read: No such file or directory"]


def test_check_validates_without_serving(restreamer):
    code, rs = run_to_exit(restreamer, {"resources": [LOOP]}, extra_args=["--check"])
    assert code == 0
    assert rs.logs == [{"raw": f"{rs.config_path}: ok (1 stream, 1 resource)"}]  # not "listening"
    assert rs.stderr_lines == []

    code, rs = run_to_exit(restreamer, {"resources": [{**LOOP, "serve": "s.ts"}]}, extra_args=["--check"])
    assert code == 2
    assert rs.stderr_lines == [
        f"restreamer: {rs.config_path}: resources[0].serve: must be a URL path starting with '/', got 's.ts'"]


def test_check_warns_about_unknown_keys_naming_the_nearest(restreamer):
    code, rs = run_to_exit(restreamer, {"reconect": 1, "resources": [LOOP]}, fmt="yaml",
                           extra_args=["--check"])
    assert code == 0
    assert rs.stderr_lines == [
        f"restreamer: warning: {rs.config_path}: reconect: unknown key ignored; did you mean 'reconnect'?"]


def test_a_missing_preamble_is_a_warning_and_the_stream_serves_without_it(restreamer, viewer):
    config = {"resources": [{**LOOP, "preamble": "/nonexistent/pre.ts"}]}
    warning = "resources[0].preamble: cannot read /nonexistent/pre.ts: No such file or directory; " \
              "the stream is served without it"
    code, rs = run_to_exit(restreamer, config, extra_args=["--check"])
    assert (code, rs.stderr_lines) == (0, [f"restreamer: warning: {rs.config_path}: {warning}"])
    rs = restreamer(config)
    assert rs.wait_log("config warning")["detail"] == f"{rs.config_path}: {warning}"
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    assert_aligned(client.wait_bytes(50 * PACKET_SIZE)[:50 * PACKET_SIZE])


def test_serving_logs_config_warnings(restreamer):
    rs = restreamer({"graceperiodd": 1, "resources": [LOOP]})
    warning = rs.wait_log("config warning")
    assert warning["detail"].endswith("graceperiodd: unknown key ignored; did you mean 'graceperiod'?")


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_json_and_yaml_configs_serve(restreamer, viewer, fmt):
    rs = restreamer({"reconnect": 0.2, "resources": [LOOP]}, fmt=fmt)
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    assert_aligned(client.wait_bytes(50 * PACKET_SIZE)[:50 * PACKET_SIZE])


def test_keys_in_any_case_serve(restreamer, viewer):
    config = {"Listen": "127.0.0.1:0", "ReConnect": 0.2,
              "Resources": [{"Type": "stream", "Serve": "/s.ts", "Remote": "loop:sample"}]}
    rs = restreamer(json.dumps(config))
    rs.wait_log("stream online")
    assert rs.find_logs("config warning") == []
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(PACKET_SIZE)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_with_exit_0_and_reaps_forked_children(restreamer, viewer, sig):
    # tsplay leaves a helper process in its group that does not hold the
    # stream's pipe: only signalling the whole group ends it.
    url = f"fork://{sys.executable}?{TSPLAY}+{SAMPLE_PATH}+2000000+helper"
    rs = restreamer({"reconnect": 0.2, "resources": [{"type": "stream", "serve": "/s.ts", "remote": url}]})
    pids = {}
    for _ in range(2):
        line = rs.wait_log(lambda e: e.get("event") == "child stderr" and
                           e["line"].split(" pid=")[0] not in pids)["line"]
        name, pid = line.split(" pid=")
        pids[name] = int(pid)
    assert set(pids) == {"tsplay helper", "tsplay started"}
    watches = {name: ProcessWatch(pid) for name, pid in pids.items()}
    try:
        rs.wait_log("stream online")
        client = viewer(rs.url("/s.ts"))
        assert client.wait_status() == 200
        client.wait_bytes(PACKET_SIZE)
        assert rs.stop(sig) == 0
        assert [e["event"] for e in rs.logs if e.get("event") in ("stopping", "stopped")] == ["stopping", "stopped"]
        assert client.wait_closed() and client.error is None
        for name, watch in watches.items():
            assert watch.wait_gone(5), f"{name} (pid {watch.pid}) outlived restreamer"
    finally:
        for watch in watches.values():
            watch.close()


def test_check_refuses_what_this_host_lacks_and_lists_every_problem(restreamer, tmp_path):
    config = {"resources": [
        {"type": "stream", "serve": "/mc.ts", "remote": "udp://239.1.1.1:1234", "clientinterface": "eth9"},
        {"type": "stream", "serve": "/fork.ts", "remote": "fork://no-such-command-here?-i+x"}]}
    code, rs = run_to_exit(restreamer, config, extra_args=["--check"])
    assert code == 2
    assert rs.stderr_lines == [
        f"restreamer: {rs.config_path}: resources[0].clientinterface: no network interface 'eth9' on this host",
        f"restreamer: {rs.config_path}: resources[1].remote: command 'no-such-command-here' not found on "
        "PATH, or not executable"]
