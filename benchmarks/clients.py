#!/usr/bin/env python3
"""What misbehaving clients cost a running restreamer (CLI): memory and held connections.

``heads``: N clients at once each send a request head of 100 header fields
of 63 kB (6.3 MB, each line under the 64 KiB that http.client allows); the
server's resident memory (RSS) before and after, once every client has been
answered or cut off.  ``readers``: N clients with a 4 KiB receive buffer ask
for ``/metrics`` and never read; how many of their connections the server
still holds open (``ss``: established) ``droptimeout`` + 10 s later.  The
server has S on-demand streams (never started, so ``/metrics`` is as large
as with S streams).

    .venv/bin/python benchmarks/clients.py heads -n 30
    .venv/bin/python benchmarks/clients.py readers -n 40 --streams 2500
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server import RestreamerProcess  # noqa: E402
from tests.support.viewer import http_get  # noqa: E402

DROPTIMEOUT = 2
HEAD = (b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 63_000) for i in range(100)) + b"\r\n")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def send_head(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(HEAD)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass  # refused part-way: reset or broken pipe


def heads(process: RestreamerProcess, clients: int) -> None:
    before = rss_kib(process.proc.pid)
    threads = [threading.Thread(target=send_head, args=(process.port,)) for _ in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    time.sleep(1)  # let the server finish its lingering closes
    after = rss_kib(process.proc.pid)
    refused = len(process.find_logs("request refused"))
    print(f"heads: {clients} clients x {len(HEAD) / 1e6:.1f} MB: RSS {before / 1024:.1f} -> "
          f"{after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB), {refused} refusals logged, "
          f"{took:.1f} s")


def readers(process: RestreamerProcess, clients: int) -> None:
    size = len(http_get(process.url("/metrics"))[2])
    print(f"/metrics is {size / 1e6:.1f} MB")
    socks = []
    for _ in range(clients):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", process.port))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(sock)
    time.sleep(DROPTIMEOUT + 10)
    # Held: still established on the server's side (a connection the server
    # closed or reset is not, whatever the client has yet to read).
    listing = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{process.port} )"],
                             capture_output=True, text=True, check=True).stdout
    held = len(listing.splitlines())
    for sock in socks:
        sock.close()
    print(f"readers: {clients} clients never reading /metrics: {held} held after "
          f"droptimeout + 10 s ({DROPTIMEOUT + 10} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["heads", "readers"])
    parser.add_argument("-n", "--clients", type=int, default=30)
    parser.add_argument("--streams", type=int, default=10)
    args = parser.parse_args()
    config = {"droptimeout": DROPTIMEOUT, "ondemand": True, "resources": [
        {"type": "stream", "serve": f"/s{i}.ts", "remote": f"http://127.0.0.1:1/{i}.ts"}
        for i in range(args.streams)] + [
        {"type": "api", "api": "health", "serve": "/health"},
        {"type": "api", "api": "prometheus", "serve": "/metrics"}]}
    with tempfile.TemporaryDirectory() as directory:
        process = RestreamerProcess(config, directory).start(timeout=60)
        try:
            (heads if args.what == "heads" else readers)(process, args.clients)
        finally:
            process.close()


if __name__ == "__main__":
    main()
