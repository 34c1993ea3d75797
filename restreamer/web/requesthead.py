"""Strict parsing of a request's header section (RFC 9112), as gunicorn does.

pywsgi, like ``http.client``, accepts heads that other parsers read
differently: a front proxy and restreamer could then disagree on where a
request ends or what it asks for (request smuggling, e.g. past a proxy's ACL
on ``/control``).  Such heads are refused here with a ValueError, which the
handler answers with 400 and a close.
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO

from gevent.pywsgi import headers_factory

#: As http.client: longer lines or more lines are refused.
MAX_LINE = 65536
MAX_HEADERS = 100

#: field-name = token (RFC 9110 5.1): no space before the colon, no CTLs.
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Field values may hold visible characters, SP and HTAB: no NUL or other CTL.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class BadHead(ValueError):
    """A request head that is malformed or ambiguous."""


def read_headers(rfile: BinaryIO, version: str):
    """Read and check the header section from ``rfile``; pywsgi's header object."""
    lines = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise BadHead("header line too long")
        if line in (b"\r\n", b"\n", b""):
            break
        if len(lines) == MAX_HEADERS:
            raise BadHead(f"more than {MAX_HEADERS} headers")
        lines.append(line)
    fields = [_field(line) for line in lines]
    _check_framing(fields, version)
    headers = headers_factory(io.BytesIO(b"".join(lines) + b"\r\n"))
    if headers.status:
        raise BadHead(headers.status)
    return headers


def _field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise BadHead("obsolete line folding")
    name, colon, value = line.rstrip(b"\r\n").partition(b":")
    if not colon or not _NAME.fullmatch(name):
        raise BadHead("invalid header name")
    if _BAD_VALUE.search(value):
        raise BadHead(f"control character in header {name.decode('ascii')}")
    return name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")


def _check_framing(fields: list[tuple[str, str]], version: str) -> None:
    """One way to read where the body ends, and one Host."""
    def values(name: str) -> list[str]:
        return [value for key, value in fields if key == name]

    lengths = [part.strip() for value in values("content-length") for part in value.split(",")]
    encodings = values("transfer-encoding")
    if lengths and encodings:
        raise BadHead("both Content-Length and Transfer-Encoding")
    if any(not length.isdigit() or not length.isascii() for length in lengths):
        raise BadHead("Content-Length is not a number")
    if len(set(map(int, lengths))) > 1:
        raise BadHead("differing Content-Length headers")
    if encodings and [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
        raise BadHead("Transfer-Encoding other than chunked")
    hosts = values("host")
    if len(hosts) > 1:
        raise BadHead("more than one Host header")
    if version == "HTTP/1.1" and not hosts:
        raise BadHead("no Host header")


