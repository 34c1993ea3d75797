"""Lock files: an ``flock`` on a file, held for as long as its holder lives.

The one place restreamer calls ``flock``: the runtime directory's marker,
upstream ownership and the viewer census of gunicorn workers, and the sources
only one process may read.  The kernel drops a lock with the last descriptor
of its open file, so a process that dies, however, leaves no lock behind.  A
lock belongs to an open file, not to a process: two :class:`LockFile` of one
process on one path exclude each other as two processes' would.

Standard library only: gunicorn's master may import this before it forks.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator


class LockFile:
    """One open lock file (created 0600 if missing); :meth:`close` gives up its lock.

    ``path`` is never a symlink followed; with ``dir_fd`` it is relative to
    that open directory, the one its caller checked.
    """

    def __init__(self, path: str | os.PathLike, dir_fd: int | None = None):
        self.path = path
        # Close-on-exec: a forked command must not keep a worker's lock alive.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600,
                           dir_fd=dir_fd)

    def acquire(self) -> bool:
        """Take the lock unless another open file holds it; whether this one holds it now."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @contextmanager
    def held(self) -> Iterator[None]:
        """The lock for the ``with`` block, waited for: for critical sections of microseconds."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def taken(self) -> bool:
        """Whether another open file holds the lock (its holder still runs)."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        return False

    def write(self, text: str) -> None:
        """Leave ``text`` in the file for whoever is refused the lock (its holder's pid, say)."""
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def read(self, size: int = 32) -> str:
        """What the holder wrote (:meth:`write`), stripped; empty if nothing."""
        return os.pread(self._fd, size, 0).decode("ascii", "replace").strip()

    def close(self) -> None:
        """Release the lock (if held) and the file; again does nothing."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
