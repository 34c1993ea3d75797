"""Waiting for processes that are not our children (a restreamer's forked
upstreams) to end, through pidfds rather than polling; and the UDP ports
a process group's sockets hold, for sources that were told port 0."""

import os
import select


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


def _ports(pgid: int, tables: tuple[str, ...], state: str | None = None) -> list[int]:
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
    ports = set()
    for table in tables:
        with open(table) as lines:
            next(lines)  # the column names
            for line in lines:
                fields = line.split()
                local, inode = fields[1], fields[9]
                if inode in inodes and state in (None, fields[3]):
                    ports.add(int(local.rpartition(":")[2], 16))
    return sorted(ports)
