"""Every kind of upstream, end to end: a real source, the real restreamer and
several real viewers, each of which must get a byte-identical, contiguous
run of what the source sent, starting at a packet boundary."""

import os
import subprocess
import sys
import time

import pytest

from tests.support import REPO_ROOT
from tests.support.ts import (PACKET_SIZE, SAMPLE_PATH, assert_aligned, assert_clean_runs, assert_joined,
                              packet_pid, packets_of, random_access, with_pcr_jump)
from tests.support.procs import udp_ports
from tests.support.upstream import FIFOWriter, UDPTSSender, UnixPacketTSUpstream, self_signed_tls

SERVE = "/s.ts"
VIEWERS = 3
#: Body bytes each viewer must get before its data is checked (~0.4 s at 2 Mbit/s).
ENOUGH = 100_000
RATE = 2_000_000
TSPLAY = REPO_ROOT / "tests" / "support" / "tsplay.py"


def stream_config(*remotes, **top):
    """One stream at SERVE with short timings, so failures and retries are quick."""
    return {"reconnect": 0.2, "graceperiod": 2, "timeout": 2, **top,
            "resources": [{"type": "stream", "serve": SERVE, "remotes": list(remotes)}]}


def join(rs, viewer, n=VIEWERS):
    """Wait for the stream to come online, then connect `n` viewers that get 200."""
    rs.wait_log("stream online")
    viewers = [viewer(rs.url(SERVE)) for _ in range(n)]
    for client in viewers:
        assert client.wait_status() == 200
    return viewers


def assert_delivered(viewers, sent, nbytes=ENOUGH):
    """Each viewer gets `nbytes`, and what it got is a fast start (PAT, PMT,
    RAP) and then a contiguous run of what `sent()` returns (called after the
    viewers' data is taken, so it is never behind them), starting at a packet
    boundary."""
    for client in viewers:
        client.wait_bytes(nbytes)
    received = [client.data for client in viewers]
    source = sent()
    for data in received:
        whole = data[:len(data) - len(data) % PACKET_SIZE]  # the last packet may be in flight
        assert_aligned(whole)
        offset = assert_joined(whole, source)
        assert offset % PACKET_SIZE == 0, f"viewer's data starts at byte {offset}, inside a packet"


def looped(sample, nbytes):
    """The sample repeated, as a looping source sends it, to at least `nbytes`."""
    return sample * (nbytes // len(sample) + 2)


def test_http(upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer(stream_config(up.url))
    viewers = join(rs, viewer)
    assert_delivered(viewers, lambda: up.connections[0].sent)
    assert len(up.connections) == 1
    assert up.connections[0].request_line == "GET /stream.ts HTTP/1.1"


def test_http10_upstream(upstream, restreamer, viewer):
    up = upstream(rate=RATE, http_version="1.0")
    rs = restreamer(stream_config(up.url))
    assert_delivered(join(rs, viewer), lambda: up.connections[0].sent)


def test_tcp(upstream, restreamer, viewer):
    up = upstream(mode="tcp", rate=RATE)
    rs = restreamer(stream_config(up.url))
    assert_delivered(join(rs, viewer), lambda: up.connections[0].sent)


def test_unix(unix_upstream, restreamer, viewer):
    up = unix_upstream(rate=RATE)
    rs = restreamer(stream_config(up.url))
    assert_delivered(join(rs, viewer), lambda: up.connections[0].sent)


def test_unixpacket(sample, tmp_path, restreamer, viewer):
    with UnixPacketTSUpstream(sample, tmp_path, rate=RATE) as up:
        rs = restreamer(stream_config(up.url))
        assert_delivered(join(rs, viewer), lambda: up.connections[0].sent)


def test_unixgram(sample, tmp_path, restreamer, viewer):
    # Datagrams are addressed to a path, so restreamer binds it (as udp:// binds a port).
    path = str(tmp_path / "in.sock")
    rs = restreamer(stream_config(f"unixgram://{path}"))
    rs.wait_log("upstream connected")
    with UDPTSSender(sample, unix_path=path, rate=RATE) as sender:
        assert_delivered(join(rs, viewer), lambda: sender.sent)


def udp_port(rs) -> int:
    """The port a restreamer told ``udp://...:0`` bound, once it logged "upstream connected"."""
    (port,) = udp_ports(rs.proc.pid)
    return port


def test_udp_unicast(restreamer, viewer, udp_sender):
    rs = restreamer(stream_config("udp://127.0.0.1:0"))
    rs.wait_log("upstream connected")  # bound: nothing sent before this can be lost
    sender = udp_sender(udp_port(rs), rate=RATE)
    assert_delivered(join(rs, viewer), lambda: sender.sent)


def test_udp_multicast_on_loopback(restreamer, viewer, udp_sender):
    # Multicast joins work in this sandbox; the group stays on lo through
    # clientinterface (receiving) and the sender's outgoing interface.
    group = f"239.255.{os.getpid() % 250}.{os.getpid() // 250 % 250 + 1}"
    config = stream_config(f"udp://{group}:0")
    config["resources"][0]["clientinterface"] = "lo"
    rs = restreamer(config)
    rs.wait_log("upstream connected")
    sender = udp_sender(udp_port(rs), host=group, interface="127.0.0.1", rate=RATE)
    assert_delivered(join(rs, viewer), lambda: sender.sent)


def test_regular_file_is_read_whole_on_each_attempt(sample, upstream, restreamer, viewer):
    # A file upstream is over in milliseconds, so viewers join while an HTTP
    # remote is live; when it closes, the remotes alternate and the file is
    # next: viewers held through the grace period get all of it from its
    # first RAP, then the HTTP remote's next connection.
    limit = 150_000
    http = upstream(rate=RATE, close_after_bytes=limit)
    rs = restreamer(stream_config(http.url, f"file://{SAMPLE_PATH}"))
    rs.wait_log(lambda e: e.get("event") == "stream online" and e.get("url") == http.url)
    viewers = [viewer(rs.url(SERVE)) for _ in range(VIEWERS)]
    for client in viewers:
        assert client.wait_status() == 200
    closed = rs.wait_log(lambda e: e.get("event") == "upstream closed" and e["url"].startswith("file:"))
    assert (closed["packets"], closed["skipped_bytes"]) == (len(sample) // PACKET_SIZE, 0)
    first, second = http.wait_connections(2)[:2]
    for client in viewers:
        # At most `limit` bytes came before the file, so this much includes some after it.
        data = client.wait_bytes(limit + len(sample) + PACKET_SIZE * 10)
        before, whole_file, after = assert_clean_runs(data[:len(data) - len(data) % PACKET_SIZE],
                                                      first.sent, sample, second.sent)
        # each connection spliced in at its first RAP, after its PAT and PMT
        first_rap = next(o for o in range(0, len(sample), PACKET_SIZE)
                         if random_access(sample[o:o + PACKET_SIZE]))
        assert whole_file == len(sample) - first_rap and after > 0


def test_fifo_survives_its_writer_reopening(sample, tmp_path, restreamer, viewer):
    fifo = tmp_path / "in.ts"
    os.mkfifo(fifo)
    rs = restreamer(stream_config(f"file://{fifo}"))
    writer = FIFOWriter(fifo, sample, rate=RATE)
    try:
        viewers = join(rs, viewer)
        assert_delivered(viewers, lambda: writer.sent)
        mark = rs.mark()
        got = max(len(client.data) for client in viewers)
        writer.reopen()
        writer.wait_opens(2)
        # restreamer holds a write end itself, so the writer going away is no end of stream.
        assert_delivered(viewers, lambda: writer.sent, nbytes=got + ENOUGH)
        assert rs.find_logs(lambda e: e.get("event", "").startswith(("upstream", "stream")), since=mark) == []
    finally:
        writer.stop()


def test_fork_runs_the_command_with_query_arguments(sample, restreamer, viewer):
    # The query is the argument list, split on "+" (an encoded space).
    rs = restreamer(stream_config(f"fork://{sys.executable}?{TSPLAY}+{SAMPLE_PATH}+{RATE}"))
    started = rs.wait_log(lambda e: e.get("event") == "child stderr")
    assert started["line"] == f"tsplay started pid={started['pid']}"
    assert_delivered(join(rs, viewer), lambda: looped(sample, 10 * ENOUGH))


def test_fork_cat_reads_a_file_once(sample, restreamer):
    rs = restreamer(stream_config(f"fork:///bin/cat?{SAMPLE_PATH}", reconnect=0))
    closed = rs.wait_log("upstream closed")
    assert (closed["reason"], closed["packets"], closed["skipped_bytes"]) == (
        "end of stream", len(sample) // PACKET_SIZE, 0)
    rs.wait_log("stream stays offline")
    assert len(rs.find_logs("upstream connecting")) == 1


def test_loop_plays_the_sample_in_real_time(sample, restreamer, viewer):
    rs = restreamer(stream_config("loop:sample"))
    viewers = join(rs, viewer)
    began = time.monotonic()
    assert_delivered(viewers, lambda: looped(sample, len(sample)), nbytes=len(sample) // 4)
    # The sample lasts 6 s, so a quarter of it takes 1.5 s when paced (a
    # file read at disk speed would be there at once).
    assert time.monotonic() - began > 1.0


def test_https_is_verified_against_the_configured_cafile(upstream, restreamer, viewer, tmp_path):
    context, cert = self_signed_tls(tmp_path)
    up = upstream(rate=RATE, tls=context)
    # The system's CAs do not know this certificate.
    plain = restreamer(stream_config(up.url, reconnect=0))
    assert "certificate verify failed" in plain.wait_log("upstream error")["reason"]
    trusting = restreamer(stream_config(up.url, cafile=cert))
    assert_delivered(join(trusting, viewer), lambda: up.connections[-1].sent)


def test_insecure_turns_https_verification_off_with_a_warning(upstream, restreamer, viewer, tmp_path):
    context, _ = self_signed_tls(tmp_path)
    up = upstream(rate=RATE, tls=context)
    config = stream_config(up.url)
    config["resources"][0]["insecure"] = True
    rs = restreamer(config)
    warning = rs.wait_log("config warning")
    assert warning["detail"].endswith("resources[0].insecure: the certificates of its https remotes are not checked")
    assert_delivered(join(rs, viewer), lambda: up.connections[-1].sent)


def keepalive_timer(local_port, remote_port):
    """The (timer kind, seconds left) /proc/net/tcp shows for one loopback connection."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, timer = fields[1], fields[2], fields[5]
            if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
                kind, left = timer.split(":")
                return int(kind, 16), int(left, 16) / 100
    raise AssertionError(f"no connection {local_port} -> {remote_port} in /proc/net/tcp")


@pytest.mark.parametrize("mode", ["tcp", "http"])
def test_tcp_keepalive_is_on_for_tcp_and_http_upstreams(upstream, restreamer, mode):
    # An idle connection: the kernel arms the keepalive timer only where
    # SO_KEEPALIVE is set, to go off within the 15 s idle time.
    up = upstream(mode=mode, stall_after_headers=True)
    restreamer(stream_config(up.url)).wait_log("upstream connected")
    connection = up.wait_connections(1)[0]
    kind, left = keepalive_timer(connection.sock.getpeername()[1], up.port)
    assert kind == 2 and 0 < left <= 15, (kind, left)


def test_udp_on_all_interfaces(restreamer, viewer, udp_sender):
    rs = restreamer(stream_config("udp://:0"))
    rs.wait_log("upstream connected")
    sender = udp_sender(udp_port(rs), rate=RATE)
    assert_delivered(join(rs, viewer), lambda: sender.sent)


def test_fork_finds_a_bare_command_on_path(sample, restreamer):
    rs = restreamer(stream_config(f"fork://cat?{SAMPLE_PATH}", reconnect=0))
    closed = rs.wait_log("upstream closed")
    assert (closed["reason"], closed["packets"]) == ("end of stream", len(sample) // PACKET_SIZE)


def test_three_laps_of_a_loop_play_without_an_error_though_its_44k1_audio_outlasts_its_video(
        restreamer, viewer, tmp_path):
    # Each lap carries PCR, PTS, DTS and continuity counters on from the last,
    # as ffmpeg -re -stream_loop -1 would: no "DTS out of order", no "Packet
    # corrupt" at the seams.  A 44.1 kHz AAC frame (1024 samples, 23.2 ms)
    # does not divide a lap of 25 fps video, and here the audio runs 0.1 s past
    # the video's last frame: a lap offset short of the audio's end steps its
    # DTS back at each seam ("non monotonically increasing dts").  B-frames
    # make the video's DTS run behind its PTS, as in broadcast H.264.
    path = tmp_path / "a44k1.ts"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-t", "1", "-i", "testsrc=size=320x180:rate=25",
                    "-f", "lavfi", "-t", "1.1", "-i", "sine=frequency=440:sample_rate=44100",
                    "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25", "-c:a", "aac",
                    "-f", "mpegts", str(path)], check=True, capture_output=True, timeout=30)
    lap = path.read_bytes()
    rs = restreamer(stream_config(f"loop:{path}"))
    client = join(rs, viewer, 1)[0]
    # A lap starts where the packets' PIDs run as the file's do (the rewritten
    # clocks and counters make the bytes differ lap by lap); ffmpeg plays what
    # a viewer got from the start of a lap (joining mid-GOP is the hub's business).
    pids = [packet_pid(p) for p in packets_of(lap)]
    data = client.wait_bytes(2 * len(lap), timeout=15)
    got = [packet_pid(p) for p in packets_of(data[:len(data) - len(data) % PACKET_SIZE])]
    first = next(i for i in range(len(pids)) if got[i:i + len(pids)] == pids)
    start, end = first * PACKET_SIZE, first * PACKET_SIZE + 3 * len(lap)
    laps = client.wait_bytes(end, timeout=15)[start:end]
    assert [packet_pid(p) for p in packets_of(laps)] == pids * 3
    played = tmp_path / "laps.ts"
    played.write_bytes(laps)
    player = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(played), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=30)
    assert player.returncode == 0 and player.stderr == "", player.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(played)], capture_output=True, text=True, check=True)
    assert 3 * 1.0 < float(probe.stdout) < 3 * 1.3  # three laps, not one


def test_a_pcr_jump_inside_a_looped_file_does_not_stall_it(sample, restreamer, viewer, tmp_path):
    # Half way through, the PCR leaps 26 hours: played as a usual interval,
    # not waited for.
    path = tmp_path / "spliced.ts"
    path.write_bytes(with_pcr_jump(sample, len(sample) // 2, 26 * 3600))
    rs = restreamer(stream_config(f"loop:{path}"))
    client = join(rs, viewer, 1)[0]
    got = len(client.wait_bytes(1))
    # Past the jump, and on into the next lap: about one lap's time.
    client.wait_bytes(got + len(sample) + 100_000, timeout=15)
