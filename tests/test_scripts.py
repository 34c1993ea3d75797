"""The two commands a newcomer runs first: ./scripts/demo starts without a
warning, and ./scripts/test says in one line what to install when a tool the
tests need is missing."""

import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT
from tests.support.upstream import free_port
from tests.support.viewer import http_get


def run_scripts_test(path_tools: list[str], tmp_path) -> subprocess.CompletedProcess:
    """./scripts/test with a PATH that holds only ``path_tools`` (from this machine)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = {"python3": os.path.realpath(sys.executable)}  # not a pyenv shim, which needs PATH
    for tool in ["dirname", *path_tools]:
        target = real.get(tool) or subprocess.run(["which", tool], capture_output=True,
                                                  text=True, check=True).stdout.strip()
        (bin_dir / tool).symlink_to(target)
    return subprocess.run(["/bin/bash", str(REPO_ROOT / "scripts" / "test"), "--collect-only"],
                          env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("present, line", [
    (["python3", "setpriv", "prlimit", "haproxy", "chromium", "chromedriver", "openssl", "systemd-analyze"],
     "scripts/test: missing ffprobe: apt-get install ffmpeg"),
    ([], "scripts/test: missing python3 venv, ffprobe, setpriv, prlimit, haproxy, chromium, chromedriver, "
         "openssl, systemd-analyze: apt-get install python3-venv ffmpeg util-linux haproxy chromium "
         "chromium-driver openssl systemd"),
])
def test_scripts_test_names_what_to_install_before_doing_anything(tmp_path, present, line):
    result = run_scripts_test(present, tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", line + "\n")


def test_the_demo_config_has_nothing_to_warn_about():
    script = (REPO_ROOT / "scripts" / "demo").read_text()
    demo = re.search(r"^config=\$\{1:-(.+)\}$", script, re.M).group(1)
    result = subprocess.run([sys.executable, "-m", "restreamer", "--check", demo], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"{demo}: ok (1 streams")


def test_the_demo_serves_on_the_port_asked_for(restreamer):
    port = free_port()
    rs = restreamer({}, start=False, cmd=["/bin/bash", str(REPO_ROOT / "scripts" / "demo"), "--port", str(port)])
    rs.launch()
    listening = rs.wait_log("listening", timeout=60)  # after pip has checked .venv
    assert (listening["port"], listening["listen"]) == (port, f"localhost:{port}")
    assert http_get(f"http://localhost:{port}/health")[0] == 200
    assert rs.stop() == 0
