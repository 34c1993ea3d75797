"""One upstream connection per upstream across the workers of a server.

The worker holding an upstream's claim (core/claims.py) owns every stream of
that upstream: it pulls the remotes and serves each of those streams raw on
``<key>.sock``.  Every other worker follows: a stream's upstream there is
its socket, read by the ordinary ``unix://`` source into its own hub.  Each
socket client is a viewer of the owner's hub, so the owner's fan-out (and
whatever start it gives a new viewer) feeds the other workers too.

The owner serves the socket of each of the upstream's streams that it
serves at all, running or not: a follower of a stream that no viewer of
the owner watches starts it there, on demand, as one more pull of the
upstream the owner runs, since the socket client is a viewer of its hub.
The follower's viewers meanwhile wait for its first packet, as viewers of
any starting stream do (up to ``graceperiod``).

When the owner dies the kernel drops its lock, one follower takes the
upstream over, and the others reconnect to its sockets; meanwhile every hub
holds its viewers for the grace period, as for any upstream that drops.
When the owner's stream loses its upstream, it ends the followers'
connections, so their grace periods run with its own.

On-demand streams compose through the upstream each role runs: a follower's
socket connection is an upstream like any other, started while the follower
has viewers, and the owner's socket clients are viewers of its hub, so the
owner pulls while any worker has viewers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import gevent
from gevent import socket
from gevent.server import StreamServer

from .admission import join
from .claims import Claim, Claims
from .runtime import stream_key
from .viewer import Viewer

if TYPE_CHECKING:
    from .hub import Hub
    from .lifecycle import Lifecycle
    from .pull import Pull

#: Seconds between a follower's attempts to reach the owner's socket.
FOLLOW_RECONNECT = 0.25
#: Seconds between checks whether an offline stream takes a sibling yet.
SIBLING_WAIT = 0.5
#: What the owner's hub and logs call a socket client (a sibling worker).
SIBLING_REMOTE = "worker"


class Ownership:
    """This worker's role for one stream, by its upstream's claim: owner
    (pulls, serves the socket) or follower."""

    def __init__(self, hub: "Hub", lifecycle: "Lifecycle", claims: Claims, owned: "Pull",
                 follow: Callable[[str], "Pull"], demand: Callable[[], None],
                 sibling_left: Callable[[], None], alone: bool = False):
        self.hub = hub
        self.lifecycle = lifecycle
        self.log = hub.log
        self.claims = claims
        # A stream claimed alone (a udpxy group, which only the workers that
        # have its viewers know) has an upstream key of its own.
        self.key = owned.key_text + (f" for {hub.name}" if alone else "")
        self.socket_path = claims.directory / f"{stream_key(hub.name)}.sock"
        self.follow_url = f"unix://{self.socket_path}"
        self.owned = owned  # the pull of the stream's remotes, run while owner
        self._follow = follow
        self._demand = demand  # a sibling's connection starts an on-demand stream
        self._sibling_left = sibling_left  # an on-demand owner may be left without viewers
        #: The owner's socket clients (sibling workers), in its hub but nobody's audience.
        self.siblings: set[Viewer] = set()
        self._running = False
        self._was_online = False
        self._follower: "Pull | None" = None
        self._server: StreamServer | None = None
        self._bound: int | None = None  # the inode of the socket file this worker bound

    @property
    def claim(self) -> Claim:
        """The upstream's claim: the same one while this stream enlists in or holds it."""
        return self.claims.of(self.key)

    @property
    def owner(self) -> bool:
        """This worker pulls the stream's upstream."""
        claim = self.claims.get(self.key)
        return claim is not None and claim.owned

    @property
    def sharing(self) -> list["Ownership"]:
        """The other streams of the upstream that run in this worker."""
        claim = self.claims.get(self.key)
        return [] if claim is None else [m for m in claim.holders if m is not self]

    # -- what the stream asks ------------------------------------------------

    def enlist(self) -> None:
        """The stream serves from now on: its socket is served while this worker owns the upstream."""
        self.claim.enlist(self)

    def withdraw(self) -> None:
        """The stream serves no more (stopped, or replaced by a reload)."""
        self.claim.withdraw(self)

    @property
    def running(self) -> bool:
        """Started and not stopped: as :class:`~.pull.Pull`'s, for whatever starts either on demand."""
        return self._running

    def start(self) -> None:
        if not self._running:
            self._running = True
            self.claim.hold(self)

    def stop(self, hold: bool = True) -> None:
        """As :meth:`~.pull.Pull.stop`: ``hold=False`` holds nobody for a next connection."""
        if not self._running:
            return
        self._running = False
        if self._follower is not None:
            self._follower.stop(hold)
            self._follower = None
        self.owned.stop(hold)
        self.claim.release(self)  # the last stream of the upstream here releases the lock

    # -- what the claim says -------------------------------------------------

    def lead(self) -> None:
        if not self._running:
            return  # stopped while the claim was taken
        if self._follower is not None:
            self._follower.stop()  # its hub holds the viewers for the grace period
            self._follower = None
        self._was_online = False
        self.log.info("stream owned", socket=str(self.socket_path))
        self.owned.start()

    def follow(self) -> None:
        if self._running and self._follower is None:
            self.log.info("stream following", socket=str(self.socket_path))
            self._follower = self._follow(self.follow_url)
            self._follower.start()

    def watch(self) -> None:
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

    def serve(self) -> None:
        if self._server is not None:
            return
        # A dead owner's socket file stays behind; binding needs the path free.
        self.socket_path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        self.socket_path.chmod(0o600)  # the stream is for this server's workers only
        self._bound = os.stat(self.socket_path).st_ino
        listener.listen(128)
        self._server = StreamServer(listener, self._serve_sibling)
        self._server.start()

    def unserve(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        # The siblings reconnect to whichever worker serves the stream now.
        for sibling in list(self.siblings):
            sibling.close()
        # Another worker may serve this path by now (a reload moved the stream
        # to an upstream it owns): its socket file is not this one's to remove.
        try:
            if os.stat(self.socket_path).st_ino == self._bound:
                self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def _serve_sibling(self, sock: socket.socket, _address: object) -> None:
        """Serve one sibling worker the raw stream, as a viewer of this hub."""
        hub = self.hub
        viewer = self._join()
        # An offline stream takes no viewer; the sibling's hub, which lost its
        # upstream too, runs out its own grace period meanwhile.
        while viewer is None:
            gevent.sleep(SIBLING_WAIT)
            if self._server is None:
                sock.close()
                return  # no longer this worker's to serve: the sibling reconnects elsewhere
            viewer = self._join()
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

    def _join(self) -> Viewer | None:
        self._demand()  # an on-demand stream nobody here watches starts for the sibling
        return join(self.hub, self.lifecycle, SIBLING_REMOTE, keepalive=False)
