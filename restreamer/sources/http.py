"""HTTP(S) upstreams through requests."""

from __future__ import annotations

import http.client

import gevent
import requests
import urllib3

from ..base import outbound
from .base import (KEEPALIVE_OPTIONS, READ_SIZE, Pending, SourceError, SourceSettings, describe,
                   timeout_or_none)

#: With ``timeout`` 0, seconds to connect, and then to wait for the response
#: head: an upstream that accepts but never answers must not hold the stream
#: for good.  Generous, since a tuner-backed server may answer only once tuned;
#: a ``readtimeout`` counts from the connect, and so may end the wait sooner.
HEAD_TIMEOUT = 10.0


def new_session() -> requests.Session:
    """A session for upstream requests: TCP keepalive, no compression."""
    session = outbound.session(socket_options=KEEPALIVE_OPTIONS)
    session.headers["Accept-Encoding"] = "identity"
    return session


class HTTPConnection:
    """A streaming GET.  ``timeout`` bounds connecting and waiting for the headers;
    after that the body is read as it arrives, however slowly (``readtimeout``
    is enforced by the upstream loop for every kind of source alike)."""

    def __init__(self, url: str, settings: SourceSettings):
        self._session = new_session()
        limit = timeout_or_none(settings.timeout, fallback=HEAD_TIMEOUT)
        # One deadline for connecting and the response head together, and no
        # socket timeout at all: a socket timeout would outlive the head and
        # cut a live body's pause short.
        try:
            with gevent.Timeout(limit, SourceError(f"no response within {limit:g} s")):
                response = self._session.get(url, stream=True, verify=settings.verify)
        except requests.RequestException as e:
            self._session.close()
            raise SourceError(reason(e)) from None
        except BaseException:  # our deadline, or the upstream loop's (readtimeout)
            self._session.close()
            raise
        if response.status_code >= 400:
            response.close()
            self._session.close()
            raise SourceError(f"HTTP {response.status_code} {response.reason}")
        self._response = response
        self.url = response.url  # after redirects
        self.content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        self._read1 = response.raw.read1
        # read1 stops at the end of an HTTP chunk, so only an unchunked body
        # hands over all that has arrived in one read.
        self.gathers = not response.raw.chunked
        # urllib3's reads may stop short of READ_SIZE with more on the socket.
        self.pending = Pending(response.raw.fileno())

    def read(self) -> bytes:
        try:
            return self._read1(READ_SIZE)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as e:
            # Bad chunking, a reset, a truncated body.  Anything else, such as
            # the upstream loop's readtimeout, is not ours to rename.
            raise SourceError(reason(e)) from None

    def read_all(self, limit: int) -> str:
        """The whole body as text, for a playlist; SourceError beyond ``limit`` bytes."""
        pieces, size = [], 0
        while piece := self.read():
            pieces.append(piece)
            size += len(piece)
            if size > limit:
                raise SourceError(f"a playlist larger than {limit} bytes")
        return b"".join(pieces).decode("utf-8", "replace")

    def close(self) -> None:
        self._response.close()
        self._session.close()


def reason(error: BaseException) -> str:
    """A short reason such as "Connection refused", as the socket sources give it,
    rather than the nested pool and retry wrappers requests and urllib3 add."""
    if isinstance(error, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(error, requests.Timeout):
        return "timed out waiting for the response"
    cause = _innermost(error)
    if isinstance(cause, OSError) and cause.strerror:
        return describe(cause)
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def _innermost(error: BaseException) -> BaseException:
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    return error
