"""What a reload changes, decided in-process (the end-to-end tier, tests/test_reload.py,
shows viewers through it): resources matched by serve path, stream settings
compared, nothing changed by a file that fails."""

from restreamer.config import from_dict
from restreamer.core.relay import Relay
from restreamer.core.reload import apply, make_plan
from restreamer.assembly import Service


def stream(serve, remote="tcp://127.0.0.1:9", **extra):
    return {"type": "stream", "serve": serve, "remote": remote, **extra}


def relay_of(*resources, **top):
    return Relay(from_dict({"resources": list(resources), **top}))


def test_resources_are_matched_by_serve_path_whatever_their_order():
    relay = relay_of(stream("/a.ts"), stream("/b.ts"), stream("/c.ts"))
    plan = make_plan(relay, from_dict({"resources": [
        stream("/d.ts"), stream("/c.ts", "tcp://127.0.0.1:10"), stream("/a.ts")]}))
    assert (plan.added, plan.removed, plan.changed, plan.unchanged) == (
        ["/d.ts"], ["/b.ts"], ["/c.ts"], ["/a.ts"])
    assert list(plan.new_streams) == ["/d.ts"] and plan.gone_streams == ["/b.ts"]


def test_a_stream_that_becomes_a_static_is_changed_and_its_stream_goes(tmp_path):
    (tmp_path / "x.html").write_text("x")
    relay = relay_of(stream("/a"))
    plan = make_plan(relay, from_dict({"resources": [
        {"type": "static", "serve": "/a", "remote": f"file://{tmp_path}/x.html"}]}))
    assert plan.changed == ["/a"] and plan.gone_streams == ["/a"] and not plan.new_streams


def test_a_global_stream_setting_changes_every_stream_but_keeps_their_connections():
    relay = relay_of(stream("/a.ts"), stream("/b.ts"), reconnect=10)
    pulls = {serve: s.pull for serve, s in relay.streams.items()}
    plan = make_plan(relay, from_dict({"reconnect": 3, "resources": [stream("/a.ts"), stream("/b.ts")]}))
    assert plan.changed == ["/a.ts", "/b.ts"] and plan.settings == ["reconnect"]
    apply(relay, plan)
    assert {serve: s.pull for serve, s in relay.streams.items()} == pulls
    assert {s.pull.reconnect for s in relay.streams.values()} == {3}


def test_new_remotes_replace_the_pull_and_keep_the_hub():
    relay = relay_of(stream("/a.ts"))
    before = relay.streams["/a.ts"]
    hub, pull = before.hub, before.pull
    apply(relay, make_plan(relay, from_dict({"resources": [stream("/a.ts", "tcp://127.0.0.1:10")]})))
    assert relay.streams["/a.ts"] is before and before.hub is hub
    assert before.pull is not pull and before.pull.remotes == ["tcp://127.0.0.1:10"]


def test_a_preamble_whose_content_changed_changes_the_stream(tmp_path):
    preamble = tmp_path / "intro.ts"
    preamble.write_bytes(b"\x47" + bytes(187))
    relay = relay_of(stream("/a.ts", preamble=str(preamble)))
    preamble.write_bytes(b"\x47" + bytes(187) * 2)
    plan = make_plan(relay, from_dict({"resources": [stream("/a.ts", preamble=str(preamble))]}))
    assert plan.changed == ["/a.ts"]
    apply(relay, plan)
    assert relay.streams["/a.ts"].preamble == preamble.read_bytes()


def test_an_unreadable_preamble_is_a_warning_and_the_stream_goes_without_it(tmp_path):
    relay = relay_of(stream("/a.ts"))
    config = from_dict({"resources": [
        stream("/new.ts"), stream("/a.ts", preamble=str(tmp_path / "missing.ts"))]})
    assert config.warnings == (f"<dict>: resources[1].preamble: cannot read {tmp_path / 'missing.ts'}: "
                               "No such file or directory; the stream is served without it",)
    plan = make_plan(relay, config)
    assert (plan.added, plan.changed) == (["/new.ts"], ["/a.ts"])


def test_an_on_demand_override_is_a_change_of_that_stream_only():
    relay = relay_of(stream("/a.ts"), stream("/b.ts"))
    plan = make_plan(relay, from_dict({"resources": [stream("/a.ts", ondemand=True), stream("/b.ts")]}))
    assert (plan.changed, plan.unchanged) == (["/a.ts"], ["/b.ts"])
    apply(relay, plan)
    assert relay.streams["/a.ts"].state == "idle" and relay.streams["/b.ts"].state == "offline"


def test_limits_and_statistics_apply_to_the_running_relay():
    relay = relay_of(stream("/a.ts"), maxconnections=5)
    service = Service(relay)
    apply(relay, make_plan(relay, from_dict({
        "maxconnections": 1, "fullconnections": 1, "limitstatus": 503, "nostats": True,
        "resources": [stream("/a.ts")]})))
    assert (relay.limits.max_viewers, service.statistics.limits.full_viewers) == (1, 1)
    assert relay.config.limitstatus == 503 and not service.statistics.collecting

