"""Sources one process at a time may read (a FIFO, a unicast UDP port, a
unixgram path) under gunicorn -w 2.  With the shipped config/gunicorn.conf.py
one worker owns each stream and every viewer, on either worker, gets it
whole; with a bare gunicorn one worker reads each source, the other is
refused with the reason and answers 404.  Never a split or broken stream."""

import os
import sys

from tests.support.ts import PACKET_SIZE, assert_aligned, assert_joined
from tests.support.procs import udp_ports
from tests.support.upstream import FIFOWriter, UDPTSSender
from tests.support.viewer import HttpViewer

RATE = 2_000_000
ENOUGH = 60_000


class Sources:
    """A FIFO with its writer, a UDP port and a unixgram path with their senders.

    The UDP port is the kernel's choice (``udp://127.0.0.1:0``), read back
    from the one worker that bound it.
    """

    def __init__(self, sample, tmp_path):
        self.sample = sample
        self.fifo = tmp_path / "in.ts"
        os.mkfifo(self.fifo)
        self.gram = tmp_path / "in.sock"
        self.urls = {"/fifo.ts": f"file://{self.fifo}", "/udp.ts": "udp://127.0.0.1:0",
                     "/gram.ts": f"unixgram://{self.gram}"}
        self.feeds = {}

    def start(self, rs):
        """Feed them all, once ``rs`` has bound its UDP port."""
        (udp_port,) = udp_ports(rs.proc.pid)
        self.feeds = {"/fifo.ts": FIFOWriter(self.fifo, self.sample, rate=RATE),
                      "/udp.ts": UDPTSSender(self.sample, port=udp_port, rate=RATE),
                      "/gram.ts": UDPTSSender(self.sample, unix_path=str(self.gram), rate=RATE)}

    def stop(self):
        for feed in self.feeds.values():
            feed.stop()


def gunicorn(restreamer, sources, *options, **config):
    rs = restreamer({"reconnect": 30, "graceperiod": 2, **config,
                     "resources": [{"type": "stream", "serve": s, "remote": u} for s, u in sources.urls.items()]},
                    start=False,
                    cmd=[sys.executable, "-m", "gunicorn", *options, "-b", "127.0.0.1:0",
                         "--workers", "2", "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    return rs.launch().wait_gunicorn_port()


def assert_whole(client, feed):
    data = client.wait_bytes(ENOUGH)
    data = data[:len(data) - len(data) % PACKET_SIZE]
    assert_aligned(data)
    assert assert_joined(data, feed.sent) % PACKET_SIZE == 0


def opened(rs, url):
    return rs.find_logs(lambda e: e.get("event") == "upstream connected" and e["url"] == url)


def test_with_the_shipped_config_every_viewer_on_either_worker_gets_the_stream(sample, tmp_path, restreamer):
    sources = Sources(sample, tmp_path)
    rs = gunicorn(restreamer, sources, "-c", "config/gunicorn.conf.py", runtimedir=str(tmp_path / "run"))
    for url in sources.urls.values():
        rs.wait_log(lambda e, u=url: e.get("event") == "upstream connected" and e["url"] == u, timeout=15)
    sources.start(rs)
    clients = []
    try:
        for path in sources.urls:
            rs.wait_log(lambda e, p=path: e.get("event") == "stream online" and e.get("stream") == p)
        for path, feed in sources.feeds.items():
            for _ in range(4):
                client = HttpViewer(rs.url(path))
                clients.append(client)
                assert client.wait_status() == 200
                assert_whole(client, feed)
        for url in sources.urls.values():
            assert len(opened(rs, url)) == 1
        assert rs.find_logs(lambda e: e.get("event") == "upstream error"
                            and e["url"] in sources.urls.values()) == []
    finally:
        for client in clients:
            client.close()
        sources.stop()


def test_with_a_bare_gunicorn_one_worker_reads_each_source_and_the_other_is_refused(
        sample, tmp_path, restreamer):
    sources = Sources(sample, tmp_path)
    rs = gunicorn(restreamer, sources, "-k", "restreamer.web.worker.Worker")
    for url in sources.urls.values():
        rs.wait_log(lambda e, u=url: e.get("event") == "upstream connected" and e["url"] == u, timeout=15)
        refused = rs.wait_log(lambda e, u=url: e.get("event") == "upstream error" and e["url"] == u,
                              timeout=15)
        assert "is read by another process" in refused["reason"], refused
    sources.start(rs)
    clients = []
    try:
        for path, feed in sources.feeds.items():
            # Viewers land on either worker: the reader's answer 200 with the
            # whole stream, the other's 404 (never a split or broken stream).
            for _ in range(40):
                client = HttpViewer(rs.url(path))
                clients.append(client)
                if client.wait_status() == 200:
                    break
                assert client.status == 404
            else:
                raise AssertionError(f"no viewer of {path} reached the worker that reads it")
            assert_whole(client, feed)
        # No second reader split the FIFO, failed to bind the port or
        # replaced the unixgram socket.
        for url in sources.urls.values():
            assert len(opened(rs, url)) == 1
    finally:
        for client in clients:
            client.close()
        sources.stop()
