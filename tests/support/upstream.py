"""Fake upstreams: paced MPEG-TS sources over HTTP, raw TCP, unix sockets and UDP.

Every byte an upstream sends is recorded, so a test can check that what a
viewer got through the proxy is a contiguous, byte-identical run of it
(see ts.assert_contiguous).
"""

import dataclasses
import itertools
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from typing import Iterator, Optional

from .ts import PIECE_SIZE
from .waiting import wait_for

#: How often blocked socket calls wake up to notice a stop request.
_POLL = 0.1
#: How long to wait for a client's request head or for a thread to finish.
_IO_TIMEOUT = 5.0
#: Filler inserted by the `garbage_every` knob. It contains no 0x47, so it can
#: never be mistaken for the start of a TS packet.
GARBAGE_PATTERN = b"\xde\xad\xbe\xef"

_HEAD_END = re.compile(rb"\r?\n\r?\n")

_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def iter_pieces(payload: bytes, loop: bool = True, size: int = PIECE_SIZE,
                first: Optional[int] = None) -> Iterator[bytes]:
    """Yield `payload` in `size`-byte pieces (the first `first` bytes, if
    given), once or looping forever.

    When looping, pieces run seamlessly across the end of the payload, so the
    concatenated output is always a prefix of payload * infinity.
    """
    if not payload:
        return
    sizes = itertools.chain([first or size], itertools.repeat(size))
    if not loop:
        start = 0
        for step in sizes:
            if start >= len(payload):
                return
            yield payload[start:start + step]
            start += step
    wrapped = payload * (max(size, first or 0) // len(payload) + 2)
    pos = 0
    for step in sizes:
        yield wrapped[pos:pos + step]
        pos = (pos + step) % len(payload)


class Pacer:
    """Holds a sender to `rate` bit/s on average (`rate=None`: no pacing).

    Deadlines are computed from the start time and the total sent, rather
    than sleeping a fixed time per piece, so sleep jitter does not accumulate
    into a drifting bitrate.
    """

    def __init__(self, rate: Optional[float], stop: threading.Event):
        self.rate = rate
        self.stop = stop
        self.start = time.monotonic()
        self.total = 0

    def wait_turn(self) -> bool:
        """Wait until the next piece is due; False if asked to stop meanwhile."""
        if self.rate is not None:
            delay = self.start + self.total * 8 / self.rate - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                return False
        return not self.stop.is_set()

    def account(self, nbytes: int) -> None:
        self.total += nbytes


@dataclasses.dataclass(eq=False)  # eq=False keeps TSUpstream (a subclass) hashable
class Behaviour:
    """Per-server knobs; each connection takes a snapshot when it is accepted.

    status: HTTP status; anything but 200 gets a small text body, then close.
    body_override: sent instead of the stream (with `status` and
        `content_type`, e.g. "text/html" for a captive-portal page), then close.
    content_type: Content-Type of 200 responses.
    http_version: "1.1" or "1.0" in the status line.
    close_after_bytes: close once this many body bytes have been sent.
    stall_after_headers: send the response head (nothing, in tcp mode), then
        nothing more until the connection is dropped.
    garbage_every: after every this many pieces, insert `garbage_len` bytes
        of non-TS filler (recorded in `sent` too).
    trickle: write one byte per send() call, headers included, so the reader
        sees the response in the smallest possible fragments.
    gate: a threading.Event; the connection answers (in http mode, after
        reading the request) only once it is set.
    chunked: frame the body with Transfer-Encoding: chunked, in chunks of
        this many bytes, each piece's chunks written at once (http mode);
        `sent` holds the body without the framing.
    garbage_after_bytes: once this many body bytes are out, send non-TS
        filler instead of the payload, at the same rate (recorded in `sent`).
    pause_after_bytes, pause_seconds: once this many body bytes are out,
        send nothing for pause_seconds, then carry on.
    piece_size: bytes per write (and per chunk when chunked); large pieces
        let one thread send hundreds of Mbit/s.
    burst: bytes of the first write instead (a sender that flushes what it
        had buffered as soon as the connection opens).
    """

    status: int = 200
    body_override: Optional[bytes] = None
    content_type: str = "video/mpeg"
    http_version: str = "1.1"
    close_after_bytes: Optional[int] = None
    stall_after_headers: bool = False
    garbage_every: Optional[int] = None
    garbage_len: int = 13
    trickle: bool = False
    gate: Optional[threading.Event] = None
    chunked: Optional[int] = None
    garbage_after_bytes: Optional[int] = None
    pause_after_bytes: Optional[int] = None
    pause_seconds: float = 0
    piece_size: int = PIECE_SIZE
    burst: Optional[int] = None


class UpstreamConnection:
    """One accepted connection, served on its own thread.

    sent: exactly the body bytes the kernel accepted (after the HTTP head in
        http mode); never behind what the peer has already received.
    request_line, request_headers (lower-case names): what the client asked
        (http mode).
    close_reason: why the connection ended: "eof" (payload done, loop=False),
        "limit" (close_after_bytes), "response" (error status or
        body_override sent), "peer" (the client went away), "dropped"
        (close_all/stop) or "error" (a bug here; see the thread's traceback).
    """

    def __init__(self, sock: socket.socket, server: "TSUpstream"):
        self.sock = sock
        self.mode = server.mode
        self.behaviour = server.behaviour_snapshot()
        self._payload, self._rate, self._loop = server.payload, server.rate, server.loop
        self._tls = server.tls
        self.request_line: Optional[str] = None
        self.request_headers: dict[str, str] = {}
        self.close_reason: Optional[str] = None
        self.closed = threading.Event()
        self._sent = bytearray()
        self._cond = threading.Condition()
        self._server_cond = server._cond  # told when this connection ends
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="upstream-conn", daemon=True)

    @property
    def sent(self) -> bytes:
        with self._cond:
            return bytes(self._sent)

    @property
    def path(self) -> Optional[str]:
        """The path the client asked for (http mode), once its request has arrived."""
        return self.request_line.split(" ")[1] if self.request_line else None

    def wait_sent(self, nbytes: int, timeout: float = 5) -> bytes:
        """Wait until at least `nbytes` body bytes have gone out; return them all."""
        wait_for(self._cond, lambda: len(self._sent) >= nbytes or self.closed.is_set(),
                 timeout, f"upstream connection to send {nbytes} bytes")
        data = self.sent
        assert len(data) >= nbytes, (
            f"upstream connection closed ({self.close_reason}) after {len(data)} of {nbytes} bytes")
        return data

    def wait_closed(self, timeout: float = 5) -> str:
        """Wait for the connection to end; return its close_reason."""
        wait_for(self._cond, self.closed.is_set, timeout, "upstream connection to close")
        return self.close_reason

    def close(self) -> None:
        """Drop the connection now (close_reason "dropped" unless it already ended)."""
        self._stop.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = _IO_TIMEOUT) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        reason = "error"  # kept only if _serve() itself crashes
        try:
            if self._tls is not None:
                self.sock.settimeout(_IO_TIMEOUT)
                self.sock = self._tls.wrap_socket(self.sock, server_side=True)
            self.sock.settimeout(_POLL)
            if self.behaviour.trickle and self.sock.family != socket.AF_UNIX:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reason = self._serve()
        except OSError:
            reason = "peer"
        finally:
            self.sock.close()
            with self._cond:
                self.close_reason = "dropped" if self._stop.is_set() else reason
                self.closed.set()
                self._cond.notify_all()
            with self._server_cond:
                self._server_cond.notify_all()

    def _serve(self) -> str:
        b = self.behaviour
        if self.mode == "http":
            if not self._read_request():
                return "peer"
        if b.gate is not None:
            while not b.gate.wait(0.05):
                if self._stop.is_set():
                    return "dropped"
        if self.mode == "http":
            if b.status != 200 or b.body_override is not None:
                return self._send_response()
            self._send_head(200, b.content_type, None, chunked=bool(b.chunked))
        if b.stall_after_headers:
            return self._stall()
        return self._stream()

    def _read_request(self) -> bool:
        """Read and record the request head; False if the client gave up or went quiet."""
        head = b""
        deadline = time.monotonic() + _IO_TIMEOUT
        while not _HEAD_END.search(head):
            if self._stop.is_set() or time.monotonic() > deadline:
                return False
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                return False
            head += chunk
        lines = _HEAD_END.split(head, 1)[0].decode("latin-1").splitlines()
        self.request_line = lines[0].strip()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.request_headers[name.strip().lower()] = value.strip()
        return True

    def _send_head(self, status: int, content_type: str, length: Optional[int],
                   chunked: bool = False) -> None:
        lines = [f"HTTP/{self.behaviour.http_version} {status} {_REASONS.get(status, 'Status')}",
                 f"Content-Type: {content_type}", "Cache-Control: no-cache", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        self._write("\r\n".join(lines + ["", ""]).encode("latin-1"), record=False)

    def _send_response(self) -> str:
        """Send a complete non-stream response: an error status or body_override."""
        b = self.behaviour
        if b.body_override is not None:
            body, content_type = b.body_override, b.content_type
        else:
            body, content_type = f"{b.status} {_REASONS.get(b.status, 'Status')}\n".encode(), "text/plain"
        self._send_head(b.status, content_type, len(body))
        self._write(body)
        return "response"

    def _stall(self) -> str:
        """Send nothing more, but notice (via EOF) if the client hangs up."""
        while not self._stop.is_set():
            try:
                if not self.sock.recv(4096):
                    return "peer"
            except socket.timeout:
                continue
        return "dropped"

    def _stream(self) -> str:
        b = self.behaviour
        pacer = Pacer(self._rate, self._stop)
        paused = False
        for index, piece in enumerate(iter_pieces(self._payload, self._loop, b.piece_size, b.burst), 1):
            if not pacer.wait_turn():
                return "dropped"
            if not paused and b.pause_after_bytes is not None and len(self._sent) >= b.pause_after_bytes:
                paused = True
                if self._stop.wait(b.pause_seconds):
                    return "dropped"
                pacer = Pacer(self._rate, self._stop)
            if b.garbage_after_bytes is not None and len(self._sent) >= b.garbage_after_bytes:
                piece = (GARBAGE_PATTERN * (len(piece) // len(GARBAGE_PATTERN) + 1))[:len(piece)]
            if b.garbage_every and index % b.garbage_every == 0:
                piece += (GARBAGE_PATTERN * (b.garbage_len // len(GARBAGE_PATTERN) + 1))[:b.garbage_len]
            if b.close_after_bytes is not None:
                piece = piece[:b.close_after_bytes - len(self._sent)]
            if b.chunked:
                self._write_chunked(piece, b.chunked)
            else:
                self._write(piece)
            pacer.account(len(piece))
            if b.close_after_bytes is not None and len(self._sent) >= b.close_after_bytes:
                return "limit"
        return "eof"

    def _write_chunked(self, piece: bytes, size: int) -> None:
        """Send `piece` framed as HTTP chunks in one write, recording only the body."""
        framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                          for part in (piece[i:i + size] for i in range(0, len(piece), size)))
        with self._cond:
            self.sock.settimeout(None)
            try:
                self.sock.sendall(framed)
            finally:
                self.sock.settimeout(_POLL)
            self._sent += piece
            self._cond.notify_all()

    def _write(self, data: bytes, record: bool = True) -> None:
        """send() until all of `data` is out, recording exactly what was accepted.

        send() and the recording happen under one lock, so by the time anyone
        can read `sent` it includes every byte a peer could have received.
        """
        step = 1 if self.behaviour.trickle else len(data)
        view = memoryview(data)
        while view:
            if self._stop.is_set():
                raise OSError("connection dropped by the test")
            with self._cond:
                try:
                    n = self.sock.send(view[:step])
                except socket.timeout:
                    continue
                if record:
                    self._sent += view[:n]
                    self._cond.notify_all()
            view = view[n:]


class TSUpstream(Behaviour):
    """A threaded server on 127.0.0.1 serving `payload` as a paced live stream.

    mode "http": answers any request path with a close-delimited 200
    video/mpeg body (HTTP/1.1 or 1.0); mode "tcp": sends raw bytes on connect.
    The payload is written in 1316-byte pieces at `rate` bit/s (None: as fast
    as possible), looping forever or, with loop=False, once and then closing.
    With `tls` (a server-side SSLContext) it speaks HTTPS.
    The Behaviour knobs (status, body_override, ...) are attributes, settable
    before or between connections. The server starts listening on creation.
    """

    def __init__(self, payload: bytes, mode: str = "http", rate: Optional[float] = 1_000_000,
                 loop: bool = True, tls: Optional[ssl.SSLContext] = None, **knobs):
        if mode not in ("http", "tcp"):
            raise ValueError(f"mode must be 'http' or 'tcp', not {mode!r}")
        super().__init__(**knobs)
        self.payload = payload
        self.mode = mode
        self.rate = rate
        self.loop = loop
        self.tls = tls
        self.connections: list[UpstreamConnection] = []
        self._cond = threading.Condition()
        self._stopped = threading.Event()
        self._listener = self._listen()
        self._listener.settimeout(_POLL)
        self._thread = threading.Thread(target=self._accept_loop, name="upstream-accept", daemon=True)
        self._thread.start()

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        return sock

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        if self.mode == "http":
            return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/stream.ts"
        return f"tcp://127.0.0.1:{self.port}"

    def behaviour_snapshot(self) -> Behaviour:
        return Behaviour(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Behaviour)})

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = UpstreamConnection(sock, self)
            with self._cond:
                self.connections.append(conn)
                self._cond.notify_all()
            conn.start()

    def wait_connections(self, n: int, timeout: float = 5) -> list[UpstreamConnection]:
        """Wait until `n` connections in total have been accepted; return them all."""
        wait_for(self._cond, lambda: len(self.connections) >= n, timeout,
                 f"{n} connection(s) to the upstream at {self.url} (have {len(self.connections)})")
        return list(self.connections)

    def open_connections(self) -> list[UpstreamConnection]:
        """The connections accepted and not yet ended."""
        with self._cond:
            return [conn for conn in self.connections if not conn.closed.is_set()]

    def wait_open(self, n: int, timeout: float = 5) -> list[UpstreamConnection]:
        """Wait until exactly `n` connections are open; return them."""
        wait_for(self._cond, lambda: sum(not c.closed.is_set() for c in self.connections) == n,
                 timeout, f"{n} open connection(s) to the upstream at {self.url} "
                 f"(have {len(self.open_connections())})")
        return self.open_connections()

    def close_all(self) -> None:
        """Drop every current connection (the server keeps accepting new ones)."""
        with self._cond:
            current = list(self.connections)
        for conn in current:
            conn.close()
        for conn in current:
            conn.join()

    def stop(self) -> None:
        """Stop accepting, drop all connections and wait for every thread to finish."""
        self._stopped.set()
        self._thread.join(_IO_TIMEOUT)
        self._listener.close()
        self.close_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class UnixTSUpstream(TSUpstream):
    """TSUpstream on a unix stream socket at `<directory>/upstream-N.sock`; url is unix://PATH.

    Defaults to mode "tcp" (raw bytes), the usual way TS is fed over a unix socket.
    """

    _numbers = itertools.count(1)
    socket_type = socket.SOCK_STREAM
    scheme = "unix"

    def __init__(self, payload: bytes, directory, mode: str = "tcp", **kwargs):
        self.path = os.path.join(os.fspath(directory), f"upstream-{next(self._numbers)}.sock")
        super().__init__(payload, mode=mode, **kwargs)

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, self.socket_type)
        sock.bind(self.path)
        sock.listen(16)
        return sock

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.path}"

    def stop(self) -> None:
        super().stop()
        if os.path.exists(self.path):
            os.unlink(self.path)


class UDPTSSender:
    """Sends `payload` to host:port as 1316-byte (7-packet) datagrams, paced like TSUpstream.

    Starts on creation; `sent` is everything sent so far, in order.
    `interface` is the local IPv4 address multicast goes out from (e.g.
    127.0.0.1 to keep a 239.x group on loopback).  With `unix_path` the
    datagrams go to that unix datagram socket instead.
    """

    def __init__(self, payload: bytes, host: str = "127.0.0.1", port: int = 0,
                 rate: Optional[float] = 1_000_000, loop: bool = True,
                 interface: Optional[str] = None, unix_path: Optional[str] = None):
        self.address = unix_path if unix_path is not None else (host, port)
        self.done = threading.Event()
        self._sent = bytearray()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        family = socket.AF_UNIX if unix_path is not None else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        if interface is not None:
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
        self._thread = threading.Thread(target=self._run, args=(payload, rate, loop),
                                        name="udp-sender", daemon=True)
        self._thread.start()

    @property
    def sent(self) -> bytes:
        with self._cond:
            return bytes(self._sent)

    def wait_sent(self, nbytes: int, timeout: float = 5) -> bytes:
        """Wait until at least `nbytes` have been sent (or the payload ran out); return all sent."""
        wait_for(self._cond, lambda: len(self._sent) >= nbytes or self.done.is_set(),
                 timeout, f"UDP sender to send {nbytes} bytes")
        return self.sent

    def _run(self, payload: bytes, rate: Optional[float], loop: bool) -> None:
        pacer = Pacer(rate, self._stop)
        try:
            for piece in iter_pieces(payload, loop):
                if not pacer.wait_turn():
                    break
                with self._cond:  # as in UpstreamConnection._write: `sent` never lags a receiver
                    self._sock.sendto(piece, self.address)
                    self._sent += piece
                    self._cond.notify_all()
                pacer.account(len(piece))
        finally:
            with self._cond:
                self.done.set()
                self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_IO_TIMEOUT)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class UnixPacketTSUpstream(UnixTSUpstream):
    """UnixTSUpstream on a SOCK_SEQPACKET socket, so each 1316-byte piece is one
    record; url is unixpacket://PATH."""

    socket_type = socket.SOCK_SEQPACKET
    scheme = "unixpacket"


class FIFOWriter:
    """Writes `payload` into the FIFO at `path`, paced like TSUpstream and looping,
    as an encoder writing to a named pipe would.

    `reopen()` makes it close the FIFO and open it again, carrying on where it
    left off, as a restarted writer would; `sent` is everything written, in
    order, and `opens` how many times the FIFO was opened.
    """

    def __init__(self, path, payload: bytes, rate: Optional[float] = 1_000_000):
        self.path = os.fspath(path)
        self.opens = 0
        self._sent = bytearray()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reopen = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(payload, rate),
                                        name="fifo-writer", daemon=True)
        self._thread.start()

    @property
    def sent(self) -> bytes:
        with self._cond:
            return bytes(self._sent)

    def wait_sent(self, nbytes: int, timeout: float = 5) -> bytes:
        """Wait until at least `nbytes` have been written; return them all."""
        wait_for(self._cond, lambda: len(self._sent) >= nbytes, timeout,
                 f"FIFO writer to write {nbytes} bytes (have {len(self._sent)})")
        return self.sent

    def wait_opens(self, n: int, timeout: float = 5) -> None:
        wait_for(self._cond, lambda: self.opens >= n, timeout, f"FIFO to be opened {n} times")

    def reopen(self) -> None:
        self._reopen.set()

    def _open(self) -> Optional[int]:
        """Open for writing once a reader has the FIFO open; None if asked to stop first."""
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: no reader yet
                self._stop.wait(_POLL)
                continue
            os.set_blocking(fd, True)
            with self._cond:
                self.opens += 1
                self._cond.notify_all()
            return fd
        return None

    def _run(self, payload: bytes, rate: Optional[float]) -> None:
        pacer = Pacer(rate, self._stop)
        fd = self._open()
        try:
            for piece in iter_pieces(payload):
                if fd is None or not pacer.wait_turn():
                    return
                if self._reopen.is_set():
                    self._reopen.clear()
                    os.close(fd)
                    fd = self._open()
                    if fd is None:
                        return
                with self._cond:
                    os.write(fd, piece)  # one piece is less than PIPE_BUF: written whole
                    self._sent += piece
                    self._cond.notify_all()
                pacer.account(len(piece))
        finally:
            if fd is not None:
                os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(_IO_TIMEOUT)


def refusing_port() -> socket.socket:
    """A TCP socket bound to a port on 127.0.0.1 that never listens: every
    connection to that port is refused, and no other server can take it,
    until the socket is closed."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def self_signed_tls(directory) -> tuple[ssl.SSLContext, str]:
    """A server SSLContext with a fresh self-signed certificate for 127.0.0.1,
    and the path of that certificate (the CA bundle a client must trust)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert
