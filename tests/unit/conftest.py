"""The fast in-process tier: every test body runs in a gevent greenlet.

The end-to-end tier shares this pytest process and its threads, so nothing
is monkeypatched: the code under test waits through gevent's own primitives
(queues, events, timers, greenlets), which work without patching as long as
a greenlet, not the main one, does the waiting.
"""

from dataclasses import replace

import gevent
import pytest
import structlog.testing

from restreamer.config import from_dict
from restreamer.core.settings import Settings
from restreamer.core.stream import Stream
from restreamer.sources import SourceSettings

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
    return replace(Stream(config.streams[0], config).upstream.settings, **changes)


def first_bytes(viewer, timeout: float = 1) -> bytes:
    """What a viewer's response writes first (its body begins with an empty piece)."""
    with gevent.Timeout(timeout):
        return next(piece for piece in viewer.chunks() if piece)


def stream_settings(**changes):
    """The settings of a stream of a default config, with ``changes`` (config names)."""
    config = from_dict({"resources": [{"type": "stream", "serve": "/s.ts", "remote": "tcp://a:1"}]})
    return replace(Settings.of(config.streams[0], config), **changes)
