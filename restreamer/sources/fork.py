"""Command upstreams: ``fork:///path/to/cmd?arg1+arg2`` runs the command and reads its stdout.

The arguments are the URL-decoded query split on spaces (``+`` and ``%20``
both decode to a space), as in the original; the command is the URL's host
and path, so ``fork://ffmpeg?...`` finds ffmpeg on ``PATH``.
"""

from __future__ import annotations

import os
import signal
from urllib.parse import unquote, unquote_plus, urlsplit

import gevent
from gevent import subprocess

from ..log import get_logger
from .base import READ_SIZE, SourceError, SourceSettings, describe

_log = get_logger("source")

#: How long a child gets to exit after SIGTERM before it is killed.
_STOP_GRACE = 2.0


class ForkConnection:
    """A child process; each line it writes to stderr is logged."""

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
        self._stderr_reader = gevent.spawn(self._log_stderr, command, settings.stream)
        self.gathers = True  # a pipe read returns all that the child has written

    def _log_stderr(self, command: str, stream: str) -> None:
        for line in self._child.stderr:
            _log.info("child stderr", stream=stream, command=command, pid=self._child.pid,
                      line=line.decode("utf-8", "replace").rstrip())

    def read(self) -> bytes:
        try:
            return self._stdout.read1(READ_SIZE)
        except (OSError, ValueError) as e:
            raise SourceError(f"reading child output: {e}") from None

    def close(self) -> None:
        child = self._child
        # The whole process group, even if the child itself has exited: a
        # shell or wrapper may have left the process that writes the stream.
        self._signal_group(signal.SIGTERM)
        try:
            child.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            child.wait()
        self._stderr_reader.join(timeout=_STOP_GRACE)
        self._stderr_reader.kill()
        child.stdout.close()
        child.stderr.close()

    def _signal_group(self, signum: int) -> None:
        """Signal the child's process group (it leads one: start_new_session)."""
        try:
            os.killpg(self._child.pid, signum)
        except ProcessLookupError:
            pass  # every process of the group has exited
