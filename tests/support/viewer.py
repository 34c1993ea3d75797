"""HTTP clients for tests: a raw-socket streaming HttpViewer and a one-shot http_get."""

import http.client
import re
import socket
import threading
import time
from typing import Optional
from urllib.parse import urlsplit

from .waiting import wait_for

_CONNECT_TIMEOUT = 5.0
_JOIN_TIMEOUT = 5.0
_READ_SIZE = 65536


class HttpViewer:
    """A streaming HTTP client on its own thread, recording everything it gets.

    Built on a raw socket rather than http.client so a test sees exactly what
    the proxy did: the status and headers, the body de-chunked (chunked,
    Content-Length or close-delimited), and whether and how it ended.
    `pause()` stops reading (the socket buffers fill up, as with a stalled
    player) until `resume()`; `rcvbuf` shrinks the receive buffer so that
    happens sooner.

    Unless `headers` says otherwise, HTTP/1.1 requests carry
    "Connection: close", so the response always ends with the connection.
    """

    def __init__(self, url: str, method: str = "GET", http10: bool = False,
                 headers: Optional[dict] = None, rcvbuf: Optional[int] = None):
        self.url = url
        self.method = method
        self.version: Optional[str] = None
        self.status: Optional[int] = None
        self.reason: Optional[str] = None
        self.headers: Optional[http.client.HTTPMessage] = None
        #: True once the body ended as the framing says it should (last chunk,
        #: or Content-Length reached); False for a close-delimited or cut-off body.
        self.complete = False
        #: The exception that ended reading, if it was not a clean EOF.
        self.error: Optional[BaseException] = None
        #: Set when the response is over: the server closed the connection, a
        #: framed body ended, reading failed, or close() was called.
        self.closed = threading.Event()
        self._data = bytearray()
        #: The longest wait between two pieces of body data, in seconds.
        self.max_gap = 0.0
        self._last_arrival: Optional[float] = None
        self._cond = threading.Condition()
        self._reading = threading.Event()
        self._reading.set()
        self._closing = False
        self.sock = self._connect(rcvbuf)
        self.sock.sendall(self._request(http10, headers or {}))
        self._reader = self.sock.makefile("rb")
        self._thread = threading.Thread(target=self._run, name="viewer", daemon=True)
        self._thread.start()

    def _connect(self, rcvbuf: Optional[int]) -> socket.socket:
        parts = urlsplit(self.url)
        sock = socket.socket(socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(_CONNECT_TIMEOUT)
        try:
            sock.connect((parts.hostname, parts.port or 80))
        except OSError:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    def _request(self, http10: bool, headers: dict) -> bytes:
        parts = urlsplit(self.url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        names = {name.lower() for name in headers}
        lines = [f"{self.method} {target} HTTP/{'1.0' if http10 else '1.1'}",
                 "User-Agent: restreamer-tests"]
        if "host" not in names:  # a test's own Host replaces it: two would be refused
            lines.insert(1, f"Host: {parts.netloc}")
        if not http10 and "connection" not in names:
            lines.append("Connection: close")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return "\r\n".join(lines + ["", ""]).encode("latin-1")

    # -- reading (viewer thread) -------------------------------------------

    def _run(self) -> None:
        try:
            self._read_head()
            self._read_body()
        except (OSError, ValueError, http.client.HTTPException) as e:
            if not self._closing:
                self.error = e
        finally:
            with self._cond:
                self.closed.set()
                self._cond.notify_all()

    def _read_head(self) -> None:
        status_line = self._reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before a response arrived")
        version, status, reason = (status_line.decode("latin-1").rstrip("\r\n").split(" ", 2) + [""])[:3]
        if not version.startswith("HTTP/"):
            raise ValueError(f"not an HTTP status line: {status_line!r}")
        headers = http.client.parse_headers(self._reader)
        with self._cond:
            self.version, self.status, self.reason, self.headers = version, int(status), reason, headers
            self._cond.notify_all()

    def _read_body(self) -> None:
        if self.method == "HEAD" or self.status in (204, 304):
            self.complete = True
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._read_chunked()
        elif self.headers.get("Content-Length") is not None:
            self.complete = self._read_up_to(int(self.headers["Content-Length"]))
        else:
            self._read_up_to(None)

    def _read_chunked(self) -> None:
        while True:
            size_line = self._reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                self.complete = True
                return
            if not self._read_up_to(size):
                return
            if self._reader.readline() not in (b"\r\n", b"\n"):
                raise ValueError("chunk not followed by CRLF")

    def _read_up_to(self, limit: Optional[int]) -> bool:
        """Append body bytes as they arrive, up to `limit` (None: until EOF); True if all came."""
        remaining = limit
        while remaining is None or remaining > 0:
            self._reading.wait()
            data = self._reader.read1(_READ_SIZE if remaining is None else min(remaining, _READ_SIZE))
            if not data:
                return remaining is None
            now = time.monotonic()
            if self._last_arrival is not None:
                self.max_gap = max(self.max_gap, now - self._last_arrival)
            self._last_arrival = now
            with self._cond:
                self._data += data
                self._cond.notify_all()
            if remaining is not None:
                remaining -= len(data)
        return True

    # -- test-facing API ---------------------------------------------------

    @property
    def data(self) -> bytes:
        """The body bytes received so far."""
        with self._cond:
            return bytes(self._data)

    def wait_status(self, timeout: float = 5) -> int:
        """Wait for the response head; return the status code."""
        wait_for(self._cond, lambda: self.status is not None or self.closed.is_set(), timeout,
                 f"a response status from {self.url}")
        if self.status is None:
            raise AssertionError(f"{self.url}: connection ended without a response ({self.error!r})")
        return self.status

    def wait_bytes(self, n: int, timeout: float = 5) -> bytes:
        """Wait until at least `n` body bytes have arrived; return everything so far."""
        wait_for(self._cond, lambda: len(self._data) >= n or self.closed.is_set(), timeout,
                 f"{n} body bytes from {self.url} (have {len(self._data)})")
        data = self.data
        if len(data) < n:
            raise AssertionError(f"{self.url}: connection ended after {len(data)} of {n} bytes "
                                 f"(status {self.status}, error {self.error!r})")
        return data

    def wait_closed(self, timeout: float = 5) -> bytes:
        """Wait until the server ends the response (see `closed`); return the whole body."""
        wait_for(self._cond, self.closed.is_set, timeout,
                 f"{self.url} to close the connection (have {len(self._data)} bytes)")
        return self.data

    def pause(self) -> None:
        """Stop reading from the socket (after the current read)."""
        self._reading.clear()

    def resume(self) -> None:
        self._reading.set()

    def close(self) -> None:
        """Hang up from the client side and wait for the reader thread."""
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reading.set()
        self._thread.join(_JOIN_TIMEOUT)
        self._reader.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def http_request(method: str, url: str, body: Optional[bytes] = None,
                 headers: Optional[dict] = None, timeout: float = 5):
    """One complete request with http.client; returns (status, headers, body)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def http_get(url: str, headers: Optional[dict] = None, timeout: float = 5):
    """GET a small (non-streaming) resource; returns (status, headers, body)."""
    return http_request("GET", url, headers=headers, timeout=timeout)


def raw_get(address, path: str) -> socket.socket:
    """A connection that has sent a keep-alive GET of ``path``."""
    sock = socket.create_connection(address, timeout=5)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: restreamer\r\n\r\n".encode())
    return sock


def read_response(sock: socket.socket) -> bytes:
    """The body of the response on ``sock``, read to its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += _received(sock, 65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += _received(sock, length - len(body))
    return body


def _received(sock: socket.socket, size: int) -> bytes:
    data = sock.recv(size)
    if not data:
        raise ConnectionError("closed before the end of the response")
    return data


class SlowReader:
    """A viewer on its own thread that reads no faster than `rate` bytes/s."""

    def __init__(self, url_port, rate):
        self.rate = rate
        self.data = bytearray()
        self.reads = 0
        self._stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.connect(("127.0.0.1", url_port))
        self.sock.sendall(b"GET /s.ts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                # Pacing, not synchronisation: this is how a slow player reads.
                due = start + len(self.data) / self.rate - time.monotonic()
                if due > 0 and self._stop.wait(due):
                    return
                chunk = self.sock.recv(4096)
                if not chunk:
                    return
                self.data += chunk
                self.reads += 1
        except OSError:
            pass

    def body(self):
        data = bytes(self.data)
        return data[data.index(b"\r\n\r\n") + 4:]

    def close(self):
        self._stop.set()
        self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.sock.close()
