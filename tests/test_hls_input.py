"""HLS as an upstream: ffmpeg's HLS muxer writes a live playlist behind a static
HTTP server on loopback; the relayed stream must decode cleanly and trail the
playlist's live edge by at most one segment."""

import functools
import http.server
import statistics
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.support.polling import poll
from tests.support.ts import PACKET_SIZE, assert_aligned

SERVE = "/s.ts"
SEGMENT = 1.0  # seconds, ffmpeg's -hls_time


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def hls_origin(tmp_path):
    """A live HLS stream (master playlist, 1 s segments, a sliding window of 5)
    served over HTTP from tmp_path; yields its base URL."""
    directory = tmp_path / "hls"
    directory.mkdir()
    encoder = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
         "-c:a", "aac", "-f", "hls", "-hls_time", str(SEGMENT), "-hls_list_size", "5",
         "-hls_flags", "delete_segments", "-master_pl_name", "master.m3u8", str(directory / "live.m3u8")],
        stdin=subprocess.DEVNULL)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        poll(lambda: (directory / "live.m3u8").exists(), bool, 10, "ffmpeg's first playlist")
        yield base
    finally:
        encoder.kill()
        encoder.wait()
        server.shutdown()
        server.server_close()


def _segments(base):
    """The segment names of the media playlist now, oldest first."""
    with urllib.request.urlopen(f"{base}/live.m3u8", timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_live_hls_relayed_cleanly_within_one_segment(restreamer, viewer, hls_origin):
    rs = restreamer({"reconnect": 0.5, "readtimeout": 4, "resources": [
        {"type": "stream", "serve": SERVE, "remote": f"{hls_origin}/master.m3u8"}]})
    rs.wait_log("stream online")
    watcher = viewer(rs.url(SERVE))
    assert watcher.wait_status() == 200
    # Latency: when each new segment appears in the playlist, and when its
    # tenth packet (unique: it carries a continuity counter and payload)
    # reaches the viewer.
    latencies = []
    seen = set(_segments(hls_origin))
    decoder = subprocess.Popen(["ffmpeg", "-v", "error", "-i", rs.url(SERVE), "-t", "8", "-f", "null", "-"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    waiting = {}  # marker -> when its segment appeared
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for name in _segments(hls_origin):
            if name not in seen:
                seen.add(name)
                appeared = time.monotonic()
                with urllib.request.urlopen(f"{hls_origin}/{name}", timeout=5) as response:
                    body = response.read()
                waiting[body[9 * PACKET_SIZE:10 * PACKET_SIZE]] = appeared
        data = watcher.data
        for marker, appeared in list(waiting.items()):
            if marker in data:
                latencies.append(time.monotonic() - appeared)
                del waiting[marker]
        time.sleep(0.02)
    output, _ = decoder.communicate(timeout=30)
    assert output == "", f"the decoder complained about the relayed stream:\n{output}"
    assert decoder.returncode == 0
    assert len(latencies) >= 5, f"only {len(latencies)} segments reached the viewer: {latencies}"
    assert statistics.median(latencies) <= SEGMENT, latencies
    assert max(latencies) <= 2 * SEGMENT, latencies
    assert_aligned(watcher.data[:len(watcher.data) // PACKET_SIZE * PACKET_SIZE])


def test_a_playlist_that_stops_moving_is_a_stalled_upstream(restreamer, hls_origin, tmp_path):
    # A copy of the live playlist that never changes again.
    frozen = tmp_path / "hls" / "frozen.m3u8"
    frozen.write_text(urllib.request.urlopen(f"{hls_origin}/live.m3u8", timeout=5).read().decode())
    rs = restreamer({"reconnect": 0.5, "readtimeout": 3, "resources": [
        {"type": "stream", "serve": SERVE, "remote": f"{hls_origin}/frozen.m3u8"}]})
    entry = rs.wait_log("upstream error", timeout=15)
    assert "readtimeout" in entry["reason"]


def test_fmp4_segments_are_refused_with_a_reason(restreamer, tmp_path):
    directory = tmp_path / "fmp4"
    directory.mkdir()
    (directory / "v.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n"
                                      "#EXTINF:1,\nseg0.m4s\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rs = restreamer({"reconnect": 0, "resources": [{"type": "stream", "serve": SERVE,
                         "remote": f"http://127.0.0.1:{server.server_address[1]}/v.m3u8"}]})
        entry = rs.wait_log("upstream error")
        assert "fMP4" in entry["reason"]
    finally:
        server.shutdown()
        server.server_close()


def test_aes128_segments_are_decrypted_or_refused_naming_the_key(restreamer, viewer, tmp_path):
    directory = tmp_path / "aes"
    directory.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "4",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-f", "hls", "-hls_time", "1",
         "-hls_playlist_type", "vod", "-hls_enc", "1", "-hls_enc_key", "00112233445566778899aabbccddeeff",
         "-hls_enc_key_url", "secret.key", "vod.m3u8"], check=True, timeout=30, cwd=directory)
    assert "AES-128" in (directory / "vod.m3u8").read_text()
    # ffmpeg writes the key to the file the URL names, as the option's first
    # 16 characters as they are, not decoded from hex.
    assert (directory / "secret.key").read_bytes() == b"0011223344556677"
    (directory / "gone.m3u8").write_text((directory / "vod.m3u8").read_text().replace("secret.key", "nokey"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        rs = restreamer({"reconnect": 0, "graceperiod": 1, "resources": [
            {"type": "stream", "serve": SERVE, "remote": f"{base}/vod.m3u8", "ondemand": True},
            {"type": "stream", "serve": "/gone.ts", "remote": f"{base}/gone.m3u8"}]})
        entry = rs.wait_log(lambda e: e.get("event") == "upstream error" and e.get("stream") == "/gone.ts")
        assert "AES-128 key" in entry["reason"] and "404" in entry["reason"]
        # The whole playlist, decrypted: it decodes cleanly, all 4 s of it.
        relayed = tmp_path / "relayed.ts"
        relayed.write_bytes(viewer(rs.url(SERVE)).wait_closed(timeout=10))
        decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(relayed), "-f", "null", "-"],
                                 capture_output=True, text=True, timeout=30)
        assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
        frames = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v",
                                 "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(relayed)],
                                capture_output=True, text=True, timeout=30).stdout
        assert int(frames.split()[0]) == 100
    finally:
        server.shutdown()
        server.server_close()
