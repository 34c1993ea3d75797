"""Config footguns through the real ``restreamer`` command and server: each
refusal is one line with exit status 2 (also for a FIFO or /dev/zero, which
must not hang --check), warnings are printed, an invalid URL never shows its
password, an empty bearer token never gets in, and gunicorn honours ``log``."""

import json
import os
import signal
import sys

import pytest

from tests.support.polling import poll
from tests.support.viewer import http_get

LOOP = {"type": "stream", "serve": "/s.ts", "remote": "loop:sample"}


def check(restreamer, config, path=None, fmt="json"):
    """``restreamer --check`` on ``config`` (or on ``path``): (exit code, process)."""
    cmd = None if path is None else [sys.executable, "-m", "restreamer", str(path)]
    rs = restreamer(config, start=False, fmt=fmt, extra_args=["--check"], cmd=cmd).launch()
    return rs.wait_exit(), rs


@pytest.mark.parametrize("text, where, problem", [
    ('{"timeout": ' + "7" * 5000 + ', "resources": [' + json.dumps(LOOP) + "]}",
     "timeout", "number too large (5000 digits)"),
    ('{"userlist": {"admin": {"password": "s3cret"}, "admin": {"password": ""}}}',
     "userlist.admin", "key given twice"),
    ('{"userlist": {"tv:1": {"password": "x"}}}', "userlist.tv:1", "must not contain ':'"),
    ('{"resources": [{"type": "stream", "serve": "/ch/<name>.ts", "remote": "loop:sample"}]}',
     "resources[0].serve", "must not contain '<' or '>'"),
    ('{"resources": [{"type": "stream", "serve": "/s\\r.ts", "remote": "loop:sample"}]}',
     "resources[0].serve", "must not contain control characters, got '/s\\r.ts'"),
])
def test_a_refused_config_is_one_line_and_exit_2(restreamer, text, where, problem):
    code, rs = check(restreamer, text)
    assert code == 2, rs.output_tail()
    (line,) = rs.stderr_lines
    assert line.startswith(f"restreamer: {rs.config_path}: {where}: ") and problem in line, line


def test_a_fifo_or_device_config_is_refused_at_once(restreamer, tmp_path):
    fifo = tmp_path / "restreamer.json"
    os.mkfifo(fifo)
    for path, what in [(fifo, "a FIFO"), ("/dev/zero", "a device")]:
        code, rs = check(restreamer, {}, path)  # wait_exit is bounded: a hang fails here
        assert code == 2
        assert rs.stderr_lines == [f"restreamer: {path}: cannot read: not a regular file ({what})"]


def test_check_never_prints_the_password_of_an_invalid_url(restreamer):
    secret_url = "http://admin:PLANTEDPASS@[::1/live.ts?token=PLANTEDTOKEN"
    code, rs = check(restreamer, {"resources": [{**LOOP, "remote": secret_url}]})
    assert code == 2
    (line,) = rs.stderr_lines
    assert line == (f"restreamer: {rs.config_path}: resources[0].remote: invalid URL 'http://[::1/live.ts': "
                    "unbalanced brackets")


def test_check_prints_the_footgun_warnings(restreamer):
    config = {"profile": True, "userlist": {"nobody": {"password": ""}},
              "resources": [{**LOOP, "authentication": {"users": ["nobody"]}}]}
    code, rs = check(restreamer, config, fmt="yaml")
    assert code == 0
    warnings = [line.split(": ", 3)[-1] for line in rs.stderr_lines if "other users may read" not in line]
    assert warnings == [
        "userlist.nobody.password: is empty: anyone who knows the user name gets in",
        "resources[0].authentication: has no type, so the resource is public (as in the original); "
        "set type to basic or bearer",
        "profile: accepted and ignored: restreamer has no profiling server (profile a running process "
        "with py-spy)"]


def test_an_empty_bearer_token_never_matches_an_empty_password(restreamer):
    rs = restreamer({"userlist": {"nobody": {"password": ""}, "admin": {"password": "adm1n"}},
                     "resources": [{"type": "api", "api": "health", "serve": "/health",
                                    "authentication": {"type": "bearer", "users": ["nobody", "admin"]}}]})
    warning = rs.wait_log("config warning")
    assert warning["detail"].endswith("userlist.nobody.password: is empty: anyone who knows the user name gets in")
    for header in ("Bearer", "Bearer ", "Bearer \t", "bearer  "):
        assert http_get(rs.url("/health"), {"Authorization": header})[0] == 403, header
    assert http_get(rs.url("/health"), {"Authorization": "Bearer adm1n"})[0] == 200


def test_gunicorn_writes_the_log_named_in_the_config(restreamer, tmp_path):
    logfile = tmp_path / "restreamer.log"
    rs = restreamer({"log": str(logfile), "resources": [LOOP]}, start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                         "-b", "127.0.0.1:0", "--graceful-timeout", "3", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch()
    lines = poll(lambda: logfile.read_text().splitlines() if logfile.exists() else [],
                 lambda lines: any(json.loads(line)["event"] == "stream online" for line in lines),
                 15, "'stream online' in the config's log file")
    assert all(json.loads(line)["event"] for line in lines)
    assert not any(entry.get("event") == "stream online" for entry in rs.logs)  # not on stdout
    assert rs.stop(signal.SIGTERM) == 0


def test_gunicorn_stops_on_a_bad_config_with_one_log_line_and_no_secret(restreamer):
    config = {"resources": [{**LOOP, "remote": "http://admin:PLANTEDPASS@[::1/live.ts?token=PLANTEDTOKEN"}]}
    rs = restreamer(config, start=False,
                    cmd=[sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
                         "-b", "127.0.0.1:0", "wsgi:app"])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    assert rs.launch().wait_exit(15) == 4  # gunicorn's "App failed to load": no restart loop
    (error,) = rs.find_logs("config error")
    assert error["detail"] == (f"{rs.config_path}: resources[0].remote: invalid URL 'http://[::1/live.ts': "
                               "unbalanced brackets")
    output = json.dumps(rs.logs) + "\n".join(rs.stderr_lines)
    assert "PLANTED" not in output and "Traceback" not in output
