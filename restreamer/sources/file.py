"""File upstreams: ``file:///path`` names a regular file or a FIFO."""

from __future__ import annotations

import os
import stat

import gevent
from gevent.os import make_nonblocking, nb_read

from .base import READ_SIZE, SourceError, SourceSettings, file_path
from .exclusive import Claim


class FileConnection:
    """A regular file is read to its end at disk speed; a FIFO is read as data comes.

    A FIFO is opened read-write, as the original does: holding a write end
    ourselves means a writer that closes and reopens the FIFO causes no end of
    stream, and opening never blocks waiting for a writer.
    """

    def __init__(self, url: str, settings: SourceSettings):
        path = file_path(url, settings.base_dir)
        self._claim = None
        try:
            self._fifo = stat.S_ISFIFO(os.stat(path).st_mode)
            if self._fifo:
                self._claim = Claim(f"fifo {os.path.realpath(path)}", f"the FIFO {path}")
            self._fd = os.open(path, (os.O_RDWR if self._fifo else os.O_RDONLY) | os.O_CLOEXEC)
        except OSError as e:
            if self._claim is not None:
                self._claim.release()
            raise SourceError.from_os_error(e, path) from None
        if self._fifo:
            make_nonblocking(self._fd)
        self.gathers = self._fifo  # a regular file is read at disk speed, never waited for

    def read(self) -> bytes:
        try:
            if self._fifo:
                return nb_read(self._fd, READ_SIZE)
            data = os.read(self._fd, READ_SIZE)
            gevent.sleep(0)  # a disk read never blocks in the event loop; let others run
            return data
        except OSError as e:
            raise SourceError.from_os_error(e) from None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._claim is not None:
            self._claim.release()
