"""What every upstream connection provides, and the settings it is opened with."""

from __future__ import annotations

import os
import select
import socket
from dataclasses import dataclass
from typing import Protocol

from urllib.parse import unquote, urlsplit

from gevent.monkey import get_original

#: Largest single read from an upstream.  Reads return what has arrived, so
#: this caps burst size only; it never makes a read wait for more data.
READ_SIZE = 65536


#: TCP keepalive on tcp and http upstreams, as the Go original's dialer sets
#: it: a host that vanishes without FIN or RST is noticed even when
#: ``readtimeout`` is 0.
KEEPALIVE_SECONDS = 15
KEEPALIVE_OPTIONS = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)] + [
    (socket.IPPROTO_TCP, getattr(socket, name), KEEPALIVE_SECONDS)
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL") if hasattr(socket, name)]


class SourceError(Exception):
    """An upstream failure with a reason fit for one log line."""

    @classmethod
    def from_os_error(cls, error: OSError, where: str = "") -> "SourceError":
        """The reason ``error`` gives, followed by the path or address it concerns."""
        reason = describe(error)
        return cls(f"{reason}: {where}" if where else reason)


def describe(error: OSError) -> str:
    """An OS error as one short reason: "Connection refused", not its errno and repr."""
    if isinstance(error, socket.gaierror):
        return f"name resolution failed: {error.strerror}"
    return error.strerror or str(error)


def resolve_path(base_dir: str, path: str) -> str:
    """A path from the config (``~`` expanded), relative to the config file's directory."""
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def file_path(url: str, base_dir: str) -> str:
    """The file a ``file://`` URL names (an upstream's or a static resource's),
    resolved as :func:`resolve_path` resolves a path from the config."""
    return resolve_path(base_dir, unquote(urlsplit(url).path))


@dataclass(frozen=True)
class SourceSettings:
    """The per-stream settings a connection needs (their defaults are the config's)."""

    timeout: float  # connect / response timeout in seconds, 0 = none
    inputbuffer: int  # packets; sizes the UDP receive buffer
    mru: int  # largest datagram, bytes
    clientinterface: str | None  # interface for multicast joins
    base_dir: str  # relative file paths resolve against this (see resolve_path)
    stream: str  # the stream's name, for the log lines a source writes itself
    verify: bool | str  # HTTPS: check certificates (against this CA bundle, if a path)
    variant: str | None = None  # HLS: the variant of a master playlist (None: the highest bandwidth)


class Connection(Protocol):
    """An open upstream.

    ``gathers`` (optional, default False) says that ``read()`` returns
    everything that has arrived so far, not one datagram, record or chunk:
    such a connection may be read less often without falling behind.
    ``pending`` (optional) says whether a read would return at once, for a
    connection whose reads may stop short of READ_SIZE with more waiting.
    """

    def read(self) -> bytes:
        """Whatever bytes have arrived, waiting only if none have; ``b""`` at the end."""

    def close(self) -> None:
        """Release everything; safe to call more than once."""


class Pending:
    """Whether data is waiting on a file descriptor: a poll that never waits
    (the unpatched one: this must not yield to the event loop)."""

    def __init__(self, fd: int):
        self._poll = get_original("select", "poll")()
        self._poll.register(fd, select.POLLIN)

    def __call__(self) -> bool:
        return bool(self._poll.poll(0))


def timeout_or_none(seconds: float, fallback: float | None = None) -> float | None:
    """The config's 0 means "no timeout", which sockets and requests spell None;
    a caller that must not wait forever passes its own ``fallback`` instead."""
    return seconds if seconds > 0 else fallback
