"""The systemd unit (deploy/systemd/restreamer.service): `systemd-analyze
verify` finds nothing to say, `systemd-analyze security` rates it at most
2.0, and the hardening keeps what a relay needs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

UNIT = REPO_ROOT / "deploy" / "systemd" / "restreamer.service"
INSTALLED = "/opt/restreamer/venv"  # where the README installs it


@pytest.fixture
def unit(tmp_path):
    """The unit, its venv replaced by this one (verify checks that ExecStart exists)."""
    copy = tmp_path / "restreamer.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED, str(Path(sys.executable).parent.parent)))
    return copy


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            name, _, value = line.partition("=")
            found.setdefault(name, []).append(value)
    return found


def test_systemd_analyze_verify_is_clean(unit):
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_security_rates_it_at_most_2(unit):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20", str(unit)],
                            capture_output=True, text=True, timeout=30)
    exposure = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout).group(1))
    assert exposure <= 2.0 and result.returncode == 0, result.stdout


def test_it_starts_on_a_bare_host_and_keeps_what_a_relay_needs():
    unit = settings()
    # Nothing to create beforehand: the user, /run/restreamer and /var/log/restreamer come with it.
    assert unit["DynamicUser"] == ["yes"] and unit["RuntimeDirectory"] == unit["LogsDirectory"] == ["restreamer"]
    assert not any(path.lstrip("-").startswith("/var/log") for path in unit.get("ReadWritePaths", []))
    # The network (v4, v6, unix sockets) and multicast joins; fork:// children.
    assert set(unit["RestrictAddressFamilies"][0].split()) >= {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "PrivateNetwork" not in unit and "IPAddressDeny" not in unit
    assert not any("@process" in f or "execve" in f for f in unit["SystemCallFilter"] if f.startswith("~"))
    # It runs the installed command on the config the reload checks first.
    start, = unit["ExecStart"]
    check = unit["ExecReload"][0]
    assert start.startswith(f"{INSTALLED}/bin/restreamer ") and check.startswith(f"{INSTALLED}/bin/restreamer --check ")
    assert start.split()[-1] == check.split()[-1] == "/etc/restreamer/restreamer.json"
