"""The udpxy gateway in-process: the groups a path names (config/gateway.py),
what ``allow`` lets through, the config's checks, and each group's life as an
on-demand stream of the relay (core/gateway.py), driven with an injected
opener and clock.  tests/test_udpxy.py shows the same over real multicast."""

import base64
import contextlib

import gevent
import pytest

from restreamer.assembly import Service
from restreamer.config import ConfigError, from_dict, host_problems
from restreamer.config.gateway import MULTICAST, networks, parse_group, refusal
from restreamer.core.relay import Refusal, Relay
from restreamer.core.reload import apply, make_plan
from restreamer.core.view import StreamViews
from restreamer.web.app import create_app
from tests.unit.clock import FakeClock
from tests.unit.conftest import Live, wait_log, wait_until

IDLE = 0.5


# -- the groups a path names ---------------------------------------------------------


@pytest.mark.parametrize("rest, name, remote", [
    ("udp/239.1.2.3:1234", "239.1.2.3:1234", "udp://239.1.2.3:1234"),
    ("udp/@239.1.2.3:1234", "239.1.2.3:1234", "udp://239.1.2.3:1234"),  # udpxy's form: the same group
    ("rtp/239.1.2.3:5000", "239.1.2.3:5000", "rtp://239.1.2.3:5000"),
    ("rtp/10.0.0.1@232.1.1.1:5000", "10.0.0.1@232.1.1.1:5000", "rtp://10.0.0.1@232.1.1.1:5000"),
    ("udp/[ff15::1]:1234", "[ff15::1]:1234", "udp://[ff15::1]:1234"),
    ("udp/[FF15:0::1]:01234", "[ff15::1]:1234", "udp://[ff15::1]:1234"),  # one spelling
])
def test_a_group_has_one_spelling_and_its_source_url(rest, name, remote):
    group = parse_group(rest)
    assert (group.name, group.remote, group.path) == (name, remote, f"{rest[:3]}/{name}")


@pytest.mark.parametrize("rest, reason", [
    ("udp/239.1.2.3", "'239.1.2.3' is not GROUP:PORT, as in /udp/239.0.0.1:1234"),
    ("udp/", "'' is not GROUP:PORT"),
    ("udp/239.1.2.3:0", "port '0' is not a number from 1 to 65535"),
    ("udp/239.1.2.3:65536", "port '65536' is not a number from 1 to 65535"),
    ("udp/239.1.2.3:12a", "port '12a' is not"),
    ("udp/239.1.2.3:\u0661\u0662", "is not a number"),  # Arabic-Indic digits are digits to Python
    ("udp/239.1.2.3:1234/more", "port '1234/more' is not"),
    ("udp/iptv.example:1234", "group 'iptv.example' is not an IP address (names are not looked up)"),
    ("udp/239.1.2:1234", "group '239.1.2' is not an IP address"),
    ("udp/ff15::1:1234", "an IPv6 address goes in brackets"),
    ("udp/[239.1.2.3]:1234", "an IPv6 address goes in brackets, an IPv4 one not"),
    ("udp/[ff02::1%lo]:1234", "give the interface as the gateway's clientinterface"),
    ("rtp/[fe80::1]@[ff15::1]:5000", "a source-specific group is IPv4 only"),
    ("rtp/10.0.0@232.1.1.1:5000", "source '10.0.0' is not an IP address"),
    ("tcp/239.1.2.3:1234", "expected /udp/GROUP:PORT or /rtp/GROUP:PORT"),
    ("udp/" + "x" * 5000, "'" + "x" * 60 + "'... is not GROUP:PORT"),  # a long path is not echoed whole
    ("udp/\x1b[2J:1", "group '\\x1b[2J' is not an IP address"),  # nor a control character raw
])
def test_a_malformed_group_is_one_line_saying_what(rest, reason):
    with pytest.raises(ValueError) as caught:
        parse_group(rest)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_allow_refuses_other_groups_with_403_and_unicast_with_400_unless_listed():
    allow = networks(["239.0.0.0/8", "10.1.2.3"])
    assert refusal(parse_group("udp/239.9.9.9:1"), allow) is None
    assert refusal(parse_group("udp/10.1.2.3:1"), allow) is None  # listed: bound locally
    assert refusal(parse_group("udp/238.1.1.1:1"), allow) == (
        403, "group 238.1.1.1 is not in the gateway's allow list")
    assert refusal(parse_group("udp/10.1.2.4:1"), allow) == (400, "10.1.2.4 is not a multicast group")
    everything = networks(MULTICAST)  # the default: every multicast group, nothing else
    assert refusal(parse_group("udp/[ff15::1]:1"), everything) is None
    assert refusal(parse_group("udp/224.0.0.1:1"), everything) is None
    assert refusal(parse_group("udp/0.0.0.0:1"), everything)[0] == 400


# -- the config ------------------------------------------------------------------------


def gateway(**extra):
    return {"type": "udpxy", "serve": "/", **extra}


def error(data):
    with pytest.raises(ConfigError) as caught:
        from_dict(data, "c.json")
    return str(caught.value)


def test_the_gateway_keys_and_their_defaults():
    config = from_dict({"maxgroups": 3, "resources": [gateway(clientinterface="eth1", idletimeout=2)]})
    (resource,) = config.resources
    assert (config.maxgroups, resource.allow, resource.clientinterface, resource.mru) == (
        3, MULTICAST, "eth1", 1500)
    assert (resource.idletimeout, resource.faststart, resource.group_prefix) == (2, None, "/")
    assert from_dict({"resources": [gateway(serve="/iptv")]}).resources[0].group_prefix == "/iptv/"
    assert from_dict({}).maxgroups == 0


def test_gateway_config_problems_are_one_line_each_saying_where():
    assert error({"resources": [gateway(allow=["239.0.0.0/8", "239.0.0.0/33"])]}) == (
        "c.json: resources[0].allow[1]: expected an address or a network such as 239.0.0.0/8, "
        "got '239.0.0.0/33'")
    assert error({"resources": [gateway(allow="239.0.0.0/8")]}) == (
        "c.json: resources[0].allow: expected a list, got a string")
    assert error({"resources": [gateway(type="udpxi")]}) == (
        "c.json: resources[0].type: must be one of stream, static, api, udpxy, got 'udpxi'; "
        "did you mean 'udpxy'?")
    # A stream where the gateway serves its groups would never be reached.
    assert error({"resources": [gateway(serve="/tv"), {"type": "stream", "serve": "/tv/rtp/x.ts",
                                                        "remote": "tcp://a:1"}]}) == (
        "c.json: resources[1].serve: '/tv/rtp/x.ts' is where the udpxy gateway resources[0] serves its groups")
    assert error({"maxgroups": -1}) == "c.json: maxgroups: must be a finite number >= 0, got -1"
    assert error({"resources": [gateway(serve="/iptv"), gateway(serve="/iptv/")]}) == (
        "c.json: resources[1].serve: '/iptv/': the udpxy gateway resources[0] serves there")
    # Its own path is free: the dashboard at / and a gateway below it.
    assert from_dict({"resources": [gateway(), {"type": "api", "api": "dashboard", "serve": "/"}]})


def test_unicast_in_allow_is_noted_and_a_misspelt_key_warned_about():
    config = from_dict({"resources": [gateway(allow=["239.0.0.0/8", "192.168.1.0/24"], alow=[])]}, "c.json")
    assert config.notes == ("c.json: resources[0].allow[1]: 192.168.1.0/24 is not multicast: a viewer "
                            "asking for an address in it makes the gateway bind that local address and port",)
    assert config.warnings == ("c.json: resources[0].alow: unknown key ignored; did you mean 'allow'?",)


def test_check_names_a_missing_client_interface():
    config = from_dict({"resources": [gateway(clientinterface="nosuch0")]}, "c.json")
    assert [str(p) for p in host_problems(config)] == [
        "c.json: resources[0].clientinterface: no network interface 'nosuch0' on this host"]


# -- groups as on-demand streams ------------------------------------------------------


@contextlib.contextmanager
def running_relay(**config):
    """A started relay of a gateway (or of ``resources``) on a FakeClock, and the
    connections its groups open; stopped at the end of the block."""
    connections = []

    def opener(url, settings):
        connections.append(Live(url))
        connections[-1].interface = settings.clientinterface
        return connections[-1]
    relay = Relay(from_dict({"idletimeout": IDLE, "graceperiod": 2, **config, "resources": config.get(
        "resources", [gateway(allow=["239.0.0.0/8"], clientinterface="eth1")])}), opener, FakeClock())
    relay.start()
    try:
        yield relay, connections
    finally:
        relay.stop()


def watch(relay, rest, resource_index=0):
    """A viewer of the group ``rest`` names, admitted as the web layer does; or the refusal."""
    opened = relay.gateway.open(relay.config.resources[resource_index], rest)
    if isinstance(opened, Refusal):
        return opened
    try:
        return opened, relay.admit(opened, "10.0.0.1")
    finally:
        relay.gateway.settle(opened)


def test_both_spellings_share_one_on_demand_stream_with_the_gateway_keys():
    with running_relay() as (relay, connections):
        stream, first = watch(relay, "udp/@239.1.1.1:1234")
        same, second = watch(relay, "udp/239.1.1.1:1234")
        assert same is stream and relay.streams["/udp/239.1.1.1:1234"] is stream
        assert not isinstance(first, Refusal) and not isinstance(second, Refusal)
        assert [(c.url, c.interface) for c in connections] == [("udp://239.1.1.1:1234", "eth1")]
        assert (stream.settings.ondemand, stream.settings.idletimeout, stream.state) == (True, IDLE, "online")
        rtp, _ = watch(relay, "rtp/239.1.1.1:1234")  # another scheme: another stream
        assert rtp is not stream and connections[-1].url == "rtp://239.1.1.1:1234"


def test_refusals_open_nothing():
    with running_relay() as (relay, connections):
        assert watch(relay, "udp/238.1.1.1:1") == Refusal(
            "group 238.1.1.1 is not in the gateway's allow list", 403)
        assert watch(relay, "udp/239.1.1.1").status == 400
        assert watch(relay, "udp/127.0.0.1:5000") == Refusal("127.0.0.1 is not a multicast group", 400)
        assert relay.streams == {} and relay.gateway.groups == {} and connections == []


def test_a_group_is_left_after_idletimeout_and_then_forgotten(logs):
    with running_relay() as (relay, connections):
        stream, viewer = watch(relay, "udp/239.1.1.1:1234")
        relay.release(stream, viewer)
        relay.gateway.sweep()
        assert "/udp/239.1.1.1:1234" in relay.streams  # kept for idletimeout
        relay.clock.advance(IDLE)
        assert connections[0].closed.wait(1)
        wait_log(logs, "stream idle", stream="/udp/239.1.1.1:1234")
        wait_until(lambda: stream.state == "idle", what="the stream idle")
        relay.gateway.sweep()
        assert relay.streams == {} and relay.gateway.groups == {}
        assert wait_log(logs, "group closed", stream="/udp/239.1.1.1:1234")["reason"] == "idle"
        # Asked for again, it is a new stream, joined anew.
        again, _ = watch(relay, "udp/239.1.1.1:1234")
        assert again is not stream and len(connections) == 2


def test_maxgroups_refuses_another_group_with_503_until_one_is_forgotten():
    with running_relay(maxgroups=1) as (relay, connections):
        stream, viewer = watch(relay, "udp/239.1.1.1:1234")
        assert watch(relay, "udp/239.2.2.2:1234") == Refusal(
            "1 groups are open, as many as maxgroups allows", 503)
        same, second = watch(relay, "udp/@239.1.1.1:1234")
        assert same is stream  # an open one is not another
        relay.release(stream, viewer)
        relay.release(stream, second)
        relay.clock.advance(IDLE)
        wait_until(lambda: stream.state == "idle", what="the stream idle")
        relay.gateway.sweep()
        other, _ = watch(relay, "udp/239.2.2.2:1234")
        assert other.serve == "/udp/239.2.2.2:1234" and list(relay.gateway.groups) == [other.serve]


def test_a_group_whose_first_viewer_is_refused_or_only_asked_about_is_not_kept():
    with running_relay(maxconnections=1) as (relay, connections):
        stream, viewer = watch(relay, "udp/239.1.1.1:1234")
        refused = watch(relay, "udp/239.2.2.2:1234")[1]
        assert refused == Refusal("connection limit reached", 404)
        assert list(relay.streams) == [stream.serve] and len(connections) == 1
        # A request that finds a group but admits nobody (HEAD) leaves nothing behind.
        relay.release(stream, viewer)
        asked = relay.gateway.open(relay.config.resources[0], "udp/239.3.3.3:1234")
        assert relay.refusal(asked) is None
        relay.gateway.settle(asked)
        assert "/udp/239.3.3.3:1234" not in relay.streams


def test_a_group_being_joined_is_not_forgotten_meanwhile():
    with running_relay() as (relay, connections):
        opened = relay.gateway.open(relay.config.resources[0], "udp/239.1.1.1:1234")
        relay.gateway.sweep()  # idle, no viewer yet: but a request holds it
        assert relay.streams == {opened.serve: opened}
        viewer = relay.admit(opened, "10.0.0.1")
        relay.gateway.settle(opened)
        assert not isinstance(viewer, Refusal) and relay.gateway.groups[opened.serve].stream is opened


def test_a_reload_closes_groups_no_longer_allowed_and_reconfigures_the_others(logs):
    with running_relay(resources=[gateway(allow=["239.0.0.0/8"]), gateway(serve="/b/")]) as (relay, connections):
        kept, kept_viewer = watch(relay, "udp/239.1.1.1:1234")
        narrowed, narrowed_viewer = watch(relay, "udp/239.2.2.2:1234")
        gone, _ = watch(relay, "udp/239.3.3.3:1234", resource_index=1)
        assert gone.serve == "/b/udp/239.3.3.3:1234"
        relay.configure(from_dict({"idletimeout": 7, "resources": [gateway(allow=["239.1.0.0/16"])]}))
        assert wait_log(logs, "group closed", stream=narrowed.serve)["reason"] == (
            "group 239.2.2.2 is not in the gateway's allow list")
        assert wait_log(logs, "group closed", stream=gone.serve)["reason"] == (
            "its gateway /b/ is no longer configured")
        wait_until(lambda: narrowed_viewer.closed, what="the narrowed group's viewer closed")
        assert list(relay.streams) == [kept.serve]
        wait_until(lambda: kept.settings.idletimeout == 7, what="the kept group's new idletimeout")
        assert not kept_viewer.closed and kept.state == "online"
        gevent.idle()
        assert len(connections) == 3 and not connections[0].closed.is_set()  # not reconnected


class Silent(Live):
    """A group nobody sends to: joined, and nothing arrives."""

    def __init__(self, url):
        super().__init__(url)
        self.reads = []


def test_a_group_nobody_sends_to_refuses_its_viewer_after_graceperiod_then_is_left(logs):
    connections = []

    def opener(url, settings):
        connections.append(Silent(url))
        return connections[-1]
    relay = Relay(from_dict({"idletimeout": IDLE, "graceperiod": 0.05, "resources": [gateway()]}), opener,
                  FakeClock())
    relay.start()
    try:
        stream, refused = watch(relay, "udp/239.1.1.1:1234")
        assert refused == Refusal("stream offline") and stream.serve in relay.streams
        relay.clock.advance(IDLE)
        assert connections[0].closed.wait(1)
        wait_until(lambda: stream.state == "idle", what="the stream idle")
        relay.gateway.sweep()
        assert relay.streams == {}
    finally:
        relay.stop()


def test_a_reading_of_the_streams_outlives_groups_opened_and_forgotten_meanwhile():
    with running_relay() as (relay, connections):
        stream, viewer = watch(relay, "udp/239.1.1.1:1234")
        views = StreamViews(relay.streams)
        paths, pairs, figures = iter(views), iter(views.items()), iter(views.values())
        assert next(paths) == next(pairs)[0] == stream.serve and next(figures).path == stream.serve
        watch(relay, "udp/239.2.2.2:1234")  # statistics and metrics yield between slices: a group opens
        assert (list(paths), list(pairs), list(figures)) == ([], [], [])
        assert sorted(views) == ["/udp/239.1.1.1:1234", "/udp/239.2.2.2:1234"]


def test_a_reload_that_serves_a_stream_where_a_group_was_replaces_the_group(logs):
    with running_relay() as (relay, connections):
        group, viewer = watch(relay, "udp/239.1.1.1:1234")
        config = from_dict({"resources": [{"type": "stream", "serve": group.serve, "remote": "tcp://a:1"}]})
        apply(relay, make_plan(relay, config))
        assert wait_log(logs, "group closed", stream=group.serve)["reason"] == (
            "its gateway / is no longer configured")
        stream = relay.streams[group.serve]
        assert stream is not group and stream.resource.remotes == ("tcp://a:1",)
        wait_until(lambda: viewer.closed, what="the group's viewer closed")


def test_the_web_layer_guards_routes_and_refuses_groups_in_one_line(logs):
    """Through the blueprint (Flask's test client, no socket): authentication
    first, then the group's stream or its refusal."""
    connections = []

    def opener(url, settings):
        connections.append(Live(url))
        return connections[-1]
    config = from_dict({"userlist": {"tv": {"password": "pw"}}, "idletimeout": IDLE, "resources": [
        gateway(serve="/iptv", authentication={"type": "basic", "realm": "TV", "users": ["tv"]})]})
    service = Service(Relay(config, opener, FakeClock()))
    client = create_app(service).test_client()
    credentials = {"Authorization": "Basic " + base64.b64encode(b"tv:pw").decode()}
    try:
        assert client.get("/iptv/udp/239.1.1.1:1234").status_code == 401
        assert connections == [] and service.relay.streams == {}
        refused = client.get("/iptv/udp/239.1.1.1", headers=credentials)
        assert (refused.status_code, refused.text) == (400, "'239.1.1.1' is not GROUP:PORT, as in "
                                                            "/udp/239.0.0.1:1234\n")
        assert wait_log(logs, "viewer refused", path="/iptv/udp/239.1.1.1")["status"] == 400
        assert client.get("/iptv/status", headers=credentials).status_code == 404
        assert client.get("/udp/239.1.1.1:1234", headers=credentials).status_code == 404
        assert client.post("/iptv/udp/239.1.1.1:1234", headers=credentials).status_code == 405
        response = client.get("/iptv/rtp/@239.1.1.1:1234", headers=credentials, buffered=False)
        assert (response.status_code, response.content_type) == (200, "video/mpeg")
        assert list(service.relay.streams) == ["/iptv/rtp/239.1.1.1:1234"]
        assert [c.url for c in connections] == ["rtp://239.1.1.1:1234"]
        response.close()
        wait_until(lambda: not service.relay.streams["/iptv/rtp/239.1.1.1:1234"].hub.viewers,
                   what="the viewer released")
    finally:
        service.stop()
