"""Socket upstreams: ``tcp://host:port``, ``unix:///path`` and ``unixpacket:///path``
connect to a server; ``unixgram:///path`` receives datagrams sent to ``path``."""

from __future__ import annotations

import os
import socket
import stat
from urllib.parse import urlsplit

from .base import READ_SIZE, SourceError, SourceSettings, timeout_or_none

_UNIX_TYPES = {
    "unix": socket.SOCK_STREAM,
    "unixpacket": socket.SOCK_SEQPACKET,
}


class SocketConnection:
    """A connected socket read with ``recv``, which returns what has arrived."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        limit = timeout_or_none(settings.timeout)
        self._read_size = max(READ_SIZE, settings.mru)
        try:
            if parts.scheme == "tcp":
                self._sock = socket.create_connection((parts.hostname, parts.port), timeout=limit)
            else:
                self._sock = socket.socket(socket.AF_UNIX, _UNIX_TYPES[parts.scheme])
                self._sock.settimeout(limit)
                try:
                    self._sock.connect(parts.path)
                except BaseException:
                    self._sock.close()
                    raise
        except socket.timeout:
            raise SourceError("connect timed out") from None
        except socket.gaierror as e:
            raise SourceError(f"name resolution failed: {e.strerror}") from None
        except OSError as e:
            raise SourceError(e.strerror or str(e)) from None
        self._sock.settimeout(None)
        self._recv = self._sock.recv

    def read(self) -> bytes:
        try:
            return self._recv(self._read_size)
        except OSError as e:
            raise SourceError(e.strerror or str(e)) from None

    def close(self) -> None:
        self._sock.close()


class DatagramReceiver:
    """A unix datagram socket bound at the URL's path, as ``udp://`` binds a port.

    Datagrams have no connection to dial: a sender addresses them to a path,
    so restreamer owns that path while the stream runs.  A stale socket file
    left by an earlier run is replaced; any other file is left alone.
    """

    def __init__(self, url: str, settings: SourceSettings):
        self._path = urlsplit(url).path
        self._mru = settings.mru
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _remove_stale_socket(self._path)
            self._sock.bind(self._path)
        except OSError as e:
            self._sock.close()
            raise SourceError(f"{e.strerror or e}: {self._path}") from None

    def read(self) -> bytes:
        try:
            return self._sock.recv(self._mru)
        except OSError as e:
            raise SourceError(e.strerror or str(e)) from None

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._sock.close()
            _remove_stale_socket(self._path)


def _remove_stale_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
