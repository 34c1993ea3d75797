"""Keepalive: null packets to the viewers of a stream that hears nothing.

While a stream gets no data for ``keepalive`` s (a stall, a reconnect), each
viewer that has had its PAT and waits for data gets a null packet (PID
0x1FFF) every ``keepalive`` s, until data flows again; so do viewers held for
a new connection's first start while it arrives.  Players then do not give
up on a stream that is coming back.  A part of the hub (it moves the hub's
viewers between its direct and other sets), kept apart for size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..ts.packets import PACKET_SIZE
from ..ts.psi import NULL_PACKET

if TYPE_CHECKING:
    from .hub import Hub


class Keepalives:
    """The null packets of one hub's viewers, on a timer that runs while it has any."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.last_null = 0.0  # sent to the viewers following the stream
        self.last_held_null = 0.0  # sent to the viewers held for a start
        self._timer = None

    def arm(self) -> None:
        hub = self.hub
        if hub.keepalive > 0 and self._timer is None:
            self._timer = hub.clock.every(hub.keepalive / 4, self._beat)

    def hold(self) -> None:
        """A new connection: the null packets of viewers held for its first
        start keep the pace of the last data or null packet."""
        self.last_held_null = max(self.hub.last_data, self.last_null)

    def _beat(self) -> None:
        hub = self.hub
        if not hub.viewers:
            self._timer.close()
            self._timer = None
            return
        now = hub.clock.now()
        following = now - max(hub.last_data, self.last_null) >= hub.keepalive
        held = now - self.last_held_null >= hub.keepalive
        if following:
            self.last_null = now
        if held:
            self.last_held_null = now
        end = hub.backlog.end
        pat_chunk = hub._pat_chunk
        fallen = []
        for viewer in hub._direct if following else ():
            cursor = viewer.cursor
            if (viewer.keepalive and not viewer.closed
                    and (cursor.had_pat or pat_chunk >= cursor.first_index)):
                cursor.had_pat = True
                sent = viewer.send_now(NULL_PACKET)
                if sent < 0:
                    # The client is gone: the viewer ends now, not when data returns
                    # (a stalled stream would count it, and hold its socket, till then).
                    fallen.append((viewer, sent))
                    continue
                viewer.bytes_sent += sent
                if sent < PACKET_SIZE:
                    fallen.append((viewer, sent))
                else:
                    viewer.packets_sent += 1
        for viewer, sent in fallen:
            hub._fall(viewer, end, min(sent, 0))
            if sent >= 0:
                viewer.cursor.head = memoryview(NULL_PACKET)[sent:]
        for viewer in hub._others if following or held else ():
            cursor = viewer.cursor
            due = held if cursor.index is None else following and cursor.index >= end
            if (due and viewer.idle and viewer.keepalive and not cursor.head and cursor.stop_at is None
                    and cursor.heard_pat(pat_chunk)):
                cursor.had_pat = True
                cursor.head = NULL_PACKET
                viewer.wake()
