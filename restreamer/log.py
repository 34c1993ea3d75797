"""Logging configuration, in one place: structlog, JSON lines (or lines for
people on a terminal), one event per line.

Everything, including messages from libraries that use the standard
``logging`` module (gevent, werkzeug, gunicorn), Python's warnings and
gevent's reports of greenlets that died of an exception, ends up as one JSON
object per line with ``time``, ``level``, ``module`` and ``event`` on stdout or
in the configured log file.  The file can be reopened (SIGHUP or SIGUSR1, for logrotate).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, TextIO

import gevent
import structlog

from .redact import redact_text


class LogOutput:
    """The log destination: stdout, or a file that can be reopened in place."""

    def __init__(self, path: str = ""):
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO = self._open()

    def _open(self) -> TextIO:
        if not self.path:
            return sys.stdout
        return open(self.path, "a", encoding="utf-8", buffering=1)

    def write(self, text: str) -> None:
        with self._lock:
            self._file.write(text)

    def flush(self) -> None:
        with self._lock:
            self._file.flush()

    def reopen(self) -> None:
        """Start a new file after logrotate moved the old one away."""
        if not self.path:
            return
        with self._lock:
            old, self._file = self._file, self._open()
        old.close()

    def close(self) -> None:
        if self.path:
            with self._lock:
                self._file.close()
                self._file = sys.stdout


_output: LogOutput | None = None
#: How lines are rendered ("json", "console", or None: console on a terminal,
#: else JSON) and from which level on; kept across configure() calls (a reload).
_format: str | None = None
_level = "info"
FORMATS = ("json", "console")
LEVELS = ("debug", "info", "warning", "error")

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
]


def _redact_urls(logger: Any, method: str, event: dict) -> dict:
    """A backstop: the userinfo and query of any URL in an event never reach the log.

    URLs from the config are logged redacted where they are logged
    (:func:`restreamer.redact.redact_url`); this catches the rest, such as a
    URL quoted in a library's error message.
    """
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact_text(value)
    return event


def _add_pid(logger: Any, method: str, event: dict) -> dict:
    event["pid"] = os.getpid()
    return event


def configure(path: str = "", pid: bool = False, fmt: str | None = None,
              level: str | None = None) -> LogOutput:
    """Send all logs to ``path`` (stdout when empty); with ``pid``, each line
    names its process (one of several gunicorn workers).

    ``fmt`` is ``json`` (one object per line) or ``console`` (structlog's
    lines for people); by default, console where the output is a terminal,
    JSON anywhere else (a pipe, a file, journald, gunicorn).  ``level`` is the
    lowest level logged (default ``info``).  Both stay as set for later calls.
    """
    global _output, _format, _level
    output = LogOutput(path)  # opened first: if it cannot be, the old one stays
    if _output is not None:
        _output.close()
    _output = output
    _format = fmt or _format
    _level = level or _level
    console = _format == "console" or (_format is None and _is_terminal(output))
    threshold = getattr(logging, _level.upper())
    own = [_add_pid] if pid else []
    structlog.configure(
        processors=[*_SHARED, *own, structlog.processors.format_exc_info, _redact_urls,
                    _renderer(console)],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.WriteLoggerFactory(file=_output),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(_output)
    handler.setFormatter(json_formatter(pid, console))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    logging.captureWarnings(True)
    # gevent prints a greenlet's uncaught exception (and a server's accept
    # error) as a multi-line traceback on stderr.
    gevent.get_hub().print_exception = _log_greenlet_error
    return _output


def _is_terminal(output: LogOutput) -> bool:
    return not output.path and sys.stdout.isatty()


def _renderer(console: bool) -> Any:
    if console:
        # Exceptions are formatted by then (format_exc_info): plain text, no rich.
        return structlog.dev.ConsoleRenderer(timestamp_key="time",
                                             exception_formatter=structlog.dev.plain_traceback)
    return structlog.processors.JSONRenderer(sort_keys=False)


def json_formatter(pid: bool = False, console: bool = False) -> logging.Formatter:
    """A ``logging`` formatter that renders a record as restreamer's JSON line,
    or its console line (gunicorn's own loggers use it too:
    :mod:`restreamer.web.gunicorn_conf`)."""
    own = [_add_pid] if pid else []
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _redact_urls,
                    _renderer(console)],
        foreign_pre_chain=[*_SHARED, *own, structlog.stdlib.add_logger_name,
                           structlog.processors.format_exc_info],
    )


def _log_greenlet_error(context: Any, kind: type, value: BaseException | None, tb: Any) -> None:
    get_logger("gevent").error("uncaught error", context=repr(context)[:200],
                               exc_info=(kind, value, tb))


def configured() -> bool:
    return _output is not None


def reopen() -> None:
    if _output is not None:
        _output.reopen()


def get_logger(module: str, **context: Any) -> Any:
    """A structured logger whose events carry ``module`` (and any other context)."""
    # Lazy: bound on first use, so loggers made at import follow configure().
    return structlog.get_logger(module=module, **context)
