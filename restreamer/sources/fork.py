"""Command upstreams: ``fork:///path/to/cmd?arg1+arg2`` runs the command and reads its stdout.

The arguments are the URL-decoded query split on spaces (``+`` and ``%20``
both decode to a space), as in the original; the command is the URL's host
and path, so ``fork://ffmpeg?...`` finds ffmpeg on ``PATH``.
"""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

import gevent
from gevent import subprocess

from ..log import get_logger
from .base import READ_SIZE, SourceError, SourceSettings, describe

#: How long the child's process group gets to exit after SIGTERM before it is killed.
_STOP_GRACE = 2.0
#: Longest stderr line logged; the rest of a longer line is dropped.
LINE_LIMIT = 4096
#: As journald limits a unit: per interval (seconds) up to so many stderr lines
#: and bytes of them are logged; the others are counted, and the count logged
#: once when the interval ends.  With each entry's own fields, the log grows by
#: at most about 10 KB a second whatever the child writes.
INTERVAL = 1.0
LINES_PER_INTERVAL = 16
BYTES_PER_INTERVAL = 5000
#: A progress line ends with a carriage return (ffmpeg, curl), others with a newline.
_LINE_END = re.compile(rb"[\r\n]")


class ForkConnection:
    """A child process in its own process group; its stderr is logged line by line."""

    def __init__(self, url: str, settings: SourceSettings):
        parts = urlsplit(url)
        command = unquote(parts.netloc + parts.path)
        args = unquote_plus(parts.query).split(" ") if parts.query else []
        try:
            self._child = subprocess.Popen(
                [command, *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, close_fds=True, start_new_session=True)
        except OSError as e:
            raise SourceError(f"cannot run {command}: {describe(e)}") from None
        self._stdout = self._child.stdout
        self._log = get_logger("source", stream=settings.stream, command=command, pid=self._child.pid)
        self._lines = _StderrLines(self._log)
        self._stderr_reader = gevent.spawn(self._read_stderr)
        self.gathers = True  # a pipe read returns all that the child has written

    def _read_stderr(self) -> None:
        stderr = self._child.stderr
        while True:
            data = stderr.read1(READ_SIZE)
            if not data:
                break
            self._lines.feed(data)
        self._lines.end()

    def read(self) -> bytes:
        try:
            return self._stdout.read1(READ_SIZE)
        except (OSError, ValueError) as e:
            raise SourceError(f"reading child output: {e}") from None

    def close(self) -> None:
        child = self._child
        if child.stdout.closed:
            return
        # The whole process group, even if the child itself has exited: a
        # shell or wrapper may have left the process that writes the stream,
        # and it may ignore SIGTERM.
        deadline = time.monotonic() + _STOP_GRACE
        self._signal_group(signal.SIGTERM)
        try:
            child.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
        while self._signal_group(0) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if self._signal_group(signal.SIGKILL):
            child.wait()
        self._stderr_reader.join(timeout=_STOP_GRACE)
        self._stderr_reader.kill()
        child.stdout.close()
        child.stderr.close()
        self._log.info("child exited", **_exit_status(child.returncode))

    def _signal_group(self, signum: int) -> bool:
        """Signal the child's process group (it leads one: start_new_session);
        False if no process of it is left."""
        try:
            os.killpg(self._child.pid, signum)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:  # a member changed its user: it is still there
            return True


def _exit_status(returncode: int) -> dict:
    """The Go original logs ``exitcode``; a signal is named as well."""
    if returncode < 0:
        try:
            return {"exitcode": returncode, "signal": signal.Signals(-returncode).name}
        except ValueError:
            pass
    return {"exitcode": returncode}


class _StderrLines:
    """Cuts a child's stderr into lines and logs them, bounded in size and rate.

    Memory is bounded too: of a line longer than LINE_LIMIT only its first
    LINE_LIMIT bytes are kept.
    """

    def __init__(self, log: Any):
        self._log = log  # bound to the stream, command and child
        self._partial = b""
        self._overlong = False  # the current line passed LINE_LIMIT; the rest is dropped
        self._interval_ends = 0.0
        self._lines_left = self._bytes_left = 0
        self._suppressed = 0

    def feed(self, data: bytes) -> None:
        pieces = _LINE_END.split(data)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if not self._overlong:
                self._partial += piece[:LINE_LIMIT - len(self._partial)]
                if len(self._partial) >= LINE_LIMIT:
                    self._overlong = True
                    self._emit(self._partial, truncated=True)
                    self._partial = b""
            if not last:  # a line end follows this piece
                if not self._overlong:
                    self._emit(self._partial)
                self._partial = b""
                self._overlong = False

    def end(self) -> None:
        if self._partial:
            self._emit(self._partial)
        self._partial = b""
        self._report_suppressed()

    def _emit(self, line: bytes, truncated: bool = False) -> None:
        if not line.strip():
            return  # the empty "line" between \r and \n, or a blank one
        now = time.monotonic()
        if now >= self._interval_ends:
            self._report_suppressed()
            self._interval_ends = now + INTERVAL
            self._lines_left, self._bytes_left = LINES_PER_INTERVAL, BYTES_PER_INTERVAL
        if self._lines_left <= 0 or len(line) > self._bytes_left:
            self._suppressed += 1
            return
        self._lines_left -= 1
        self._bytes_left -= len(line)
        extra = {"truncated": True} if truncated else {}
        self._log.info("child stderr", line=line.decode("utf-8", "replace").rstrip(), **extra)

    def _report_suppressed(self) -> None:
        if self._suppressed:
            self._log.info("child stderr suppressed", lines=self._suppressed,
                           reason=f"more than {LINES_PER_INTERVAL} lines or {BYTES_PER_INTERVAL}"
                                  f" bytes in {INTERVAL:g} s")
            self._suppressed = 0
