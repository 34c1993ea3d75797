"""What every source shares: paths relative to the config, OS errors as one
short reason, the config's 0 as "no timeout", and a forked command's stderr
logged with its stream."""

import errno
import socket
import sys

import pytest

from restreamer.sources import SourceError, open_connection
from restreamer.sources.base import describe, resolve_path, timeout_or_none
from tests.unit.conftest import source_settings, wait_log


def test_paths_resolve_against_the_config_folder_and_expand_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/tv")
    assert resolve_path("/etc/restreamer", "intro.ts") == "/etc/restreamer/intro.ts"
    assert resolve_path("/etc/restreamer", "../media/./intro.ts") == "/etc/media/intro.ts"
    assert resolve_path("/etc/restreamer", "/srv/intro.ts") == "/srv/intro.ts"
    assert resolve_path("/etc/restreamer", "~/intro.ts") == "/home/tv/intro.ts"


def test_an_os_error_is_its_reason_and_where():
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert describe(refused) == "Connection refused"
    assert describe(OSError("no errno, only a message")) == "no errno, only a message"
    assert describe(socket.gaierror(socket.EAI_NONAME, "Name or service not known")) == \
        "name resolution failed: Name or service not known"
    assert str(SourceError.from_os_error(refused)) == "Connection refused"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory")
    assert str(SourceError.from_os_error(missing, "/x.ts")) == "No such file or directory: /x.ts"


def test_a_missing_file_source_names_the_resolved_path(tmp_path):
    with pytest.raises(SourceError, match=f"^No such file or directory: {tmp_path}/gone.ts$"):
        open_connection("file:gone.ts", source_settings(base_dir=str(tmp_path)))


def test_the_configs_0_is_no_timeout_unless_the_caller_names_a_fallback():
    assert timeout_or_none(0) is None
    assert timeout_or_none(2.5) == 2.5
    assert timeout_or_none(0, fallback=30.0) == 30.0
    assert timeout_or_none(2.5, fallback=30.0) == 2.5


def test_a_forked_commands_stderr_is_logged_with_its_stream(logs):
    script = "__import__('sys').stderr.write('warming-up\\n')"  # arguments split on spaces
    url = f"fork://{sys.executable}?-c+{script}"
    connection = open_connection(url, source_settings(stream="/s.ts"))
    try:
        entry = wait_log(logs, "child stderr")
    finally:
        connection.close()
    assert (entry["stream"], entry["line"], entry["command"]) == ("/s.ts", "warming-up", sys.executable)
    assert entry["log_level"] == "info"
