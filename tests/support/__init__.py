"""Test-support layer shared by every restreamer test.

Tests run in a plain (not gevent-patched) pytest process and talk to a real
restreamer subprocess over loopback sockets, so everything here is built on
threads and blocking sockets, and every wait is bounded by a timeout.
"""

from pathlib import Path

#: The repository root, derived from this file so the suite runs from any checkout.
REPO_ROOT = Path(__file__).resolve().parents[2]
