"""One program of a multi-program stream: a 2-program transport stream made by
ffmpeg's -program options, relayed as `program: 2`; and two streams on its two
programs sharing the one connection an upstream allows, in one process and
across gunicorn workers."""

import json
import socket
import subprocess
import threading
import time

import pytest

from tests.support.polling import poll
from tests.support.viewer import HttpViewer, raw_get, read_response
from tests.test_workers import launch_gunicorn, owner_of, roles

TWO_PROGRAMS = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
                "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=frequency=880",
                "-map", "0:v", "-map", "1:a", "-map", "2:v", "-map", "3:a",
                "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "mp2",
                "-program", "program_num=1:title=One:st=0:st=1", "-program", "program_num=2:title=Two:st=2:st=3"]


@pytest.fixture(scope="module")
def two_programs(tmp_path_factory):
    path = tmp_path_factory.mktemp("programs") / "two.ts"
    subprocess.run(["ffmpeg", "-v", "error", *TWO_PROGRAMS, "-t", "4", "-f", "mpegts", str(path)],
                   check=True, timeout=60)
    return path.read_bytes()


class OneClientUpstream:
    """An HTTP upstream that serves one client at a time, as a tuner or a
    provider's single-session account does: another client meanwhile gets 503."""

    def __init__(self, payload: bytes, rate: float):
        self.payload, self.rate = payload, rate
        self.accepted = self.refused = 0
        self.busy = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/transponder.ts"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.recv(4096)  # the request head: any path will do
            if not self.busy.acquire(blocking=False):
                self.refused += 1
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                self.accepted += 1
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
                began, sent = time.monotonic(), 0
                while not self._stop.is_set():
                    for at in range(0, len(self.payload), 1316):
                        client.sendall(self.payload[at:at + 1316])
                        sent += 1316
                        ahead = began + sent * 8 / self.rate - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
                        if self._stop.is_set():
                            return
            except OSError:
                pass
            finally:
                self.busy.release()

    def stop(self) -> None:
        self._stop.set()
        self._listener.close()


def _programs(path) -> list[tuple[int, list[tuple[str, str]]]]:
    """Each program ffprobe sees in ``path``: its number and its streams (type, codec)."""
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_programs", "-show_entries", "stream=codec_type,codec_name",
         "-of", "json", str(path)], capture_output=True, text=True, timeout=30, check=True).stdout)
    return [(p["program_num"], sorted((s["codec_type"], s["codec_name"]) for s in p["streams"]))
            for p in probe["programs"]]


def test_two_programs_of_a_one_client_upstream_play_over_one_connection(restreamer, viewer, two_programs,
                                                                         tmp_path):
    source = OneClientUpstream(two_programs, rate=2_000_000)
    try:
        rs = restreamer({"resources": [
            {"type": "stream", "serve": "/one.ts", "remote": source.url, "program": 1},
            {"type": "stream", "serve": "/two.ts", "remote": source.url, "program": 2}]})
        viewers = {number: viewer(rs.url(f"/{name}.ts")) for number, name in ((1, "one"), (2, "two"))}
        for number, client in viewers.items():
            relayed = tmp_path / f"program{number}.ts"
            relayed.write_bytes(client.wait_bytes(150_000))
            assert _programs(relayed) == [(number, [("audio", "mp2"), ("video", "h264")])]
        assert (source.accepted, source.refused) == (1, 0)
    finally:
        source.stop()


class ViewerOn(HttpViewer):
    """A viewer whose request goes on a connection kept alive after an earlier
    response: it reaches the worker that answered that one."""

    def __init__(self, url: str, sock: socket.socket):
        self._kept = sock
        super().__init__(url)

    def _connect(self, rcvbuf):
        self._kept.settimeout(None)
        return self._kept


def connections_to_workers(rs, each: int) -> dict[int, list[socket.socket]]:
    """``each`` kept-alive connections to each of the two workers, by worker pid
    (the kernel picks the worker; its "request" line names it).  Asked until
    both answer: one may still be loading the app."""
    found: dict[int, list[socket.socket]] = {}
    asked, deadline = 0, time.monotonic() + 15
    while time.monotonic() < deadline:
        asked += 1
        sock = raw_get(("127.0.0.1", rs.port), "/health")
        read_response(sock)
        lines = poll(lambda: rs.find_logs(lambda e: e.get("event") == "request" and e.get("path") == "/health"),
                     lambda found_lines: len(found_lines) == asked, 5, "the request's line")
        kept = found.setdefault(lines[-1]["pid"], [])
        if len(kept) < each:
            kept.append(sock)
        else:
            sock.close()
        if len(found) == 2 and all(len(kept) == each for kept in found.values()):
            return found
    raise AssertionError(f"not {each} connections to each of two workers: {found}")


def test_two_programs_of_a_one_client_upstream_under_two_workers_pull_once(restreamer, two_programs, tmp_path):
    """Under gunicorn -w 2 the worker that owns the upstream owns both its
    streams, even when the other worker's viewer starts one of them first."""
    source = OneClientUpstream(two_programs, rate=2_000_000)
    clients = []
    try:
        rs = launch_gunicorn(restreamer, {"ondemand": True, "graceperiod": 3, "resources": [
            {"type": "stream", "serve": "/one.ts", "remote": source.url, "program": 1},
            {"type": "stream", "serve": "/two.ts", "remote": source.url, "program": 2},
            {"type": "api", "api": "health", "serve": "/health"}]}, tmp_path / "run", workers=2)
        (first, on_first), (second, on_second) = connections_to_workers(rs, 2).items()

        def play(number, sock):
            clients.append(ViewerOn(rs.url(f"/{('one', 'two')[number - 1]}.ts"), sock))
            return clients[-1]

        # Program 1 starts on the first worker, then program 2 on the second:
        # owned stream by stream, the second would pull the upstream again.
        plays = {(1, first): play(1, on_first[0])}
        assert plays[1, first].wait_status(timeout=10) == 200
        plays[1, first].wait_bytes(1, timeout=10)
        plays[2, second] = play(2, on_second[0])
        plays[1, second] = play(1, on_second[1])
        plays[2, first] = play(2, on_first[1])
        for (number, pid), client in plays.items():
            relayed = tmp_path / f"program{number}-{pid}.ts"
            assert client.wait_status(timeout=10) == 200, (number, pid, source.accepted, source.refused)
            relayed.write_bytes(client.wait_bytes(150_000, timeout=10))
            assert _programs(relayed) == [(number, [("audio", "mp2"), ("video", "h264")])], (number, pid)
        assert (source.accepted, source.refused) == (1, 0)
        assert owner_of(rs, "/one.ts") == owner_of(rs, "/two.ts") == first
        assert roles(rs, "/two.ts") == {first: "stream owned", second: "stream following"}
        for client in clients:
            client.close()
        assert rs.stop() == 0  # while the upstream sends: the workers see their viewers gone at once
    finally:
        for client in clients:
            client.close()
        source.stop()


def test_program_2_alone_and_a_missing_program_named(restreamer, upstream, viewer, two_programs, tmp_path):
    source = upstream(two_programs, rate=2_000_000)
    rs = restreamer({"reconnect": 0.5, "graceperiod": 2, "resources": [
        {"type": "stream", "serve": "/two.ts", "remote": source.url, "program": 2},
        {"type": "stream", "serve": "/three.ts", "remote": source.url, "program": 3}]})
    error = rs.wait_log(lambda e: e.get("event") == "upstream error" and e.get("stream") == "/three.ts")
    assert error["reason"] == "program 3 is not in the PAT (it lists 1, 2)"

    relayed = tmp_path / "relayed.ts"
    relayed.write_bytes(viewer(rs.url("/two.ts")).wait_bytes(200_000))
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_programs", "-show_entries", "stream=codec_type,codec_name",
         "-of", "json", str(relayed)], capture_output=True, text=True, timeout=30, check=True).stdout)
    programs = probe["programs"]
    assert [p["program_num"] for p in programs] == [2]
    assert sorted((s["codec_type"], s["codec_name"]) for s in programs[0]["streams"]) == [
        ("audio", "mp2"), ("video", "h264")]
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(relayed), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=30)
    assert decoded.stderr == ""
