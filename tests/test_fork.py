"""fork:// children: stderr cut into bounded, rate-limited lines, the exit
status logged, and the whole process group gone after stop or reconnect,
whatever its members do with SIGTERM."""

import json
import os
import signal
import sys

from restreamer.sources.fork import LINE_LIMIT, LINES_PER_INTERVAL
from tests.support import REPO_ROOT
from tests.support.procs import ProcessWatch
from tests.support.ts import PACKET_SIZE, SAMPLE_PATH

TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"


def script(tmp_path, body, name="child.sh"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def config(path, **top):
    return {"reconnect": 0, "graceperiod": 1, **top,
            "resources": [{"type": "stream", "serve": "/s.ts", "remote": f"fork://{path}"}]}


def stderr_lines(rs):
    return [e["line"] for e in rs.find_logs("child stderr")]


def test_stderr_is_cut_at_newlines_and_carriage_returns_and_lines_are_bounded(sample, tmp_path, restreamer):
    # Progress lines end in \r; 5 MB without any line end must not be kept whole.
    child = script(tmp_path, f"""
printf 'frame=1\\rframe=2\\rdone\\r\\nnext line\\n' >&2
head -c 5000000 /dev/zero | tr '\\0' x >&2
printf '\\nlast words' >&2
cat {SAMPLE_PATH}
exit 3
""")
    rs = restreamer(config(child))
    exited = rs.wait_log("child exited")
    assert exited["exitcode"] == 3 and exited["command"] == str(child)
    closed = rs.find_logs("upstream closed")[0]
    assert closed["packets"] == len(sample) // PACKET_SIZE
    assert stderr_lines(rs) == ["frame=1", "frame=2", "done", "next line", "x" * LINE_LIMIT, "last words"]
    assert [e.get("truncated") for e in rs.find_logs("child stderr")][4] is True


def test_a_flood_of_stderr_lines_is_rate_limited_and_the_rest_counted(tmp_path, restreamer):
    child = script(tmp_path, f"seq 1 5000 >&2\ncat {SAMPLE_PATH}\n")
    rs = restreamer(config(child))
    rs.wait_log("child exited")
    logged = stderr_lines(rs)
    suppressed = sum(e["lines"] for e in rs.find_logs("child stderr suppressed"))
    assert LINES_PER_INTERVAL <= len(logged) < 2 * LINES_PER_INTERVAL  # one interval, maybe two
    assert len(logged) + suppressed == 5000
    assert logged[:LINES_PER_INTERVAL] == [str(n) for n in range(1, LINES_PER_INTERVAL + 1)]


def test_a_child_spamming_stderr_grows_the_log_by_at_most_10_kb_a_second(tmp_path, restreamer):
    # Long lines as fast as the pipe takes them, for 3 s, then the stream.
    child = script(tmp_path, "timeout 3 yes \"$(head -c 3000 /dev/zero | tr '\\0' x)\" >&2\n"
                             f"cat {SAMPLE_PATH}\n")
    rs = restreamer(config(child))
    rs.wait_log("child exited", timeout=20)
    entries = rs.find_logs(lambda e: str(e.get("event", "")).startswith("child stderr"))
    size = sum(len(json.dumps(e)) + 1 for e in entries)
    assert size <= 10_000 * 3, f"{size} bytes of stderr log in 3 s"
    assert sum(e["lines"] for e in rs.find_logs("child stderr suppressed")) > 0


def grandchild_script(tmp_path):
    """A child that leaves a grandchild ignoring SIGTERM, then plays TS."""
    return script(tmp_path, f"""
sh -c 'trap "" TERM; echo "grandchild pid=$$" >&2; while :; do sleep 0.1; done' &
exec {sys.executable} {TSPLAY} {SAMPLE_PATH} 2000000
""")


def grandchild_pid(rs):
    line = rs.wait_log(lambda e: e.get("event") == "child stderr" and e["line"].startswith("grandchild"))
    return int(line["line"].split("=")[1])


def test_stop_kills_a_grandchild_that_ignores_sigterm(tmp_path, restreamer):
    rs = restreamer(config(grandchild_script(tmp_path)))
    watch = ProcessWatch(grandchild_pid(rs))
    rs.wait_log("stream online")
    assert rs.stop() == 0
    assert watch.wait_gone(3), "the grandchild outlived the stop"
    exited = rs.find_logs("child exited")[0]
    assert exited["signal"] == "SIGTERM"


def test_reconnect_kills_a_grandchild_that_ignores_sigterm(tmp_path, restreamer):
    rs = restreamer(config(grandchild_script(tmp_path), readtimeout=0.5, reconnect=0.5))
    first = ProcessWatch(grandchild_pid(rs))
    rs.wait_log("stream online")
    started = rs.wait_log(lambda e: e.get("event") == "child stderr" and e["line"].startswith("tsplay started"))
    os.kill(int(started["line"].split("=")[1]), signal.SIGSTOP)  # a stall: readtimeout ends the attempt
    rs.wait_log("upstream error")
    assert first.wait_gone(5), "the grandchild outlived the reconnect"
    rs.wait_log(lambda e: e.get("event") == "upstream connecting" and e["attempt"] == 2)
