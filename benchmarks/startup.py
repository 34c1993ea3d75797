#!/usr/bin/env python3
"""A player's view of start-up, with and without fast start.

Serves a looped H.264/AAC file (the bench asset, GOP 2 s, when
``../shared/bench`` is there; else the bundled sample, GOP 1 s) through
restreamer's CLI and lets ffmpeg join at random moments, as a player
tuning in would.  For each join: the time until ffmpeg has decoded the first
video frame, whether that frame is a keyframe, and how many errors the
decoder reported (``non-existing PPS`` and the like, from a mid-GOP start).
The time includes ffmpeg's stream analysis (``--analyzeduration``), which
a fast start's burst of the backlog shortens too::

    benchmarks/startup.py                 # 20 joins per mode
    benchmarks/startup.py --joins 50 --asset FILE.ts
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
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
BENCH_ASSET = BENCH / "assets" / "testsrc2_360p25_4mbps_20s.ts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(asset: Path, faststart: bool, tmp: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    config = {"listen": f"127.0.0.1:{port}", "faststart": faststart,
              "resources": [{"type": "stream", "serve": "/s.ts", "remote": f"loop:{asset}"}]}
    path = tmp / f"startup-{faststart}.json"
    path.write_text(json.dumps(config))
    server = subprocess.Popen([sys.executable, "-m", "restreamer", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/s.ts"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read(188):
                    return server, url
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.1)


def join(url: str, analyzeduration: float) -> dict:
    """One player joining now: ms to its first decoded video frame, keyframe or not, errors.

    ffmpeg stops after one decoded frame; ``showinfo`` says whether it was a
    keyframe, and the decoder logs what it could not decode before it.
    """
    started = time.monotonic()
    result = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-analyzeduration", str(int(analyzeduration * 1e6)),
         "-i", url, "-map", "0:v:0", "-frames:v", "1", "-vf", "showinfo", "-f", "null", "-"],
        capture_output=True, text=True, timeout=30)
    elapsed = (time.monotonic() - started) * 1000
    key = re.search(r"iskey:(\d)", result.stderr)
    decoder = [line for line in result.stderr.splitlines()
               if re.match(r"\[(h264|hevc|mpeg2video) @", line)]
    return {"ms": elapsed, "keyframe": bool(key) and key.group(1) == "1", "errors": len(decoder)}


def measure(asset: Path, faststart: bool, joins: int, analyzeduration: float, tmp: Path) -> dict:
    server, url = serve(asset, faststart, tmp)
    try:
        time.sleep(3)  # past the first GOP, so a join can land anywhere in one
        results = []
        for _ in range(joins):
            time.sleep(random.uniform(0, 2.5))
            results.append(join(url, analyzeduration))
    finally:
        server.terminate()
        server.wait(10)
    times = [r["ms"] for r in results]
    return {"faststart": faststart, "joins": joins,
            "first_frame_median_ms": round(statistics.median(times)),
            "first_frame_max_ms": round(max(times)),
            "keyframe_pct": round(100 * sum(r["keyframe"] for r in results) / joins),
            "joins_with_errors": sum(1 for r in results if r["errors"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--joins", type=int, default=20)
    parser.add_argument("--analyzeduration", type=float, default=1.0,
                        help="seconds of stream ffmpeg analyses before its first frame (ffmpeg: 5)")
    parser.add_argument("--asset", type=Path,
                        default=BENCH_ASSET if BENCH_ASSET.exists() else REPO / "restreamer" / "data" / "sample.ts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(args.asset, faststart, args.joins, args.analyzeduration, Path(tmp))
                for faststart in (True, False)]
    print(f"asset: {args.asset}, ffmpeg -analyzeduration {args.analyzeduration:g} s")
    print("| faststart | joins | first frame median ms | max ms | keyframe first | joins with decoder errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {'on' if r['faststart'] else 'off'} | {r['joins']} | {r['first_frame_median_ms']} "
              f"| {r['first_frame_max_ms']} | {r['keyframe_pct']} % | {r['joins_with_errors']} |")


if __name__ == "__main__":
    main()
