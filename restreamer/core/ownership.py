"""One upstream connection per stream across the workers of a server.

The worker holding a stream's ``flock`` (``<key>.lock`` in the runtime
directory) owns it: it pulls the stream's remotes and serves the raw stream on
``<key>.sock``.  Every other worker follows: its upstream is that socket,
read by the ordinary ``unix://`` source into its own hub.  Each socket client
is a viewer of the owner's hub, so the owner's fan-out (and whatever start it
gives a new viewer) feeds the other workers too.

A follower tries for the lock every :data:`POLL` seconds.  When the owner
dies the kernel drops its lock, one follower takes it and pulls the remotes,
and the others reconnect to its socket; meanwhile every hub holds its viewers
for the grace period, as for any upstream that drops.  When the owner's
upstream drops, it ends the followers' connections, so their grace periods
run with its own.

On-demand streams compose through the upstream each role runs: a follower's
socket connection is an upstream like any other, started while the follower
has viewers, and the owner's socket clients are viewers of its hub, so the
owner pulls while any worker has viewers.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import gevent
from gevent import socket
from gevent.server import StreamServer

from ..log import get_logger
from .runtime import stream_key
from .viewer import Viewer

if TYPE_CHECKING:
    from .hub import Hub
    from .upstream import Upstream

#: Seconds between a follower's tries for the lock: how long a dead owner's
#: stream waits for its next owner, at most.
POLL = 0.25
#: Seconds between a follower's attempts to reach the owner's socket.
FOLLOW_RECONNECT = 0.25
#: Seconds between checks whether an offline stream takes a socket client yet.
RELAY_WAIT = 0.5
#: What the owner's hub and logs call a socket client.
RELAY_REMOTE = "worker"

_log = get_logger("streaming")


class Ownership:
    """This worker's role for one stream: owner (pulls, serves the socket) or follower."""

    def __init__(self, hub: "Hub", directory: Path,
                 owned: "Upstream", follow: Callable[[str], "Upstream"],
                 relay_left: Callable[[], None] = lambda: None):
        key = stream_key(hub.name)
        self.hub = hub
        self.lock_path = directory / f"{key}.lock"
        self.socket_path = directory / f"{key}.sock"
        self.follow_url = f"unix://{self.socket_path}"
        self.owned = owned  # the upstream of the stream's remotes, run while owner
        self._follow = follow
        self._relay_left = relay_left  # an on-demand owner may be left without viewers
        self.owner = False
        #: The owner's socket clients (other workers), in its hub but nobody's audience.
        self.relays: set[Viewer] = set()
        self._lock_fd: int | None = None
        self._greenlet: gevent.Greenlet | None = None
        self._follower: "Upstream | None" = None
        self._server: StreamServer | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    @property
    def running(self) -> bool:
        """Started and not stopped: as :class:`Upstream`'s, for whatever starts either on demand."""
        return self._greenlet is not None

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=5)
            self._greenlet = None
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._server is not None:
            self._server.close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)
        self.owned.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock: a sibling takes over
            self._lock_fd = None
        self.owner = False

    def _run(self) -> None:
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        while not self._try_lock():
            if self._follower is None:
                _log.info("stream following", stream=self.hub.name, socket=str(self.socket_path))
                self._follower = self._follow(self.follow_url)
                self._follower.start()
            gevent.sleep(POLL)
        if self._follower is not None:
            self._follower.stop()  # its hub holds the viewers for the grace period
            self._follower = None
        self.owner = True
        _log.info("stream owned", stream=self.hub.name, socket=str(self.socket_path))
        self._listen()
        self.owned.start()
        self._end_relays_when_offline()

    def _end_relays_when_offline(self) -> None:
        """When this hub loses its upstream, end its siblings' connections too.

        Their hubs then start their grace periods with this one's, and their
        viewers are closed when these are, instead of a grace period later.
        The siblings reconnect at once and wait, silent, for the stream.
        """
        was_online = False
        while True:
            gevent.sleep(POLL)
            online = self.hub.online
            if was_online and not online:
                for relay in list(self.relays):
                    relay.close()
            was_online = online

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _listen(self) -> None:
        # A dead owner's socket file stays behind; binding needs the path free.
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)  # the stream is for this server's workers only
        listener.listen(128)
        self._server = StreamServer(listener, self._relay)
        self._server.start()

    def _relay(self, sock: socket.socket, _address: object) -> None:
        """Serve one sibling worker the raw stream, as a viewer of this hub."""
        hub = self.hub
        viewer = hub.join(RELAY_REMOTE, keepalive=False)
        # An offline stream takes no viewer; the sibling's hub, which lost its
        # upstream too, runs out its own grace period meanwhile.
        while viewer is None:
            gevent.sleep(RELAY_WAIT)
            viewer = hub.join(RELAY_REMOTE, keepalive=False)
        self.relays.add(viewer)
        try:
            for data in viewer.chunks():
                sock.sendall(data)
        except OSError:
            pass  # the sibling has gone; it reconnects if it still runs
        finally:
            self.relays.discard(viewer)
            # Not hub.leave(): what a sibling relays is counted by the sibling,
            # for its own viewers, not as this worker's audience.
            hub.forget(viewer)
            sock.close()
            self._relay_left()
