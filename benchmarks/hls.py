#!/usr/bin/env python3
"""HLS against HTTP-TS: the server's CPU for N viewers of one ~4 Mbit/s stream.

Runs the CLI on a paced loopback upstream (the harness's 4 Mbit/s asset,
looped) and, in turn, N HTTP-TS viewers (each reads the stream as it comes)
and N HLS viewers (each reloads the playlist once per target duration over a
kept-alive connection and fetches every new segment, as players do), both
from a gevent loader in another process.  The server's CPU (utime + stime
from /proc) is measured over a fixed window after a warm-up; runs are
interleaved (for each rep, TS then HLS) and the table gives medians and the
HLS/TS ratio.

    benchmarks/hls.py                       # N = 1000, 3 reps, 20 s windows
    benchmarks/hls.py -n 300 1000 --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH = Path(os.environ.get("RESTREAMER_BENCH", REPO.parent / "shared" / "bench"))
ASSET = BENCH / "assets" / "testsrc2_360p25_4mbps_20s.ts"
PYTHON = sys.executable

LOADER = r'''
import gevent.monkey; gevent.monkey.patch_all()
import gevent, socket, sys, time, json
mode, host, port, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
received = [0] * count
buffer = bytearray(1 << 18)

def request(sock, path):
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loader/{id(sock)}\r\n\r\n".encode())

def response(sock, i):
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("closed")
        head += data
    head, _, body = head.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
    parts, got = [body], len(body)
    while got < length:
        n = sock.recv_into(buffer, min(len(buffer), length - got))
        if not n:
            raise ConnectionError("closed")
        if length < 65536:
            parts.append(bytes(buffer[:n]))
        got += n
    received[i] += got
    return b"".join(parts) if length < 65536 else b""

def ts(i):
    sock = socket.create_connection((host, port))
    sock.sendall(f"GET /bench.ts HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    while True:
        n = sock.recv_into(buffer)
        if not n:
            return
        received[i] += n

def hls(i):
    gevent.sleep(i % 200 / 100)  # players do not all reload at once
    sock = socket.create_connection((host, port))
    last = -1
    while True:
        request(sock, "/bench.m3u8")
        lines = response(sock, i).decode().splitlines()
        target = int(next(l for l in lines if l.startswith("#EXT-X-TARGETDURATION:")).split(":")[1])
        uris = [l for l in lines if l and not l.startswith("#")]
        for uri in uris:
            number = int(uri.rsplit("/", 1)[1][:-3])
            if number > last and (last >= 0 or uri == uris[-1]):
                request(sock, "/" + uri)
                response(sock, i)
                last = number
        gevent.sleep(target)

workers = [gevent.spawn(ts if mode == "ts" else hls, i) for i in range(count)]
start = time.monotonic()
marks = []
while time.monotonic() - start < seconds:
    gevent.sleep(1)
    marks.append((time.monotonic() - start, sum(received)))
print(json.dumps(marks))
'''


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_once(mode: str, count: int, window: float, warmup: float, source_url: str) -> dict:
    from tests.support.server import RestreamerProcess  # the tests' process wrapper: logs, ports
    config = {"hls": True, "resources": [{"type": "stream", "serve": "/bench.ts", "remote": source_url}]}
    with tempfile.TemporaryDirectory() as directory:
        server = RestreamerProcess(config, Path(directory)).start()
        try:
            server.wait_log(lambda e: e.get("event") == "stream online", timeout=15)
            time.sleep(8)  # the playlist's first segments
            loader = subprocess.Popen([PYTHON, "-c", LOADER, mode, server.host, str(server.port), str(count),
                                       str(warmup + window + 1)], stdout=subprocess.PIPE, text=True)
            time.sleep(warmup)
            before = cpu_seconds(server.proc.pid)
            time.sleep(window)
            used = cpu_seconds(server.proc.pid) - before
            marks = json.loads(loader.communicate(timeout=60)[0])
        finally:
            server.close()
    delivered = [(t, b) for t, b in marks if warmup <= t <= warmup + window]
    rate = (delivered[-1][1] - delivered[0][1]) / (delivered[-1][0] - delivered[0][0]) if len(delivered) > 1 else 0
    return {"mode": mode, "viewers": count, "cpu": used / window, "delivered_MBps": rate / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--viewers", type=int, nargs="+", default=[1000])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("-d", "--duration", type=float, default=20, help="measurement window, s")
    parser.add_argument("-w", "--warmup", type=float, default=6)
    parser.add_argument("--asset", type=Path, default=ASSET)
    args = parser.parse_args()
    from tests.support.upstream import TSUpstream
    payload = args.asset.read_bytes()
    source = TSUpstream(payload, rate=4_000_000, piece_size=7 * 188)
    results: list[dict] = []
    try:
        for rep in range(args.reps):
            for count in args.viewers:
                for mode in ("ts", "hls"):
                    result = run_once(mode, count, args.duration, args.warmup, source.url)
                    print(f"[bench] rep {rep + 1} {json.dumps(result)}", file=sys.stderr, flush=True)
                    results.append(result)
    finally:
        source.stop()
    print("| N | TS cpu (cores) | HLS cpu (cores) | HLS / TS | TS MB/s delivered | HLS MB/s delivered |")
    print("|---|---|---|---|---|---|")
    for count in args.viewers:
        med = {mode: {key: statistics.median(r[key] for r in results if r["mode"] == mode and r["viewers"] == count)
                      for key in ("cpu", "delivered_MBps")} for mode in ("ts", "hls")}
        print(f"| {count} | {med['ts']['cpu']:.3f} | {med['hls']['cpu']:.3f} | "
              f"{med['hls']['cpu'] / med['ts']['cpu']:.2f} | {med['ts']['delivered_MBps']:.1f} | "
              f"{med['hls']['delivered_MBps']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
