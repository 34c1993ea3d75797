"""Splices a player accepts, end to end: a failover to an upstream with other
PIDs shows the player the new program, and a half-speed viewer's skips
decode without an error and count no continuity error."""

import json
import subprocess

import pytest

from restreamer.ts.analysis import Analyser
from tests.support.server import event
from tests.support.ts import PACKET_SIZE, packet_pid, packets_of, whole
from tests.support.viewer import SlowReader

RATE = 12_000_000  # twice the stream's own rate: a small backlog is left in a second


@pytest.fixture(scope="module")
def streams(tmp_path_factory):
    """Twelve seconds of H.264/AAC at about 5 Mbit/s, and the same with other PIDs."""
    folder = tmp_path_factory.mktemp("splices")
    first, other = folder / "first.ts", folder / "other.ts"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "12",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "5M",
                    "-c:a", "aac", "-f", "mpegts", str(first)], check=True, timeout=30)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(first), "-map", "0", "-c", "copy",
                    "-mpegts_pmt_start_pid", "0x1100", "-mpegts_start_pid", "0x200",
                    "-f", "mpegts", str(other)], check=True, timeout=30)
    return first.read_bytes(), other.read_bytes()


def config(*remotes, **top):
    return {"reconnect": 0.2, "graceperiod": 3, "timeout": 2, **top,
            "resources": [{"type": "stream", "serve": "/s.ts", "remotes": list(remotes)}]}


def pat_versions(data: bytes) -> list[int]:
    """The version of each PAT in ``data``, as they come (single-packet PATs)."""
    versions = []
    for packet in packets_of(data):
        if packet_pid(packet) == 0 and packet[1] & 0x40:
            section = packet[5 + packet[4]:]
            versions.append(section[5] >> 1 & 0x1F)
    return versions


def test_a_failover_to_other_pids_gives_the_player_the_new_program(
        upstream, restreamer, viewer, streams, tmp_path):
    first, other = streams
    old = upstream(first, rate=RATE)
    new = upstream(other, rate=RATE, status=404)  # not there yet: the stream starts on the old one
    rs = restreamer(config(old.url, new.url))
    rs.wait_log(event("stream online", url=old.url))
    client = viewer(rs.url("/s.ts"))
    client.wait_bytes(500_000)
    mark = rs.mark()
    new.status, old.status = 200, 404
    old.close_all()
    rs.wait_log(event("stream online", url=new.url), since=mark)
    data = whole(client.wait_bytes(len(client.data) + 1_000_000))
    versions = pat_versions(data)
    assert versions[0] == 0 and versions[-1] == 1, sorted(set(versions))
    path = tmp_path / "viewer.ts"
    path.write_bytes(data)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                            "stream=id,nb_read_packets", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True, timeout=30)
    counts = {s["id"]: int(s["nb_read_packets"]) for s in json.loads(probe.stdout)["streams"]}
    assert counts.get("0x200", 0) > 0 and counts.get("0x201", 0) > 0, counts  # the new program's


def test_a_half_speed_viewers_skips_decode_without_an_error(upstream, restreamer, streams, tmp_path):
    first, _ = streams
    up = upstream(first, rate=RATE)
    rs = restreamer(config(up.url, backlogseconds=1, droptimeout=30))
    rs.wait_log("stream online")
    slow = SlowReader(rs.port, RATE / 8 / 2)
    try:
        # Most of the stream at twice its rate: the slow viewer has skipped several times.
        up.wait_connections(1)[0].wait_sent(6_500_000, timeout=20)
    finally:
        mark = rs.mark()
        slow.close()
    gone = rs.wait_log("viewer disconnected", since=mark)
    assert gone["dropped_packets"] > 0
    data = whole(slow.body())
    # The recording stops mid-frame: it is taken up to its last video keyframe's PES.
    video = 0x100
    ends = [i for i, p in enumerate(packets_of(data)) if packet_pid(p) == video and p[1] & 0x40]
    data = data[:ends[-1] * PACKET_SIZE]
    analyser = Analyser()
    analyser.feed(data, 0)
    assert analyser.error_counts()["Continuity_count_error"] == 0
    path = tmp_path / "slow.ts"
    path.write_bytes(data)
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=60)
    assert decoded.returncode == 0 and decoded.stderr == ""
