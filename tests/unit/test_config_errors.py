"""Config errors that teach: every problem of a file in one run, in file
order, with what was probably meant; and what --check finds missing on the
host (a multicast interface, a fork:// command)."""

import pytest

from restreamer.config import ConfigError, from_dict, host_problems, parse

BAD = """\
listen: 22100
reconect: 5
limitstatus: 500
resources:
  - {type: stream, serve: /a.ts, url: "http://x/a.ts"}
  - {type: api, api: dashbord, serve: /}
  - {type: stream, serve: /b.ts, remote: "http://x/b.ts", mru: many}
"""


def test_every_problem_of_a_file_in_one_run_in_file_order_with_hints():
    with pytest.raises(ConfigError) as raised:
        parse(BAD, "bad.yaml")
    assert str(raised.value).splitlines() == [
        'bad.yaml: listen: expected a string, got a number; did you mean ":22100"?',
        "bad.yaml: limitstatus: must be one of 404, 503, got 500",
        "bad.yaml: resources[0].remote: a stream needs at least one remote",
        "bad.yaml: resources[1].api: must be one of health, statistics, check, control, prometheus, "
        "dashboard, playlist, got 'dashbord'; did you mean 'dashboard'?",
        "bad.yaml: resources[2].mru: expected a whole number, got a string",
    ]
    # The first is the error's own; the warnings found on the way say why a remote is missing.
    assert (raised.value.path, raised.value.warnings) == ("listen", (
        "bad.yaml: reconect: unknown key ignored; did you mean 'reconnect'?",
        "bad.yaml: resources[0].url: unknown key ignored; did you mean 'remote'?"))


@pytest.mark.parametrize("listen, hint", [
    ("8000", "did you mean ':8000'?"),
    (8000, 'did you mean ":8000"?'),
])
def test_a_bare_port_for_listen_suggests_every_interface(listen, hint):
    with pytest.raises(ConfigError) as raised:
        from_dict({"listen": listen})
    assert str(raised.value).endswith(hint)


def test_a_misspelt_user_is_named_with_the_nearest():
    with pytest.raises(ConfigError, match=r"user 'alise' is not in userlist; did you mean 'alice'\?"):
        from_dict({"userlist": {"alice": {"password": "x"}}, "resources": [
            {"type": "api", "api": "health", "serve": "/h",
             "authentication": {"type": "basic", "users": ["alise"]}}]})


def stream(remote, **keys):
    return {"type": "stream", "serve": f"/{len(keys)}{abs(hash(remote))}.ts", "remote": remote, **keys}


@pytest.mark.parametrize("resource, problem", [
    (stream("udp://239.1.1.1:1234", clientinterface="eth9"),
     "resources[0].clientinterface: no network interface 'eth9' on this host"),
    (stream("fork://no-such-command-here?a+b"),
     "resources[0].remote: command 'no-such-command-here' not found on PATH, or not executable"),
    (stream("fork://{tmp}/plain.txt"), "resources[0].remote: command '{tmp}/plain.txt' not found, "
                                       "or not executable"),
    (stream("udp://239.1.1.1:1234", clientinterface="lo"), None),
    (stream("fork://sh?-c+true"), None),
])
def test_check_finds_what_the_host_lacks(resource, problem, tmp_path):
    (tmp_path / "plain.txt").write_text("not a program\n")
    resource = dict(resource, remote=resource["remote"].format(tmp=tmp_path))
    problem = problem and problem.format(tmp=tmp_path)
    found = [str(p) for p in host_problems(from_dict({"resources": [resource]}, "c.yaml"))]
    assert found == ([f"c.yaml: {problem}"] if problem else [])
