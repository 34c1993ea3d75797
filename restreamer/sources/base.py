"""What every upstream connection provides, and the settings it is opened with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from ..version import __version__

#: What restreamer calls itself in every HTTP request it makes (upstreams,
#: statics, notifications).
USER_AGENT = f"restreamer/{__version__}"

#: Largest single read from an upstream.  Reads return what has arrived, so
#: this caps burst size only; it never makes a read wait for more data.
READ_SIZE = 65536


class SourceError(Exception):
    """An upstream failure with a reason fit for one log line."""


@dataclass(frozen=True)
class SourceSettings:
    """The per-stream settings a connection needs (their defaults are the config's)."""

    timeout: float  # connect / response timeout in seconds, 0 = none
    inputbuffer: int  # packets; sizes the UDP receive buffer
    mru: int  # largest datagram, bytes
    clientinterface: str | None  # interface for multicast joins
    base_dir: str  # relative file paths resolve against this
    log: Callable[..., None] | None = None  # structured logger for side output (fork stderr)


class Connection(Protocol):
    """An open upstream.

    ``gathers`` (optional, default False) says that ``read()`` returns
    everything that has arrived so far, not one datagram, record or chunk:
    such a connection may be read less often without falling behind.
    """

    def read(self) -> bytes:
        """Whatever bytes have arrived, waiting only if none have; ``b""`` at the end."""

    def close(self) -> None:
        """Release everything; safe to call more than once."""


def timeout_or_none(seconds: float) -> float | None:
    """The config's 0 means "no timeout"; sockets and requests spell that None."""
    return seconds if seconds > 0 else None
