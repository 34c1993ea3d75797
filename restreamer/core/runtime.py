"""The runtime directory that the workers of one server (``gunicorn -w N``)
share: upstream ownership locks, stream sockets, the viewer census, the statistics
snapshots and prometheus_client's multiprocess files.

The master (often root) makes it before it forks, so it must never be led
into someone else's directory: a named one is used only if it is a real
directory (never a symlink) that is ours and private, and is cleaned only if
it carries our marker; an unnamed one is created afresh under a random name.

Standard library only: gunicorn's master imports this from
``config/gunicorn.conf.py`` before it forks, and must not import gevent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..base.lockfile import LockFile
from .census import allocate

#: Set in the workers' environment: the directory they share.  Unset (the
#: CLI, a host app) means one process serves alone.
ENV = "RESTREAMER_RUNTIME_DIR"
#: Where systemd's ``RuntimeDirectory=`` puts its directory.
SYSTEMD_ENV = "RUNTIME_DIRECTORY"
#: The user's own private runtime directory (pam_systemd), the default's parent.
XDG_ENV = "XDG_RUNTIME_DIR"
#: prometheus_client's multiprocess files, under the runtime directory.
METRICS_SUBDIR = "metrics"
#: The file that makes a directory ours: only a directory that carries it is
#: ever cleaned.  Its ``flock``, held by the server while it runs (and by its
#: workers, which inherit it), tells a live server's directory from a stale one.
MARKER = ".restreamer-runtime"
#: What a previous run leaves behind, besides ``metrics/``.
_STALE_SUFFIXES = (".sock", ".lock", ".tmp")
_STALE_NAMES = ("viewers",)
_DEFAULT_PREFIX = "restreamer-"


class RuntimeDirectoryError(Exception):
    """A runtime directory the server may not use: where, and why in one line."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass
class RuntimeDirectory:
    """The directory a server's workers share, held for as long as the server runs."""

    path: Path
    #: Made by this run (so removed whole at its end), not found and reused.
    created: bool
    _marker: LockFile

    def release(self) -> None:
        """At the server's end: remove the directory if this run made it,
        else only what this run left in it."""
        try:
            if self.created:
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                _clean(self.path)
        finally:
            self._marker.close()


def shared_directory() -> Path | None:
    """The runtime directory this process shares with its sibling workers, if any."""
    path = os.environ.get(ENV)
    return Path(path) if path else None


def named_directory(configured: str = "") -> Path | None:
    """The directory an operator named: ``$RESTREAMER_RUNTIME_DIR``, the
    config's ``runtimedir`` (``configured``), systemd's ``$RUNTIME_DIRECTORY``."""
    for candidate in (os.environ.get(ENV), configured, os.environ.get(SYSTEMD_ENV)):
        if candidate:
            return Path(candidate.split(":")[0])  # systemd lists several, colon-separated
    return None


def prepare_directory(named: Path | None) -> RuntimeDirectory:
    """The runtime directory, ready for the workers: ``named`` (see
    :func:`named_directory`), else a new one under ``$XDG_RUNTIME_DIR`` or the
    temp dir; the viewer census allocated in it, so that a full disk is said
    here, once.  Raises :class:`RuntimeDirectoryError`, changing nothing."""
    try:
        held = _claim(named) if named is not None else _create_unnamed()
    except OSError as e:
        raise RuntimeDirectoryError(e.filename or named or "", os.strerror(e.errno)) from e
    try:
        os.mkdir(held.path / METRICS_SUBDIR, 0o700)
        allocate(held.path)
    except OSError as e:
        held.release()
        raise RuntimeDirectoryError(held.path, os.strerror(e.errno)) from e
    return held


def _claim(path: Path) -> RuntimeDirectory:
    """``path`` made by us, or found ours, private and a real directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)  # exclusive: whoever made it first owns it
        created = True
    except FileExistsError:
        created = False
    # O_NOFOLLOW: a symlink swapped in after the lstat fails the open too.
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise RuntimeDirectoryError(path, "a symbolic link, not followed")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != os.getuid():
            raise RuntimeDirectoryError(path, f"belongs to uid {info.st_uid}, not to this server's {os.getuid()}")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise RuntimeDirectoryError(
                path, f"open to others (mode {stat.S_IMODE(info.st_mode):04o}): "
                "name a directory of the server's own (mode 0700), or none")
        marked = not created and _has_marker(fd)
        if not created and not marked and os.listdir(fd):
            raise RuntimeDirectoryError(
                path, "holds files that are not the server's: name an empty directory, or none")
        marker = _mark(fd, path)
    finally:
        os.close(fd)
    if marked:
        _clean(path)
    return RuntimeDirectory(path, created, marker)


def _create_unnamed() -> RuntimeDirectory:
    """A new directory with a random name, which nobody can have taken first,
    in the user's runtime directory or the temp dir, and stale ones of ours
    there removed."""
    parent = os.environ.get(XDG_ENV) or tempfile.gettempdir()
    _remove_stale(Path(parent))
    path = Path(tempfile.mkdtemp(prefix=_DEFAULT_PREFIX, dir=parent))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        return RuntimeDirectory(path, True, _mark(fd, path))
    finally:
        os.close(fd)


def _has_marker(directory_fd: int) -> bool:
    try:
        info = os.stat(MARKER, dir_fd=directory_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode)


def _mark(directory_fd: int, path: Path) -> LockFile:
    """Our marker in the directory, opened and locked: the lock is held while
    the server runs.  Raises :class:`RuntimeDirectoryError` if another live
    server holds it."""
    marker = LockFile(MARKER, dir_fd=directory_fd)
    if not marker.acquire():
        marker.close()
        raise RuntimeDirectoryError(path, "in use by another running server")
    return marker


def _clean(path: Path) -> None:
    """Remove what a run of ours leaves in ``path`` (a directory of ours)."""
    shutil.rmtree(path / METRICS_SUBDIR, ignore_errors=True)
    for entry in os.scandir(path):
        if (entry.name.endswith(_STALE_SUFFIXES) or entry.name in _STALE_NAMES
                or (entry.name.startswith("stats-") and entry.name.endswith(".json"))):
            if not entry.is_dir(follow_symlinks=False):
                os.unlink(entry.path)


def _remove_stale(parent: Path) -> None:
    """Remove the unnamed runtime directories of ours in ``parent`` that no
    running server holds (a server killed before it could remove its own)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(_DEFAULT_PREFIX):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not _has_marker(fd):
                continue
            marker = LockFile(MARKER, dir_fd=fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        try:
            if marker.acquire():  # no running server holds it
                shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            marker.close()


def stream_key(serve: str) -> str:
    """A short file name for a stream's path (a unix socket path is limited to 107 bytes)."""
    return hashlib.sha1(serve.encode()).hexdigest()[:16]
