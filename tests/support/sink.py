"""A recording HTTP server: a notification sink and a scriptable static upstream.

Every request is recorded (path, query, headers, arrival time) so a test can
await "n requests to /x" instead of sleeping. Each path's answer can be set
with `respond()`: body, status, headers, a delay before answering, a
Content-Length that is omitted or lies, a chunked body, or a body trickled
a byte at a time, to exercise static resources.
"""

import http.server
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

from .waiting import wait_for

#: Content-Length: leave it out (the body is then close-delimited, HTTP/1.0 style).
NO_LENGTH = "none"
#: Bytes per chunk of a chunked body.
CHUNK = 7


@dataclass
class Route:
    body: bytes = b"ok"
    status: int = 200
    headers: dict = field(default_factory=lambda: {"Content-Type": "text/plain"})
    delay: float = 0.0
    length: Union[int, str, None] = None  # None: len(body); NO_LENGTH: omitted; int: claimed
    chunked: bool = False  # body in chunks of CHUNK bytes (no Content-Length)
    trickle: float = 0.0  # seconds between the body's bytes


@dataclass(frozen=True)
class Request:
    path: str
    query: str
    headers: dict  # lower-case names
    time: float  # time.monotonic() on arrival


class RecordingHTTPServer:
    """A threaded HTTP/1.0 server on 127.0.0.1:0; answers 200 "ok" to paths not configured."""

    def __init__(self):
        self.requests: list[Request] = []
        self.routes: dict[str, Route] = {}
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="http-sink", daemon=True)
        self._thread.start()

    def respond(self, path: str, body: bytes = b"ok", **kwargs) -> None:
        """Set the answer for `path` (see Route for the knobs)."""
        self.routes[path] = Route(body, **kwargs)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def received(self, path: Optional[str] = None) -> list[Request]:
        with self._cond:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_requests(self, n: int, path: Optional[str] = None, timeout: float = 5) -> list[Request]:
        """Wait until at least `n` requests (to `path`, if given) have arrived; return them."""
        def enough():
            matching = [r for r in self.requests if path is None or r.path == path]
            return matching if len(matching) >= n else None
        return wait_for(self._cond, enough, timeout,
                        f"{n} request(s) to {path or 'any path'} at the sink "
                        f"(have {len(self.received(path))})")

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def _record(self, handler: http.server.BaseHTTPRequestHandler) -> Route:
        parts = urlsplit(handler.path)
        entry = Request(parts.path, parts.query, {k.lower(): v for k, v in handler.headers.items()},
                        time.monotonic())
        with self._cond:
            self.requests.append(entry)
            self._cond.notify_all()
        return self.routes.get(parts.path, Route())

    def _handler_class(self) -> Callable:
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                route = sink._record(self)
                if route.delay and sink._stopping.wait(route.delay):
                    return
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif route.length != NO_LENGTH:
                    self.send_header("Content-Length",
                                     str(len(route.body) if route.length is None else route.length))
                self.end_headers()
                try:
                    self._write_body(route)
                except OSError:
                    pass  # the client gave up (a timeout under test)

            def _write_body(self, route: Route) -> None:
                body = route.body
                if route.chunked:
                    body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + CHUNK]), body[i:i + CHUNK])
                                    for i in range(0, len(body), CHUNK)) + b"0\r\n\r\n"
                if not route.trickle:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    if sink._stopping.wait(route.trickle):
                        return
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        return Handler
