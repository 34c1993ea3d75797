"""Letting a viewer into a stream, and the wait for a stream that is starting.

Right after a start (of the server, a gunicorn worker, the app whose first
request starts the upstreams, or an on-demand upstream) the stream is not
online for a moment.  A viewer that tunes in then is added to the hub at
once, so it misses no packet, and waits up to ``graceperiod`` seconds for
the first one: a set-top box switching to the channel gets the stream, not a
404.  If the first attempt fails, or the stream is switched off meanwhile,
the viewer is taken out again and refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hub import Hub
from .lifecycle import Lifecycle
from .viewer import Viewer


@dataclass(frozen=True)
class Refusal:
    """Why a viewer may not join a stream now, and the HTTP status that says so."""

    reason: str
    status: int = 404


def join(hub: Hub, lifecycle: Lifecycle, remote: str = "", head: bytes = b"",
         keepalive: bool = True) -> Viewer | None:
    """A new viewer of the stream, or None if the stream does not take one now.

    A stream waiting for its upstream to come back takes it at once (it
    starts with the next connection); one whose first attempt is under way
    holds it until that attempt delivers or ends (see :meth:`Hub.add` for
    ``head`` and ``keepalive``).
    """
    if not lifecycle.expecting:
        return None
    viewer = hub.add(remote, head=head, keepalive=keepalive, current=lifecycle.online)
    if lifecycle.connecting:
        viewer.log.info("viewer waiting", reason="the stream's first upstream attempt is under way")
        lifecycle.first_attempt_done.wait(lifecycle.graceperiod)
        if not lifecycle.online or not lifecycle.enabled or viewer.closed:
            hub.remove(viewer, counted=False)  # it has received nothing: no counters to keep
            return None
    return viewer
