#!/usr/bin/env python3
"""On-demand start: how long the first viewer of an idle on-demand channel
waits for its first byte, against how long the upstream took to connect.

Runs restreamer (CLI) with ``--channels`` on-demand channels on one paced
loopback upstream (the test suite's, one path per channel) and tunes in to
each once, cold, one after the other.  The target is "first byte within the
upstream's connect time plus 100 ms".

    .venv/bin/python benchmarks/ondemand.py
    .venv/bin/python benchmarks/ondemand.py --channels 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server import RestreamerProcess  # noqa: E402
from tests.support.ts import load_sample  # noqa: E402
from tests.support.upstream import TSUpstream  # noqa: E402
from tests.support.viewer import HttpViewer  # noqa: E402


def log_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=20)
    args = parser.parse_args()
    upstream = TSUpstream(load_sample(), rate=2_000_000)
    config = {"ondemand": True, "idletimeout": 60, "resources": [
        {"type": "stream", "serve": f"/c{i}.ts", "remote": f"http://127.0.0.1:{upstream.port}/c{i}.ts"}
        for i in range(args.channels)]}
    server = RestreamerProcess(config, tempfile.mkdtemp()).start()
    try:
        first_byte = []
        for i in range(args.channels):
            began = time.monotonic()
            viewer = HttpViewer(server.url(f"/c{i}.ts"))
            viewer.wait_bytes(1)
            first_byte.append(time.monotonic() - began)
            viewer.close()
        connect = []
        for i in range(args.channels):
            def logged(event, stream=f"/c{i}.ts"):
                return log_time(server.find_logs(
                    lambda e: e.get("event") == event and e.get("stream") == stream)[0])
            connect.append(logged("upstream connected") - logged("upstream connecting"))
    finally:
        server.close()
        upstream.stop()
    beyond = [f - c for f, c in zip(first_byte, connect)]
    for name, values in (("first byte", first_byte), ("upstream connect", connect),
                         ("first byte beyond connect", beyond)):
        print(f"{name}: median {statistics.median(values) * 1000:.1f} ms, "
              f"max {max(values) * 1000:.1f} ms ({len(values)} channels)")


if __name__ == "__main__":
    main()
