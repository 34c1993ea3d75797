"""Static resources: one file or URL, cached for ``cache`` seconds.

Serves exactly the configured ``remote`` whatever the request path, so no
request can reach any other file or host.  While a fetch is under way,
concurrent requests wait for it and share its result (an error too) instead
of fetching again, whatever ``cache`` is.

A fetch never blocks the event loop the viewers share: a file is opened
without waiting (a FIFO would wait for a writer) and must be a regular file
(a FIFO or ``/dev/zero`` is refused), and an HTTP fetch has one deadline
(``timeout``) for all of it, body included.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

import gevent
import requests
from flask import Request, Response

from ..base import outbound
from ..config import Config, StaticConfig
from ..log import get_logger
from ..ops.snapshot import Snapshot
from ..redact import redact_url
from ..sources.base import describe, file_path, timeout_or_none

#: Larger bodies are refused (502), as in the original: this is not a file server.
MAX_SIZE = 10 * 1024 * 1024
#: Seconds a fetch from a URL may take when ``timeout`` is 0.
DEFAULT_TIMEOUT = 30.0
#: A Content-Length as RFC 9110 spells it, ASCII digits only (str.isdigit()
#: takes "²", which int() refuses), and short enough for int().
_LENGTH = re.compile(r"[0-9]{1,18}")

_log = get_logger("static")


@dataclass(frozen=True)
class _Entry:
    status: int
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None


class StaticResource:
    """The cached content of one ``type: static`` resource."""

    def __init__(self, resource: StaticConfig, config: Config):
        self.serve = resource.serve
        self.url = resource.remote
        self.shown_url = redact_url(self.url)
        self.cache = resource.cache
        self.timeout = timeout_or_none(config.timeout, fallback=DEFAULT_TIMEOUT)
        self.base_dir = config.base_dir
        # Requests during a fetch share its result; errors are not cached:
        # the next request tries again.
        self._content = Snapshot(self._fetch,
                                 lambda entry, cost: self.cache if entry.status == 200 else 0.0)

    def respond(self, request: Request) -> Response:
        entry = self._content.get()
        if entry.status != 200:
            return Response(b"" if entry.status != 502 else b"Bad Gateway", status=entry.status)
        response = Response(entry.body, status=200,
                            headers={"Cache-Control": f"max-age={int(self.cache)}"})
        if entry.content_type:
            response.headers["Content-Type"] = entry.content_type
        else:
            del response.headers["Content-Type"]
        response.set_etag(entry.etag)
        return response.make_conditional(request)  # If-None-Match: 304

    def _fetch(self) -> _Entry:
        if urlsplit(self.url).scheme == "file":
            entry = self._read_file(file_path(self.url, self.base_dir))
        else:
            entry = self._download()
        if entry.status != 200:
            return entry
        etag = hashlib.blake2b(entry.body, digest_size=8).hexdigest()
        return _Entry(200, entry.body, entry.content_type, etag)

    def _read_file(self, path: str) -> _Entry:
        try:
            # O_NONBLOCK: opening a FIFO would wait for a writer, and the whole
            # process with it.
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
                info = os.fstat(f.fileno())
                if not stat.S_ISREG(info.st_mode):
                    return self._failed(403, "not a regular file")
                if info.st_size > MAX_SIZE:
                    return self._failed(502, f"file is {info.st_size} bytes, more than {MAX_SIZE}")
                body = f.read(MAX_SIZE + 1)  # it may have grown since
                if len(body) > MAX_SIZE:
                    return self._failed(502, f"file is more than {MAX_SIZE} bytes")
        except FileNotFoundError:
            return self._failed(404, "no such file")
        except PermissionError:
            return self._failed(403, "permission denied")
        except IsADirectoryError:
            return self._failed(403, "is a directory")  # as web servers answer for a listing
        except OSError as e:
            return self._failed(502, describe(e))
        return _Entry(200, body, mimetypes.guess_type(path)[0])

    def _download(self) -> _Entry:
        # requests' timeout bounds each read, not the whole fetch: an upstream
        # that trickles a byte now and then would hold every client that waits.
        try:
            with gevent.Timeout(self.timeout, _Late(f"no complete answer within {self.timeout:g} s")):
                return self._get()
        except _Late as e:
            return self._failed(502, str(e))

    def _get(self) -> _Entry:
        try:
            # identity: the body is served as it is, and its length is the
            # one the upstream announced (requests would decode a gzip body).
            with outbound.session() as session, session.get(
                    self.url, stream=True, timeout=self.timeout,
                    headers={"Accept-Encoding": "identity"}) as response:
                if response.status_code != 200:
                    return self._failed(502, f"HTTP {response.status_code} {response.reason}")
                headers = response.headers
                length = headers.get("Content-Length")
                chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
                if length is not None and not _LENGTH.fullmatch(length):
                    return self._failed(502, "upstream sent a malformed Content-Length")
                if not chunked and length is None:
                    # A close-delimited body cut short looks complete.
                    return self._failed(502, "upstream sent neither a Content-Length nor chunks")
                if length is not None and int(length) > MAX_SIZE:
                    return self._failed(502, f"upstream body is {int(length)} bytes, more than {MAX_SIZE}")
                body = _read_body(response, MAX_SIZE)
                if len(body) > MAX_SIZE:
                    return self._failed(502, f"upstream body is more than {MAX_SIZE} bytes")
                if not chunked and "Content-Encoding" not in headers and len(body) != int(length):
                    return self._failed(502, f"upstream sent {len(body)} of {length} bytes")
                return _Entry(200, body, headers.get("Content-Type"))
        except requests.RequestException as e:
            return self._failed(502, type(e).__name__)

    def _failed(self, status: int, reason: str) -> _Entry:
        _log.warning("static fetch failed", serve=self.serve, url=self.shown_url, status=status,
                     reason=reason)
        return _Entry(status)


class _Late(Exception):
    """The whole fetch took longer than ``timeout``."""


def _read_body(response: requests.Response, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body (one more shows it is too long),
    decoded if the upstream encoded it all the same.

    Through ``iter_content``, not ``raw.read``: only then are urllib3's errors
    (a body cut short of its Content-Length, a reset) wrapped as requests'.
    """
    body = bytearray()
    for piece in response.iter_content(65536):
        body += piece
        if len(body) > limit:
            break
    return bytes(body)

