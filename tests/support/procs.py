"""Waiting for processes that are not our children (a restreamer's forked
upstreams) to end, through pidfds rather than polling; and the UDP ports
a process group's sockets hold, for sources that were told port 0, with
what the kernel holds and dropped for each."""

import os
import select
import socket
import struct
from typing import NamedTuple


class ProcessWatch:
    """A handle on a running process by pid, taken while it is known to run
    (so a reused pid cannot be mistaken for it later)."""

    def __init__(self, pid: int):
        self.pid = pid
        self._fd = os.pidfd_open(pid)

    def wait_gone(self, timeout: float = 5) -> bool:
        """Wait until the process has exited (a zombie counts); False on timeout."""
        readable, _, _ = select.select([self._fd], [], [], timeout)
        return bool(readable)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def udp_ports(pgid: int) -> list[int]:
    """The local ports of the UDP sockets held by the processes of process
    group ``pgid``: what a source told ``udp://HOST:0`` bound, read from /proc."""
    return _ports(pgid, ("/proc/net/udp", "/proc/net/udp6"))


def listening_ports(pgid: int) -> list[int]:
    """The TCP ports the processes of process group ``pgid`` listen on (what
    ``listen`` ``HOST:0`` bound, when no log line tells it), read from /proc."""
    return _ports(pgid, ("/proc/net/tcp", "/proc/net/tcp6"), state="0A")


class UDPSocket(NamedTuple):
    queued: int  # bytes received and not yet read
    drops: int  # datagrams the kernel dropped for it (its receive buffer full)


def udp_sockets(pgid: int) -> dict[tuple[str, int], UDPSocket]:
    """The IPv4 UDP sockets of process group ``pgid`` by local (address,
    port), as /proc/net/udp counts them."""
    sockets = {}
    for fields in _rows(pgid, ("/proc/net/udp",)):
        address, port = fields[1].split(":")
        queued = fields[4].split(":")[1]
        # The address is the in-memory word printed as a number: packed natively, its bytes again.
        sockets[socket.inet_ntoa(struct.pack("=I", int(address, 16))), int(port, 16)] = UDPSocket(
            int(queued, 16), int(fields[12]))
    return sockets


def _ports(pgid: int, tables: tuple[str, ...], state: str | None = None) -> list[int]:
    return sorted({int(fields[1].rpartition(":")[2], 16) for fields in _rows(pgid, tables)
                   if state in (None, fields[3])})


def _rows(pgid: int, tables: tuple[str, ...]) -> list[list[str]]:
    """The rows (split in fields) of the /proc/net ``tables`` that are sockets
    held by the processes of process group ``pgid``."""
    inodes = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                target = os.readlink(fd.path)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
        except OSError:  # gone meanwhile
            continue
    rows = []
    for table in tables:
        with open(table) as lines:
            next(lines)  # the column names
            rows += [fields for fields in map(str.split, lines) if fields[9] in inodes]
    return rows
