"""The two commands a newcomer runs first: ./scripts/demo starts without a
warning, and ./scripts/test says in one line what to install when a tool the
tests need is missing (the unit tier alone needs none)."""

import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO_ROOT
from tests.support.viewer import http_get


def run_scripts_test(path_tools: list[str], tmp_path, *args: str) -> subprocess.CompletedProcess:
    """./scripts/test ARGS (--collect-only by default) with a PATH that holds
    only ``path_tools`` (from this machine)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = {"python3": os.path.realpath(sys.executable)}  # not a pyenv shim, which needs PATH
    for tool in ["dirname", *path_tools]:
        target = real.get(tool) or subprocess.run(["which", tool], capture_output=True,
                                                  text=True, check=True).stdout.strip()
        (bin_dir / tool).symlink_to(target)
    return subprocess.run(["/bin/bash", str(REPO_ROOT / "scripts" / "test"), *(args or ["--collect-only"])],
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


def test_scripts_test_runs_the_unit_tier_with_python_alone(tmp_path):
    result = run_scripts_test(["python3"], tmp_path, "tests/unit/test_video.py", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^\d+ passed", result.stdout, re.M), result.stdout


def test_the_demo_config_has_nothing_to_warn_about():
    script = (REPO_ROOT / "scripts" / "demo").read_text()
    demo = re.search(r"^config=\$\{1:-(.+)\}$", script, re.M).group(1)
    result = subprocess.run([sys.executable, "-m", "restreamer", "--check", demo], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith(f"{demo}: ok (1 stream,")


def test_the_demo_serves_on_the_port_asked_for(restreamer):
    # Port 0: the system picks one; what matters is that --port reaches listen.
    rs = restreamer({}, start=False, cmd=["/bin/bash", str(REPO_ROOT / "scripts" / "demo"), "--port", "0"])
    rs.launch()
    listening = rs.wait_log("listening", timeout=60)  # after pip has checked .venv
    port = listening["port"]
    assert (port > 0, listening["listen"]) == (True, "localhost:0")
    assert http_get(f"http://localhost:{port}/health")[0] == 200
    assert rs.stop() == 0
