"""File descriptors: the soft limit is raised to the hard one at start, a
maxconnections the limit cannot hold is warned about, and running out of
descriptors pauses accepting (one JSON line per 10 s) while the viewers
already served go on.  The limits are set with prlimit(1)."""

import socket
import sys

import pytest

from tests.support.server import RestreamerProcess
from tests.support.ts import PACKET_SIZE
from tests.support.upstream import TSUpstream
from tests.support.viewer import HttpViewer

RATE = 300_000


@pytest.fixture
def source(sample):
    server = TSUpstream(sample, rate=RATE)
    yield server
    server.stop()


def under_limit(tmp_path, source, soft, hard, **settings):
    config = {"resources": [{"type": "stream", "serve": "/s.ts", "remote": source.url}], **settings}
    cmd = ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-m", "restreamer", "{config}"]
    process = RestreamerProcess(config, tmp_path, cmd=cmd).start()
    process.wait_log("stream online")
    return process


def test_the_soft_limit_is_raised_to_the_hard_one(tmp_path, source):
    rs = under_limit(tmp_path, source, 64, 256, maxconnections=150)
    clients = []
    try:
        limit = rs.wait_log("file descriptor limit")
        assert (limit["was"], limit["soft"], limit["hard"]) == (64, 256, 256)
        assert rs.find_logs("file descriptor limit below maxconnections") == []
        clients = [HttpViewer(rs.url("/s.ts")) for _ in range(150)]
        for client in clients:
            assert client.wait_status(10) == 200
            client.wait_bytes(PACKET_SIZE * 7, 10)
    finally:
        for client in clients:
            client.close()
        rs.close()
    assert rs.stderr_lines == []


def test_running_out_of_descriptors_pauses_accepting_and_spares_viewers(tmp_path, source):
    rs = under_limit(tmp_path, source, 40, 40, maxconnections=100)
    idle = []
    healthy = HttpViewer(rs.url("/s.ts"))
    try:
        warning = rs.wait_log("file descriptor limit below maxconnections")
        assert warning["maxconnections"] == 100 and warning["viewers_possible"] < 100
        healthy.wait_bytes(PACKET_SIZE * 7)
        # Connections that send nothing, more than the descriptors left.
        idle = [socket.create_connection(("127.0.0.1", rs.port), timeout=5) for _ in range(60)]
        refused = rs.wait_log("cannot accept connections")
        assert refused["reason"] == "Too many open files"
        before = len(healthy.data)
        healthy.wait_bytes(before + RATE // 8)  # a second of the stream, meanwhile
        assert len(rs.find_logs("cannot accept connections")) == 1  # one line per 10 s
        for sock in idle:
            sock.close()
        idle = []
        # Once descriptors are free again, accepting resumes by itself.
        late = HttpViewer(rs.url("/s.ts"))
        assert late.wait_status(10) == 200
        late.close()
    finally:
        for sock in idle:
            sock.close()
        healthy.close()
        rs.close()
    assert rs.stderr_lines == []  # no raw traceback
