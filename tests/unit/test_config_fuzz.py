"""Fuzzing the config loader: any JSON or YAML document gives either a valid
Config or a ConfigError whose message is one line naming the source (and,
for a bad value, its key path); never any other exception."""

import json

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from restreamer.config import (API_KINDS, AUTH_TYPES, NOTIFICATION_EVENTS, RESOURCE_TYPES, Config,
                               ConfigError, from_dict, parse)

SOURCE = "fuzz.json"

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
#: Any JSON value.
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=20)

# Near-valid configs reach the deeper checks: real keys (any case), plausible and odd values.
urls = st.one_of(st.sampled_from(["loop:sample", "http://h/x.ts", "udp://239.0.0.1:5000", "tcp://h",
                                  "fork:///bin/cat?a+b", "file:///tmp/x.ts", "unix:", "http://[::1",
                                  "https://h:99999/", "rtsp://h/", "/s.ts", "/x", ""]), st.text(max_size=15))
values = st.one_of(scalars, urls, st.lists(urls, max_size=3), documents)


def keyed(keys, extra):
    return st.dictionaries(st.sampled_from(keys).map(lambda k: k.upper() if len(k) % 3 == 0 else k)
                           | st.text(max_size=6), extra, max_size=len(keys))


auths = keyed(["type", "realm", "user", "users"],
              st.one_of(st.sampled_from(AUTH_TYPES + ("digest",)), st.lists(st.sampled_from(["a", "b"])),
                        values))
resources = keyed(["type", "api", "serve", "remote", "remotes", "cache", "mru", "clientinterface",
                   "preamble", "authentication"],
                  st.one_of(st.sampled_from(RESOURCE_TYPES + API_KINDS + ("/s.ts", "/x")), auths, values))
notifications = keyed(["event", "type", "url", "authentication"],
                      st.one_of(st.sampled_from(NOTIFICATION_EVENTS + ("url",)), auths, values))
configs = keyed(["listen", "timeout", "reconnect", "readtimeout", "inputbuffer", "outputbuffer",
                 "maxconnections", "fullconnections", "nostats", "heartbeatinterval", "log", "profile",
                 "graceperiod", "droptimeout", "limitstatus", "userlist", "resources", "notifications"],
                st.one_of(st.lists(resources, max_size=3), st.lists(notifications, max_size=2),
                          st.dictionaries(st.sampled_from(["a", "b"]),
                                          st.one_of(keyed(["password"], values), values)),
                          st.sampled_from([":8000", "[::1]:80", "h:http", "h:nosuch", "::1:80", "h:70000"]),
                          values))

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def check(load, source=SOURCE):
    """Run `load()`; a ConfigError must be one line per problem, each starting with the source."""
    try:
        config = load()
    except ConfigError as e:
        lines = str(e).split("\n")
        assert len(lines) == len(getattr(e, "errors", [e])), str(e)
        for message in lines:
            assert "\r" not in message, message
            assert message.startswith(source + ": ") and len(message) > len(source) + 2, message
        return lines[0]
    assert isinstance(config, Config)
    return config


@FUZZ
@given(configs)
def test_near_valid_configs_load_or_fail_in_one_line(data):
    result = check(lambda: from_dict(data, SOURCE))
    if isinstance(result, str) and "line " not in result:
        # A bad value is named by its key path ("resources[0].remote: ...") or as the top level.
        where = result[len(SOURCE) + 2:].split(": ", 1)[0]
        assert where, result


@FUZZ
@given(documents)
def test_any_json_value_loads_or_fails_in_one_line(data):
    check(lambda: parse(json.dumps(data, allow_nan=True), SOURCE))


@FUZZ
@given(configs)
def test_near_valid_configs_as_yaml_load_or_fail_in_one_line(data):
    check(lambda: parse(yaml.safe_dump(data), "fuzz.yaml"), "fuzz.yaml")


@FUZZ
@given(st.text(max_size=200))
def test_any_text_loads_or_fails_in_one_line(text):
    check(lambda: parse(text, SOURCE))
    check(lambda: parse(text, "fuzz.yaml"), "fuzz.yaml")


@FUZZ
@given(st.text(alphabet="{}[]:,-&*!|>'\"#\n %@`?\t0aZ", max_size=80))
def test_yaml_syntax_soup_loads_or_fails_in_one_line(text):
    check(lambda: parse(text, "fuzz.yml"), "fuzz.yml")
