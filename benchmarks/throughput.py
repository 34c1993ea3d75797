#!/usr/bin/env python3
"""Throughput of one fast upstream: can restreamer (CLI, pinned to one core)
relay a full transponder's worth of live TS to a few viewers without falling
behind, while another stream's viewer sees no gap?

A paced upstream (``--mode tcp`` or ``http``, ``--rate`` Mbit/s, the bundled
sample looped, written in 64 KiB pieces; or ``--mode udp`` / ``rtp``: 1316-byte
datagrams, bare or behind a 12-byte RTP header, to a unicast port; or
``--mode hls``: a live HLS origin that cuts the looped sample into segments of
``--segment`` seconds at that rate, one published every segment duration on a
sliding 5-entry media playlist, as ffmpeg's live HLS muxer writes it) feeds
``/fast.ts``; ``--viewers`` viewers read it.  A second upstream at 2 Mbit/s (1316-byte writes) feeds ``/steady.ts``, read
by one viewer whose longest wait between two reads is reported.  The
upstreams run in a child process and the viewers on one selector here, so
neither competes with restreamer's core.

    benchmarks/throughput.py                          # tcp, 120 Mbit/s, 4 viewers, 20 s
    benchmarks/throughput.py --mode http --rate 200 --viewers 10
    benchmarks/throughput.py --mode rtp --rate 100   # and --mode udp as its reference
    benchmarks/throughput.py --mode hls --rate 100 --seconds 15   # and --mode http as its reference
    benchmarks/throughput.py --rate 100 --viewers 10 --seconds 8 --warmup 1 --burst 393216 --runs 20

Prints Mbit/s sent by the upstream and received by each viewer over the
measured window, restreamer's CPU (cores), the packets it dropped, and the
steady viewer's longest gap (an HLS upstream's bytes count as the origin
serves them, a segment at a time).  ``--burst`` makes the fast upstream's first
write that many bytes (a sender flushing its buffer as the connection opens:
more than a new socket's buffer takes before the first read); ``--runs``
repeats the whole measurement with a fresh restreamer and upstream, and
counts the runs whose upstream got out at least 95 % of its rate.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "restreamer" / "data" / "sample.ts"
PIECE = 65536
STEADY_RATE = 2_000_000
WINDOW = 5  # segments on a live HLS playlist


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- upstreams (child process) ------------------------------------------------

def _serve(listener: socket.socket, rate: float, http: bool, sent, piece: int = PIECE,
           burst: int = 0) -> None:
    """Accept one connection and send the sample looped at `rate` bit/s, `piece`
    bytes a write (the first `burst` bytes, if given)."""
    data = SAMPLE.read_bytes()
    looped = data * (max(piece, burst) // len(data) + 2)
    conn, _ = listener.accept()
    if http:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mpeg\r\nConnection: close\r\n\r\n")
    start, total, pos = time.monotonic(), 0, 0
    size = burst or piece
    try:
        while True:
            delay = start + total * 8 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.sendall(looped[pos:pos + size])
            total += size
            pos = (pos + size) % len(data)
            size = piece
            with sent.get_lock():
                sent.value = total
    except OSError:
        pass


def _send(port: int, rate: float, rtp: bool, sent) -> None:
    """Send the sample looped at `rate` bit/s to 127.0.0.1:`port`, 7 packets a
    datagram, with an RTP header (sequence numbers counting up) if `rtp`."""
    import struct
    data = SAMPLE.read_bytes()
    looped = data * 2
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start, total, pos, sequence = time.monotonic(), 0, 0, 0
    while True:
        delay = start + total * 8 / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = looped[pos:pos + 1316]
        header = struct.pack("!BBHII", 0x80, 33, sequence & 0xFFFF, 0, 1) if rtp else b""
        try:
            sock.sendto(header + body, ("127.0.0.1", port))
        except OSError:
            pass
        sequence += 1
        total += 1316
        pos = (pos + 1316) % len(data)
        if sequence % 64 == 0:
            with sent.get_lock():
                sent.value = total


def _origin(listener: socket.socket, rate: float, seconds: float, sent) -> None:
    """A live HLS origin on `listener`: the sample looped, cut at packet boundaries
    into segments of `seconds` at `rate` bit/s (each continuing the last byte for
    byte), a new one every `seconds`, the newest :data:`WINDOW` on the playlist."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    data = SAMPLE.read_bytes()
    size = int(rate * seconds / 8) // 188 * 188
    looped = memoryview(data * (size // len(data) + 2))
    start = time.monotonic() - WINDOW * seconds  # live for a while already: a full playlist

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive, as a player's session is

        def do_GET(self) -> None:
            published = int((time.monotonic() - start) / seconds)  # segments complete so far
            first = max(0, published - WINDOW)
            if self.path == "/fast.m3u8":
                lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}",
                         f"#EXT-X-MEDIA-SEQUENCE:{first}"]
                for number in range(first, published):
                    lines += [f"#EXTINF:{seconds:.6f},", f"fast{number}.ts"]
                return self._reply("application/vnd.apple.mpegurl", ("\n".join(lines) + "\n").encode())
            name = self.path.removeprefix("/fast").removesuffix(".ts")
            # A segment stays a few durations past the playlist (hls_delete_threshold).
            if not name.isdigit() or not first - 2 <= int(name) < published:
                return self._reply("text/plain", b"gone\n", 404)
            offset = int(name) * size % len(data)
            self._reply("video/mp2t", looped[offset:offset + size], count=True)

        def _reply(self, kind: str, body, status: int = 200, count: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for at in range(0, len(body), PIECE):
                self.wfile.write(body[at:at + PIECE])
                if count:
                    with sent.get_lock():
                        sent.value += len(body[at:at + PIECE])

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    server.daemon_threads = True
    server.serve_forever()


def upstreams(fast, steady: socket.socket, rate: float, mode: str, sent, burst: int, segment: float) -> None:
    import threading
    # An encoder's pace: 1316-byte writes, one every 5 ms.
    threading.Thread(target=_serve, args=(steady, STEADY_RATE, False, multiprocessing.Value("q", 0), 1316),
                     daemon=True).start()
    if mode in ("udp", "rtp"):
        _send(fast, rate, mode == "rtp", sent)
    elif mode == "hls":
        _origin(fast, rate, segment, sent)
    else:
        _serve(fast, rate, mode == "http", sent, burst=burst)


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    return sock


# -- viewers ---------------------------------------------------------------

class Viewers:
    """HTTP viewers on one selector: request, then count body bytes."""

    def __init__(self):
        self.selector = selectors.DefaultSelector()
        self.received: dict[str, int] = {}
        self.last_read: dict[str, float] = {}
        self.max_gap: dict[str, float] = {}

    def open(self, port: int, path: str, name: str) -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        sock.setblocking(False)
        self.received[name] = 0
        self.selector.register(sock, selectors.EVENT_READ, name)

    def run(self, until: float) -> None:
        while time.monotonic() < until:
            for key, _ in self.selector.select(0.1):
                name = key.data
                try:
                    data = key.fileobj.recv(1 << 20)
                except BlockingIOError:
                    continue
                now = time.monotonic()
                if name in self.last_read:
                    self.max_gap[name] = max(self.max_gap.get(name, 0.0), now - self.last_read[name])
                self.last_read[name] = now
                self.received[name] += len(data)
                if not data:
                    self.selector.unregister(key.fileobj)

    def reset_gaps(self) -> None:
        self.max_gap.clear()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def statistics(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/statistics", timeout=5) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("tcp", "http", "udp", "rtp", "hls"), default="tcp")
    parser.add_argument("--rate", type=float, default=120, help="Mbit/s of the fast upstream")
    parser.add_argument("--segment", type=float, default=1, help="seconds of an HLS segment")
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--cpu", default="1", help="core to pin restreamer to ('' for none)")
    parser.add_argument("--burst", type=int, default=0, help="bytes of the fast upstream's first write")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    drained = [once(args) >= 0.95 * args.rate for _ in range(args.runs)]
    if args.runs > 1:
        print(f"{sum(drained)} of {args.runs} runs: the upstream sent at least 95 % of {args.rate:g} Mbit/s")


def once(args) -> float:
    """One measurement; the Mbit/s the fast upstream got out."""

    steady = listener()
    if args.mode in ("udp", "rtp"):
        fast = free_port(socket.SOCK_DGRAM)
        fast_url = f"{args.mode}://127.0.0.1:{fast}"
    else:
        fast = listener()
        scheme, path = {"http": ("http", "/fast.ts"), "hls": ("http", "/fast.m3u8")}.get(args.mode, (args.mode, ""))
        fast_url = f"{scheme}://127.0.0.1:{fast.getsockname()[1]}{path}"
    sent = multiprocessing.Value("q", 0)
    feeder = multiprocessing.Process(target=upstreams, daemon=True,
                                     args=(fast, steady, args.rate * 1e6, args.mode, sent, args.burst,
                                           args.segment))
    feeder.start()

    port = free_port()
    # A UDP receive buffer of 4 MB (as far as net.core.rmem_max allows).
    config = {"listen": f"127.0.0.1:{port}", "reconnect": 1, "inputbuffer": 22000,
              "resources": [
                  {"type": "stream", "serve": "/fast.ts", "remote": fast_url},
                  {"type": "stream", "serve": "/steady.ts", "remote": f"tcp://127.0.0.1:{steady.getsockname()[1]}"},
                  {"type": "api", "serve": "/statistics", "api": "statistics"}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "restreamer.json"
        path.write_text(json.dumps(config))
        command = [sys.executable, "-m", "restreamer", str(path)]
        if args.cpu and shutil.which("taskset"):
            command = ["taskset", "-c", args.cpu, *command]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=REPO)
        try:
            return run(args, port, server.pid, sent)
        finally:
            server.terminate()
            server.wait(10)
            feeder.terminate()


def run(args, port: int, pid: int, sent) -> float:
    deadline = time.monotonic() + 15
    while True:
        try:
            if all(s["connected"] for s in statistics(port)["streams"].values()):
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("throughput: restreamer did not come up")
        time.sleep(0.2)
    viewers = Viewers()
    for i in range(args.viewers):
        viewers.open(port, "/fast.ts", f"fast{i}")
    viewers.open(port, "/steady.ts", "steady")
    viewers.run(time.monotonic() + args.warmup)
    viewers.reset_gaps()
    before = dict(viewers.received), sent.value, cpu_seconds(pid), time.monotonic()
    dropped_before = statistics(port)["total_packets_dropped"]
    viewers.run(time.monotonic() + args.seconds)
    received, sent_after, cpu, now = viewers.received, sent.value, cpu_seconds(pid), time.monotonic()
    elapsed = now - before[3]
    dropped = statistics(port)["total_packets_dropped"] - dropped_before

    def mbit(nbytes: float) -> float:
        return nbytes * 8 / elapsed / 1e6

    segment = f" segment={args.segment:g} s" if args.mode == "hls" else ""
    print(f"mode={args.mode} target={args.rate:g} Mbit/s{segment} viewers={args.viewers} window={elapsed:.1f} s")
    print(f"upstream sent      {mbit(sent_after - before[1]):8.1f} Mbit/s")
    for name in sorted(received):
        if name.startswith("fast"):
            print(f"viewer {name:<10}  {mbit(received[name] - before[0][name]):8.1f} Mbit/s")
    print(f"steady viewer      {mbit(received['steady'] - before[0]['steady']):8.1f} Mbit/s, "
          f"longest gap {viewers.max_gap.get('steady', 0) * 1000:.0f} ms")
    print(f"restreamer cpu     {(cpu - before[2]) / elapsed:8.3f} cores, dropped packets {dropped}")
    if args.mode == "rtp":
        print(f"rtp missing        {statistics(port)['total_missing']} datagrams since start")
    return mbit(sent_after - before[1])


if __name__ == "__main__":
    main()
