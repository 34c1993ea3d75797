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

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import gevent
from gevent import socket
from gevent.server import StreamServer

from ..base.lockfile import LockFile
from ..base.periodic import Periodic
from .admission import join
from .runtime import stream_key
from .viewer import Viewer

if TYPE_CHECKING:
    from .hub import Hub
    from .lifecycle import Lifecycle
    from .pull import Pull

#: Seconds between a follower's tries for the lock: how long a dead owner's
#: stream waits for its next owner, at most.
POLL = 0.25
#: Seconds between a follower's attempts to reach the owner's socket.
FOLLOW_RECONNECT = 0.25
#: Seconds between checks whether an offline stream takes a sibling yet.
SIBLING_WAIT = 0.5
#: What the owner's hub and logs call a socket client (a sibling worker).
SIBLING_REMOTE = "worker"


class Ownership:
    """This worker's role for one stream: owner (pulls, serves the socket) or follower."""

    def __init__(self, hub: "Hub", lifecycle: "Lifecycle", directory: Path,
                 owned: "Pull", follow: Callable[[str], "Pull"],
                 sibling_left: Callable[[], None] = lambda: None):
        key = stream_key(hub.name)
        self.hub = hub
        self.lifecycle = lifecycle
        self.log = hub.log
        self.lock_path = directory / f"{key}.lock"
        self.socket_path = directory / f"{key}.sock"
        self.follow_url = f"unix://{self.socket_path}"
        self.owned = owned  # the pull of the stream's remotes, run while owner
        self._follow = follow
        self._sibling_left = sibling_left  # an on-demand owner may be left without viewers
        self.owner = False
        #: The owner's socket clients (sibling workers), in its hub but nobody's audience.
        self.siblings: set[Viewer] = set()
        self._lock: LockFile | None = None
        self._poll = Periodic(self._check, POLL)
        self._was_online = False
        self._follower: "Pull | None" = None
        self._server: StreamServer | None = None

    def start(self) -> None:
        if self._lock is None:
            self._lock = LockFile(self.lock_path)
        self._poll.start()

    @property
    def running(self) -> bool:
        """Started and not stopped: as :class:`~.pull.Pull`'s, for whatever starts either on demand."""
        return self._poll.running

    def stop(self, hold: bool = True) -> None:
        """As :meth:`~.pull.Pull.stop`: ``hold=False`` holds nobody for a next connection."""
        self._poll.stop(wait=True)
        if self._follower is not None:
            self._follower.stop(hold)
            self._follower = None
        if self._server is not None:
            self._server.close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)
        self.owned.stop(hold)
        if self._lock is not None:
            self._lock.close()  # releases the lock: a sibling takes over
            self._lock = None
        self.owner = False

    def _check(self) -> None:
        """Every :data:`POLL` seconds: a follower tries for the lock, the owner
        watches its upstream."""
        if self.owner:
            self._end_siblings_when_offline()
        elif self._lock is not None and self._lock.acquire():
            self._take_over()
        elif self._follower is None:
            self.log.info("stream following", socket=str(self.socket_path))
            self._follower = self._follow(self.follow_url)
            self._follower.start()

    def _take_over(self) -> None:
        if self._follower is not None:
            self._follower.stop()  # its hub holds the viewers for the grace period
            self._follower = None
        self.owner = True
        self._was_online = False
        self.log.info("stream owned", socket=str(self.socket_path))
        self._listen()
        self.owned.start()

    def _end_siblings_when_offline(self) -> None:
        """When this hub loses its upstream, end its siblings' connections too.

        Their hubs then start their grace periods with this one's, and their
        viewers are closed when these are, instead of a grace period later.
        The siblings reconnect at once and wait, silent, for the stream.
        """
        online = self.lifecycle.online
        if self._was_online and not online:
            for sibling in list(self.siblings):
                sibling.close()
        self._was_online = online

    def _listen(self) -> None:
        # A dead owner's socket file stays behind; binding needs the path free.
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        self.socket_path.chmod(0o600)  # the stream is for this server's workers only
        listener.listen(128)
        self._server = StreamServer(listener, self._serve_sibling)
        self._server.start()

    def _serve_sibling(self, sock: socket.socket, _address: object) -> None:
        """Serve one sibling worker the raw stream, as a viewer of this hub."""
        hub = self.hub
        viewer = join(hub, self.lifecycle, SIBLING_REMOTE, keepalive=False)
        # An offline stream takes no viewer; the sibling's hub, which lost its
        # upstream too, runs out its own grace period meanwhile.
        while viewer is None:
            gevent.sleep(SIBLING_WAIT)
            viewer = join(hub, self.lifecycle, SIBLING_REMOTE, keepalive=False)
        self.siblings.add(viewer)
        try:
            for data in viewer.chunks():
                sock.sendall(data)
        except OSError:
            pass  # the sibling has gone; it reconnects if it still runs
        finally:
            self.siblings.discard(viewer)
            # Not counted: what a sibling passes on is counted by the sibling,
            # for its own viewers, not as this worker's audience.
            hub.remove(viewer, counted=False)
            sock.close()
            self._sibling_left()
