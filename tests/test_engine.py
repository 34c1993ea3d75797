"""The stream engine end to end, over real sockets, with the bundled H.264/AAC
sample: fast start at PAT, PMT and a RAP; joins at the live edge with fast
start off; a GOP longer than the backlog; keepalive null packets during a
stall; the response head at once; a viewer arriving during a reconnect."""

import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.support.polling import poll
from tests.support.viewer import SlowReader, http_get
from tests.support.waiting import wait_for

from tests.support.ts import (PACKET_SIZE, PIECE_SIZE, assert_clean_runs, assert_clean_start, assert_contiguous,
                              keyframes, packet_pid, random_access, strip_start)
from tests.support.ts import whole

RATE = 2_000_000
NULL_PID = 0x1FFF
#: ISO 13818-1's null packet: PID 0x1FFF, payload only, payload all 0xFF.
NULL_PACKET = bytes((0x47, 0x1F, 0xFF, 0x10)) + b"\xff" * 184


def config(url, **top):
    return {"reconnect": 0.2, "graceperiod": 3, **top,
            "resources": [{"type": "stream", "serve": "/s.ts", "remote": url}]}


class PausingUpstream:
    """An HTTP upstream sending the sample at RATE that can be paused and resumed."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.sent = bytearray()
        self.progress = threading.Condition()
        self.running = threading.Event()
        self.running.set()
        self.paused = threading.Event()
        self.stopped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/s.ts"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mpeg\r\n\r\n")
                position, started, total = 0, time.monotonic(), 0
                while not self.stopped.is_set():
                    if not self.running.is_set():
                        self.paused.set()
                        self.running.wait(0.1)
                        started, total = time.monotonic(), 0
                        continue
                    piece = self.payload[position:position + PIECE_SIZE]
                    position = (position + PIECE_SIZE) % len(self.payload)
                    try:
                        conn.sendall(piece)
                    except OSError:
                        break
                    with self.progress:
                        self.sent += piece
                        self.progress.notify_all()
                    total += len(piece)
                    delay = started + total * 8 / RATE - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)

    def pause(self) -> None:
        """Stop sending; returns once the sender has stopped (nothing more is in its hands)."""
        self.paused.clear()
        self.running.clear()
        assert self.paused.wait(5), "the upstream did not pause"

    def wait_sent(self, n: int) -> None:
        wait_for(self.progress, lambda: len(self.sent) >= n, 10, f"{n} bytes sent upstream")

    def stop(self):
        self.stopped.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def pausing(sample):
    up = PausingUpstream(sample)
    yield up
    up.stop()


def first_frame(data: bytes) -> tuple[str, str]:
    """ffprobe's view of the first video frame of `data`: (key_frame flag, errors)."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=key_frame",
         "-read_intervals", "%+#1", "-of", "csv=p=0", "-"],
        input=data, capture_output=True, timeout=20)
    return result.stdout.decode().strip().splitlines()[0], result.stderr.decode()


def test_a_join_at_a_random_moment_starts_at_pat_pmt_and_a_keyframe(upstream, restreamer, viewer, rng):
    up = upstream(rate=RATE)
    rs = restreamer(config(up.url))
    rs.wait_log("stream online")
    # a random moment in the GOP: 0.5 to 2 s of the stream on
    up.connections[0].wait_sent(len(up.connections[0].sent) + rng.randrange(RATE // 16, RATE // 4))
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    data = whole(client.wait_bytes(200_000, timeout=10))
    assert_clean_start(data, up.connections[0].sent)  # PAT, PMT, RAP, then contiguous
    key_frame, errors = first_frame(data)
    assert key_frame == "1" and errors == ""


def test_with_faststart_off_a_viewer_joins_at_the_live_edge(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(config(up.url, faststart=False))
    rs.wait_log("stream online")
    up.connections[0].wait_sent(400_000)
    before = len(up.connections[0].sent)
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    data = whole(client.wait_bytes(50_000))
    offset = assert_contiguous(data, up.connections[0].sent)
    assert offset >= before - 64 * 1024  # no older than one hand-out window


def test_a_resource_may_turn_faststart_off(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    cfg = config(up.url)
    cfg["resources"][0]["faststart"] = False
    rs = restreamer(cfg)
    rs.wait_log("stream online")
    up.connections[0].wait_sent(400_000)
    before = len(up.connections[0].sent)
    client = viewer(rs.url("/s.ts"))
    data = whole(client.wait_bytes(50_000))
    assert assert_contiguous(data, up.connections[0].sent) >= before - 64 * 1024


def test_a_gop_longer_than_the_backlog_starts_the_viewer_at_the_next_rap(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(config(up.url, backlogseconds=0.2))  # the sample's GOP is 1 s
    rs.wait_log("stream online")
    up.connections[0].wait_sent(300_000)
    before = len(up.connections[0].sent)
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    data = whole(client.wait_bytes(100_000, timeout=10))
    sent = up.connections[0].sent
    rap = assert_clean_start(data, sent)
    assert random_access(sent[rap:rap + PACKET_SIZE])
    assert rap >= before - 64 * 1024  # a RAP that came after the viewer did, not an old one


def test_null_packets_keep_a_stalled_viewer_alive_and_stop_when_data_returns(pausing, restreamer, viewer):
    rs = restreamer(config(pausing.url, keepalive=0.3))
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(100_000)
    pausing.running.clear()
    data = b""
    deadline = time.monotonic() + 5
    while not data.endswith(NULL_PACKET * 3):
        data = whole(client.wait_bytes(len(data) + PACKET_SIZE, timeout=deadline - time.monotonic()))
    stalled = len(data) // PACKET_SIZE
    pausing.running.set()
    data = whole(client.wait_bytes(len(data) + 100_000, timeout=10))
    # the keepalive run: the null packets that end what came during the stall
    # (the sample carries null packets of its own, so the run is found from its end)
    first = stalled
    while data[(first - 1) * PACKET_SIZE:first * PACKET_SIZE] == NULL_PACKET:
        first -= 1
    sent = bytes(pausing.sent)
    before, during = data[:first * PACKET_SIZE], data[first * PACKET_SIZE:]
    assert_clean_start(before, sent)
    # after the null packets, the stream goes on where it stopped: no null
    # packet was inserted once data flowed again
    nulls = 0
    while during[nulls * PACKET_SIZE:(nulls + 1) * PACKET_SIZE] == NULL_PACKET:
        nulls += 1
    assert nulls >= 3
    resumed = during[nulls * PACKET_SIZE:]
    assert_contiguous(resumed, sent)
    # ...and continues byte for byte where it stopped (some of the null packets
    # may be the stream's own, sent just before it stalled)
    tail, head = before[-20 * PACKET_SIZE:], resumed[:50 * PACKET_SIZE]
    assert any(tail + NULL_PACKET * own + head in sent for own in range(nulls + 1))


#: Half the sample's own pace: a GOP of about 2 s, as broadcasts have.
SLOW = 450_000
#: Bytes per second at SLOW.
SLOW_BYTES = SLOW // 8


def pat_ends(data: bytes) -> list[int]:
    """Byte offsets just after each PAT packet."""
    return [o + PACKET_SIZE for o in range(0, len(data), PACKET_SIZE) if packet_pid(data[o:]) == 0]


def first_start(data: bytes) -> int:
    """The offset of the first keyframe a viewer can start at: one after a PAT."""
    first_pat = pat_ends(data)[0]
    return next(o for o in keyframes(data) if o > first_pat)


def reconnect_phases(sample: bytes, phase: str, seed: int) -> tuple[int, int, int]:
    """Where the first connection starts in the sample, how many bytes it sends
    before it drops, and where the next one starts."""
    frames = keyframes(sample)
    if phase == "pat":
        # It drops just after a PAT (the PAT and PMT before a keyframe), and
        # the next starts just after a keyframe: a GOP to wait for the next.
        return 0, next(o for o in pat_ends(sample) if o > frames[1] - 4 * PACKET_SIZE), frames[1] + PACKET_SIZE
    rng = random.Random(seed)
    start = rng.randrange(len(sample) // PACKET_SIZE) * PACKET_SIZE
    looped = sample[start:] + sample[:start]
    # Anywhere, even mid-packet, once a keyframe has placed the fast-start viewers.
    drop = first_start(looped) + rng.randrange(SLOW_BYTES // 2, 2 * SLOW_BYTES)
    return start, drop, rng.randrange(len(sample) // PACKET_SIZE) * PACKET_SIZE


@pytest.mark.parametrize("phase", ["pat", "seeded"])
def test_null_packets_keep_every_viewer_alive_through_a_reconnect(sample, upstream, restreamer, viewer, phase):
    # The connection drops at a phase of the stream; the next is accepted but
    # silent for a while, then starts anywhere in its GOP, so viewers also
    # wait for its first keyframe.  Viewers that came before the first PAT
    # (at the live edge) and by fast start, on the direct and the generator
    # path, must each hear something, data or a null packet, every keepalive.
    seed = int(os.environ.get("RESTREAMER_TEST_SEED") or random.randrange(1 << 32))
    start, drop, resume = reconnect_phases(sample, phase, seed)
    where = f"phase {phase}, seed {seed}: start {start}, drop after {drop} bytes, resume at {resume}"
    print(where)
    first, then = sample[start:] + sample[:start], sample[resume:] + sample[:resume]
    gate = threading.Event()
    up = upstream(first, rate=SLOW, close_after_bytes=drop, gate=gate)
    rs = restreamer(config(up.url, keepalive=0.5, graceperiod=10))
    up.wait_connections(1)
    # What the next connection does: silent for a while, then from `resume`.
    up.close_after_bytes, up.pause_after_bytes, up.pause_seconds = None, 0, 1.5
    up.payload = then
    generator = {"Connection": "keep-alive"}  # chunked: the generator path
    early = [viewer(rs.url("/s.ts")), viewer(rs.url("/s.ts"), headers=generator)]
    poll(lambda: len(rs.find_logs("viewer waiting")), lambda n: n == len(early), 10,
         "the early viewers to wait for the first packet")
    gate.set()
    up.connections[0].wait_sent(first_start(first) + 20_000, timeout=10)
    late = [viewer(rs.url("/s.ts")), viewer(rs.url("/s.ts"), headers=generator)]
    assert up.connections[0].wait_closed(timeout=15) == "limit", where
    second = up.wait_connections(2, timeout=10)[1]
    second.wait_sent(first_start(then) + 20_000, timeout=15)
    resumed = then[first_start(then):][:PACKET_SIZE]  # the keyframe viewers resume at
    for client in early + late:
        data = whole(client.wait_bytes(len(client.data) + 20_000, timeout=10))  # the stream flows again
        assert client.max_gap < 0.5 + 0.5, f"a viewer heard nothing for {client.max_gap:.2f} s ({where})"
        # ...and resumed with the new connection's PAT, PMT and keyframe, not mid-GOP
        assert_clean_start(data[data.rfind(resumed) - 2 * PACKET_SIZE:], second.sent)


def test_no_null_packet_before_the_first_pat(pausing, restreamer, viewer):
    rs = restreamer(config(pausing.url, keepalive=0.2, backlogseconds=0.1))
    rs.wait_log("stream online")
    # Past the file's first start, so the chunk the backlog always keeps is mid-GOP
    # (paused just after "stream online", it could be that start itself).
    pausing.wait_sent(first_start(pausing.payload) + 30_000)
    pausing.pause()
    time.sleep(0.5)  # the backlog ages out: a new viewer has no start to begin at
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200  # the head at once, on a stalled stream
    time.sleep(1.0)  # five keepalive periods, in which nothing may arrive
    assert client.data == b""
    pausing.running.set()
    data = client.wait_bytes(50_000, timeout=10)
    assert packet_pid(data) == 0
    strip_start(whole(data))


def test_the_response_head_comes_at_once_on_a_stalled_stream(pausing, restreamer, viewer):
    rs = restreamer(config(pausing.url, keepalive=0))
    rs.wait_log("stream online")
    pausing.pause()
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status(timeout=2) == 200


def test_a_viewer_arriving_during_a_reconnect_with_nobody_watching_gets_the_stream(
        upstream, restreamer, viewer):
    up = upstream(rate=RATE, close_after_bytes=200_000)
    rs = restreamer(config(up.url, reconnect=1))
    rs.wait_log("stream waiting")  # the first connection ended; nobody watches
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status(timeout=2) == 200
    data = whole(client.wait_bytes(100_000, timeout=10))
    # nothing of the connection that had ended: the next ones, each beginning
    # at PAT, PMT and a RAP
    assert assert_clean_runs(data, *[c.sent for c in up.connections[1:]])[0] > 0


def test_with_reconnect_0_viewers_are_not_held_after_the_last_attempt(upstream, restreamer, viewer):
    up = upstream(rate=RATE, close_after_bytes=100_000)
    rs = restreamer(config(up.url, reconnect=0, graceperiod=30))
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status() == 200
    rs.wait_log("stream stays offline")
    client.wait_closed(timeout=3)  # long before the 30 s grace period


def test_a_viewer_waiting_for_the_first_packet_is_refused_if_the_stream_is_switched_off(
        upstream, restreamer, viewer):
    gate = threading.Event()
    up = upstream(rate=RATE, gate=gate)
    cfg = config(up.url, timeout=10)
    cfg["resources"].append({"type": "api", "api": "control", "serve": "/control", "remote": "/s.ts"})
    rs = restreamer(cfg)
    early = viewer(rs.url("/s.ts"))
    rs.wait_log("viewer waiting")
    status, _, _ = http_get(rs.url("/control?offline"))
    assert status == 202
    gate.set()
    assert early.wait_status() == 404  # a clean refusal, not 200 with an empty body
    assert early.wait_closed() == b""


def starts_clean(data: bytes) -> bool:
    try:
        strip_start(data)
    except AssertionError:
        return False
    return True


def cc_errors(data: bytes) -> int:
    """Continuity-counter gaps, per PID."""
    errors = 0
    last: dict[int, int] = {}
    for o in range(0, len(data), PACKET_SIZE):
        pid = packet_pid(data[o:o + PACKET_SIZE])
        if pid == NULL_PID or not data[o + 3] & 0x10:  # no payload: the counter does not move
            continue
        cc = data[o + 3] & 0x0F
        if pid in last and cc != (last[pid] + 1) & 0x0F and cc != last[pid]:
            errors += 1
        last[pid] = cc
    return errors


def test_a_half_speed_viewer_resumes_only_at_raps_with_no_cc_error_inside_a_gop(
        upstream, restreamer):
    rate = 8_000_000  # its lag outgrows the kernel's buffers and a 1.5 s backlog in seconds
    up = upstream(rate=rate)
    rs = restreamer(config(up.url, backlogseconds=1.5))
    rs.wait_log("stream online")
    slow = SlowReader(rs.port, rate / 8 / 2)
    try:
        up.connections[0].wait_sent(len(up.connections[0].sent) + 8_000_000, timeout=20)
    finally:
        slow.close()
    data = whole(slow.body())
    runs = assert_clean_runs(data, *[up.connections[0].sent] * 100)
    assert len([n for n in runs if n]) > 1, "the half-speed viewer should have skipped"
    # Inside each run the counters are those of the upstream (the looped
    # sample jumps at each lap); the PAT and PMT a resume begins with must add
    # no gap: they are the copies that precede the RAP in the stream.
    offset = 0
    for n in runs:
        while offset < len(data) and not starts_clean(data[offset:]):
            offset += PACKET_SIZE  # a skip's tail: what completes the units the run was in
        if offset >= len(data):
            break
        rest = strip_start(data[offset:])
        prefixed = len(data) - offset - len(rest) + n
        assert cc_errors(data[offset:offset + prefixed]) == cc_errors(rest[:n])
        offset += prefixed


@pytest.mark.parametrize("worker", ["-k gevent", "-c config/gunicorn.conf.py"])
def test_under_gunicorn_a_stalled_stream_gives_its_head_at_once_then_null_packets(
        pausing, restreamer, viewer, worker):
    # -k gevent is the generator path, the deployment config's worker the direct one
    rs = restreamer(config(pausing.url, keepalive=0.3), start=False,
                    cmd=[sys.executable, "-m", "gunicorn", *worker.split(), "-b", "127.0.0.1:0",
                         "--workers", "1", "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch().wait_gunicorn_port()
    rs.wait_log("stream online", timeout=15)
    pausing.wait_sent(200_000)  # a GOP and more
    pausing.pause()
    client = viewer(rs.url("/s.ts"))
    assert client.wait_status(timeout=2) == 200
    deadline = time.monotonic() + 5
    data = b""
    while not data.endswith(NULL_PACKET * 2):  # the backlog's GOP, then null packets
        data = whole(client.wait_bytes(len(data) + PACKET_SIZE, timeout=deadline - time.monotonic()))
    pids = [packet_pid(data[o:o + PACKET_SIZE]) for o in range(0, len(data), PACKET_SIZE)]
    first_null = pids.index(NULL_PID)
    assert set(pids[first_null:]) == {NULL_PID}
    assert_clean_start(data[:first_null * PACKET_SIZE], bytes(pausing.sent))
