"""10,000 viewers that connect, read and leave: afterwards the process holds
no more file descriptors, greenlets or memory than before (within a small
margin), and every viewer counter is back to exactly zero."""

import json
import os
import re
import socket
import threading
import time

from tests.support.polling import poll
from tests.support.viewer import http_get

CYCLES = 10_000
WARMUP = 1_000  # cycles before the baseline, so caches and pools are already warm
THREADS = 32
REQUEST = b"GET /s.ts HTTP/1.1\r\nHost: x\r\n\r\n"
#: Margins over the baseline once everything has settled.
FD_MARGIN = 2
GREENLET_MARGIN = 5
RSS_MARGIN_KB = 8 * 1024


def cycle(port):
    """One viewer: connect, request, read until some stream data came, hang up."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(REQUEST)
        answer = b""
        while b"\r\n\r\n" not in answer or answer.endswith(b"\r\n\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {answer[:80]!r}")
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200 "):
            raise ConnectionError(answer[:80])


def churn(port, n):
    failures, done = [], [0] * THREADS

    def run(index):
        for _ in range(index, n, THREADS):
            try:
                cycle(port)
                done[index] += 1
            except OSError as e:
                failures.append(e)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(50)
    assert not failures, f"{len(failures)} cycles failed, e.g. {failures[:3]}"
    assert sum(done) == n


def resources(rs):
    pid = rs.proc.pid
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))
    metrics = http_get(rs.url("/metrics"))[2].decode()
    greenlets = int(float(re.search(r"^restreamer_greenlets (\S+)$", metrics, re.M).group(1)))
    return {"fds": fds, "greenlets": greenlets, "rss_kb": rss}


def counters(rs):
    health = json.loads(http_get(rs.url("/health"))[2])
    stats = json.loads(http_get(rs.url("/statistics"))[2])
    return health["viewer"], stats["connections"], stats["streams"]["/s.ts"]["connections"]


def test_ten_thousand_viewer_cycles_leak_nothing(upstream, restreamer):
    up = upstream(rate=2_000_000)
    rs = restreamer({"resources": [
        {"type": "stream", "serve": "/s.ts", "remote": up.url},
        {"type": "api", "api": "health", "serve": "/health"},
        {"type": "api", "api": "statistics", "serve": "/statistics"},
        {"type": "api", "api": "prometheus", "serve": "/metrics"}]})
    rs.wait_log("stream online")
    settled = lambda c: c == (0, 0, 0)  # noqa: E731

    churn(rs.port, WARMUP)
    poll(lambda: counters(rs), settled, 10, "no viewers after the warm-up")
    before = resources(rs)
    began = time.monotonic()
    churn(rs.port, CYCLES)
    elapsed = time.monotonic() - began
    assert poll(lambda: counters(rs), settled, 10, "no viewers after the churn") == (0, 0, 0)
    after = poll(lambda: resources(rs), lambda r: r["fds"] <= before["fds"] + FD_MARGIN
                 and r["greenlets"] <= before["greenlets"] + GREENLET_MARGIN, 10,
                 "descriptors and greenlets back to the baseline")
    print(f"churn: {CYCLES} cycles in {elapsed:.1f} s ({CYCLES / elapsed:.0f}/s); "
          f"before {before}; after {after}")
    assert after["rss_kb"] <= before["rss_kb"] + RSS_MARGIN_KB, (before, after)
    disconnects = rs.find_logs("viewer disconnected")
    assert len(disconnects) == WARMUP + CYCLES
    assert rs.returncode is None and rs.stderr_lines == []
