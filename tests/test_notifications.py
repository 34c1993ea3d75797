"""limit_hit, limit_miss and heartbeat notifications, received by a real HTTP sink."""

import base64
import time

import pytest

from tests.support.polling import poll
from tests.support.sink import RecordingHTTPServer
from tests.support.viewer import http_get

USERS = {"alice": "wonder:land", "carol": "pässwörd"}
DEAD_URL = "http://127.0.0.1:1/dead"
INTERVAL = 0.3  # heartbeatinterval, seconds


@pytest.fixture
def sink():
    server = RecordingHTTPServer()
    yield server
    server.stop()


@pytest.fixture
def notifying(restreamer, upstream, sink):
    """notifying(notifications, **settings) -> a running restreamer with one stream, /a.ts."""
    def make(notifications, **settings):
        config = {"userlist": {name: {"password": pw} for name, pw in USERS.items()},
                  "resources": [{"type": "stream", "serve": "/a.ts", "remote": upstream().url},
                                {"type": "api", "api": "health", "serve": "/health"}],
                  "notifications": notifications, **settings}
        process = restreamer(config)
        process.wait_log("stream online")
        return process
    return make


def note(event, url, **auth):
    entry = {"event": event, "type": "url", "url": url}
    if auth:
        entry["authentication"] = auth
    return entry


def watch(viewer, process):
    client = viewer(process.url("/a.ts"))
    assert client.wait_status() == 200
    client.wait_bytes(188 * 7)
    return client


def test_heartbeats_every_interval(notifying, sink):
    process = notifying([note("heartbeat", sink.url("/beat")), note("heartbeat", DEAD_URL)],
                        heartbeatinterval=INTERVAL)
    beats = sink.wait_requests(4, "/beat")
    gaps = [later.time - earlier.time for earlier, later in zip(beats, beats[1:])]
    assert all(gap >= INTERVAL / 2 for gap in gaps), gaps
    assert beats[0].headers["user-agent"].startswith("restreamer/")
    assert "authorization" not in beats[0].headers
    failed = process.wait_log(lambda e: e.get("event") == "notification failed")
    assert (failed["event_type"], failed["url"]) == ("heartbeat", DEAD_URL)
    sent = process.wait_log(lambda e: e.get("event") == "notification sent")
    assert (sent["event_type"], sent["status"]) == ("heartbeat", 200)


def test_limit_hit_once_when_viewers_reach_fullconnections(notifying, sink, viewer):
    process = notifying([note("limit_hit", sink.url("/hit"), type="basic", user="alice"),
                         note("heartbeat", sink.url("/beat"))],
                        fullconnections=2, heartbeatinterval=INTERVAL)
    watch(viewer, process)
    before_second = time.monotonic()
    watch(viewer, process)
    hit, = sink.wait_requests(1, "/hit")
    assert hit.time > before_second  # not at the first viewer
    token = base64.b64encode(b"alice:wonder:land").decode()
    assert hit.headers["authorization"] == "Basic " + token
    watch(viewer, process)
    # Notifications go out in order: two heartbeats later, any second hit would be in.
    beats = len(sink.received("/beat"))
    sink.wait_requests(beats + 2, "/beat")
    assert len(sink.received("/hit")) == 1


def test_limit_miss_when_viewers_drop_below_fullconnections(notifying, sink, viewer):
    process = notifying([note("limit_hit", sink.url("/hit")),
                         note("limit_miss", sink.url("/miss"), type="bearer", user="carol")],
                        fullconnections=2)
    watching = [watch(viewer, process), watch(viewer, process)]
    sink.wait_requests(1, "/hit")
    assert sink.received("/miss") == []
    watching.pop().close()
    miss, = sink.wait_requests(1, "/miss")
    # The token goes out as UTF-8, as restreamer expects tokens to arrive.
    assert miss.headers["authorization"].encode("latin-1") == "Bearer pässwörd".encode("utf-8")
    watch(viewer, process)
    sink.wait_requests(2, "/hit")
    assert len(sink.received("/miss")) == 1


def test_non_ascii_bearer_token_is_sent_as_utf8(notifying, sink):
    notifying([note("heartbeat", sink.url("/beat"), type="bearer", user="carol")],
              heartbeatinterval=INTERVAL)
    beat, = sink.wait_requests(1, "/beat")
    assert beat.headers["authorization"].encode("latin-1") == "Bearer pässwörd".encode("utf-8")


def test_slow_target_never_delays_viewers(notifying, sink, viewer):
    sink.respond("/slow", delay=2)
    process = notifying([note("limit_hit", sink.url("/slow"))], fullconnections=1, timeout=1)
    watch(viewer, process)
    sink.wait_requests(1, "/slow")
    # The notification is still waiting for its answer: viewers and APIs are served meanwhile.
    started = time.monotonic()
    watch(viewer, process)
    assert http_get(process.url("/health"))[0] == 200
    assert time.monotonic() - started < 0.9
    assert process.find_logs(lambda e: e.get("event", "").startswith("notification")) == []
    failed = process.wait_log(lambda e: e.get("event") == "notification failed")
    assert (failed["event_type"], failed["reason"]) == ("limit_hit", "ReadTimeout")
    assert http_get(process.url("/health"))[0] == 200


def test_a_slow_target_never_delays_another(notifying, sink):
    sink.respond("/slow", delay=3)
    notifying([note("heartbeat", sink.url("/slow")), note("heartbeat", sink.url("/fast"))],
              heartbeatinterval=0.1, timeout=5)
    slow, = sink.wait_requests(1, "/slow")
    # While the slow target holds its first beat, the other gets every beat on time.
    beats = sink.wait_requests(6, "/fast", timeout=2)
    assert beats[5].time - slow.time < 1.5
    assert len(sink.received("/slow")) == 1


def test_limit_notifications_have_hysteresis(notifying, sink, viewer):
    """A client connecting and resetting at the threshold: at most one
    announcement per HOLD seconds, and the last state is announced."""
    hold = 2.0  # restreamer.ops.notifications.HOLD
    process = notifying([note("limit_hit", sink.url("/hit")), note("limit_miss", sink.url("/miss"))],
                        fullconnections=1)
    began = time.monotonic()
    for _ in range(20):
        mark = process.mark()
        watch(viewer, process).close()
        process.wait_log("viewer disconnected", since=mark)
    ended = time.monotonic()
    # The count is below the limit at the end: whatever was held back is
    # announced within HOLD seconds, and the last announcement is a limit_miss.
    sent = poll(lambda: sorted(sink.received("/hit") + sink.received("/miss"), key=lambda r: r.time),
                lambda s: s and s[-1].path == "/miss" and time.monotonic() > ended + hold + 0.5,
                hold + 5, "a settled limit_miss")
    assert len(sent) <= (ended - began) / hold + 2, (len(sent), ended - began)
    gaps = [later.time - earlier.time for earlier, later in zip(sent, sent[1:])]
    assert all(gap >= hold - 0.2 for gap in gaps), gaps
