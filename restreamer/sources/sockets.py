"""Connected socket upstreams: ``tcp://host:port``, ``unix:///path`` and
``unixpacket:///path``."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from .base import KEEPALIVE_OPTIONS, READ_SIZE, SourceError, SourceSettings, timeout_or_none

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
        except OSError as e:  # refused, unreachable, or a name that does not resolve
            raise SourceError.from_os_error(e) from None
        self._sock.settimeout(None)
        if parts.scheme == "tcp":
            for option in KEEPALIVE_OPTIONS:
                self._sock.setsockopt(*option)
        self._recv = self._sock.recv
        self.gathers = parts.scheme != "unixpacket"  # a packet socket returns one record a read

    def read(self) -> bytes:
        try:
            return self._recv(self._read_size)
        except OSError as e:
            raise SourceError.from_os_error(e) from None

    def close(self) -> None:
        self._sock.close()

