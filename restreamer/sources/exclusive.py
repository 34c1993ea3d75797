"""Sources one process at a time may read: a FIFO (two readers split its
bytes), a unicast UDP port (a second bind fails) and a unixgram path (a
second bind replaces the first one's socket).

Under ``gunicorn -w N`` every worker runs its own upstreams, so such a
source is claimed with a ``flock`` on a lock file named for it before it is
opened: the first worker reads it, the others are refused with the reason
(their viewers of that stream get a 404) and try again every ``reconnect``
seconds, so one of them takes over when the reader exits.  Two restreamer
processes on one machine are kept apart the same way.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from ..base.lockfile import LockFile
from .base import SourceError


def lock_directory() -> str:
    """A directory of this user's, shared by every process of theirs."""
    path = os.path.join(tempfile.gettempdir(), f"restreamer-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


class Claim:
    """This process's hold on one source, named by ``identity``; ``release()`` gives it up."""

    def __init__(self, identity: str, shown: str):
        name = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self._lock = LockFile(os.path.join(lock_directory(), f"{name}.lock"))
        if not self._lock.acquire():
            holder = self._lock.read() or "?"
            self.release()
            raise SourceError(f"{shown} is read by another process (pid {holder}); it can have "
                              f"one reader only (under gunicorn, one worker's)")
        self._lock.write(f"{os.getpid()}\n")

    def release(self) -> None:
        self._lock.close()
