"""HLS end to end: a real restreamer cutting a paced loopback upstream into
segments; the playlist checked against RFC 8216, every segment's first
packets, ffmpeg reading it, Chromium playing it in a plain <video>, a new
segment listed within a second, authentication and viewer counting."""

import base64
import http.client
import json
import subprocess
import sys
import threading
import time
from urllib.parse import urljoin

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from restreamer.ts.psi import is_rap
from tests.support.hls import assert_segment_starts_clean, continuous, parse, poll
from tests.support.server import RestreamerProcess
from tests.support.ts import PACKET_SIZE
from tests.support.upstream import TSUpstream
from tests.support.viewer import http_get

LAPS = 20
PAGE = """<!doctype html><title>player</title>
<video id="v" src="/tv.m3u8" muted autoplay playsinline></video>"""
CREDENTIALS = {"Authorization": "Basic " + base64.b64encode(b"tv:pw").decode()}


@pytest.fixture(scope="module")
def source(sample):
    """The sample played LAPS times with its clocks carried on, at its own pace."""
    payload, rate = continuous(sample, LAPS)
    server = TSUpstream(payload, rate=rate)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(source, tmp_path_factory):
    directory = tmp_path_factory.mktemp("hls")
    (directory / "player.html").write_text(PAGE)
    config = {"hls": True, "hlswindow": 4, "userlist": {"tv": {"password": "pw"}},
              "trustedproxies": ["127.0.0.2/32"],
              "resources": [
                  {"type": "stream", "serve": "/tv.ts", "remote": source.url, "name": 'TV "One"',
                   "group": "News", "logo": "http://logos.example/one.png", "tvgid": "one.example"},
                  {"type": "stream", "serve": "/private", "remote": source.url,
                   "authentication": {"type": "basic", "realm": "tv", "users": ["tv"]}},
                  {"type": "stream", "serve": "/plain.ts", "remote": source.url, "hls": False},
                  {"type": "static", "serve": "/player.html",
                   "remote": f"file://{directory / 'player.html'}"},
                  {"type": "api", "api": "statistics", "serve": "/statistics"},
                  {"type": "api", "api": "playlist", "serve": "/channels.m3u"}]}
    process = RestreamerProcess(config, directory).start()
    yield process
    process.close()
    print(process.output_tail())


def playlist(server, path="/tv.m3u8", headers=None, entries=1):
    """The playlist once it lists ``entries`` segments."""
    def read():
        status, _, body = http_get(server.url(path), headers=headers, timeout=15)
        assert status == 200, status
        listed = parse(body.decode())
        return listed if len(listed.entries) >= entries else None
    return poll(read, 20, f"{path} listing {entries} segments", every=0.2)


def test_the_playlist_is_live_rfc8216_and_every_segment_starts_with_pat_pmt_keyframe(server):
    status, headers, _ = http_get(server.url("/tv.m3u8"), timeout=15)
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    first = playlist(server, entries=2)
    assert not first.ended and first.target == 2
    for entry in first.entries:
        assert 1.0 <= entry.duration <= 2.2  # whole 1 s GOPs, up to the 2 s target (a lap's join adds ~0.17 s)
        status, headers, data = http_get(urljoin(server.url("/tv.m3u8"), entry.uri))
        assert status == 200 and headers["Content-Type"] == "video/mp2t"
        assert_segment_starts_clean(data)
    later = poll(lambda: (p := playlist(server)).media_sequence > first.media_sequence and p,
                 10, "the window to slide", every=0.2)
    assert later.target == first.target
    known = {e.sequence: (e.uri, e.duration, e.date) for e in first.entries}
    for entry in later.entries:
        if entry.sequence in known:
            assert known[entry.sequence] == (entry.uri, entry.duration, entry.date)
        status, _, data = http_get(urljoin(server.url("/tv.m3u8"), entry.uri))
        assert status == 200
        assert_segment_starts_clean(data)
    assert http_get(server.url("/tv.m3u8/999999.ts"))[0] == 404
    assert http_get(server.url("/plain.m3u8"))[0] == 404  # hls: false


def test_ffmpeg_reads_the_playlist_without_a_complaint(server):
    playlist(server, entries=2)
    # It starts 3 segments (6 s) before the live edge: 10 s take two more, read as the playlist moves on.
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", server.url("/tv.m3u8"),
                             "-t", "10", "-f", "null", "-"], capture_output=True, timeout=40)
    assert result.returncode == 0
    assert result.stdout == b"" and result.stderr == b"", result.stderr.decode()


def test_a_new_segment_is_listed_within_a_second_of_its_last_packet(server, source):
    connection = poll(lambda: source.connections and source.connections[0], 5, "the upstream's connection")
    sends: list[tuple[float, int]] = []  # (when, bytes the upstream had sent by then)
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            sends.append((time.monotonic(), len(connection.sent)))
            stop.wait(0.005)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        delays = []
        last = playlist(server).entries[-1].sequence
        while len(delays) < 3:
            listed = parse(http_get(server.url("/tv.m3u8"))[2].decode())
            now = time.monotonic()
            fresh = [e for e in listed.entries if e.sequence > last]
            if not fresh:
                time.sleep(0.02)  # the pace of a player's poll
                continue
            entry = fresh[-1]
            last = entry.sequence
            data = http_get(urljoin(server.url("/tv.m3u8"), entry.uri))[2]
            body = data[2 * 188:]  # what follows the PAT and PMT put in front
            end = bytes(connection.sent).rfind(body) + len(body)
            assert end >= len(body), "the segment is a run of what the upstream sent"
            sent_at = next(t for t, size in sends if size >= end)
            delays.append(now - sent_at)
    finally:
        stop.set()
        watcher.join()
    assert max(delays) <= 1.0, delays


def test_authentication_guards_the_playlist_and_its_segments_alike(server):
    assert http_get(server.url("/private.m3u8"))[0] == 401
    listed = playlist(server, "/private.m3u8", headers=CREDENTIALS)
    uri = urljoin(server.url("/private.m3u8"), listed.entries[0].uri)
    assert http_get(uri)[0] == 401
    status, _, data = http_get(uri, headers=CREDENTIALS)
    assert status == 200
    assert_segment_starts_clean(data)


def test_a_fresh_streams_playlist_lists_a_segment_within_a_segment_of_its_second_keyframe(sample, tmp_path):
    payload, rate = continuous(sample, 2)
    keyframes = [offset for offset in range(0, len(payload), PACKET_SIZE) if is_rap(payload, offset, "h264")]
    second = keyframes[1] * 8 / rate  # seconds after the upstream's first byte
    fresh = TSUpstream(payload, rate=rate)
    config = {"hls": True, "hlssegment": 2, "ondemand": True,
              "resources": [{"type": "stream", "serve": "/fresh.ts", "remote": fresh.url}]}
    try:
        with RestreamerProcess(config, tmp_path).start() as restreamer:
            began = time.monotonic()  # the request starts the on-demand upstream
            status, _, body = http_get(restreamer.url("/fresh.m3u8"), timeout=15)
            took = time.monotonic() - began
            assert status == 200 and len(parse(body.decode()).entries) >= 1
            assert took <= second + 2 + 0.5, f"{took:.2f} s; the second keyframe came at {second:.2f} s"
    finally:
        fresh.stop()


def test_the_servers_fast_path_and_the_flask_views_send_the_same_bytes(source, tmp_path):
    config = {"hls": True, "hlswindow": 4, "userlist": {"tv": {"password": "pw"}},
              "resources": [{"type": "stream", "serve": "/tv.ts", "remote": source.url,
                             "authentication": {"type": "basic", "realm": "tv", "users": ["tv"]}}]}
    with RestreamerProcess(config, tmp_path,
                           cmd=[sys.executable, "-m", "tests.support.twomounts", "{config}"]).start() as both:
        assert http_get(both.url("/tv.m3u8"))[0] == 401  # the same check on both paths
        assert http_get(both.url("/flask/tv.m3u8"))[0] == 401
        fast = playlist(both, headers=CREDENTIALS, entries=2)

        def same_playlist():
            before = http_get(both.url("/tv.m3u8"), headers=CREDENTIALS)
            flask = http_get(both.url("/flask/tv.m3u8"), headers=CREDENTIALS)
            after = http_get(both.url("/tv.m3u8"), headers=CREDENTIALS)
            return (before, flask) if before[2] == after[2] else None  # no segment added meanwhile
        before, flask = poll(same_playlist, 20, "a playlist unchanged across three requests", every=0.1)
        assert before[2] == flask[2]
        uri = fast.entries[-1].uri
        answers = [http_get(urljoin(both.url(mount + "/tv.m3u8"), uri), headers=CREDENTIALS)
                   for mount in ("", "/flask")]
        for header in ("Content-Type", "Content-Length", "Cache-Control"):
            assert answers[0][1][header] == answers[1][1][header], header
        assert answers[0][0] == answers[1][0] == 200
        assert answers[0][2] == answers[1][2] and len(answers[0][2]) > 0


def test_hls_viewers_count_while_they_keep_asking(server):
    agent = {"User-Agent": "counted-player/1"}
    mark = server.mark()
    listed = playlist(server, headers=agent)
    http_get(urljoin(server.url("/tv.m3u8"), listed.entries[-1].uri), headers=agent)

    def counted():
        totals = json.loads(http_get(server.url("/statistics"))[2])["streams"]["/tv.ts"]
        return totals if totals["connections"] >= 1 and totals["total_bytes_sent"] > 0 else None
    poll(counted, 5, "the HLS viewer counted", every=0.2)
    server.wait_log(lambda e: e.get("event") == "viewer disconnected" and e.get("hls")
                    and e.get("bytes", 0) > 0, timeout=15, since=mark)


def test_chromium_plays_the_playlist_in_a_plain_video_element(server, browser):
    playlist(server, entries=2)
    browser.get(server.url("/player.html"))
    played = WebDriverWait(browser, 10, poll_frequency=0.2).until(
        lambda d: d.execute_script("const v = document.getElementById('v');"
                                   "return v.error ? -1 : v.currentTime") >= 4 or None,
        "the video to play 4 s")
    assert played
    assert browser.execute_script("return document.getElementById('v').error") is None


def channel_list(server, query="", headers=None, source=None):
    """(content type, [(EXTINF line, URL)]) of the playlist API, asked from ``source``."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5,
                                            source_address=(source, 0) if source else None)
    connection.request("GET", "/channels.m3u" + query, headers=headers or {})
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 200
    lines = body.splitlines()
    assert lines[0] == "#EXTM3U"
    pairs = list(zip(lines[1::2], lines[2::2]))
    assert all(info.startswith("#EXTINF:-1 ") and not url.startswith("#") for info, url in pairs)
    return response.headers["Content-Type"], pairs


def probe(url: str) -> str:
    # A second of analysis instead of the default five, as in test_streaming: enough to name the codecs.
    result = subprocess.run(["ffprobe", "-v", "error", "-analyzeduration", "1000000", "-show_entries",
                             "stream=codec_name", "-of", "csv=p=0", url], capture_output=True, timeout=30)
    assert result.returncode == 0 and not result.stderr, result.stderr.decode()
    return result.stdout.decode()


def test_the_channel_list_is_an_extended_m3u_that_ffprobe_opens_entry_by_entry(server):
    playlist(server, entries=2)
    content_type, entries = channel_list(server)
    assert content_type == "audio/x-mpegurl"
    base = server.base_url
    assert [url for _, url in entries] == [base + "/tv.ts", base + "/plain.ts"]  # /private is not ours
    assert entries[0][0] == ('#EXTINF:-1 tvg-id="one.example" tvg-name="TV \'One\'" '
                             'tvg-logo="http://logos.example/one.png" group-title="News",TV "One"')
    assert entries[1][0] == '#EXTINF:-1 tvg-id="" tvg-name="/plain.ts" tvg-logo="" group-title="",/plain.ts'
    for _, url in entries:
        assert "h264" in probe(url)
    _, hls = channel_list(server, "?hls")
    assert [url for _, url in hls] == [base + "/tv.m3u8"]
    assert "h264" in probe(hls[0][1])
    _, mine = channel_list(server, "?hls", headers=CREDENTIALS)
    assert [url for _, url in mine] == [base + "/tv.m3u8", base + "/private.m3u8"]


def test_forwarded_names_count_only_from_a_trusted_proxy(server):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tv.example, inner.example"}
    _, direct = channel_list(server, headers=forwarded)
    assert direct[0][1] == server.base_url + "/tv.ts"
    _, proxied = channel_list(server, headers=forwarded, source="127.0.0.2")
    assert proxied[0][1] == "https://tv.example/tv.ts"
