"""The HTTP server of the CLI: gevent's pywsgi on the ``listen`` address."""

from __future__ import annotations

import http.client
import socket

import gevent
from flask import Flask
from gevent import GreenletExit
from gevent.pywsgi import WSGIHandler, WSGIServer

from ..config import parse_listen
from ..log import get_logger


#: Bytes of kernel send buffer per viewer socket.
SEND_BUFFER = 512 * 1024
#: After refusing a request head, how long (s) and how much (bytes) of the
#: rest of it is read and thrown away before the connection is closed.
LINGER_TIME = 2.0
LINGER_BYTES = 1024 * 1024


def make_server(app: Flask, listen: str, request_timeout: float = 0) -> WSGIServer:
    """A started-on-demand WSGI server bound to ``listen`` (host:port, :port, [v6]:port).

    A client has ``request_timeout`` seconds (0: forever) to send each request head.
    """
    host, port = parse_listen(listen)
    listener = _bind(host, port)
    errors = get_logger("http")
    server = StreamingServer(listener, app, log=None, error_log=_ErrorLog(errors),
                             handler_class=StreamingHandler)
    server.request_timeout = request_timeout or None
    return server


class StreamingHandler(WSGIHandler):
    """pywsgi's handler with a leaner write path for long-lived stream responses."""

    def finalize_headers(self) -> None:
        super().finalize_headers()
        if self.response_use_chunked and self.close_connection:
            # The body ends when the connection does (stream responses say
            # "Connection: close"), so chunk framing adds nothing but a copy
            # of every chunk per viewer.
            self.response_use_chunked = False
            self.response_headers = [(name, value) for name, value in self.response_headers
                                     if name.lower() != b"transfer-encoding"]

    def read_requestline(self) -> str:
        # A client that connects and goes quiet, or vanishes mid-request
        # without a FIN, would otherwise hold its socket and greenlet forever.
        self.socket.settimeout(self.server.request_timeout)
        return super().read_requestline()

    def read_request(self, raw_requestline: str):
        result = super().read_request(raw_requestline)
        # The head is in; while a stream is sent, droptimeout watches the viewer.
        self.socket.settimeout(None)
        return result

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple):  # a refused head: (status, response)
            self.status = result[0]
            if self.status == "414":  # pywsgi logs the other refusals itself
                address = self.client_address
                remote = address[0] if isinstance(address, tuple) else address
                get_logger("http").warning("request refused", remote=remote,
                                           status=414, reason="request line too long")
            self._refuse(result[1])
            return None
        return result

    def _refuse(self, response: bytes) -> None:
        """Send the refusal of a request head, then close without losing it.

        Closing a socket that still holds unread input makes the kernel reset
        the connection, and a reset can destroy the refusal before the client
        has read it (a client still sending an oversized head would see only
        "connection reset").  So, like nginx's lingering close, the write side
        is shut and what the client still sends is read and dropped, within
        bounds, before pywsgi closes the socket.
        """
        sock = self.socket
        try:
            sock.sendall(response)
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

    def _handle_client_error(self, ex: Exception):
        # Too many header lines, or a head cut off by the timeout, are bad
        # input like any other: one log line, not a traceback on stderr.
        if isinstance(ex, (http.client.HTTPException, OSError)):
            ex = ValueError(str(ex) or type(ex).__name__)
        return super()._handle_client_error(ex)

    def _log_error(self, t, v, tb) -> None:
        # A bug hit while serving one request (a viewer's stream included)
        # ends that connection only; pywsgi would print it to stderr.
        # Not the query string: it may carry a token.
        if not issubclass(t, GreenletExit):
            get_logger("http").error("request crashed", path=self.path.partition("?")[0],
                                     exc_info=(t, v, tb))

    def write(self, data) -> None:
        # pywsgi's write() re-checks the response state and frames every chunk
        # through _write(); once the headers of an unchunked body are out, a
        # chunk goes straight to the socket.
        if self.headers_sent and not self.response_use_chunked:
            if data:
                self._sendall(data)
        else:
            super().write(data)

    def _sendall(self, data) -> None:
        # gevent's sendall() asks the kernel for SO_SNDBUF and arms a timeout
        # on every call; a plain send() is enough when the socket takes it all.
        try:
            sent = self.socket.send(data)
            if sent < len(data):
                self.socket.sendall(memoryview(data)[sent:])
        except OSError as ex:
            self.status = "socket error: %s" % ex
            if self.code > 0:
                self.code = -self.code
            raise
        self.response_length += len(data)


class StreamingServer(WSGIServer):
    """pywsgi, with viewer sockets set up for live streaming."""

    request_timeout: float | None = None

    def handle(self, sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # Writes are already gathered per coalescing window; Nagle would
            # only hold a window's tail back for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A fixed send buffer of about a second of a 4 Mbit/s stream: enough to
        # ride out a viewer's hiccup, while one that reads nothing fills it
        # soon and is then noticed (droptimeout) instead of hiding in
        # megabytes of kernel memory.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        super().handle(sock, address)


def _bind(host: str, port: int) -> socket.socket:
    """Bind like Go's net.Listen: an empty host is every interface (v6 and v4)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    # Prefer IPv6 for the wildcard, where it also accepts IPv4 connections.
    infos.sort(key=lambda info: info[0] != socket.AF_INET6 if not host else 0)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and not host:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(address)
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _ErrorLog:
    """pywsgi writes tracebacks and socket errors here; make them log events."""

    def __init__(self, logger):
        self._logger = logger

    def write(self, text: str) -> None:
        text = text.strip()
        if text:
            self._logger.warning("http server error", detail=text)

    def writelines(self, lines) -> None:
        self.write("".join(lines))

    def flush(self) -> None:
        pass
