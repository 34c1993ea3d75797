"""Debian's haproxy as a subprocess running the shipped deploy/haproxy.cfg."""

import os
import signal
import socket
import subprocess
import threading
import time
import weakref

from . import REPO_ROOT
from .viewer import http_get
from .waiting import wait_for

CONFIG = REPO_ROOT / "deploy" / "haproxy.cfg"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(5)


class HAProxy:
    """haproxy in the foreground, its log lines (stdout) recorded.

    haproxy refuses to bind port 0, so it is handed a socket already
    listening on one the kernel chose (``bind fd@N``, its own syntax).
    """

    def __init__(self, edges: list[str], config=CONFIG):
        with socket.create_server(("127.0.0.1", 0)) as front:
            self.port = front.getsockname()[1]
            env = dict(os.environ, RESTREAMER_FRONT=f"fd@{front.fileno()}",
                       **{f"RESTREAMER_EDGE{i}": edge for i, edge in enumerate(edges, 1)})
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, pass_fds=[front.fileno()])
        weakref.finalize(self, _kill, self.proc)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self._wait_listening()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()

    def _wait_listening(self, timeout: float = 10) -> None:
        """Until haproxy answers a request on the front socket (its health
        check's path, so no edge counts a viewer)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                http_get(self.url("/health"), timeout=1)
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("haproxy did not start:\n" + "\n".join(self.lines))
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_line(self, text: str, since: int = 0, timeout: float = 10) -> str:
        """The first log line from index ``since`` containing ``text``."""
        def found():
            return next((line for line in self.lines[since:] if text in line), None)
        return wait_for(self._cond, found, timeout, f"haproxy log line with {text!r}")

    def close(self) -> None:
        _kill(self.proc)
