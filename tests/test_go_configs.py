"""The Go original's own example configs work unchanged: tests/goconfigs holds
its examples/minimal and examples/documented key for key (comments of our
own), and each passes --check and serves as the original would; only the
addresses are pointed at this test's loopback servers."""

import json
import subprocess
import sys

from tests.support import REPO_ROOT
from tests.support.viewer import http_get

GO_CONFIGS = REPO_ROOT / "tests" / "goconfigs"


def localised(name: str, tmp_path, replacements: dict[str, str]):
    """The example with its addresses replaced, as a 0600 file in tmp_path."""
    text = (GO_CONFIGS / f"{name}.json").read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.json"
    path.write_text(text)
    path.chmod(0o600)  # it holds a password: no warning about who may read it
    return path


def check(path):
    return subprocess.run([sys.executable, "-m", "restreamer", "--check", str(path)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=30)


def test_the_minimal_example(upstream, restreamer, viewer, tmp_path):
    up = upstream(rate=2_000_000)
    path = localised("minimal", tmp_path, {'":8000"': '"127.0.0.1:0"', "http://localhost:8001/": up.url})
    result = check(path)
    assert (result.returncode, result.stderr) == (0, "")
    rs = restreamer(path.read_text())
    rs.wait_log("stream online")
    first = viewer(rs.url("/stream.ts"))
    assert first.wait_status() == 200
    first.wait_bytes(188 * 100)
    # maxconnections: 1, answered 404 over the limit as the original does.
    assert http_get(rs.url("/stream.ts"))[0] == 404
    assert json.loads(http_get(rs.url("/health"))[2])["status"] == "full"


def test_the_documented_example(upstream, restreamer, viewer, sample, tmp_path, refused_port):
    up = upstream(rate=2_000_000)
    dead = f"http://127.0.0.1:{refused_port}"  # nothing listens: notifications and /stats fail quietly
    (tmp_path / "test").write_text("a static file\n")
    (tmp_path / "preamble.ts").write_bytes(sample[:188 * 4])
    path = localised("documented", tmp_path, {
        '"localhost:8000"': '"127.0.0.1:0"',
        "http://localhost:10000/stream.ts": up.url,
        "http://localhost:10000/stats": f"{dead}/stats",
        "http://localhost:8001": dead,
        "file:///tmp/": f"file://{tmp_path}/",
        "unix:///tmp/": f"unix://{tmp_path}/",
    })
    result = check(path)
    assert result.returncode == 0, result.stderr
    # The placeholder authentication stanzas (empty type, empty user) are no
    # authentication, as the original's pass authenticator: a note, no warning.
    assert result.stderr.splitlines() == [
        f"restreamer: note: {path}: resources[0].authentication: type is empty: no authentication "
        "(everyone gets in, as in the original)",
        f"restreamer: note: {path}: notifications[0].authentication: type is empty: no credentials "
        "are sent"]
    rs = restreamer("", cmd=[sys.executable, "-m", "restreamer", str(path)])
    rs.wait_log("stream online")
    client = viewer(rs.url("/stream.ts"))  # no credentials
    assert client.wait_status() == 200
    assert client.wait_bytes(188 * 100).startswith(sample[:188 * 4])  # the preamble first
    assert http_get(rs.url("/check/stream.ts"))[0] == 200
    assert http_get(rs.url("/health"))[0] == 200
    assert http_get(rs.url("/metrics"))[0] == 200
    assert http_get(rs.url("/test"))[::2] == (200, b"a static file\n")
    assert not rs.find_logs(lambda e: e.get("level") == "warning" and e.get("event") == "config warning")
    assert len(rs.find_logs("config note")) == 2


def test_an_empty_type_with_users_listed_is_refused_in_one_line(tmp_path):
    path = tmp_path / "restreamer.json"
    path.write_text(json.dumps({"userlist": {"username": {"password": "secret"}}, "resources": [
        {"type": "stream", "serve": "/stream.ts", "remote": "loop:sample",
         "authentication": {"type": "", "users": ["username"]}}]}))
    result = check(path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"restreamer: {path}: resources[0].authentication.type: is empty, which "
                             "lets everyone in, yet users are listed: set type to basic or bearer\n")
