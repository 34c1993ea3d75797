"""The fast in-process tier: every test body runs in a gevent greenlet.

The end-to-end tier shares this pytest process and its threads, so nothing
is monkeypatched: the code under test waits through gevent's own primitives
(queues, events, timers, greenlets), which work without patching as long as
a greenlet, not the main one, does the waiting.

The tier needs nothing outside Python and no network port (README "Tests"):
a test that binds or dials an IP address, or runs any program but this
Python, fails and belongs in the end-to-end tier (tests/test_*.py).
"""

import socket
import subprocess
import sys
from dataclasses import replace

import gevent
import gevent.event
import gevent.socket
import gevent.subprocess
import pytest
import structlog.testing

from restreamer.config import from_dict
from restreamer.core.settings import Settings
from restreamer.core.stream import Stream
from restreamer.sources import SourceSettings
from tests.support.ts import make_packets

#: Seconds a unit test body may run; a hang fails here, far below pytest.ini's limit.
TEST_TIMEOUT = 10


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    # The arguments as pytest's own pytest_pyfunc_call picks them.
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    body = gevent.spawn(pyfuncitem.obj, **args)
    body.join(timeout=TEST_TIMEOUT)
    if not body.ready():
        body.kill()
        pytest.fail(f"test body still running after {TEST_TIMEOUT} s", pytrace=False)
    body.get()  # re-raises the body's assertion or error here
    return True


_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture(autouse=True)
def _python_only_and_no_network_port(monkeypatch):
    """Fails the test that uses an IP socket or runs a program but Python.

    The refused call raises, and the test fails at teardown too, in case the
    code under test caught the error as a network or child failure.
    """
    broken = []

    def refuse(what: str):
        broken.append(what)
        return PermissionError(f"unit tier: {what}; such a test belongs in tests/test_*.py")

    def guard_socket(cls, method: str):
        original = getattr(cls, method)

        def guarded(sock, *args, **kwargs):
            if sock.family in _IP_FAMILIES:
                raise refuse(f"socket.{method}{args!r}")
            return original(sock, *args, **kwargs)
        monkeypatch.setattr(cls, method, guarded)

    for cls in (socket.socket, gevent.socket.socket):
        for method in ("bind", "connect", "connect_ex", "sendto"):
            guard_socket(cls, method)

    def guard_popen(cls):
        original = cls.__init__

        def guarded(popen, args, *rest, **kwargs):
            program = args if isinstance(args, (str, bytes)) else args[0]
            if kwargs.get("shell") or program != sys.executable:
                raise refuse(f"runs {program!r}")
            original(popen, args, *rest, **kwargs)
        monkeypatch.setattr(cls, "__init__", guarded)

    for cls in (subprocess.Popen, gevent.subprocess.Popen):
        guard_popen(cls)
    yield
    assert not broken, f"unit tier: {broken}"


def wait_until(predicate, timeout: float = 5, what: str = "condition"):
    """Yield to other greenlets until ``predicate()`` is true; for states no event announces."""
    with gevent.Timeout(timeout, AssertionError(f"timed out waiting for {what}")):
        while not (result := predicate()):
            gevent.sleep(0.001)
    return result


def wait_log(logs: list, event: str, timeout: float = 5, **fields) -> dict:
    """The first captured log entry named ``event`` (with ``fields``), waiting for it."""
    def found():
        return next((e for e in logs if e["event"] == event
                     and all(e.get(k) == v for k, v in fields.items())), None)
    return wait_until(found, timeout, f"log event {event!r} {fields or ''}")


@pytest.fixture
def logs():
    """Every log entry the test causes, as dicts (structlog's capture_logs)."""
    with structlog.testing.capture_logs() as captured:
        yield captured


def source_settings(**changes) -> SourceSettings:
    """What a stream of a default config opens its sources with, and ``changes``."""
    config = from_dict({"resources": [{"type": "stream", "serve": "/s.ts", "remote": "tcp://a:1"}]})
    return replace(Stream(config.streams[0], config).pull.settings, **changes)


def first_bytes(viewer, timeout: float = 1) -> bytes:
    """What a viewer's response writes first (its body begins with an empty piece)."""
    with gevent.Timeout(timeout):
        return next(piece for piece in viewer.chunks() if piece)


def stream_settings(**changes):
    """The settings of a stream of a default config, with ``changes`` (config names)."""
    config = from_dict({"resources": [{"type": "stream", "serve": "/s.ts", "remote": "tcp://a:1"}]})
    return replace(Settings.of(config.streams[0], config), **changes)


class Live:
    """A connection that sends a few packets and then waits, as a live upstream
    between writes (or a quiet multicast group)."""

    def __init__(self, url: str = ""):
        self.url = url
        self.reads = [make_packets(7)]
        self.closed = gevent.event.Event()

    def read(self) -> bytes:
        if self.reads:
            return self.reads.pop(0)
        gevent.event.Event().wait()
        return b""

    def close(self) -> None:
        self.closed.set()
