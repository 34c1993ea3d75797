"""The whole server's viewer count, shared by its workers through files.

Each worker claims a record: it holds an exclusive ``flock`` on
``worker-K.lock`` for as long as it lives, and keeps its viewer count in slot
K of the mmap'd ``viewers`` file.  A record counts only while its lock is
held, so a worker that dies (however) leaks no slots: the kernel drops its
lock, and the next admission zeroes its record.  Admission itself is
serialised by ``admission.lock``, held for the few microseconds of a check
and an increment, so ``maxconnections`` holds exactly across workers.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from ..base.lockfile import LockFile

#: Workers one server may have.
RECORDS = 256
_RECORD_SIZE = 8
#: The record after the workers': whether the server was at ``fullconnections``
#: when a worker last looked, so that one worker, not each, reports a crossing.
_FULL = RECORDS
_SIZE = (RECORDS + 1) * _RECORD_SIZE


def _open_records(directory: Path) -> int:
    """The census file, its whole size allocated: on a full disk that is
    ENOSPC here, where a sparse file would be SIGBUS at the first count."""
    path = directory / "viewers"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.posix_fallocate(fd, 0, _SIZE)
    except OSError as e:
        os.close(fd)
        raise OSError(e.errno, e.strerror, str(path)) from None
    return fd


def allocate(directory: Path) -> None:
    """Make the census file in ``directory`` (the master does, before its
    workers start, so that a full disk is one refusal, not a crash per worker)."""
    os.close(_open_records(directory))


class Census:
    """This worker's record among its siblings', and admission against their total."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._admission = LockFile(directory / "admission.lock")
        self._peers: dict[int, LockFile] = {}  # record -> its lock file, for liveness checks
        with self._admission.held():
            fd = _open_records(directory)
            try:
                self._map = mmap.mmap(fd, _SIZE)
            finally:
                os.close(fd)
            self._counts = memoryview(self._map).cast("q")
            self.index, self._own = self._claim()
            self._counts[self.index] = 0

    def _claim(self) -> tuple[int, LockFile]:
        for index in range(RECORDS):
            lock = LockFile(self._record_lock(index))
            if lock.acquire():
                return index, lock
            lock.close()
        raise RuntimeError(f"more than {RECORDS} workers share {self.directory}")

    def _record_lock(self, index: int) -> Path:
        return self.directory / f"worker-{index}.lock"

    def alive(self, index: int) -> bool:
        """Whether the worker of record ``index`` still runs (holds its lock)."""
        if index == self.index:
            return True
        lock = self._peers.get(index)
        if lock is None:
            lock = self._peers[index] = LockFile(self._record_lock(index))
        return lock.taken()

    def _total(self) -> int:
        counts = self._counts
        total = 0
        for index in range(RECORDS):
            count = counts[index]
            if count:
                if self.alive(index):
                    total += count
                else:
                    counts[index] = 0  # a dead worker's viewers are gone with it
        return total

    def total(self) -> int:
        """Viewers of every live worker."""
        with self._admission.held():
            return self._total()

    def admit(self, limit: int) -> bool:
        """Count one more viewer of this worker unless the server has ``limit`` (0: none)."""
        with self._admission.held():
            if limit and self._total() >= limit:
                return False
            self._counts[self.index] += 1
            return True

    def release(self) -> None:
        """One viewer of this worker has left."""
        with self._admission.held():
            self._counts[self.index] -= 1

    def crossed(self, limit: int) -> bool | None:
        """True if the server's viewers have reached ``limit`` since any worker
        last asked, False if they have fallen below it, None if neither."""
        with self._admission.held():
            full = self._total() >= limit
            if full == bool(self._counts[_FULL]):
                return None
            self._counts[_FULL] = int(full)
            return full

    @property
    def first(self) -> bool:
        """This worker holds record 0 (the one a restarted first worker gets again)."""
        return self.index == 0
