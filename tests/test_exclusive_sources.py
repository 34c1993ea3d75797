"""Sources one process at a time may read (a FIFO, a unicast UDP port, a
unixgram path) under gunicorn -w 2: one worker reads each, the other is
refused with the reason, and every viewer gets either the whole stream or a
404, never a split or broken one."""

import os
import socket
import sys

from tests.support.ts import PACKET_SIZE, assert_aligned, assert_contiguous
from tests.support.upstream import FIFOWriter, UDPTSSender, free_port
from tests.support.viewer import Viewer

RATE = 2_000_000
ENOUGH = 60_000


def read_by_one_worker(rs, url):
    """The stream's source was opened by one worker and refused to the other."""
    opened = rs.wait_log(lambda e: e.get("event") == "upstream connected" and e["url"] == url, timeout=15)
    refused = rs.wait_log(lambda e: e.get("event") == "upstream error" and e["url"] == url, timeout=15)
    assert "is read by another process" in refused["reason"], refused
    return opened


def a_viewer_of_the_reader(rs, path):
    """Viewers land on either worker: the first that the reading worker answers."""
    for _ in range(40):
        client = Viewer(rs.url(path))
        if client.wait_status() == 200:
            return client
        assert client.status == 404
        client.close()
    raise AssertionError(f"no viewer of {path} reached the worker that reads it")


def test_fifo_udp_and_unixgram_have_one_reader_under_two_gunicorn_workers(sample, tmp_path, restreamer):
    fifo = tmp_path / "in.ts"
    os.mkfifo(fifo)
    udp = f"udp://127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    gram = tmp_path / "in.sock"
    urls = {"/fifo.ts": f"file://{fifo}", "/udp.ts": udp, "/gram.ts": f"unixgram://{gram}"}
    port = free_port()
    rs = restreamer({"reconnect": 30, "graceperiod": 2,
                     "resources": [{"type": "stream", "serve": s, "remote": u} for s, u in urls.items()]},
                    start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-k", "restreamer.web.worker.Worker",
                         "-b", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch()
    rs.port = port
    for url in urls.values():
        read_by_one_worker(rs, url)
    writer = FIFOWriter(fifo, sample, rate=RATE)
    senders = [UDPTSSender(sample, port=int(udp.rsplit(":", 1)[1]), rate=RATE),
               UDPTSSender(sample, unix_path=str(gram), rate=RATE)]
    clients = []
    try:
        for path, source in (("/fifo.ts", writer), ("/udp.ts", senders[0]), ("/gram.ts", senders[1])):
            client = a_viewer_of_the_reader(rs, path)
            clients.append(client)
            data = client.wait_bytes(ENOUGH)
            data = data[:len(data) - len(data) % PACKET_SIZE]
            assert_aligned(data)
            assert assert_contiguous(data, source.sent) % PACKET_SIZE == 0
        # Each source was opened once: no second reader split the FIFO,
        # failed to bind the port or replaced the unixgram socket.
        for url in urls.values():
            assert len(rs.find_logs(lambda e, u=url: e.get("event") == "upstream connected" and e["url"] == u)) == 1
    finally:
        for client in clients:
            client.close()
        writer.stop()
        for sender in senders:
            sender.stop()
