"""One program of a multi-program stream: a 2-program transport stream made by
ffmpeg's -program options, relayed as `program: 2`."""

import json
import subprocess

import pytest

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
