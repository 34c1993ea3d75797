#!/usr/bin/env python3
"""Memory that stays the backlog: the RSS of restreamer (CLI) with 50 streams
whose backlogs are full and that nobody watches, against the bytes those
backlogs hold (``backlog_bytes`` in the statistics API).

For each upstream write size (1316 bytes, as encoders send UDP-sized
writes, and 64 KiB) a run with the smallest backlog gives the baseline (the
process with its streams and sources but next to no backlog); then, for each
``backlogbytes``, the figure is ``(RSS - baseline RSS) / sum of backlog_bytes``
(target <= 1.3), with ``RSS / sum of backlog_bytes`` beside it.

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --streams 50 --sizes 262144 1048576 3145728 --writes 1316 65536
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server import RestreamerProcess  # noqa: E402
from tests.support.ts import load_sample  # noqa: E402
from tests.support.upstream import TSUpstream  # noqa: E402
from tests.support.viewer import http_get  # noqa: E402

RATE = 4_000_000  # bits/s per stream
BASELINE = 1316  # backlogbytes of the baseline run: the newest chunk only


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def measure(streams: int, backlog: int, write: int, upstream: TSUpstream, timeout: float) -> tuple[int, int]:
    """(RSS, sum of backlog_bytes) once every backlog is full (or ``timeout`` s passed)."""
    config = {"backlogbytes": backlog, "backlogseconds": 3600, "resources": [
        {"type": "stream", "serve": f"/s{i}.ts", "remote": f"http://127.0.0.1:{upstream.port}/s{i}.ts"}
        for i in range(streams)] + [{"type": "api", "api": "statistics", "serve": "/statistics"}]}
    server = RestreamerProcess(config, tempfile.mkdtemp()).start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            stats = json.loads(http_get(server.url("/statistics"))[2])["streams"]
            held = [s["backlog_bytes"] for path, s in stats.items()]
            full = min(held) >= 0.95 * backlog or backlog == BASELINE
            if (full and time.monotonic() > deadline - timeout + 2) or time.monotonic() > deadline:
                return rss(server.proc.pid), sum(held)
            time.sleep(0.5)
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--sizes", type=int, nargs="+", default=[262144, 1048576, 3145728],
                        help="backlogbytes to measure")
    parser.add_argument("--writes", type=int, nargs="+", default=[1316, 65536],
                        help="upstream write sizes")
    parser.add_argument("--rate", type=int, default=RATE, help="bits/s per stream")
    args = parser.parse_args()
    for write in args.writes:
        upstream = TSUpstream(load_sample(), rate=args.rate, piece_size=write)
        try:
            fill = max(args.sizes) * 8 / args.rate
            base, _ = measure(args.streams, BASELINE, write, upstream, 5)
            print(f"writes of {write} B: baseline RSS {base / 2**20:.1f} MiB", flush=True)
            for size in args.sizes:
                total, held = measure(args.streams, size, write, upstream, fill * 2 + 10)
                print(f"  backlogbytes {size:>8}: backlogs {held / 2**20:7.1f} MiB, RSS {total / 2**20:7.1f} MiB,"
                      f" (RSS - baseline) / backlogs {(total - base) / held:.2f},"
                      f" RSS / backlogs {total / held:.2f}", flush=True)
        finally:
            upstream.stop()


if __name__ == "__main__":
    main()
