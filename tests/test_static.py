"""Static resources from files and HTTP upstreams: headers, caching, errors, logging."""

import concurrent.futures
import gzip
import os
import sys
import time

import pytest

from tests.support.polling import poll
from tests.support.server import RestreamerProcess
from tests.support.sink import NO_LENGTH, RecordingHTTPServer
from tests.support.ts import PACKET_SIZE
from tests.support.upstream import TSUpstream
from tests.support.viewer import HttpViewer, http_get, http_request

MAX_SIZE = 10 * 1024 * 1024
SLOW = 1.0  # seconds the slow upstream takes to answer

# Tests run as root, which may read any file. Without CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH, root is bound by file modes like everybody else, so the
# server runs without them and a mode-000 file is really unreadable to it.
UNPRIVILEGED = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
                if os.geteuid() == 0 else [])


@pytest.fixture(scope="module")
def upstream():
    sink = RecordingHTTPServer()
    sink.respond("/style.css", b"body { color: red }", headers={"Content-Type": "text/css"})
    sink.respond("/fresh.txt", b"fresh")
    sink.respond("/expiring.txt", b"expiring")
    sink.respond("/nolength", b"streamed", length=NO_LENGTH)
    sink.respond("/huge", b"tiny", length=MAX_SIZE + 1)
    sink.respond("/short", b"only ten b", length=1000)
    sink.respond("/superscript", b"2", length="\u00b2")  # a digit to str.isdigit(), not to int()
    sink.respond("/longlength", b"2", length="0" * 4999 + "2")  # past int()'s 4,300 digits
    sink.respond("/missing", b"not here", status=404)
    sink.respond("/slow", b"slow", delay=SLOW)
    sink.respond("/slow-cached", b"slow", delay=SLOW)
    sink.respond("/slow-error", b"slow", delay=SLOW, status=500)
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("static")
    (directory / "page.html").write_text("<h1>hello</h1>")
    (directory / "blob.restreamer-unknown").write_bytes(b"\x00\x01")
    with open(directory / "big.bin", "wb") as f:
        f.truncate(MAX_SIZE + 1)
    secret = directory / "secret.txt"
    secret.write_text("secret")
    secret.chmod(0)
    (directory / "a-directory").mkdir()
    return directory


def static(serve, remote, cache=0):
    return {"type": "static", "serve": serve, "remote": remote, "cache": cache}


@pytest.fixture(scope="module")
def server(upstream, files, tmp_path_factory):
    config = {
        "timeout": 5,
        "resources": [
            static("/page.html", (files / "page.html").as_uri(), 60),
            static("/blob", (files / "blob.restreamer-unknown").as_uri()),
            static("/big", (files / "big.bin").as_uri()),
            static("/secret", (files / "secret.txt").as_uri()),
            static("/gone", (files / "gone.txt").as_uri()),
            static("/directory", (files / "a-directory").as_uri()),
            static("/style.css", upstream.url("/style.css"), 60),
            static("/fresh", upstream.url("/fresh.txt"), 0),
            static("/expiring", upstream.url("/expiring.txt"), 0.5),
            static("/nolength", upstream.url("/nolength")),
            static("/huge", upstream.url("/huge")),
            static("/short", upstream.url("/short")),
            static("/superscript", upstream.url("/superscript")),
            static("/longlength", upstream.url("/longlength")),
            static("/missing", upstream.url("/missing")),
            static("/unreachable", "http://127.0.0.1:1/nothing"),
            static("/slow", upstream.url("/slow"), 0),
            static("/slow-cached", upstream.url("/slow-cached"), 60),
            static("/slow-error", upstream.url("/slow-error"), 60),
        ],
    }
    cmd = UNPRIVILEGED + [sys.executable, "-m", "restreamer", "{config}"]
    process = RestreamerProcess(config, tmp_path_factory.mktemp("static-server"), cmd=cmd).start()
    yield process
    process.close()
    print(process.output_tail())


# -- files -----------------------------------------------------------------------


def test_file_with_type_etag_and_cache_control(server):
    status, headers, body = http_get(server.url("/page.html"))
    assert (status, body) == (200, b"<h1>hello</h1>")
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "max-age=60"
    assert headers["Content-Length"] == "14"
    assert headers["ETag"]
    assert http_get(server.url("/page.html"))[1]["ETag"] == headers["ETag"]


def test_file_of_unknown_type_has_no_content_type(server):
    status, headers, body = http_get(server.url("/blob"))
    assert (status, body) == (200, b"\x00\x01")
    assert "Content-Type" not in headers
    assert headers["Cache-Control"] == "max-age=0"


def test_head_gives_the_headers_only(server):
    status, headers, body = http_request("HEAD", server.url("/page.html"))
    assert (status, body) == (200, b"")
    assert headers["ETag"] and headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path, status", [("/gone", 404), ("/secret", 403), ("/directory", 403),
                                          ("/big", 502)])
def test_file_errors(server, path, status):
    mark = server.mark()
    assert http_get(server.url(path))[0] == status
    entry = server.wait_log(lambda e: e.get("event") == "static fetch failed", since=mark)
    assert (entry["serve"], entry["status"]) == (path, status)


# -- conditional requests ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/page.html", "/style.css"])
def test_if_none_match(server, path):
    headers = http_get(server.url(path))[1]
    etag = headers["ETag"]
    for candidate in (etag, "W/" + etag, f'"other", {etag}', "*"):
        status, headers304, body = http_get(server.url(path), {"If-None-Match": candidate})
        assert (status, body) == (304, b""), candidate
        assert headers304["ETag"] == etag
        assert headers304["Cache-Control"] == headers["Cache-Control"]
    status, _, body = http_get(server.url(path), {"If-None-Match": '"other"'})
    assert status == 200 and body


# -- HTTP upstreams ------------------------------------------------------------------


def test_http_upstream_type_and_caching(server, upstream):
    for _ in range(3):
        status, headers, body = http_get(server.url("/style.css"))
        assert (status, body) == (200, b"body { color: red }")
        assert headers["Content-Type"] == "text/css"
        assert headers["Cache-Control"] == "max-age=60"
    assert len(upstream.received("/style.css")) == 1


def test_cache_zero_fetches_every_time(server, upstream):
    before = len(upstream.received("/fresh.txt"))
    for _ in range(3):
        assert http_get(server.url("/fresh"))[2] == b"fresh"
    assert len(upstream.received("/fresh.txt")) == before + 3


def test_cache_expires(server, upstream):
    assert http_get(server.url("/expiring"))[2] == b"expiring"
    first = len(upstream.received("/expiring.txt"))
    poll(lambda: (http_get(server.url("/expiring"))[0], len(upstream.received("/expiring.txt"))),
         lambda r: r == (200, first + 1), 5, "a refetch after the cache time")


def test_upstream_is_told_who_asks(server, upstream):
    http_get(server.url("/fresh"))
    assert upstream.received("/fresh.txt")[-1].headers["user-agent"].startswith("restreamer/")


@pytest.mark.parametrize("path", ["/nolength", "/huge", "/short", "/superscript", "/longlength",
                                  "/missing", "/unreachable"])
def test_http_upstream_errors_are_502_and_logged(server, path):
    mark = server.mark()
    status, _, body = http_get(server.url(path))
    assert (status, body) == (502, b"Bad Gateway")
    entry = server.wait_log(lambda e: e.get("event") == "static fetch failed", since=mark)
    assert (entry["serve"], entry["status"]) == (path, 502)
    assert entry["reason"]
    assert not server.find_logs("request crashed", since=mark)
    assert server.stderr_lines == []


@pytest.mark.parametrize("path, status", [("/slow", 200), ("/slow-cached", 200),
                                          ("/slow-error", 502)])
def test_concurrent_requests_share_one_fetch(server, upstream, path, status):
    remote = path  # the upstream path is the served one
    before = len(upstream.received(remote))
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        first = pool.submit(http_get, server.url(path))
        upstream.wait_requests(before + 1, remote)
        # The fetch is under way for SLOW seconds: these all arrive during it.
        rest = [pool.submit(http_get, server.url(path)) for _ in range(5)]
        results = [f.result() for f in [first] + rest]
    assert [r[0] for r in results] == [status] * 6
    assert len(upstream.received(remote)) == before + 1


# -- logging -------------------------------------------------------------------------


@pytest.mark.parametrize("path, status", [("/page.html", 200), ("/gone", 404), ("/missing", 502)])
def test_static_requests_are_logged(server, path, status):
    mark = server.mark()
    assert http_get(server.url(path))[0] == status
    entry = server.wait_log(lambda e: e.get("event") == "request" and e.get("path") == path,
                            since=mark)
    assert (entry["remote"], entry["method"], entry["status"]) == ("127.0.0.1", "GET", status)


# -- nothing blocks the loop -------------------------------------------------------

GZIPPED = b"hello, compressed world " * 20


@pytest.fixture
def hostile(tmp_path, sample):
    """A restreamer with a viewer of a live stream, and statics that would stall it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sink = RecordingHTTPServer()
    sink.respond("/trickle", b"x" * 100, trickle=0.2)
    sink.respond("/gzip", gzip.compress(GZIPPED), headers={"Content-Type": "text/plain",
                                                           "Content-Encoding": "gzip"})
    sink.respond("/chunked", b"a chunked body, in pieces", chunked=True)
    source = TSUpstream(sample, rate=2_000_000)
    config = {"timeout": 1, "resources": [
        {"type": "stream", "serve": "/s.ts", "remote": source.url},
        static("/fifo", fifo.as_uri()), static("/zero", "file:///dev/zero"),
        static("/trickle", sink.url("/trickle")), static("/gzip", sink.url("/gzip")),
        static("/chunked", sink.url("/chunked"))]}
    process = RestreamerProcess(config, tmp_path).start()
    process.wait_log("stream online")
    client = HttpViewer(process.url("/s.ts"))
    client.wait_bytes(PACKET_SIZE * 10)
    yield process, sink, client
    client.close()
    process.close()
    sink.stop()
    source.stop()
    print(process.output_tail())


@pytest.mark.parametrize("path", ["/fifo", "/zero"])
def test_a_fifo_or_device_static_is_refused_without_stalling_viewers(hostile, path):
    rs, _, client = hostile
    mark = rs.mark()
    assert http_get(rs.url(path), timeout=3)[0] == 403
    entry = rs.wait_log(lambda e: e.get("event") == "static fetch failed", since=mark)
    assert (entry["serve"], entry["reason"]) == (path, "not a regular file")
    before = len(client.data)
    client.wait_bytes(before + 50_000)


def test_a_trickling_static_upstream_is_cut_at_the_timeout(hostile):
    rs, sink, client = hostile
    began = time.monotonic()
    assert http_get(rs.url("/trickle"), timeout=5)[0] == 502
    assert time.monotonic() - began < 1 + 1.5  # timeout: 1, the body would take 20 s
    entry = rs.wait_log("static fetch failed")
    assert entry["reason"] == "no complete answer within 1 s"
    before = len(client.data)
    client.wait_bytes(before + 50_000)


def test_gzip_and_chunked_static_answers_are_served(hostile):
    rs, sink, _ = hostile
    assert http_get(rs.url("/gzip"))[::2] == (200, GZIPPED)
    assert sink.received("/gzip")[0].headers["accept-encoding"] == "identity"
    assert http_get(rs.url("/chunked"))[::2] == (200, b"a chunked body, in pieces")
