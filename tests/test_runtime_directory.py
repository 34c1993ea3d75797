"""gunicorn's master makes the runtime directory its workers share, running as
root: it never follows a symlink, never changes the mode of or cleans a
directory it did not make, cannot have its default name taken first by
another user, and refuses in one JSON line with exit status 4, changing
nothing.  A full disk under the directory is one line, not a crash loop of
workers."""

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

NOBODY = pwd.getpwnam("nobody").pw_uid
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
            "--graceful-timeout", "2", "wsgi:app"]


def config(up, **keys):
    return {"reconnect": 0.5, "resources": [{"type": "stream", "serve": "/a.ts", "remote": up.url}],
            **keys}


def gunicorn(restreamer, conf, prefix=(), env=None, workers=2):
    """Launched, not awaited: most of these servers must refuse to start."""
    rs = restreamer(conf, start=False, env=env,
                    cmd=[*prefix, *GUNICORN, "-b", "127.0.0.1:0", "--workers", str(workers)])
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    return rs.launch()


def assert_refused(rs, why):
    """Exit status 4, one JSON line saying where and ``why``, no traceback, no worker."""
    assert rs.wait_exit(15) == 4
    lines = [e for e in rs.logs if e.get("level") in ("error", "critical")]
    assert [e["event"] for e in lines] == ["cannot use runtime directory"], rs.output_tail()
    assert why in lines[0]["reason"]
    assert not [e for e in rs.logs if "raw" in e] and not rs.stderr_lines, rs.output_tail()
    assert not rs.find_logs(lambda e: "Booting worker" in e.get("event", ""))
    return lines[0]


def as_nobody(*command):
    subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
                   check=True, timeout=10)


@pytest.fixture
def shared_tmp():
    """A directory every user may write to (mode 1777, as /tmp), removed at the end."""
    path = tempfile.mkdtemp(prefix="shared-")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path)


def test_foreign_directories_are_refused_untouched(upstream, restreamer, tmp_path, shared_tmp):
    up = upstream()
    # A shared 1777 directory holding another service's socket and database.
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    service = socket.socket(socket.AF_UNIX)
    service.bind(str(shared / "service.sock"))
    (shared / "stats-1.json").write_text("their database")
    (shared / "metrics").mkdir()
    refused = assert_refused(gunicorn(restreamer, config(up, runtimedir=str(shared))), "open to others")
    assert refused["path"] == str(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert sorted(os.listdir(shared)) == ["metrics", "service.sock", "stats-1.json"]
    assert (shared / "stats-1.json").read_text() == "their database"
    service.close()

    # A symlink planted where the runtime directory is named, to root's directory.
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o755)
    os.chmod(victim, 0o755)
    (victim / "viewers").write_text("root's file")
    (tmp_path / "run").symlink_to(victim)
    assert_refused(gunicorn(restreamer, config(up, runtimedir=str(tmp_path / "run"))), "symbolic link")
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755
    assert os.listdir(victim) == ["viewers"] and (victim / "viewers").read_text() == "root's file"

    # The named directory taken first by another user.
    taken = os.path.join(shared_tmp, "run")
    as_nobody("mkdir", "-m", "700", taken)
    assert_refused(gunicorn(restreamer, config(up, runtimedir=taken)), f"belongs to uid {NOBODY}")
    assert os.stat(taken).st_uid == NOBODY and stat.S_IMODE(os.stat(taken).st_mode) == 0o700
    assert up.connections == []


def test_default_directory_is_new_private_and_removed(upstream, restreamer, shared_tmp):
    up = upstream()
    # Another user's directories with names of the kind the server makes.
    as_nobody("mkdir", "-m", "755", os.path.join(shared_tmp, "restreamer-0"))
    as_nobody("ln", "-s", "/root", os.path.join(shared_tmp, "restreamer-1"))
    before = set(os.listdir(shared_tmp))
    rs = gunicorn(restreamer, config(up), env={"TMPDIR": shared_tmp, "XDG_RUNTIME_DIR": ""})
    rs.wait_log(lambda e: e.get("event") == "stream owned", timeout=20)
    rs.wait_log(lambda e: e.get("event") == "stream following", timeout=20)
    (made,) = set(os.listdir(shared_tmp)) - before
    path = os.path.join(shared_tmp, made)
    info = os.lstat(path)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
    assert stat.S_IMODE(info.st_mode) == 0o700
    sockets = [name for name in os.listdir(path) if name.endswith(".sock")]
    assert len(sockets) == 1
    assert stat.S_IMODE(os.stat(os.path.join(path, sockets[0])).st_mode) == 0o600
    assert rs.stop(signal.SIGTERM) == 0
    assert set(os.listdir(shared_tmp)) == before  # its own gone, the others' untouched
    assert os.stat(os.path.join(shared_tmp, "restreamer-0")).st_uid == NOBODY
    assert os.path.islink(os.path.join(shared_tmp, "restreamer-1"))


@pytest.mark.parametrize("free, workers, event", [
    (0, 2, "cannot use runtime directory"),  # said by the master: no worker starts
    # Room for the census, not for a worker's metrics files; one worker: gunicorn's
    # master can fail to stop cleanly when several say so at once.
    (24, 1, "cannot start"),
])
def test_full_disk_is_one_line_not_a_crash_loop(upstream, restreamer, tmp_path, free, workers, event):
    up = upstream()
    disk = tmp_path / "disk"
    disk.mkdir()
    # A small tmpfs, filled up, in a mount namespace of the server's own: it
    # goes with the server, whatever happens to the test.
    fill = ('mount -t tmpfs -o size=128k tmpfs "$0" && '
            f'{{ head -c {128 - free}k /dev/zero > "$0/fill" 2>/dev/null; exec "$@"; }}')
    rs = gunicorn(restreamer, config(up, runtimedir=str(disk / "run")),
                  prefix=["unshare", "--mount", "sh", "-c", fill, str(disk)], workers=workers)
    started = time.monotonic()
    assert rs.wait_exit(15) == 4
    assert time.monotonic() - started < 12
    lines = [e for e in rs.logs if e.get("level") in ("error", "critical") and "logger" not in e]
    assert [e["event"] for e in lines] == [event], rs.output_tail()
    assert lines[0]["reason"] == "No space left on device"
    assert lines[0]["path"].startswith(str(disk / "run"))
    assert len(rs.find_logs(lambda e: "Booting worker" in e.get("event", ""))) <= workers
    assert not rs.find_logs(lambda e: "SIGBUS" in e.get("event", ""))
    assert not [e for e in rs.logs if "raw" in e] and not rs.stderr_lines, rs.output_tail()
