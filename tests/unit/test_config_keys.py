"""restreamer.config in-process: keys declared once (the README's table and the
example configs follow the declarations), one resource type per kind,
ConfigError's fields, and the config footguns: duplicate keys, ':' in user
names, empty passwords, authentication without a type, '<' in serve, huge
numbers, files that are not regular files, passwords in invalid URLs."""

import json
import os
import re
import threading

import pytest
import yaml

from restreamer.config import (ApiConfig, Config, ConfigError, StaticConfig, StreamConfig, from_dict, load,
                               parse, reference)
from restreamer.config.documents import MAX_SIZE
from restreamer.config.keys import declared
from restreamer.core.credentials import Authenticator
from restreamer.redact import redact_url
from restreamer.sources import SCHEMES, open_connection
from tests.support import REPO_ROOT

STREAM = {"type": "stream", "serve": "/s.ts", "remote": "loop:sample"}


def error(data_or_text, source="c.json"):
    with pytest.raises(ConfigError) as caught:
        if isinstance(data_or_text, str):
            parse(data_or_text, source)
        else:
            from_dict(data_or_text, source)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{source}: "), message
    return caught.value


# -- declared once ---------------------------------------------------------------


def test_the_readme_table_is_the_declarations():
    readme = (REPO_ROOT / "README.md").read_text()
    table = re.search(r"<!-- config keys -->\n(.*?)\n<!-- /config keys -->", readme, re.S)
    assert table, "README.md lacks the <!-- config keys --> block"
    assert table.group(1) == reference(), (
        "README's key table differs from the declarations; regenerate it with "
        ".venv/bin/python -c 'from restreamer.config import reference; print(reference())'")


@pytest.mark.parametrize("name", ["restreamer.example.json", "restreamer.example.yaml"])
def test_the_example_configs_load_and_show_every_top_level_key(name):
    path = REPO_ROOT / name
    config = load(str(path))
    assert [w for w in config.warnings if "other users may read" not in w] == []
    text = path.read_text()
    for k in declared(Config):
        assert re.search(rf"^\s*(# )?\"?{k.name}\"?:", text, re.M), f"{name} does not show {k.name!r}"


def test_defaults_come_from_the_declarations():
    config = from_dict({"resources": [STREAM, {"type": "static", "serve": "/x", "remote": "file:///x"},
                                      {"type": "api", "api": "health", "serve": "/h"}]})
    for k in declared(Config):
        if k.name not in ("resources",):
            assert getattr(config, k.name) == k.default
    stream, static, api = config.resources
    assert (type(stream), type(static), type(api)) == (StreamConfig, StaticConfig, ApiConfig)
    assert (stream.mru, stream.preamble, static.cache, api.remotes) == (1500, None, 0, ())
    assert config.streams == (stream,)


def test_a_key_of_another_resource_type_is_warned_about():
    config = from_dict({"resources": [{**STREAM, "cache": 5}, {"type": "static", "serve": "/x",
                                                              "remote": "file:///x", "MRU": 188}]}, "c.json")
    assert config.warnings == ("c.json: resources[0].cache: ignored: only a static resource uses it",
                               "c.json: resources[1].mru: ignored: only a stream or udpxy resource uses it")


def test_config_error_keeps_file_path_and_problem_apart():
    caught = error({"resources": [{**STREAM, "mru": 10}]}, "conf/r.yaml")
    assert (caught.file, caught.path, caught.problem) == (
        "conf/r.yaml", "resources[0].mru", "must be a finite number >= 188, got 10")
    assert str(caught) == "conf/r.yaml: resources[0].mru: must be a finite number >= 188, got 10"
    syntax = error('{"listen": }')
    assert (syntax.path, syntax.line, syntax.column) == ("", 1, 12)


def test_every_scheme_names_what_opens_its_connections():
    for name, scheme in SCHEMES.items():
        module = __import__(f"restreamer.sources.{scheme.module}", fromlist=[scheme.connection])
        assert callable(getattr(module, scheme.connection)), name


def test_opening_an_unknown_scheme_fails_as_validation_does():
    with pytest.raises(Exception, match="unsupported URL scheme 'rtsp'"):
        open_connection("rtsp://cam/1", None)
    assert "unsupported URL scheme" in error({"resources": [{**STREAM, "remote": "rtsp://cam/1"}]}).problem


# -- footguns ---------------------------------------------------------------------


@pytest.mark.parametrize("text, path", [
    ('{"listen": "a:1", "reconnect": 1, "listen": "b:2"}', "listen"),
    ('{"userlist": {"admin": {"password": "x"}, "admin": {"password": ""}}}', "userlist.admin"),
    ('{"resources": [{"type": "stream", "serve": "/a.ts", "remote": "loop:sample", "serve": "/b.ts"}]}',
     "resources[0].serve"),
    ('{"Listen": "a:1", "listen": "b:2"}', "listen"),
])
def test_a_key_given_twice_in_json_is_refused(text, path):
    caught = error(text)
    assert caught.path == path and caught.problem.startswith("key given twice"), str(caught)


def test_a_key_given_twice_in_yaml_is_refused_with_its_line():
    text = "userlist:\n  admin: {password: secret}\n  tv: {password: tv}\n  admin: {password: ''}\n"
    caught = error(text, "c.yaml")
    assert str(caught) == "c.yaml: userlist.admin: key given twice at line 4 (first at line 2)"
    assert caught.line == 4


def test_comment_keys_and_yaml_merges_are_not_duplicates():
    assert parse('{"": "a", "": "b", "resources": [' + json.dumps(STREAM) + ']}', "c.json").warnings == ()
    text = "resources:\n  - &s {type: stream, serve: /a.ts, remote: 'loop:sample'}\n  - <<: *s\n    serve: /b.ts\n"
    assert [r.serve for r in parse(text, "c.yaml").resources] == ["/a.ts", "/b.ts"]


def test_a_user_name_with_a_colon_is_refused():
    caught = error({"userlist": {"tv:1": {"password": "x"}}})
    assert caught.path == "userlist.tv:1" and "must not contain ':'" in caught.problem


def test_an_empty_password_is_warned_about_and_an_empty_bearer_token_never_matches():
    config = from_dict({"userlist": {"nobody": {"password": ""}},
                        "resources": [{**STREAM, "authentication": {"type": "bearer", "users": ["nobody"]}}]},
                       "c.json")
    assert config.warnings == ("c.json: userlist.nobody.password: is empty: anyone who knows the user "
                               "name gets in",)
    authenticator = Authenticator(config.streams[0].authentication, config.userlist)
    for header in ("Bearer", "Bearer ", "Bearer  ", "bearer"):
        assert not authenticator.allows(header), header


def test_authentication_without_a_type_is_warned_about():
    config = from_dict({"userlist": {"a": {"password": "x"}},
                        "resources": [{**STREAM, "authentication": {"users": ["a"]}},
                                      {"type": "api", "api": "health", "serve": "/h", "authentication": {}}],
                        "notifications": [{"event": "heartbeat", "url": "http://h/", "authentication":
                                           {"user": "a"}}]}, "c.json")
    assert config.warnings == (
        "c.json: resources[0].authentication: has no type, so the resource is public (as in the "
        "original); set type to basic or bearer",
        "c.json: notifications[0].authentication: has no type, so no credentials are sent; set type to "
        "basic or bearer")
    assert Authenticator(config.streams[0].authentication, config.userlist).allows(None)  # as the original


def test_a_serve_path_with_a_routing_template_is_refused():
    caught = error({"resources": [{**STREAM, "serve": "/ch/<name>.ts"}]})
    assert caught.path == "resources[0].serve" and "must not contain '<' or '>'" in caught.problem


@pytest.mark.parametrize("text, source, path", [
    ('{"timeout": ' + "9" * 5000 + "}", "c.json", "timeout"),
    ("timeout: " + "9" * 5000 + "\n", "c.yaml", "timeout"),
    ('{"listen": -' + "9" * 5000 + "}", "c.json", "listen"),
    ('{"limitstatus": ' + "9" * 5000 + "}", "c.json", "limitstatus"),
    ("resources:\n - {type: stream, serve: /s.ts, remote: 'loop:sample', mru: " + "9" * 5000 + "}\n",
     "c.yaml", "resources[0].mru"),
])
def test_a_huge_number_is_one_line_naming_its_key(text, source, path):
    caught = error(text, source)
    assert caught.path == path and "5000 digits" in caught.problem, str(caught)


def test_profile_is_accepted_and_ignored_with_a_warning():
    assert from_dict({"profile": False}).warnings == ()
    assert from_dict({"profile": True}, "c.json").warnings == (
        "c.json: profile: accepted and ignored: restreamer has no profiling server "
        "(profile a running process with py-spy)",)


def test_a_fifo_config_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    result = []
    reader = threading.Thread(target=lambda: result.append(pytest.raises(ConfigError, load, str(fifo))))
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the load before failing, so the test run does not hang
        with open(fifo, "w"):
            pass
        reader.join(5)
        pytest.fail("loading a FIFO config waited for a writer")
    assert str(result[0].value) == f"{fifo}: cannot read: not a regular file (a FIFO)"


@pytest.mark.parametrize("path, what", [("/dev/zero", "a device"), ("/", "a directory")])
def test_a_device_or_directory_config_is_refused(path, what):
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: cannot read: not a regular file ({what})"


def test_an_oversized_config_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(MAX_SIZE + 1)  # sparse: costs no disk
    with pytest.raises(ConfigError, match=re.escape(f"{big}: cannot read: larger than 16 MiB")):
        load(str(big))


@pytest.mark.parametrize("url", [
    "http://admin:SECRETPW@[::1/live?token=SECRETTOKEN",
    "rtsp://admin:SECRETPW@cam/live?token=SECRETTOKEN",
    "tcp://admin:SECRETPW@host?token=SECRETTOKEN",
    "http://admin:SECRET/PW@host:99999/x",
    "https://admin:SECRET?PW@host/",
])
def test_an_invalid_url_error_never_shows_its_secrets(url):
    caught = error({"resources": [{**STREAM, "remote": url}]})
    assert caught.path == "resources[0].remote"
    assert "SECRET" not in str(caught) and "admin" not in str(caught), str(caught)


@pytest.mark.parametrize("url, shown", [
    ("http://user:pass@host:8080/live.ts?token=t#frag", "http://host:8080/live.ts"),
    ("http://user:p@ss/w?rd@host/x", "http://host/x"),
    ("http://user:12?pw@host/", "http://host/"),
    ("http://SECRETKEY@host/a", "http://host/a"),
    ("http://h/x?mail=a@b", "http://h/x"),
    ("fork:///usr/bin/ffmpeg?-i+rtsp://cam:pw@c/1", "fork:///usr/bin/ffmpeg"),
    ("udp://239.0.0.1:5000", "udp://239.0.0.1:5000"),
    ("loop:sample", "loop:sample"),
    ("file:///srv/x.ts", "file:///srv/x.ts"),
    ("/s.ts", "/s.ts"),
    ("user:pass@host:80", "user:host:80"),
])
def test_redact_url_shows_scheme_host_port_and_path_only(url, shown):
    assert redact_url(url) == shown


def test_yaml_and_json_agree():
    data = {"userlist": {"a": {"password": "x"}}, "resources": [STREAM]}
    assert parse(json.dumps(data), "c.json").userlist == parse(yaml.safe_dump(data), "c.yaml").userlist


# -- the sources beyond the original's -------------------------------------------


@pytest.mark.parametrize("remote", ["rtp://239.1.2.3:5000", "rtp://@239.1.2.3:5000", "rtp://:5000",
                                    "rtp://10.0.0.1@239.1.2.3:5000", "udp://10.0.0.1@239.1.2.3:5000",
                                    "http://cdn.example/live/master.m3u8"])
def test_rtp_ssm_and_hls_remotes_are_valid(remote):
    config = from_dict({"resources": [{**STREAM, "remote": remote, "program": 2}]}, "c.json")
    assert config.streams[0].remotes == (remote,) and config.streams[0].program == 2


@pytest.mark.parametrize("entries, problem", [
    ({"remote": "rtp://239.1.2.3"}, "resources[0].remote: URL 'rtp://239.1.2.3' has no port"),
    ({"program": 0}, "resources[0].program: must be a finite number >= 1, got 0"),
    ({"program": 70000}, "resources[0].program: 70000 is not a program_number (1 to 65535)"),
])
def test_bad_rtp_and_program_keys_say_where_and_what(entries, problem):
    assert problem in str(error({"resources": [{**STREAM, **entries}]}))


def test_a_variant_without_an_http_remote_is_warned_about():
    config = from_dict({"resources": [{**STREAM, "variant": "720p"}]}, "c.json")
    assert config.warnings == ("c.json: resources[0].variant: no http(s) remote: only an HLS master "
                               "playlist has variants",)
