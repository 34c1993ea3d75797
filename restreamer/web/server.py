"""The HTTP server of the CLI: gevent's pywsgi on the ``listen`` address."""

from __future__ import annotations

import errno
import functools
import http.client
import logging
import os
import re
import socket
import struct
import time

import gevent
from flask import Flask
from gevent import GreenletExit
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from ..config import parse_listen
from ..log import get_logger
from .requesthead import HeadTooLarge, check_request_line, discard_body, read_headers, refuse


#: Bytes of kernel send buffer per viewer socket.
SEND_BUFFER = 512 * 1024
#: Out of file descriptors: seconds between log lines, and the pauses in
#: accepting (doubling up to the longest) while it lasts.
EMFILE_LOG_INTERVAL = 10.0
EMFILE_PAUSE = (0.05, 1.0)
#: A request target's query, as pywsgi's messages quote it: it may carry a token.
_QUERY = re.compile(r"\?[^\s'\"]*")
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
              b"Content-Length: 0\r\n\r\n")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: SO_LINGER on, for 0 s: close() resets the connection.
_RESET = struct.pack("ii", 1, 0)

_log = get_logger("http")


def make_server(app: Flask, listen: str) -> WSGIServer:
    """A started-on-demand WSGI server bound to ``listen`` (host:port, :port, [v6]:port)."""
    host, port = parse_listen(listen)
    listener = _bind(host, port)
    # The pool (no size: no limit) counts the connections' greenlets.
    return StreamingServer(listener, app, log=None, handler_class=StreamingHandler, spawn=Pool())


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

    # -- reading the request ---------------------------------------------
    # Each phase of a request has its own deadline of droptimeout: the head,
    # the body, and the answer (a stream's viewer is watched by the hub
    # instead).  A client that trickles a byte now and then (slowloris), goes
    # quiet, never reads, or vanishes without a FIN would otherwise hold its
    # socket, greenlet and buffers forever.  A deadline fires as a socket
    # timeout, which pywsgi handles as a dead client.

    _head_deadline: gevent.Timeout | None = None
    _linger = True

    def read_requestline(self) -> str:
        # One deadline for the whole head, not one per read.
        timeout = self.server.request_timeout
        if timeout:
            self._head_deadline = gevent.Timeout.start_new(
                timeout, socket.timeout(f"request head not complete within {timeout:g} s"))
        if not self._await_request():
            return ""  # pywsgi's sign of a connection closed between requests
        return super().read_requestline()

    def _await_request(self) -> bool:
        """Wait for the first byte of the next request; False once the server
        is stopping or the client has closed.

        Meanwhile the connection is idle: stopping hangs it up at once
        (:meth:`StreamingServer.close`), where a request it has begun
        gets the grace period.
        """
        server = self.server
        if server.closed:
            return False
        server.idle.add(self)
        try:
            return bool(self.rfile.peek(1))  # peek: the byte stays for the request line
        finally:
            server.idle.discard(self)

    def hang_up(self) -> None:
        """End an idle connection: the client sees it closed, as after a
        keep-alive timeout, and its greenlet sees the end of its input."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone

    def read_request(self, raw_requestline: str):
        try:
            check_request_line(raw_requestline)
            result = super().read_request(raw_requestline)
        finally:
            self._end_head_deadline()
        self._read_body()
        return result

    def _end_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.close()
            self._head_deadline = None

    def MessageClass(self, rfile, *args):  # noqa: N802 (pywsgi's name)
        # Checked as strictly as gunicorn does (see requesthead).
        return read_headers(rfile, self.request_version)

    def _read_body(self) -> None:
        """Read and drop the request body before answering, within its deadline.

        No resource takes a body; reading it first means a malformed one is
        refused (400) before anything is answered, and a slow one cannot
        keep the connection past its deadline after the answer.
        """
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if not chunked and not self.content_length:
            return
        timeout = self.server.request_timeout
        late = socket.timeout(f"request body not complete within {timeout:g} s") if timeout else None
        with gevent.Timeout(timeout, late):
            if self.headers.get("Expect", "").lower() == "100-continue":
                self.socket.sendall(_CONTINUE)
            discard_body(self.rfile, self.content_length, chunked)
        # The application, and pywsgi's own discarding after the answer,
        # see a request without a body.
        self.content_length = None
        del self.headers["Content-Length"]
        del self.headers["Transfer-Encoding"]

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        finally:
            self._end_head_deadline()  # for a head that ended before read_request
        if isinstance(result, tuple):  # a refused head: (status, response)
            self.status = result[0]
            if self.status == "414":
                self._log_refusal(414, "request line too long")
            refuse(self.socket, result[1], linger=self._linger)
            return None
        return result

    def _handle_client_error(self, ex: Exception):
        # A malformed or ambiguous request, or one cut off by its deadline, is
        # bad input like any other: one log line (pywsgi's own would quote the
        # request line, query string and all), then 400 (431) and close.
        if not isinstance(ex, (ValueError, http.client.HTTPException, OSError)):
            _log.error("request head crashed", exc_info=ex)
        status, response = (431, _TOO_LARGE) if isinstance(ex, HeadTooLarge) else (400, _BAD_REQUEST)
        self._log_refusal(status, _QUERY.sub("?***", str(ex) or type(ex).__name__))
        self.close_connection = True
        # A client too slow for its deadline gets no more time to linger in.
        self._linger = not isinstance(ex, socket.timeout)
        return (str(status), response)

    def _log_refusal(self, status: int, reason: str) -> None:
        address = self.client_address
        remote = address[0] if isinstance(address, tuple) else address
        _log.warning("request refused", remote=remote, status=status, reason=reason)

    def _log_error(self, t, v, tb) -> None:
        # A bug hit while serving one request (a viewer's stream included)
        # ends that connection only; pywsgi would print it to stderr.
        # Not the query string: it may carry a token.
        if not issubclass(t, GreenletExit):
            _log.error("request crashed", path=self.path.partition("?")[0], exc_info=(t, v, tb))

    def run_application(self):
        # An HLS poll is answered without Flask where the app offers it
        # (blueprint.Routes.fast); anything else, or a refusal, goes to Flask.
        fast = self.server.fast
        if fast is not None and self.command == "GET":
            answer = fast(self.environ)
            if answer is not None:
                headers, body = answer
                self.start_response("200 OK", headers)
                self._send_within_deadline(body)
                return
        super().run_application()

    def process_result(self) -> None:
        # A viewer's response is sent by the direct path: its head at once,
        # then the hub writes to the socket itself while the viewer keeps up.
        serve = getattr(self.result, "serve", None)
        if serve is None:
            self._send_answer()
            return
        self.write(b"")
        if self.response_use_chunked:
            super().process_result()  # a request that asked for chunks; not ours to skip
            return
        sink = SocketSink(self.socket)
        try:
            self.response_length += serve(sink)
        finally:
            sink.close()

    def _send_answer(self) -> None:
        """Send a response that is not a stream: all of it within droptimeout,
        or the connection is dropped (a client that asks and never reads
        would otherwise hold the answer's memory and its socket forever)."""
        self._send_within_deadline(None)

    def _send_within_deadline(self, body: bytes | None) -> None:
        timeout = self.server.request_timeout
        deadline = gevent.Timeout(timeout)
        deadline.start()
        try:
            if body is None:
                super().process_result()
            elif len(body) < 65536:
                self.write(body)  # one send with the head
            else:
                # The head, then the body straight from the shared bytes
                # (with the head, pywsgi would copy it).
                self.write(b"")
                self.write(body)
        except gevent.Timeout as fired:
            if fired is not deadline:
                raise
            _log.warning("answer not taken", remote=self.environ.get("REMOTE_ADDR"),
                         path=self.environ.get("PATH_INFO"), timeout=timeout,
                         sent=self.response_length)
            self.close_connection = True
            # Reset, rather than leave the unsent rest queued in the kernel
            # behind a FIN the client would never read up to.
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        finally:
            deadline.close()

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


class SocketSink:
    """A viewer's socket for the core's direct path (see :class:`restreamer.core.viewer.Sink`)."""

    __slots__ = ("send", "_watcher")

    def __init__(self, sock):
        fd = sock.fileno()
        # A plain write() on the non-blocking descriptor: BlockingIOError
        # when the socket is full, rather than gevent's wait for it.
        self.send = functools.partial(os.write, fd)
        self._watcher = gevent.get_hub().loop.io(fd, 2)  # 2: writable

    def wait_writable(self) -> None:
        gevent.get_hub().wait(self._watcher)

    def close(self) -> None:
        self._watcher.close()


class StreamingServer(WSGIServer):
    """pywsgi, with viewer sockets set up for live streaming."""

    def __init__(self, listener, application=None, *args, **kwargs):
        # What pywsgi reports itself reaches the JSON log (gunicorn would
        # leave it on stderr).
        kwargs.setdefault("error_log", logging.getLogger("http"))
        super().__init__(listener, application, *args, **kwargs)
        extensions = getattr(application, "extensions", {})
        self.relay = relay = extensions.get("restreamer")
        self.fast = extensions.get("restreamer.fast")
        if relay is not None:
            if self.pool is not None:
                # Imported here: gunicorn's master imports this module (the
                # worker class) before gunicorn.conf.py's on_starting has set
                # up the directory prometheus_client picks at its import.
                from ..ops.metrics import register_connection_gauge

                register_connection_gauge(relay.metrics, lambda: len(self.pool))
        self._fd_pause = EMFILE_PAUSE[0]
        self._fd_logged = -EMFILE_LOG_INTERVAL
        self._fd_refused = 0
        #: Handlers waiting for their connection's next request.
        self.idle: set[StreamingHandler] = set()

    def close(self) -> None:
        """Stop accepting and hang up every idle connection: a stop (the
        CLI's, or gunicorn's worker's) then waits only for requests in
        progress, not for keep-alive connections that may never send another."""
        super().close()
        for handler in list(self.idle):
            handler.hang_up()

    @property
    def request_timeout(self) -> float | None:
        """Seconds a client has to send a whole request head (None: forever):
        as long as a viewer may take no data (``droptimeout``), under the CLI
        and gunicorn alike; read per request, so a reload applies at once."""
        return (self.relay.config.droptimeout or None) if self.relay is not None else None

    # -- accepting ---------------------------------------------------------

    def do_read(self):
        try:
            accepted = super().do_read()
        except OSError as e:
            if e.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self._out_of_descriptors(e)
            return None
        if accepted:
            self._fd_pause = EMFILE_PAUSE[0]
        return accepted

    def _out_of_descriptors(self, error: OSError) -> None:
        """Pause accepting (the backlog holds the clients meanwhile) instead of
        spinning on a listener that stays readable; viewers being served go on."""
        self._fd_refused += 1
        now = time.monotonic()
        if now - self._fd_logged >= EMFILE_LOG_INTERVAL:
            _log.error("cannot accept connections", reason=error.strerror,
                       connections=len(self.pool) if self.pool is not None else None,
                       refused=self._fd_refused, pause=self._fd_pause)
            self._fd_logged = now
            self._fd_refused = 0
        self.stop_accepting()
        self._timer = self.loop.timer(self._fd_pause)
        self._timer.start(self._start_accepting_if_started)
        self._fd_pause = min(EMFILE_PAUSE[1], self._fd_pause * 2)

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
