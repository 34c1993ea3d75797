"""Fixtures shared by all tests: the sample stream, self-cleaning factories
for upstreams, viewers and restreamer processes, a browser, and seeded
randomness."""

import os
import random

import pytest

from tests.support.browser import chromium
from tests.support.server import RestreamerProcess
from tests.support.ts import load_sample
from tests.support.upstream import TSUpstream, UDPTSSender, UnixTSUpstream, refusing_port
from tests.support.viewer import HttpViewer


#: Every random choice of a run derives from this seed, shown in pytest's
#: header; TEST_SEED=N replays a run's choices.
SEED = int(os.environ.get("TEST_SEED") or random.SystemRandom().randrange(2**32))


def pytest_report_header():
    return f"TEST_SEED={SEED}"


@pytest.fixture
def rng(request) -> random.Random:
    """A random generator seeded from TEST_SEED and the test's id."""
    return random.Random(f"{SEED} {request.node.nodeid}")


@pytest.fixture(scope="session")
def sample() -> bytes:
    """The bundled sample.ts, read once."""
    return load_sample()


@pytest.fixture
def upstream(sample):
    """upstream(payload=sample, mode="http", **kwargs) -> a running TSUpstream, stopped at teardown."""
    servers = []

    def make(payload=None, mode="http", **kwargs):
        server = TSUpstream(sample if payload is None else payload, mode, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def unix_upstream(sample, tmp_path):
    """unix_upstream(payload=sample, **kwargs) -> a running UnixTSUpstream in tmp_path."""
    servers = []

    def make(payload=None, **kwargs):
        server = UnixTSUpstream(sample if payload is None else payload, tmp_path, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def udp_sender(sample):
    """udp_sender(port, payload=sample, **kwargs) -> a running UDPTSSender to 127.0.0.1:port."""
    senders = []

    def make(port, payload=None, **kwargs):
        sender = UDPTSSender(sample if payload is None else payload, port=port, **kwargs)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        sender.stop()


@pytest.fixture
def refused_port():
    """A port on 127.0.0.1 where every connection is refused, for the test's length."""
    with refusing_port() as sock:
        yield sock.getsockname()[1]


@pytest.fixture
def viewer():
    """viewer(url, **kwargs) -> a connected HttpViewer, closed at teardown."""
    viewers = []

    def make(url, **kwargs):
        client = HttpViewer(url, **kwargs)
        viewers.append(client)
        return client

    yield make
    for client in viewers:
        client.close()


@pytest.fixture
def restreamer(tmp_path):
    """restreamer(config, start=True, **kwargs) -> a RestreamerProcess (started unless
    start=False), stopped at teardown.

    Each process's last output is printed at teardown, so pytest shows it
    under "Captured stdout teardown" when a test fails.
    """
    processes = []

    def make(config, start=True, **kwargs):
        process = RestreamerProcess(config, tmp_path, **kwargs)
        processes.append(process)
        return process.start() if start else process

    yield make
    for process in processes:
        process.close()
        print(process.output_tail())


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (selenium's driver), one per test module.

    Quitting, it lets go of its keep-alive connections before the servers
    the module started first stop: each of those would wait up to 3 s for
    them were the browser one for the whole run.
    """
    driver = chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def pytest_collection_modifyitems(items):
    """The fast in-process tier first, so a broken unit fails in seconds, then
    the end-to-end tier over real sockets (a stable sort keeps each file's order)."""
    items.sort(key=lambda item: not item.nodeid.startswith("tests/unit/"))
