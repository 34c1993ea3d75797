"""restreamer installed as an operator installs it: a wheel built from the
checkout, installed into a fresh venv outside it, serves the bundled sample
with its ``restreamer`` command and with gunicorn, from the package alone."""

import subprocess
import sys
import zipfile

import pytest

from tests.support import REPO_ROOT
from tests.support.ts import assert_aligned
from tests.support.viewer import HttpViewer, http_get

# Building the wheel and installing it with its dependencies takes a while
# on a busy machine; the tests after the first reuse the install.
pytestmark = pytest.mark.timeout(240)

SAMPLE = {"type": "stream", "serve": "/demo.ts", "remote": "loop:sample"}
DASHBOARD = {"type": "api", "api": "dashboard", "serve": "/"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
                    "--no-deps", "-w", str(dist), str(REPO_ROOT)],
                   check=True, capture_output=True, timeout=200)
    (built,) = dist.glob("restreamer-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A new venv, nothing in it but the wheel and its declared dependencies."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(root / "bin" / "python"), "install",
                    "-q", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, timeout=200)
    return root


def test_the_wheel_holds_every_file_of_the_package(wheel):
    tracked = subprocess.run(["git", "ls-files", "restreamer"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert "restreamer/data/sample.ts" in tracked
    with zipfile.ZipFile(wheel) as archive:
        assert set(tracked) <= set(archive.namelist())


def test_the_installed_command_serves_the_bundled_sample(venv, restreamer, tmp_path):
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import restreamer; print(restreamer.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv))
    version = subprocess.run([str(venv / "bin" / "restreamer"), "--version"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=30)
    assert (version.returncode, version.stdout.split()[0]) == (0, "restreamer")

    rs = restreamer({"resources": [SAMPLE, DASHBOARD]}, start=False,
                    cmd=[str(venv / "bin" / "restreamer"), "{config}"])
    rs.cwd = tmp_path
    rs.start()
    assert_serves_the_sample(rs)
    assert rs.stop() == 0


def test_gunicorn_from_the_installed_package_binds_the_configs_listen(venv, restreamer, tmp_path):
    rs = restreamer({"listen": "127.0.0.1:0", "resources": [SAMPLE, DASHBOARD]}, start=False,
                    cmd=[str(venv / "bin" / "gunicorn"), "-c", "python:restreamer.web.gunicorn_conf",
                         "restreamer.wsgi:app"])
    rs.cwd = tmp_path
    rs.env["RESTREAMER_CONFIG"] = str(rs.config_path)
    rs.launch()
    rs.wait_gunicorn_port(timeout=30)
    rs.wait_log("stream online", timeout=30)
    assert_serves_the_sample(rs)
    assert rs.stop() == 0


def assert_serves_the_sample(rs):
    status, headers, body = http_get(rs.url("/"))
    assert (status, headers["Content-Type"].split(";")[0]) == (200, "text/html")  # package data
    assert b"<html" in body.lower()
    with HttpViewer(rs.url("/demo.ts")) as viewer:
        assert viewer.wait_status() == 200
        data = viewer.wait_bytes(188 * 200, timeout=10)
    assert_aligned(data)
