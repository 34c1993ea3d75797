"""gunicorn -w 3 with the shipped config/gunicorn.conf.py: the workers serve as
one server.  One upstream connection per stream whatever worker a viewer
reaches, maxconnections across all workers, whole-server figures from any
worker, and a stream's ownership moving on when its owner worker dies."""

import json
import os
import signal
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.polling import poll
from tests.support.sink import RecordingHTTPServer
from tests.support.viewer import HttpViewer, http_get, raw_get, read_response

WORKERS = 3
RATE = 2_000_000
ENOUGH = 40_000
LIMIT = 10
STREAMS = ("/a.ts", "/b.ts")
GRACE = 3
BEAT = 0.5


def server_config(upstreams, sink):
    return {
        "reconnect": 0.5, "graceperiod": GRACE, "maxconnections": LIMIT, "fullconnections": 8,
        "limitstatus": 503, "heartbeatinterval": BEAT,
        "notifications": [{"event": event, "type": "url", "url": sink.url(f"/{event}")}
                          for event in ("limit_hit", "limit_miss", "heartbeat")],
        "resources": [
            *({"type": "stream", "serve": path, "remote": up.url} for path, up in zip(STREAMS, upstreams)),
            {"type": "api", "api": "health", "serve": "/health"},
            {"type": "api", "api": "statistics", "serve": "/statistics"},
            {"type": "api", "api": "prometheus", "serve": "/metrics"},
        ],
    }


def launch_gunicorn(restreamer, config, runtime_dir, workers=WORKERS):
    rs = restreamer(dict(config, runtimedir=str(runtime_dir)), start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                         "-b", "127.0.0.1:0", "--workers", str(workers),
                         "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    return rs.launch().wait_gunicorn_port()


def roles(rs, stream):
    """{worker pid: "stream owned" or "stream following"}, the latest of each worker."""
    found = {}
    for entry in rs.find_logs(lambda e: e.get("stream") == stream
                              and e.get("event") in ("stream owned", "stream following")):
        found[entry["pid"]] = entry["event"]
    return found


def owner_of(rs, stream):
    return [pid for pid, role in roles(rs, stream).items() if role == "stream owned"][-1]


def connected_pids(rs, stream):
    return [e["pid"] for e in rs.find_logs(lambda e: e.get("event") == "viewer connected"
                                           and e.get("stream") == stream)]


def metric(url, name, **labels):
    status, _, body = http_get(url)
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def prometheus_states(rs):
    """{stream: the states at 1 in restreamer_stream_state}."""
    status, _, body = http_get(rs.url("/metrics"))
    assert status == 200
    states = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "restreamer_stream_state":
                states.setdefault(sample.labels["stream"], [])
                if sample.value == 1:
                    states[sample.labels["stream"]].append(sample.labels["state"])
    return states


@pytest.fixture
def sink():
    server = RecordingHTTPServer()
    yield server
    server.stop()


def test_gunicorn_workers_share_upstreams_limits_and_figures(upstream, restreamer, tmp_path, sink):
    ups = [upstream(rate=RATE) for _ in STREAMS]
    rs = launch_gunicorn(restreamer, server_config(ups, sink), tmp_path / "run")
    for stream in STREAMS:
        poll(lambda: roles(rs, stream), lambda r: len(r) == WORKERS, 20,
             f"every worker's role for {stream}")
        assert sorted(roles(rs, stream).values()).count("stream owned") == 1
    assert oct(os.stat(tmp_path / "run").st_mode & 0o777) == "0o700"

    viewers = []

    def open_viewers(stream, off_owner, cap):
        """Viewers of ``stream`` until ``off_owner`` of them sit on workers that
        do not own it (the kernel picks the worker), or ``cap`` viewers in all."""
        owner = owner_of(rs, stream)
        total = len(viewers)
        while len(viewers) < cap and sum(p != owner for p in connected_pids(rs, stream)) < off_owner:
            viewers.append(HttpViewer(rs.url(stream)))
            viewers[-1].wait_status()
            total += 1
            poll(lambda: sum(len(connected_pids(rs, s)) for s in STREAMS), lambda n: n == total, 5,
                 "the viewer's connected line")
        assert sum(p != owner for p in connected_pids(rs, stream)) >= off_owner, \
            f"not enough {stream} viewers on its followers"

    try:
        open_viewers("/a.ts", 2, LIMIT - 3)
        open_viewers("/b.ts", 1, LIMIT)
        while len(viewers) < LIMIT:
            viewers.append(HttpViewer(rs.url("/b.ts")))
        for client in viewers:
            assert client.wait_status() == 200
            client.wait_bytes(ENOUGH, timeout=10)
        # Every worker serves viewers, yet each upstream was pulled once.
        assert [len(up.connections) for up in ups] == [1, 1]

        # Every live worker's figures are in the statistics, whichever worker
        # answers: the server has sent at least what its viewers received
        # (each worker's file is at most a sample old), and goes on sending.
        def sent_and_states():
            answers = [json.loads(http_get(rs.url("/statistics"))[2]) for _ in range(2 * WORKERS)]
            return (min(a["total_bytes_sent"] for a in answers),
                    {(path, a["streams"][path]["state"]) for a in answers for path in STREAMS})

        online = {(path, "online") for path in STREAMS}
        for _ in range(2):
            received = sum(len(c.data) for c in viewers)
            poll(sent_and_states, lambda f: f[0] >= received and f[1] == online, 5,
                 f"every answer with the {received} bytes the viewers received, online")

        # The 11th viewer is refused, on whichever worker it reaches.
        for _ in range(4):
            with HttpViewer(rs.url("/b.ts")) as extra:
                assert extra.wait_status() == 503

        # Whole-server figures, whichever worker answers.
        poll(lambda: metric(rs.url("/metrics"), "streaming_connections"), lambda v: v == LIMIT, 5,
             "the Prometheus viewer total")
        for _ in range(6):
            assert metric(rs.url("/metrics"), "streaming_connections") == LIMIT
            health = json.loads(http_get(rs.url("/health"))[2])
            assert (health["viewer"], health["status"]) == (LIMIT, "full")
        statistics = poll(lambda: json.loads(http_get(rs.url("/statistics"))[2]),
                          lambda s: s["connections"] == LIMIT, 5, "statistics' total")
        assert statistics["streams"]["/a.ts"]["upstream"] == ups[0].url
        received = [s for f in text_string_to_metric_families(http_get(rs.url("/metrics"))[2].decode())
                    for s in f.samples if s.name == "streaming_packets_received_total"]
        assert {s.labels["url"] for s in received} == {up.url for up in ups}  # no worker-to-worker hop

        # One worker reports reaching fullconnections, and one sends heartbeats.
        sink.wait_requests(1, "/limit_hit")
        beats = sink.wait_requests(4, "/heartbeat")
        assert beats[3].time - beats[0].time > BEAT * 2

        # /b.ts's upstream goes for good: every worker's viewers of it are
        # closed after one grace period, the followers' with the owner's.
        on_b = [c for c in viewers if c.url.endswith("/b.ts")]
        ups[1].stop()
        gone = time.monotonic()
        for client in on_b:
            client.wait_closed(timeout=GRACE * 3)
        assert time.monotonic() - gone < GRACE * 1.6  # not twice GRACE
        on_a = [c for c in viewers if c.url.endswith("/a.ts")]
        assert not any(c.closed.is_set() for c in on_a)
        sink.wait_requests(1, "/limit_miss")
        assert [len(sink.received(f"/{e}")) for e in ("limit_hit", "limit_miss")] == [1, 1]

        # The owner of /a.ts dies: its viewers go with it, another worker takes
        # the stream over, and the other workers' viewers play on.
        owner = owner_of(rs, "/a.ts")
        killed = connected_pids(rs, "/a.ts").count(owner)
        mark = rs.mark()
        os.kill(owner, signal.SIGKILL)
        successor = rs.wait_log(lambda e: e.get("event") == "stream owned" and e["stream"] == "/a.ts",
                                timeout=10, since=mark)["pid"]
        assert successor != owner
        poll(lambda: sum(c.closed.is_set() for c in on_a), lambda n: n == killed, 5,
             "the dead worker's viewers to be cut off")
        survivors = [c for c in on_a if not c.closed.is_set()]
        assert len(survivors) >= 2
        for client in survivors:
            client.wait_bytes(len(client.data) + ENOUGH, timeout=10)
            assert not client.closed.is_set()
        assert len(ups[0].connections) == 2
        ups[0].connections[0].wait_closed()  # the dead owner's connection, not a second one

        # The dead worker's slots are free again.
        poll(lambda: json.loads(http_get(rs.url("/health"))[2])["viewer"],
             lambda n: n == len(survivors), 5, "the viewer count without the dead worker's")
        with HttpViewer(rs.url("/a.ts")) as late:
            assert late.wait_status() == 200
            late.wait_bytes(ENOUGH, timeout=10)
    finally:
        for client in viewers:
            client.close()
    idle = raw_get(("127.0.0.1", rs.port), "/health")
    read_response(idle)  # and then idle, kept alive
    rs.proc.send_signal(signal.SIGTERM)
    idle.settimeout(2.5)  # --graceful-timeout is 3 s
    assert idle.recv(1) == b""  # its worker hung it up at once
    idle.close()
    assert rs.wait_exit() == 0


def test_on_demand_under_gunicorn_workers_pulls_once_while_any_worker_has_viewers(
        upstream, restreamer, tmp_path):
    up, always = upstream(rate=RATE), upstream(rate=RATE)
    idle = 2
    config = {"ondemand": True, "idletimeout": idle, "graceperiod": GRACE, "reconnect": 0.5,
              "resources": [{"type": "stream", "serve": "/a.ts", "remote": up.url},
                            # Pulled from the start: its roles tell that every worker runs.
                            {"type": "stream", "serve": "/b.ts", "remote": always.url,
                             "ondemand": False},
                            {"type": "api", "api": "statistics", "serve": "/statistics"},
                            {"type": "api", "api": "prometheus", "serve": "/metrics"}]}
    rs = launch_gunicorn(restreamer, config, tmp_path / "run")
    poll(lambda: roles(rs, "/b.ts"), lambda r: len(r) == WORKERS, 20, "every worker's role for /b.ts")

    def state():
        try:
            return json.loads(http_get(rs.url("/statistics"))[2])["streams"]["/a.ts"]["state"]
        except OSError:  # no worker listening yet
            return None

    assert poll(state, lambda s: s is not None, 20, "a worker answering") == "idle"
    assert up.connections == []
    viewers = []
    try:
        # Viewers until two workers serve some (the kernel picks the worker).
        while len(viewers) < 20 and len(set(connected_pids(rs, "/a.ts"))) < 2:
            viewers.append(HttpViewer(rs.url("/a.ts")))
            assert viewers[-1].wait_status(timeout=10) == 200
            poll(lambda: len(connected_pids(rs, "/a.ts")), lambda n: n == len(viewers), 5,
                 "the viewer's connected line")
        assert len(set(connected_pids(rs, "/a.ts"))) >= 2
        for client in viewers:
            client.wait_bytes(ENOUGH, timeout=10)
        assert len(up.connections) == 1  # one pull for every worker's viewers
        # A costly statistics answer may be reused for up to a second (ops/snapshot.py).
        poll(state, lambda s: s == "online", 5, "the stream online in the statistics")
        # One state per stream in Prometheus, whichever worker answers, though
        # the workers' own differ (the owner online, a worker without viewers idle).
        for _ in range(6):
            states = prometheus_states(rs)
            assert sorted(states) == ["/a.ts", "/b.ts"]
            assert all(len(at_1) == 1 for at_1 in states.values()), states
    finally:
        for client in viewers:
            client.close()
    left = time.monotonic()
    # The followers let go at once; the owner, its last relay gone, after idletimeout.
    up.connections[0].wait_closed(timeout=10)
    assert idle - 0.5 < time.monotonic() - left < idle + 1.5
    assert poll(state, lambda s: s == "idle", 5, "the stream idle on every worker") == "idle"
    poll(lambda: prometheus_states(rs)["/a.ts"], lambda s: s == ["idle"], 5, "one state, idle, in Prometheus")
    assert len(up.connections) == 1
    assert rs.stop(signal.SIGTERM) == 0
