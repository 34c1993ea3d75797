"""HTTP(S) upstreams through requests."""

from __future__ import annotations

import requests

from .. import __version__
from .base import READ_SIZE, SourceError, SourceSettings, timeout_or_none


class HTTPConnection:
    """A streaming GET.  ``timeout`` bounds connecting and waiting for the headers;
    after that the body is read as it arrives, however slowly (``readtimeout``
    is enforced by the upstream loop for every kind of source alike)."""

    def __init__(self, url: str, settings: SourceSettings):
        self._session = requests.Session()
        limit = timeout_or_none(settings.timeout)
        try:
            response = self._session.get(
                url, stream=True, timeout=(limit, limit),
                headers={"User-Agent": f"restreamer/{__version__}", "Accept-Encoding": "identity"},
            )
        except requests.RequestException as e:
            self._session.close()
            raise SourceError(_reason(e)) from None
        if response.status_code >= 400:
            response.close()
            self._session.close()
            raise SourceError(f"HTTP {response.status_code} {response.reason}")
        self._response = response
        sock = getattr(response.raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(None)  # the headers are in; from here a live stream may pause
        self._read1 = response.raw.read1

    def read(self) -> bytes:
        try:
            return self._read1(READ_SIZE)
        except requests.RequestException as e:
            raise SourceError(_reason(e)) from None
        except Exception as e:  # urllib3 protocol errors (bad chunking, reset)
            raise SourceError(f"{type(e).__name__}: {e}") from None

    def close(self) -> None:
        self._response.close()
        self._session.close()


def _reason(error: requests.RequestException) -> str:
    """The innermost cause, e.g. "Connection refused" rather than a pool repr."""
    cause: BaseException = error
    while cause.__context__ is not None and not isinstance(cause, OSError):
        cause = cause.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = str(cause)
    return text.rsplit(": ", 1)[-1].rstrip("')\"") if "Failed to resolve" not in text else "name resolution failed"
