"""Strict parsing of a request's head and body framing (RFC 9112), as gunicorn does.

pywsgi, like ``http.client``, accepts requests that other parsers read
differently: a front proxy and restreamer could then disagree on where a
request ends or what it asks for (request smuggling, e.g. past a proxy's ACL
on ``/control``).  Such requests are refused here with a ValueError, which
the handler answers with 400 (431 for a head too large) and a close.
"""

from __future__ import annotations

import email.parser
import re
import socket
from typing import BinaryIO

import gevent
from gevent.pywsgi import OldMessage

#: Longest line of a head (request line, header field, chunk-size line),
#: CRLF included: gunicorn refuses lines over 8190 bytes and CRLF.
MAX_LINE = 8192
#: Most header fields, as gunicorn.
MAX_HEADERS = 100
#: Longest header section: what one connection may make the server hold,
#: as nginx's 4 buffers of 8 KiB bound it, with room for large cookies.
MAX_HEAD = 64 * 1024
#: After refusing a request head, how long (s) and how much (bytes) of the
#: rest of it is read and thrown away before the connection is closed.
LINGER_TIME = 2.0
LINGER_BYTES = 1024 * 1024

#: method SP request-target SP HTTP-version CRLF, nothing looser: one space
#: each, an upper-case token (methods are case-sensitive), a target without
#: controls or spaces, HTTP/1.0 or HTTP/1.1 (HTTP/0.9 has no version).
_REQUEST_LINE = re.compile(r"[A-Z0-9!#$%&'*+\-.^_`|~]+ [^\x00-\x20\x7f]+ HTTP/1\.[01]\r\n")
#: field-name = token (RFC 9110 5.1): no space before the colon, no CTLs.
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Field values may hold visible characters, SP and HTAB: no NUL or other CTL.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
#: chunk-size [ chunk-ext ] CRLF, the extension's characters loosely (they are ignored).
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[\x09\x20-\x7e\x80-\xff]*)?\r\n")


class BadHead(ValueError):
    """A request that is malformed or ambiguous."""


class HeadTooLarge(BadHead):
    """A request head over the limits (431)."""


def check_request_line(line: str) -> None:
    """Refuse any request line but ``METHOD target HTTP/1.x`` ending in CRLF."""
    if not _REQUEST_LINE.fullmatch(line):
        raise BadHead("malformed request line")


def read_headers(rfile: BinaryIO, version: str):
    """Read and check the header section from ``rfile``; pywsgi's header object."""
    lines = []
    size = 0
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if line == b"\r\n":
            break
        if len(line) > MAX_LINE:
            raise HeadTooLarge("header line too long")
        if not line.endswith(b"\r\n"):
            raise BadHead("header line does not end in CRLF" if line else "head cut short")
        if len(lines) == MAX_HEADERS:
            raise HeadTooLarge(f"more than {MAX_HEADERS} header fields")
        size += len(line)
        if size > MAX_HEAD:
            raise HeadTooLarge(f"header section over {MAX_HEAD} bytes")
        lines.append(line)
    fields = [_field(line) for line in lines]
    _check_framing(fields, version)
    # As http.client.parse_headers builds it, without its own limits (checked above).
    return email.parser.Parser(_class=OldMessage).parsestr(b"".join(lines).decode("latin-1"))


def _field(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise BadHead("obsolete line folding")
    name, colon, value = line[:-2].partition(b":")
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
    if len(lengths) > 1:
        # Even equal ones: a proxy in front may have read only one of them.
        raise BadHead("more than one Content-Length")
    if lengths and (not lengths[0].isdigit() or not lengths[0].isascii()):
        raise BadHead("Content-Length is not a number")
    if encodings and [e.strip().lower() for e in ",".join(encodings).split(",")] != ["chunked"]:
        raise BadHead("Transfer-Encoding other than chunked")
    hosts = values("host")
    if len(hosts) > 1:
        raise BadHead("more than one Host header")
    if version == "HTTP/1.1" and not hosts:
        raise BadHead("no Host header")


def discard_body(rfile: BinaryIO, length: int | None, chunked: bool) -> None:
    """Read a request body (``length`` bytes, or chunks) and throw it away,
    refusing chunk framing that is not exactly RFC 9112's."""
    if chunked:
        _discard_chunks(rfile)
        return
    left = length or 0
    while left:
        data = rfile.read(min(left, 65536))
        if not data:
            raise BadHead("request body cut short")
        left -= len(data)


def _discard_chunks(rfile: BinaryIO) -> None:
    while True:
        line = rfile.readline(MAX_LINE + 1)
        match = _CHUNK_LINE.fullmatch(line)
        if match is None:
            raise BadHead("malformed chunk-size line" if line else "request body cut short")
        size = int(match.group(1), 16)
        if size == 0:
            break
        discard_body(rfile, size, False)
        if rfile.read(2) != b"\r\n":
            raise BadHead("chunk data does not end in CRLF")
    # Trailer fields, checked as header fields are, then the empty line.
    read_headers(rfile, "HTTP/1.0")


def refuse(sock: socket.socket, response: bytes, linger: bool) -> None:
    """Send the refusal of a request head, then close without losing it.

    Closing a socket that still holds unread input makes the kernel reset
    the connection, and a reset can destroy the refusal before the client
    has read it (a client still sending an oversized head would see only
    "connection reset").  So, like nginx's lingering close, the write side
    is shut and what the client still sends is read and dropped, within
    bounds (``linger``: at all), before the handler closes the socket.
    """
    try:
        sock.sendall(response)
        if not linger:
            return
        sock.shutdown(socket.SHUT_WR)
        with gevent.Timeout(LINGER_TIME, False):  # False: time up ends the block quietly
            drained = 0
            while drained < LINGER_BYTES:
                data = sock.recv(65536)
                if not data:
                    break
                drained += len(data)
    except OSError:
        pass  # the client is gone: close anyway
