"""Upstream connections, one module per kind of source.

Every kind opens a :class:`~restreamer.sources.base.Connection`: an object
whose ``read()`` returns whatever bytes have arrived (``b""`` at the end of the
stream) and whose ``close()`` releases everything it holds.  The
:class:`~restreamer.core.upstream.Upstream` greenlet drives connections in turn;
it knows nothing of schemes.

:data:`SCHEMES` is the one table of URL schemes: the config validates remotes
with :func:`url_problem` and :func:`open_connection` opens them from it.
"""

from __future__ import annotations

import importlib
import shutil
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..redact import redact_url
from .base import Connection, SourceError, SourceSettings


@dataclass(frozen=True)
class Scheme:
    """Where a scheme's connection class lives, and what its URLs must name."""

    module: str  # under restreamer.sources
    connection: str  # name of the class (or function) in that module that opens a connection
    needs: tuple[str, ...]  # of "host", "port", "path", "target" (a path or an opaque name), "command"


SCHEMES = {
    # HLS where the path ends in .m3u8 or the answer is a playlist, else a streaming GET.
    "http": Scheme("hls", "open_http", ("host",)),
    "https": Scheme("hls", "open_http", ("host",)),
    "file": Scheme("file", "FileConnection", ("path",)),
    "tcp": Scheme("sockets", "SocketConnection", ("host", "port")),
    "udp": Scheme("datagram", "UDPConnection", ("port",)),  # udp://:PORT: every interface
    "rtp": Scheme("rtp", "RTPConnection", ("port",)),  # rtp://[SOURCE]@GROUP:PORT as udp://
    "unix": Scheme("sockets", "SocketConnection", ("path",)),
    "unixgram": Scheme("datagram", "UnixDatagramConnection", ("path",)),
    "unixpacket": Scheme("sockets", "SocketConnection", ("path",)),
    "fork": Scheme("fork", "ForkConnection", ("command",)),  # fork://ffmpeg: found on PATH
    "loop": Scheme("loop", "LoopConnection", ("target",)),
}
#: What a stream's remotes may use: every scheme above.
STREAM_SCHEMES = tuple(SCHEMES)
#: What a static resource's remote may use (read whole, not streamed).
STATIC_SCHEMES = ("file", "http", "https")
#: Where notifications may go.
NOTIFICATION_SCHEMES = ("http", "https")


def url_problem(url: str, schemes: tuple[str, ...] = STREAM_SCHEMES) -> str | None:
    """Why ``url`` cannot be opened with one of ``schemes``, or None.

    The URL is shown redacted: a config error must not print its password.
    """
    shown = repr(redact_url(url))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        # Not str(e): Python's message quotes the text it could not parse, a password maybe.
        return f"invalid URL {shown}: " + ("its port is not a number from 0 to 65535" if "Port" in str(e)
                                           else "unbalanced brackets" if "IPv6" in str(e) else "malformed")
    if parts.scheme not in schemes or parts.scheme not in SCHEMES:
        return f"unsupported URL scheme in {shown} (expected one of {', '.join(schemes)})"
    needs = SCHEMES[parts.scheme].needs
    if "host" in needs and not parts.hostname:
        return f"URL {shown} has no host"
    if "port" in needs and port is None:
        return f"URL {shown} has no port"
    if "path" in needs and not parts.path:
        return f"URL {shown} has no path"
    if "target" in needs and not (parts.path or parts.netloc):
        return f"URL {shown} names no file"
    if "command" in needs and not (parts.path or parts.netloc):
        return f"URL {shown} names no command"
    return None


def host_problem(url: str, clientinterface: str | None) -> str | None:
    """What this host lacks to open ``url``: the network interface a multicast
    join names, or a ``fork://`` command that can be run; None if nothing.

    Only ``--check`` asks: either may appear after the server has started
    (a hotplugged interface, a package installed), so serving never refuses.
    """
    if clientinterface:
        try:
            socket.if_nametoindex(clientinterface)  # as the multicast join looks it up
        except OSError:
            return f"no network interface {clientinterface!r} on this host"
    parts = urlsplit(url)
    if parts.scheme == "fork":
        command = unquote(parts.netloc + parts.path)  # as sources.fork runs it
        if shutil.which(command) is None:
            where = "" if "/" in command else " on PATH"
            return f"command {command!r} not found{where}, or not executable"
    return None


def open_connection(url: str, settings: SourceSettings) -> Connection:
    """Connect to ``url``; raises :class:`SourceError` (or ``OSError``) with the reason."""
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise SourceError(f"unsupported URL scheme {scheme!r}")
    spec = SCHEMES[scheme]
    kind = getattr(importlib.import_module(f".{spec.module}", __name__), spec.connection)
    return kind(url, settings)


__all__ = ["Connection", "SCHEMES", "STATIC_SCHEMES", "STREAM_SCHEMES", "NOTIFICATION_SCHEMES",
           "SourceError", "SourceSettings", "host_problem", "open_connection", "url_problem"]
