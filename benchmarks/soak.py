#!/usr/bin/env python3
"""Soak test: restreamer (CLI) under steady load and viewer churn for a long
time, watching for slow leaks.

The shared harness's paced source (``../shared/bench/source.py``, the 4 Mbit/s
asset) feeds one stream; ``--viewers`` viewers (200) stay connected while
``--churn`` per second (10) of them are replaced by fresh ones.  Every
``--every`` seconds (10) it prints restreamer's RSS, open fds, greenlets
(the prometheus ``restreamer_greenlets`` gauge), viewers (health), dropped
packets (statistics) and what the viewers received, and at the end a verdict
on whether memory stayed flat after the warm-up.

    benchmarks/soak.py                      # 10 minutes
    benchmarks/soak.py --minutes 3 --viewers 200 --churn 10

Viewers are non-blocking sockets on one selector loop, so the load generator
stays small next to the server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(os.environ.get("RESTREAMER_BENCH", REPO.parent / "shared" / "bench"))
ASSET = BENCH / "assets" / "testsrc2_360p25_4mbps_20s.ts"
#: Memory is "flat" if the last third of the run's RSS samples is within this of the first third.
FLAT_MB = 5.0
FLAT_FRACTION = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: timed out waiting for {what}")
        time.sleep(0.1)


def get(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


class Viewers:
    """Stream viewers on one selector: connect, request, read and discard."""

    def __init__(self, port: int):
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.received = 0  # body and head bytes, all viewers
        self.opened = 0
        self.failed = 0

    def open(self) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", self.port))
        self.selector.register(sock, selectors.EVENT_WRITE, "connecting")
        self.opened += 1

    def close_random(self) -> None:
        keys = [key for key in self.selector.get_map().values() if key.data == "reading"]
        if keys:
            self._close(random.choice(keys).fileobj)

    def _close(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()

    @property
    def count(self) -> int:
        return len(self.selector.get_map())

    def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for key, _ in self.selector.select(left):
                sock = key.fileobj
                try:
                    if key.data == "connecting":
                        sock.send(b"GET /stream.ts HTTP/1.1\r\nHost: soak\r\n\r\n")
                        self.selector.modify(sock, selectors.EVENT_READ, "reading")
                    else:
                        data = sock.recv(262144)
                        if not data:
                            raise ConnectionError("closed by the server")
                        self.received += len(data)
                except OSError:
                    self.failed += 1
                    self._close(sock)


def sample(pid: int, base: str) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    metrics = (get(base + "/metrics") or b"").decode()
    greenlets = re.search(r"^restreamer_greenlets (\S+)$", metrics, re.M)
    health = json.loads(get(base + "/health") or b"{}")
    stats = json.loads(get(base + "/statistics") or b"{}")
    return {
        "rss_mb": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "greenlets": int(float(greenlets.group(1))) if greenlets else -1,
        "viewers": health.get("viewer", -1),
        "dropped": stats.get("total_packets_dropped", -1),
    }


def verdict(samples: list[dict]) -> tuple[bool, str]:
    """Flat if the median RSS of the last third is within FLAT_MB (or FLAT_FRACTION) of the first's."""
    third = max(1, len(samples) // 3)
    first = statistics.median(s["rss_mb"] for s in samples[:third])
    last = statistics.median(s["rss_mb"] for s in samples[-third:])
    growth = last - first
    flat = growth <= max(FLAT_MB, first * FLAT_FRACTION)
    fds = [s["fds"] for s in samples]
    return flat, (f"RSS median {first:.1f} MB (first third) -> {last:.1f} MB (last third), "
                  f"{growth:+.1f} MB; fds {min(fds)}..{max(fds)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--churn", type=float, default=10, help="viewers replaced per second")
    parser.add_argument("--every", type=float, default=10, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=20, help="seconds before the first sample")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        source_port, port = free_port(), free_port()
        source = subprocess.Popen([sys.executable, str(BENCH / "source.py"), "--file", str(ASSET),
                                   "--port", str(source_port)], stderr=subprocess.DEVNULL)
        config = Path(tmp) / "soak.json"
        config.write_text(json.dumps({
            "listen": f"127.0.0.1:{port}", "reconnect": 1, "log": str(Path(tmp) / "restreamer.log"),
            "resources": [
                {"type": "stream", "serve": "/stream.ts", "remote": f"http://127.0.0.1:{source_port}/s.ts"},
                {"type": "api", "api": "health", "serve": "/health"},
                {"type": "api", "api": "statistics", "serve": "/statistics"},
                {"type": "api", "api": "prometheus", "serve": "/metrics"}]}))
        server = subprocess.Popen([sys.executable, "-m", "restreamer", str(config)], cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: (get(base + "/health") or b"").startswith(b"{"), 20, "restreamer")
            wait_for(lambda: b"stream online" in (Path(tmp) / "restreamer.log").read_bytes(), 20,
                     "the stream to come online")
            viewers = Viewers(port)
            for _ in range(args.viewers):
                viewers.open()
            return soak(args, server.pid, base, viewers)
        finally:
            for process in (server, source):
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def soak(args: argparse.Namespace, pid: int, base: str, viewers: Viewers) -> int:
    step = 1 / args.churn if args.churn > 0 else args.every
    began = time.monotonic()
    end = began + args.warmup + args.minutes * 60
    next_sample = began + args.warmup
    samples, received_at = [], (began, 0)
    print(f"soak: {args.viewers} viewers, {args.churn:g}/s churn, {args.minutes:g} min after "
          f"{args.warmup:g} s warm-up; pid {pid}", flush=True)
    print(f"{'t/s':>6} {'RSS MB':>8} {'fds':>5} {'greenlets':>9} {'viewers':>7} {'dropped':>9} "
          f"{'recv MB/s':>9} {'churned':>8} {'failed':>6}", flush=True)
    while time.monotonic() < end:
        viewers.run(step)
        if args.churn > 0:
            viewers.close_random()
            viewers.open()
        now = time.monotonic()
        if now >= next_sample:
            s = sample(pid, base)
            since, before = received_at
            rate = (viewers.received - before) / (now - since) / 1e6
            received_at = (now, viewers.received)
            samples.append(s)
            print(f"{now - began:6.0f} {s['rss_mb']:8.1f} {s['fds']:5d} {s['greenlets']:9d} "
                  f"{s['viewers']:7d} {s['dropped']:9d} {rate:9.1f} {viewers.opened - args.viewers:8d} "
                  f"{viewers.failed:6d}", flush=True)
            next_sample += args.every
    flat, detail = verdict(samples)
    print(f"soak: memory {'FLAT' if flat else 'GROWING'}: {detail}; "
          f"{viewers.opened - args.viewers} viewers churned, {viewers.failed} failed", flush=True)
    return 0 if flat and viewers.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
