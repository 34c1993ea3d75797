"""Logs for people: on a terminal the CLI writes structlog's console lines,
anywhere else JSON; --log-format and --log-level override. Run through a
real pseudo-terminal."""

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading

from tests.support import REPO_ROOT
from tests.support.polling import poll
from tests.support.procs import listening_ports
from tests.support.viewer import http_get
from tests.support.waiting import wait_for


ANSI = re.compile(r"\x1b\[[0-9;]*m")


class OnTerminal:
    """``python -m restreamer ARGS`` with its stdout and stderr on a pty."""

    def __init__(self, *args):
        master, slave = pty.openpty()
        self.proc = subprocess.Popen([sys.executable, "-m", "restreamer", *map(str, args)], cwd=REPO_ROOT,
                                     stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                                     start_new_session=True)
        os.close(slave)
        self.output = b""
        self.cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(master,), daemon=True)
        self._reader.start()

    def _read(self, master):
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            if not data:
                os.close(master)
                return
            with self.cond:
                self.output += data
                self.cond.notify_all()

    def lines(self) -> list[str]:
        with self.cond:
            return [ANSI.sub("", line) for line in self.output.decode("utf-8", "replace").splitlines()]

    def wait_line(self, text: str) -> str:
        return wait_for(self.cond, lambda: next((line for line in self.lines() if text in line), None),
                        10, f"a line with {text!r}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(10)
        self._reader.join(5)
        return code


def config_file(tmp_path, **extra):
    path = tmp_path / "restreamer.json"
    path.write_text(json.dumps({"listen": "127.0.0.1:0", **extra, "resources": [
        {"type": "api", "api": "health", "serve": "/health"}]}))
    return path


def test_a_terminal_gets_lines_for_people(tmp_path):
    run = OnTerminal(config_file(tmp_path))
    try:
        line = run.wait_line("listening")
        assert not line.lstrip().startswith("{")
        port = int(re.search(r"\bport=(\d+)", line)[1])
        assert "info" in line and port > 0
        assert http_get(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        assert run.stop() == 0
    assert not [line for line in run.lines() if line.startswith("{")]


def test_log_format_and_level_override_the_terminal(tmp_path):
    run = OnTerminal(config_file(tmp_path, lisen="typo"), "--log-format", "json",
                     "--log-level", "warning")
    try:
        warning = json.loads(run.wait_line("config warning"))
        assert (warning["level"], "did you mean 'listen'?" in warning["detail"]) == ("warning", True)
        # No "listening" line at this level: the port is read from /proc.
        port = poll(lambda: listening_ports(run.proc.pid), bool, 10, "a listening socket")[0]
        assert http_get(f"http://127.0.0.1:{port}/health")[0] == 200
    finally:
        assert run.stop() == 0
    events = [json.loads(line) for line in run.lines()]
    assert [e["event"] for e in events] == ["config warning"]  # nothing below warning
