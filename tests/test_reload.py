"""Reloading the config without a restart (SIGHUP), end to end: unchanged streams
keep every byte, a changed stream moves to its new remote with its viewers, a
removed one closes its viewers and answers 404, an added one is served at
once; APIs and authentication change for new requests; a bad file changes
nothing."""

import base64
import json
import signal

from tests.support.ts import assert_joined, assert_runs, make_packets
from tests.support.viewer import http_get
from tests.support.server import event
from tests.support.ts import whole

RATE = 2_000_000
ENOUGH = 60_000  # body bytes (~0.25 s at RATE)


def stream(serve, remote, **extra):
    return {"type": "stream", "serve": serve, "remote": remote, **extra}


def rewrite(rs, config):
    """Replace the running process's config file and send SIGHUP; the log mark before it."""
    rs.config_path.write_text(json.dumps(config) if isinstance(config, dict) else config)
    mark = rs.mark()
    rs.proc.send_signal(signal.SIGHUP)
    return mark


def test_reload_adds_removes_changes_and_leaves_unchanged_streams_alone(upstream, restreamer, viewer):
    keep, gone, fresh = (upstream(rate=RATE) for _ in range(3))
    # The changed stream's remotes send different packets, so a viewer's data tells them apart.
    before, after = upstream(make_packets(20000, pid=0x100), rate=RATE), upstream(
        make_packets(20000, pid=0x200), rate=RATE)
    statistics = {"type": "api", "api": "statistics", "serve": "/statistics"}
    top = {"listen": "127.0.0.1:0", "reconnect": 0.2, "graceperiod": 5, "timeout": 5}
    rs = restreamer({**top, "resources": [
        stream("/keep.ts", keep.url), stream("/change.ts", before.url), stream("/gone.ts", gone.url),
        statistics]})
    for path in ("/keep.ts", "/change.ts", "/gone.ts"):
        rs.wait_log(event("stream online", stream=path))
    watching = {path: viewer(rs.url(path)) for path in ("/keep.ts", "/change.ts", "/gone.ts")}
    for client in watching.values():
        assert client.wait_status() == 200
        client.wait_bytes(ENOUGH)

    mark = rewrite(rs, {**top, "listen": "127.0.0.1:1", "userlist": {"ops": {"password": "pw"}},
                        "resources": [
        stream("/new.ts", fresh.url),  # first: every other resource's index moves
        stream("/keep.ts", keep.url), stream("/change.ts", after.url),
        dict(statistics, authentication={"type": "basic", "realm": "ops", "users": ["ops"]})]})
    summary = rs.wait_log("config reloaded", since=mark)
    assert (summary["added"], summary["removed"]) == (["/new.ts"], ["/gone.ts"])
    assert summary["changed"] == ["/change.ts", "/statistics"]
    assert summary["unchanged"] == 1
    assert "listen" in summary["settings"]
    assert rs.find_logs(event("config key needs a restart", key="listen"), since=mark)

    # Removed: its viewer's response ends, then 404.
    watching["/gone.ts"].wait_closed()
    assert http_get(rs.url("/gone.ts"))[0] == 404
    # Added: served at once.
    added = viewer(rs.url("/new.ts"))
    assert added.wait_status() == 200
    assert assert_joined(whole(added.wait_bytes(ENOUGH)), fresh.connections[0].sent) >= 0
    # Changed: the viewer stayed and continues with the new remote's packets.
    switched = rs.wait_log(event("upstream switched", stream="/change.ts"), since=mark)
    assert (switched["old_url"], switched["new_url"]) == (before.url, after.url)
    assert 0 <= switched["gap"] < 5
    moved = watching["/change.ts"]
    data = whole(moved.wait_bytes(len(moved.data) + ENOUGH))
    old_run, new_run = assert_runs(data, before.connections[0].sent, after.connections[0].sent)
    assert old_run > 0 and new_run > 0
    assert before.wait_open(0) == []
    # Unchanged: the same connection, and not a byte lost.
    kept = watching["/keep.ts"]
    data = whole(kept.wait_bytes(len(kept.data) + ENOUGH))
    assert assert_joined(data, keep.connections[0].sent) >= 0
    assert len(keep.connections) == 1
    # APIs and authentication: for new requests, on the port the server listened on all along.
    assert http_get(rs.url("/statistics"))[0] == 401
    token = base64.b64encode(b"ops:pw").decode()
    status, _, body = http_get(rs.url("/statistics"), headers={"Authorization": f"Basic {token}"})
    assert status == 200
    streams = json.loads(body)["streams"]
    assert set(streams) == {"/new.ts", "/keep.ts", "/change.ts"}
    assert streams["/change.ts"]["total_switches"] == 1
    assert streams["/keep.ts"]["total_switches"] == 0
    assert {s["state"] for s in streams.values()} == {"online"}
    for client in (kept, moved):
        assert not client.closed.is_set()


def test_a_bad_file_on_reload_is_one_error_line_and_the_running_config_keeps_serving(
        upstream, restreamer, viewer):
    up = upstream(rate=RATE)
    rs = restreamer({"resources": [stream("/s.ts", up.url)]})
    rs.wait_log("stream online")
    client = viewer(rs.url("/s.ts"))
    client.wait_bytes(ENOUGH)
    mark = rewrite(rs, {"resources": [stream("nope", up.url)]})
    failed = rs.wait_log("config reload failed", since=mark)
    assert failed["level"] == "error"
    assert failed["reason"] == (f"{rs.config_path}: resources[0].serve: must be a URL path "
                                "starting with '/', got 'nope'")
    data = whole(client.wait_bytes(len(client.data) + ENOUGH))
    assert assert_joined(data, up.connections[0].sent) >= 0
    second = viewer(rs.url("/s.ts"))
    assert second.wait_status() == 200
    assert len(up.connections) == 1
    assert not rs.find_logs("config reloaded", since=mark)
    assert len([e for e in rs.logs[mark:] if e.get("level") == "error"]) == 1
    # Not JSON at all: the same, one line naming the file.
    mark = rewrite(rs, "{ not json")
    assert rs.wait_log("config reload failed", since=mark)["reason"].startswith(
        f"{rs.config_path}: line 1 column 3: invalid JSON")
    assert second.wait_bytes(ENOUGH)
