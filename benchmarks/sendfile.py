"""Which write path costs less CPU per window: one shared bytes chunk sent to
each viewer (``socket.send``), or ``os.sendfile`` per viewer from the same
window kept in a memfd ring (what Cubemap does from its backlog file)?

A child process drains every socket (epoll), so only the sender's CPU is
measured: per window, one call per viewer, on loopback TCP.

    python benchmarks/sendfile.py --viewers 10 300 1000 --window 26320 --windows 400
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import time


def drain(ports: list[int], ready) -> None:
    """The viewers: connect to each port, read everything until the sender closes."""
    poller = select.epoll()
    socks = {}
    for port in ports:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        poller.register(sock, select.EPOLLIN)
    os.write(ready, b"x")
    while socks:
        for fd, _ in poller.poll():
            try:
                data = socks[fd].recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                poller.unregister(fd)
                socks.pop(fd).close()
    os._exit(0)


def connect(viewers: int) -> tuple[list[socket.socket], int]:
    listeners = []
    for _ in range(viewers):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listeners.append(listener)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        drain([l.getsockname()[1] for l in listeners], ready_w)
    socks = []
    for listener in listeners:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        socks.append(sock)
        listener.close()
    os.read(ready_r, 1)
    return socks, pid


def run(path: str, viewers: int, window: int, windows: int) -> float:
    """CPU seconds of the sender per GB handed out."""
    socks, pid = connect(viewers)
    ring = os.memfd_create("backlog")
    slots = 64
    os.ftruncate(ring, slots * window)
    payload = os.urandom(window)
    for slot in range(slots):
        os.pwrite(ring, payload, slot * window)
    chunk = payload
    sent_total = 0
    start = time.process_time()
    for number in range(windows):
        slot = number % slots
        if path == "send":
            chunk = os.pread(ring, window, slot * window)  # read once per window, shared
            for sock in socks:
                try:
                    sent_total += sock.send(chunk)
                except BlockingIOError:
                    pass
        else:
            for sock in socks:
                try:
                    sent_total += os.sendfile(sock.fileno(), ring, slot * window, window)
                except BlockingIOError:
                    pass
        time.sleep(0.001)  # let the reader keep up, as a live stream's windows are spaced
    cpu = time.process_time() - start
    for sock in socks:
        sock.close()
    os.waitpid(pid, 0)
    os.close(ring)
    return cpu / (sent_total / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[10, 300, 1000])
    parser.add_argument("--window", type=int, default=26320, help="bytes per window (140 packets)")
    parser.add_argument("--windows", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    for viewers in args.viewers:
        figures = {path: [] for path in ("send", "sendfile")}
        for _ in range(args.reps):
            for path in figures:  # interleaved
                figures[path].append(run(path, viewers, args.window, args.windows))
        send, sendfile = (statistics.median(figures[p]) for p in ("send", "sendfile"))
        print(f"{viewers:5d} viewers: send {send:7.1f} s CPU/GB, sendfile {sendfile:7.1f} s CPU/GB, "
              f"sendfile/send {sendfile / send:.2f}")


if __name__ == "__main__":
    main()
