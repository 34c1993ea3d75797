#!/usr/bin/env python3
"""A restart as an operator (or systemd, or Kubernetes) sees it: how long the
CLI takes to listen, to answer ``--check``, and to exit on SIGTERM while a
client holds an idle keep-alive connection.

Each source tree given (default: this checkout) runs the same config, the
runs of all trees interleaved so a busy machine slows them alike; the
interpreter's own start (``python -c pass``) is measured alongside as the
reference every figure is divided by::

    benchmarks/restart.py                       # 10 runs
    benchmarks/restart.py --runs 20 ../before .  # before and after, same run
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG = {"listen": "127.0.0.1:0", "resources": [
    {"type": "stream", "serve": "/s.ts", "remote": "loop:sample"},
    {"type": "api", "api": "health", "serve": "/health"}]}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def interpreter() -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.monotonic() - began


def check(tree: Path, config: Path) -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "restreamer", "--check", str(config)], cwd=tree, env=ENV,
                   check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - began


def serve(tree: Path, config: Path) -> tuple[float, float]:
    """Seconds to the "listening" line, and from SIGTERM to the exit with an
    idle keep-alive connection open."""
    began = time.monotonic()
    server = subprocess.Popen([sys.executable, "-m", "restreamer", str(config)], cwd=tree, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in server.stdout:
            entry = json.loads(line)
            if entry.get("event") == "listening":
                break
        else:
            raise RuntimeError(f"{tree}: exited before listening")
        listening = time.monotonic() - began
        idle = socket.create_connection(("127.0.0.1", entry["port"]), timeout=10)
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: restreamer\r\n\r\n")
        idle.recv(65536)  # the answer; the connection stays open, idle
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        stopping = time.monotonic() - began
        idle.close()
        return listening, stopping
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", type=Path, default=[REPO],
                        help="source trees (checkouts) whose restreamer package runs")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.trees]
    figures = {tree: {"listening": [], "check": [], "stop": []} for tree in trees}
    reference = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "restreamer.json"
        config.write_text(json.dumps(CONFIG))
        for _ in range(args.runs):
            reference.append(interpreter())
            for tree in trees:
                listening, stopping = serve(tree, config)
                figures[tree]["listening"].append(listening)
                figures[tree]["stop"].append(stopping)
                figures[tree]["check"].append(check(tree, config))
    base = statistics.median(reference)
    print(f"{args.runs} runs; medians in ms, and as multiples of the interpreter's start "
          f"(python -c pass: {base * 1000:.0f} ms)")
    print("| tree | to listening | --check | SIGTERM to exit, one idle keep-alive client |")
    print("|---|---|---|---|")
    for tree, runs in figures.items():
        cells = [f"{statistics.median(runs[k]) * 1000:.0f} ({statistics.median(runs[k]) / base:.1f}x)"
                 for k in ("listening", "check", "stop")]
        print(f"| {tree} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
