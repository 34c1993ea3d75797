"""Waiting for processes that are not our children (a restreamer's forked
upstreams) to end, through pidfds rather than polling."""

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
