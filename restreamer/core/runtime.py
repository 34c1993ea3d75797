"""The runtime directory that the workers of one server (``gunicorn -w N``)
share: stream ownership locks and sockets, the viewer census, the statistics
snapshots and prometheus_client's multiprocess files.

Standard library only: gunicorn's master imports this from
``config/gunicorn.conf.py`` before it forks, and must not import gevent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

#: Set in the workers' environment: the directory they share.  Unset (the
#: CLI, a host app) means one process serves alone.
ENV = "RESTREAMER_RUNTIME_DIR"
#: Where systemd's ``RuntimeDirectory=`` puts its directory.
SYSTEMD_ENV = "RUNTIME_DIRECTORY"
SYSTEM_DEFAULT = "/run/restreamer"
#: prometheus_client's multiprocess files, under the runtime directory.
METRICS_SUBDIR = "metrics"


def shared_directory() -> Path | None:
    """The runtime directory this process shares with its sibling workers, if any."""
    path = os.environ.get(ENV)
    return Path(path) if path else None


def choose_directory(bind: str, config: str, configured: str = "") -> Path:
    """Where a server's workers meet: ``$RESTREAMER_RUNTIME_DIR``, the config's
    ``runtimedir`` (``configured``), systemd's ``$RUNTIME_DIRECTORY``,
    ``/run/restreamer`` if it exists and is ours, else a directory in the temp
    dir named after the listen address and config, so two servers on one
    machine never share one by accident."""
    for candidate in (os.environ.get(ENV), configured, os.environ.get(SYSTEMD_ENV)):
        if candidate:
            return Path(candidate.split(":")[0])  # systemd lists several, colon-separated
    system = Path(SYSTEM_DEFAULT)
    if system.is_dir() and system.stat().st_uid == os.getuid():
        return system
    key = hashlib.sha1(f"{bind}\0{os.path.abspath(config)}".encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"restreamer-{os.getuid()}-{key}"


def prepare_directory(path: Path) -> Path:
    """Create the runtime directory (0700, ours) and clear what a previous run left.

    Refuses a directory another user owns or others may enter: its sockets
    carry the streams and its files the admission counts.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(f"runtime directory {path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)
    metrics = path / METRICS_SUBDIR
    shutil.rmtree(metrics, ignore_errors=True)
    metrics.mkdir(mode=0o700)
    for stale in [*path.glob("*.sock"), *path.glob("stats-*.json"), path / "viewers"]:
        stale.unlink(missing_ok=True)
    return path


def stream_key(serve: str) -> str:
    """A short file name for a stream's path (a unix socket path is limited to 107 bytes)."""
    return hashlib.sha1(serve.encode()).hexdigest()[:16]
