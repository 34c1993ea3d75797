"""Run the real restreamer as a subprocess and follow its JSON log."""

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import Callable, Optional, Union

import yaml

from . import REPO_ROOT
from .waiting import WaitTimeout, wait_for

LogMatch = Union[str, Callable[[dict], bool]]

_KILL_WAIT = 5.0
#: What wait_log's search reports when stdout has ended without a match.
_EXITED = {"event": "<stdout closed>"}
#: gunicorn's arbiter names the address it bound: a JSON log line's event with
#: the shipped config, a plain stderr line without it.
_GUNICORN_LISTENING = re.compile(r"Listening at: http://\S+:(\d+) \(")


class _Output:
    """Lines read from the child's pipes, shared with the reader threads.

    Kept apart from RestreamerProcess so the threads hold no reference to it,
    letting an abandoned RestreamerProcess be garbage-collected (and its
    process killed by the finalizer).
    """

    def __init__(self):
        self.logs: list[dict] = []
        self.stderr_lines: list[str] = []
        self.stdout_done = False
        self.cond = threading.Condition()

    def read_stdout(self, pipe) -> None:
        for raw in pipe:
            entry = _parse_log_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            with self.cond:
                self.logs.append(entry)
                self.cond.notify_all()
        with self.cond:
            self.stdout_done = True
            self.cond.notify_all()

    def read_stderr(self, pipe) -> None:
        for raw in pipe:
            with self.cond:
                self.stderr_lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.cond.notify_all()


def _parse_log_line(line: str) -> dict:
    """A JSON object log line as a dict; anything else as {"raw": line}."""
    try:
        entry = json.loads(line)
    except ValueError:
        return {"raw": line}
    return entry if isinstance(entry, dict) else {"raw": line}


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the process and anything it started (it leads its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(_KILL_WAIT)


def event(name: str, **fields) -> Callable[[dict], bool]:
    """A log predicate: event ``name`` whose fields include ``fields``."""
    def match(entry: dict) -> bool:
        return entry.get("event") == name and all(entry.get(k) == v for k, v in fields.items())
    match.__name__ = f"{name} {fields}"
    return match


def _matcher(match: LogMatch) -> tuple[Callable[[dict], bool], str]:
    """A predicate over log entries, and how to describe it in a failure."""
    if isinstance(match, str):
        return (lambda entry: entry.get("event") == match), f"log event {match!r}"
    return match, f"log entry matching {getattr(match, '__name__', repr(match))}"


class RestreamerProcess:
    """The restreamer running as `python -m restreamer CONFIGFILE` in the repo root.

    `config` (a dict, written as JSON or YAML per `fmt`, with "listen"
    defaulting to 127.0.0.1:0; or a str, written verbatim) goes to a fresh
    file in `tmp_path`. `cmd`, if given, replaces the command line, with
    "{config}" in any argument replaced by the config file's path. `env`
    adds to (not replaces) the inherited environment.

    stdout lines become `logs` (dicts; non-JSON lines as {"raw": line}) and
    stderr lines `stderr_lines`, both filled in by reader threads. The process
    is killed if this object is garbage-collected or the interpreter exits
    while it still runs, so no test can leak one.
    """

    def __init__(self, config: Union[dict, str], tmp_path, fmt: str = "json",
                 extra_args=(), env: Optional[dict] = None, cmd: Optional[list] = None):
        if isinstance(config, dict):
            config = {"listen": "127.0.0.1:0", **config}
        self.config = config
        self.config_path = _write_config(config, Path(tmp_path), fmt)
        if cmd is None:
            cmd = [sys.executable, "-m", "restreamer", "{config}"]
        self.args = [arg.replace("{config}", str(self.config_path)) for arg in cmd] + list(extra_args)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = REPO_ROOT  # another directory runs what is installed, not the checkout
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self._output = _Output()
        self.logs = self._output.logs
        self.stderr_lines = self._output.stderr_lines

    # -- lifecycle ---------------------------------------------------------

    def start(self, timeout: float = 15) -> "RestreamerProcess":
        """Launch the process and wait for its "listening" log event (which gives the port)."""
        self.launch()
        try:
            event = self.wait_log("listening", timeout)
        except AssertionError:
            _kill(self.proc)
            raise
        self.port = int(event["port"])
        return self

    def wait_gunicorn_port(self, timeout: float = 15) -> "RestreamerProcess":
        """For a gunicorn command bound to port 0 (``-b 127.0.0.1:0``): wait
        for its "Listening at" line and take the port it names."""
        def found():
            lines = [str(entry.get("event", entry.get("raw"))) for entry in self.logs] + self.stderr_lines
            return (next((int(m[1]) for line in lines if (m := _GUNICORN_LISTENING.search(line))), None)
                    or (_EXITED if self._output.stdout_done else None))

        try:
            port = wait_for(self._output.cond, found, timeout, "gunicorn's 'Listening at' line")
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}\n{self.output_tail()}") from None
        if port is _EXITED:
            raise AssertionError(f"gunicorn exited before listening\n{self.output_tail()}")
        self.port = port
        return self

    def launch(self) -> "RestreamerProcess":
        """Start the process without waiting for it to listen (e.g. to see it reject a config)."""
        assert self.proc is None, "already started"
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        weakref.finalize(self, _kill, self.proc)
        self._readers = [
            threading.Thread(target=self._output.read_stdout, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._output.read_stderr, args=(self.proc.stderr,), daemon=True),
        ]
        for thread in self._readers:
            thread.start()
        return self

    def wait_exit(self, timeout: float = 10) -> int:
        """Wait for the process to exit on its own; return the exit code.

        Its output is complete on return, so `stderr_lines` can be checked.
        """
        assert self.proc is not None, "never started"
        try:
            returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"restreamer still running after {timeout:g}s\n{self.output_tail()}") from None
        self._join_readers()
        return returncode

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send `sig` and wait for the exit; return the exit code.

        A process still running after `timeout` is killed and the stop fails,
        since not shutting down on a signal is a bug under test.
        """
        assert self.proc is not None, "never started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.wait_exit(timeout)
        except WaitTimeout:
            _kill(self.proc)
            self._join_readers()
            raise WaitTimeout(f"restreamer did not exit within {timeout:g}s of signal "
                              f"{signal.Signals(sig).name}\n{self.output_tail()}") from None

    def close(self) -> None:
        """Make sure the process and its children are gone: SIGTERM, then SIGKILL. Never raises."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(_KILL_WAIT)
            except subprocess.TimeoutExpired:
                pass
        _kill(self.proc)
        self._join_readers()

    def _join_readers(self) -> None:
        for thread in self._readers:
            thread.join(_KILL_WAIT)

    @property
    def returncode(self) -> Optional[int]:
        """The exit code, or None while running (or before start)."""
        return None if self.proc is None else self.proc.poll()

    def __enter__(self):
        return self if self.proc else self.start()

    def __exit__(self, *exc):
        self.close()

    # -- addresses ---------------------------------------------------------

    @property
    def host(self) -> str:
        """Where to connect: the configured listen host, loopback for a wildcard."""
        listen = self.config.get("listen", "") if isinstance(self.config, dict) else ""
        host = listen.rpartition(":")[0].strip("[]")
        return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host

    @property
    def base_url(self) -> str:
        assert self.port is not None, "not started (no listening event yet)"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    # -- logs --------------------------------------------------------------

    def mark(self) -> int:
        """A position in `logs`; pass it as wait_log(since=...) to match only later entries."""
        with self._output.cond:
            return len(self.logs)

    def find_logs(self, match: LogMatch, since: int = 0) -> list[dict]:
        """All log entries so far matching an event name or predicate."""
        predicate, _ = _matcher(match)
        with self._output.cond:
            return [entry for entry in self.logs[since:] if predicate(entry)]

    def wait_log(self, match: LogMatch, timeout: float = 10, since: int = 0) -> dict:
        """Wait for the first log entry (from index `since`) with event name `match`,
        or for which `match(entry)` is true; return it.

        Fails at once, with the process's output, if it exits without logging one.
        """
        predicate, what = _matcher(match)

        def found():
            for entry in self.logs[since:]:
                if predicate(entry):
                    return entry
            return _EXITED if self._output.stdout_done else None

        try:
            entry = wait_for(self._output.cond, found, timeout, what)
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}\n{self.output_tail()}") from None
        if entry is _EXITED:
            self.wait_exit(_KILL_WAIT)
            raise AssertionError(f"restreamer exited (code {self.proc.returncode}) before "
                                 f"logging a {what}\n{self.output_tail()}")
        return entry

    def output_tail(self, lines: int = 30) -> str:
        """The command line, exit status and last output lines, for failure messages."""
        with self._output.cond:
            logs = [json.dumps(entry) for entry in self.logs[-lines:]]
            errors = self.stderr_lines[-lines:]
        return "\n".join([f"command: {' '.join(self.args)}", f"exit code: {self.returncode}",
                          "--- last stdout lines:", *logs, "--- last stderr lines:", *errors])


_config_numbers = itertools.count(1)


def _write_config(config: Union[dict, str], directory: Path, fmt: str) -> Path:
    """Write the config to a new file in `directory`; several processes may share one."""
    if fmt not in ("json", "yaml"):
        raise ValueError(f"fmt must be 'json' or 'yaml', not {fmt!r}")
    path = directory / f"restreamer-{next(_config_numbers)}.{fmt}"
    if isinstance(config, str):
        text = config
    elif fmt == "json":
        text = json.dumps(config, indent=2)
    else:
        text = yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    return path
