"""Static resources: one file or URL, cached for ``cache`` seconds.

Serves exactly the configured ``remote`` whatever the request path, so no
request can reach any other file or host.  While a fetch is under way,
concurrent requests wait for it and share its result (an error too) instead
of fetching again, whatever ``cache`` is.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import requests
from flask import Request, Response
from gevent.event import AsyncResult

from ..config import Config, StaticConfig
from ..log import get_logger
from ..sources.base import USER_AGENT, describe, resolve_path, timeout_or_none

#: Larger bodies are refused (502), as in the original: this is not a file server.
MAX_SIZE = 10 * 1024 * 1024
#: Seconds a fetch from a URL may take when ``timeout`` is 0.
DEFAULT_TIMEOUT = 30.0

_log = get_logger("static")


@dataclass(frozen=True)
class _Entry:
    status: int
    body: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    fetched: float = 0.0


class StaticResource:
    """The cached content of one ``type: static`` resource."""

    def __init__(self, resource: StaticConfig, config: Config):
        self.serve = resource.serve
        self.url = resource.remote
        self.cache = resource.cache
        self.timeout = timeout_or_none(config.timeout, fallback=DEFAULT_TIMEOUT)
        self.base_dir = config.base_dir
        self._entry: _Entry | None = None
        self._fetching: AsyncResult | None = None  # the fetch under way, if any

    def respond(self, request: Request) -> Response:
        entry = self._current()
        if entry.status != 200:
            return Response(b"" if entry.status != 502 else b"Bad Gateway", status=entry.status)
        headers = {"ETag": entry.etag, "Cache-Control": f"max-age={int(self.cache)}"}
        if entry.content_type:
            headers["Content-Type"] = entry.content_type
        if _matches(request.headers.get("If-None-Match"), entry.etag):
            return Response(status=304, headers=headers)
        response = Response(entry.body, status=200, headers=headers)
        if not entry.content_type:
            del response.headers["Content-Type"]
        return response

    def _current(self) -> _Entry:
        if self._fresh(self._entry):
            return self._entry
        if self._fetching is not None:
            return self._fetching.get()  # requests during a fetch share its result
        self._fetching = fetching = AsyncResult()
        try:
            entry = self._fetch()
        except BaseException as e:
            fetching.set_exception(e)
            raise
        finally:
            self._fetching = None
        # Errors are not cached: the next request tries again.
        self._entry = entry if entry.status == 200 else None
        fetching.set(entry)
        return entry

    def _fresh(self, entry: _Entry | None) -> bool:
        return entry is not None and self.cache > 0 and time.monotonic() - entry.fetched < self.cache

    def _fetch(self) -> _Entry:
        parts = urlsplit(self.url)
        if parts.scheme == "file":
            entry = self._read_file(resolve_path(self.base_dir, unquote(parts.path)))
        else:
            entry = self._download()
        if entry.status != 200:
            return entry
        etag = '"' + hashlib.blake2b(entry.body, digest_size=8).hexdigest() + '"'
        return _Entry(200, entry.body, entry.content_type, etag, time.monotonic())

    def _read_file(self, path: str) -> _Entry:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_SIZE:
                    return self._failed(502, f"file is {size} bytes, more than {MAX_SIZE}")
                body = f.read(MAX_SIZE + 1)
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
        try:
            with requests.get(self.url, stream=True, timeout=self.timeout,
                              headers={"User-Agent": USER_AGENT}) as response:
                if response.status_code != 200:
                    return self._failed(502, f"HTTP {response.status_code} {response.reason}")
                length = response.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    return self._failed(502, "upstream did not send a Content-Length")
                if int(length) > MAX_SIZE:
                    return self._failed(502, f"upstream body is {length} bytes, more than {MAX_SIZE}")
                body = _read_body(response, int(length))
                if len(body) != int(length):
                    return self._failed(502, f"upstream sent {len(body)} of {length} bytes")
                return _Entry(200, body, response.headers.get("Content-Type"))
        except requests.RequestException as e:
            return self._failed(502, type(e).__name__)

    def _failed(self, status: int, reason: str) -> _Entry:
        _log.warning("static fetch failed", serve=self.serve, url=self.url, status=status, reason=reason)
        return _Entry(status)


def _read_body(response: requests.Response, length: int) -> bytes:
    """At most ``length + 1`` bytes of the body (one more shows it is too long).

    Through ``iter_content``, not ``raw.read``: only then are urllib3's errors
    (a body cut short of its Content-Length, a reset) wrapped as requests'.
    """
    body = bytearray()
    for piece in response.iter_content(65536):
        body += piece
        if len(body) > length:
            break
    return bytes(body)


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    bare = etag.strip('"')
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == bare:
            return True
    return False

