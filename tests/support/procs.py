"""Waiting for processes that are not our children (a restreamer's forked
upstreams) to end, through pidfds rather than polling; and the ports a
process group's sockets hold, for servers that were told port 0."""

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


def bound_ports(pgid: int, protocol: str) -> list[int]:
    """The local ports of the ``protocol`` ("tcp" or "udp") sockets held by
    the processes of process group ``pgid``, TCP ones only when listening.

    Read from /proc: what a server bound to port 0 got, where it does not say.
    """
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
    for table in (protocol, protocol + "6"):
        with open(f"/proc/net/{table}") as lines:
            next(lines)  # the column names
            for line in lines:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode in inodes and (protocol == "udp" or state == _TCP_LISTEN):
                    ports.add(int(local.rpartition(":")[2], 16))
    return sorted(ports)


#: The TCP state in /proc/net/tcp of a listening socket.
_TCP_LISTEN = "0A"
