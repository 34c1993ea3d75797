"""Upstream connections, one module per kind of source.

Every kind opens a :class:`~restreamer.sources.base.Connection`: an object
whose ``read()`` returns whatever bytes have arrived (``b""`` at the end of the
stream) and whose ``close()`` releases everything it holds.  The
:class:`~restreamer.core.upstream.Upstream` greenlet drives connections in turn;
it knows nothing of schemes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .base import Connection, SourceError, SourceSettings


def open_connection(url: str, settings: SourceSettings) -> Connection:
    """Connect to ``url``; raises :class:`SourceError` (or ``OSError``) with the reason."""
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        from .http import HTTPConnection as kind
    elif scheme == "file":
        from .file import FileConnection as kind
    elif scheme == "loop":
        from .loop import LoopConnection as kind
    elif scheme == "fork":
        from .fork import ForkConnection as kind
    elif scheme == "udp":
        from .datagram import UDPConnection as kind
    elif scheme == "unixgram":
        from .datagram import UnixDatagramConnection as kind
    elif scheme in ("tcp", "unix", "unixpacket"):
        from .sockets import SocketConnection as kind
    else:
        raise SourceError(f"unsupported URL scheme {scheme!r}")
    return kind(url, settings)


__all__ = ["Connection", "SourceError", "SourceSettings", "open_connection"]
