"""restreamer.config: the original's schema, defaults, JSON and YAML, key
matching, and one-line errors that name the file, key path and problem."""

import json
import re

import pytest
import yaml

from restreamer.config import Config, ConfigError, from_dict, load, parse
from restreamer.sources.base import resolve_path

STREAM = {"type": "stream", "serve": "/s.ts", "remote": "http://127.0.0.1:8000/in.ts"}


def config_with(**top):
    return {"resources": [STREAM], **top}


def test_defaults_are_the_originals():
    config = from_dict(config_with())
    assert (config.listen, config.timeout, config.reconnect, config.readtimeout) == ("localhost:http", 0, 10, 0)
    assert (config.inputbuffer, config.outputbuffer, config.maxconnections) == (1000, 400, 0)
    assert (config.heartbeatinterval, config.limitstatus, config.log) == (60, 404, "")
    (stream,) = config.streams
    assert (stream.serve, stream.remotes, stream.mru) == ("/s.ts", ("http://127.0.0.1:8000/in.ts",), 1500)
    assert config.warnings == ()


def test_times_may_be_fractional():
    config = from_dict(config_with(reconnect=0.2, readtimeout=1.5, graceperiod=0.25, timeout=3))
    assert (config.reconnect, config.readtimeout, config.graceperiod, config.timeout) == (0.2, 1.5, 0.25, 3)


def test_json_and_yaml_files_load_the_same(tmp_path):
    data = config_with(listen="127.0.0.1:8001", reconnect=0.5, maxconnections=3)
    (tmp_path / "c.json").write_text(json.dumps(data))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "c.conf").write_text(json.dumps(data))  # no telling extension: sniffed
    loaded = [load(str(tmp_path / name)) for name in ("c.json", "c.yaml", "c.conf")]
    assert {(c.listen, c.reconnect, c.maxconnections, c.streams) for c in loaded} == {
        ("127.0.0.1:8001", 0.5, 3, loaded[0].streams)}
    assert loaded[0].source == str(tmp_path / "c.json")


def test_keys_match_case_insensitively_as_in_go():
    config = from_dict({"Listen": "127.0.0.1:9", "RECONNECT": 2, "Resources": [
        {"Type": "stream", "Serve": "/a.ts", "Remote": "tcp://127.0.0.1:5000", "Remotes": ["udp://127.0.0.1:5001"]},
    ]})
    assert (config.listen, config.reconnect, config.warnings) == ("127.0.0.1:9", 2, ())
    assert config.streams[0].remotes == ("tcp://127.0.0.1:5000", "udp://127.0.0.1:5001")


def test_values_and_user_names_keep_their_case():
    config = from_dict({
        "userlist": {"Alice": {"Password": "S3cret"}},
        "resources": [{**STREAM, "serve": "/Mixed.ts",
                       "authentication": {"type": "basic", "users": ["Alice"]}}],
    })
    assert config.userlist == {"Alice": "S3cret"}
    assert config.streams[0].serve == "/Mixed.ts"
    with pytest.raises(ConfigError, match=r"resources\[0\]\.authentication\.users\[0\]: user 'alice' is not"):
        from_dict({"userlist": {"Alice": {"password": "x"}},
                   "resources": [{**STREAM, "authentication": {"type": "basic", "users": ["alice"]}}]})


def test_comment_keys_are_ignored():
    text = '{"": "a comment", "resources": [{"": "another", ' + json.dumps(STREAM)[1:] + '], "": "last"}'
    config = parse(text, "c.json")
    assert config.warnings == () and len(config.streams) == 1


def test_unknown_key_warns_with_the_nearest_valid_key():
    config = from_dict({"reconect": 1, "resources": [{**STREAM, "remotes_": ["tcp://127.0.0.1:1"]}]},
                       "c.json")
    assert config.warnings == (
        "c.json: reconect: unknown key ignored; did you mean 'reconnect'?",
        "c.json: resources[0].remotes_: unknown key ignored; did you mean 'remotes'?",
    )
    assert config.reconnect == 10  # the misspelt key had no effect


def test_remote_and_remotes_merge_remote_first_without_duplicates():
    config = from_dict({"resources": [{**STREAM, "remote": "tcp://h:1",
                                       "remotes": ["udp://h:2", "tcp://h:1", "", "file:///x.ts"]}]})
    assert config.streams[0].remotes == ("tcp://h:1", "udp://h:2", "file:///x.ts")


def test_relative_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "sub" / "c.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(config_with()))
    assert resolve_path(load(str(path)).base_dir, "pre.ts") == str(tmp_path / "sub" / "pre.ts")


@pytest.mark.parametrize("data, where, problem", [
    ({"resources": [{"type": "stream", "serve": "/s.ts"}]}, "resources[0].remote", "a stream needs at least one remote"),
    ({"resources": [{**STREAM, "remote": "rtmp://h/live"}]}, "resources[0].remote", "unsupported URL scheme"),
    ({"resources": [{**STREAM, "remotes": ["tcp://h"]}]}, "resources[0].remotes[0]", "has no port"),
    ({"resources": [{**STREAM, "remote": "http://"}]}, "resources[0].remote", "has no host"),
    ({"resources": [{**STREAM, "serve": "s.ts"}]}, "resources[0].serve", "must be a URL path"),
    ({"resources": [{**STREAM, "serve": "/s\r\n.ts"}]}, "resources[0].serve", "control characters"),
    ({"resources": [{**STREAM, "serve": "/s\x00.ts"}]}, "resources[0].serve", "control characters"),
    ({"resources": [{**STREAM, "serve": "/s.ts?x=1"}]}, "resources[0].serve", "must not contain '?'"),
    ({"resources": [{**STREAM, "serve": "/a/../s.ts"}]}, "resources[0].serve", "'..' segments"),
    ({"resources": [{**STREAM, "serve": "/./s.ts"}]}, "resources[0].serve", "'..' segments"),
    ({"resources": [STREAM, STREAM]}, "resources[1].serve", "already served by resources[0]"),
    ({"resources": [{**STREAM, "type": "video"}]}, "resources[0].type", "must be one of stream, static, api"),
    (config_with(reconnect="10"), "reconnect", "expected a number of seconds, got a string"),
    (config_with(reconnect=-1), "reconnect", "must be a finite number >= 0"),
    (config_with(outputbuffer=2.5), "outputbuffer", "expected a whole number"),
    (config_with(nostats="yes"), "nostats", "expected true or false"),
    (config_with(limitstatus=500), "limitstatus", "must be one of 404, 503"),
    (config_with(listen="8000"), "listen", "expected host:port"),
    (config_with(resources={"a": 1}), "resources", "expected a list"),
    ({"resources": [{"type": "api", "api": "check", "serve": "/c", "remote": "/nope.ts"}]},
     "resources[0].remote", "is not the serve path of a stream"),
    ([1, 2], "top level", "expected a mapping of keys, got a list"),
])
def test_errors_name_the_file_key_path_and_problem(data, where, problem):
    with pytest.raises(ConfigError) as caught:
        from_dict(data, "conf/r.json")
    message = str(caught.value)
    assert message.startswith(f"conf/r.json: {where}: "), message
    assert problem in message and "\n" not in message


@pytest.mark.parametrize("text, name, expected", [
    ('{"listen": "a:1",\n "resources": [}', "r.json", r"r\.json: line 2 column 16: invalid JSON: .+"),
    ("listen: [unclosed\n", "r.yaml", r"r\.yaml: line 2 column 1: invalid YAML: .+"),
])
def test_syntax_errors_give_file_line_and_column(text, name, expected):
    with pytest.raises(ConfigError) as caught:
        parse(text, name)
    assert re.fullmatch(expected, str(caught.value)), str(caught.value)


def test_unreadable_file_is_a_config_error(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: cannot read: No such file or directory")):
        load(str(missing))


def test_empty_file_is_an_empty_config():
    assert parse("", "empty.yaml") == Config(source="empty.yaml", base_dir=parse("", "empty.yaml").base_dir)
