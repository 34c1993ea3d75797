"""The hub of one stream: it owns the stream's viewers and hands every chunk
from the upstream to each of them.

A hub outlives upstream connections.  It is *online* from the first packet
of a connection until that connection ends; then it holds its viewers for a
grace period, waiting for the upstream to come back, and closes them if it
does not.  Counters are kept per chunk, never per packet.
"""

from __future__ import annotations

import time

import gevent
from gevent.event import Event

from .counters import Traffic
from ..log import get_logger
from ..redact import redact_url
from ..ts.packets import PACKET_SIZE
from .viewer import Viewer

_log = get_logger("streaming")

# Coalescing.  Upstreams often write a few packets at a time (an encoder's
# 1316-byte UDP-sized writes come ~400 times a second at 4 Mbit/s); waking
# every viewer for each would cost a greenlet switch and a send per viewer per
# write.  So chunks are gathered for a short window and handed out together.
# The window grows with the number of viewers, where the saving is largest,
# and is capped so the delay it adds stays small.
MIN_WINDOW = 0.010  # seconds
MAX_WINDOW = 0.022
WINDOW_PER_VIEWER = 0.000020
#: Gathered bytes that are handed out at once, whatever the window.
FLUSH_BYTES = 64 * 1024


class Hub:
    """Fan-out point of a stream: ``publish()`` in, viewer queues out."""

    def __init__(self, name: str, outputbuffer: int, graceperiod: float):
        self.name = name
        self.viewers: set[Viewer] = set()
        self.enabled = True  # the control API's online/offline switch
        self.online = False  # an upstream is delivering packets
        self.url: str | None = None  # the upstream currently connected
        self._grace: gevent.Greenlet | None = None
        # Cleared when an upstream starts; set once its first attempt has
        # delivered a packet or ended.
        self._first_attempt_over = Event()
        self._first_attempt_over.set()
        # Totals since start; those of viewers still connected are added on read.
        self.packets_received = 0
        self.bytes_received = 0
        self.departed = Traffic()  # counters of viewers that have left
        self._received_by_url: dict[str, tuple[int, int]] = {}  # of finished connections
        self._received_at_connect = (0, 0)
        # Switches: connections replaced while viewers were held.
        self.switches = 0
        self.switch_gap = 0.0  # seconds viewers saw no data, over all switches
        self._last_data = 0.0  # monotonic time of the last chunk published
        self._lost_url: str | None = None  # the connection the held viewers had
        self._pending: list[bytes] = []  # chunks gathered for the current window
        self._pending_bytes = 0
        self._timer = None  # ends the current window
        self.configure(outputbuffer, graceperiod)

    def configure(self, outputbuffer: int, graceperiod: float) -> None:
        """Set the queue size of viewers joining from now on, and the grace period."""
        self.outputbuffer = outputbuffer
        self.graceperiod = graceperiod
        # A chunk larger than a viewer's queue could never be queued, not even
        # into an empty one, so windows and chunks are kept within it.
        self._queue_bytes = outputbuffer * PACKET_SIZE
        self._flush_bytes = min(FLUSH_BYTES, self._queue_bytes)

    # -- upstream side -----------------------------------------------------

    def publish(self, chunk: bytes, at_once: bool = False) -> None:
        """Take one chunk of whole packets for every viewer.  Never blocks.

        The chunk reaches the viewers' queues at the end of the current
        coalescing window, together with the others of that window; with
        ``at_once`` (an upstream that gathers a window's data itself), it
        ends the window now.
        """
        self.packets_received += len(chunk) // PACKET_SIZE
        self.bytes_received += len(chunk)
        if not self.online:
            self._come_online()
        self._last_data = time.monotonic()
        if not self.viewers:
            return
        if self._pending_bytes + len(chunk) > self._flush_bytes:
            # The window is full: hand it out, and let this chunk start the
            # next one, so viewers get to drain their queues in between.
            self.flush()
        if len(chunk) > self._queue_bytes:
            size = self._queue_bytes
            for start in range(0, len(chunk), size):
                self._offer(chunk[start:start + size])
            return
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if at_once:
            self.flush()
        elif self._timer is None:
            self._timer = gevent.get_hub().loop.timer(self.window)
            self._timer.start(self.flush)

    @property
    def window(self) -> float:
        """Seconds of upstream data gathered into one hand-out, for this many viewers."""
        return min(MAX_WINDOW, MIN_WINDOW + len(self.viewers) * WINDOW_PER_VIEWER)

    def flush(self) -> None:
        """Hand what was gathered to every viewer as one shared chunk."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_bytes = 0
        self._offer(pending[0] if len(pending) == 1 else b"".join(pending))

    def _offer(self, chunk: bytes) -> None:
        packets = len(chunk) // PACKET_SIZE
        for viewer in self.viewers:
            viewer.offer(chunk, packets)

    def upstream_connected(self, url: str) -> None:
        self.url = url
        self._received_at_connect = (self.packets_received, self.bytes_received)

    def upstream_lost(self) -> None:
        """The upstream connection ended: hold the viewers for the grace period."""
        self.flush()
        if self.url is not None:
            self._received_by_url = self.received_by_url()
        url, self.url = self.url, None
        if not self.online:
            return
        self.online = False
        if self.viewers and self.graceperiod > 0:
            self._lost_url = url
            self._grace = gevent.spawn_later(self.graceperiod, self._grace_expired)
            _log.info("stream waiting", stream=self.name, viewers=len(self.viewers),
                      graceperiod=self.graceperiod)
        else:
            self.close_viewers()

    def received_by_url(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) received from each upstream URL, the current one included."""
        totals = dict(self._received_by_url)
        if self.url is not None:
            packets, size = totals.get(self.url, (0, 0))
            base_packets, base_bytes = self._received_at_connect
            totals[self.url] = (packets + self.packets_received - base_packets,
                                size + self.bytes_received - base_bytes)
        return totals

    def upstream_starting(self) -> None:
        """An upstream starts (at start-up, on demand, with new remotes): viewers
        joining now wait for its first attempt (see :meth:`join`)."""
        self._first_attempt_over.clear()

    def first_attempt_over(self) -> None:
        """The upstream's first attempt has ended: viewers held by :meth:`join` stop waiting."""
        self._first_attempt_over.set()

    def _come_online(self) -> None:
        self.online = True
        self._first_attempt_over.set()
        if self._grace is not None:
            self._grace.kill(block=False)
            self._grace = None
            self._switched()
        _log.info("stream online", stream=self.name, url=self.url)

    def _switched(self) -> None:
        """Held viewers continue with a new connection: count and log the gap they saw."""
        gap = time.monotonic() - self._last_data
        self.switches += 1
        self.switch_gap += gap
        _log.info("upstream switched", stream=self.name, old_url=redact_url(self._lost_url or ""),
                  new_url=redact_url(self.url or ""), gap=round(gap, 3), viewers=len(self.viewers))

    def _grace_expired(self) -> None:
        self._grace = None
        _log.info("stream offline", stream=self.name, viewers=len(self.viewers),
                  reason="upstream did not come back within the grace period")
        self.close_viewers()

    # -- viewer side ---------------------------------------------------------

    @property
    def starting(self) -> bool:
        """The upstream's first attempt is under way: no packet yet, no failure yet."""
        return not self._first_attempt_over.is_set()

    @property
    def state(self) -> str:
        """disabled, online, waiting (grace period), connecting (first attempt) or offline."""
        if not self.enabled:
            return "disabled"
        if self.online:
            return "online"
        if self._grace is not None:
            return "waiting"
        return "connecting" if self.starting else "offline"

    @property
    def accepting(self) -> bool:
        """New viewers are let in while data flows, may soon flow again, or is
        about to flow for the first time."""
        return self.enabled and (self.online or self._grace is not None or self.starting)

    def join(self, remote: str = "") -> Viewer | None:
        """A new viewer of this stream, or None if the stream does not take one now.

        Right after a start (of the server, a gunicorn worker, the app whose
        first request starts the upstreams, or an on-demand upstream) the
        stream is not online for a moment.  A viewer that tunes in then is added at once, so it misses
        no packet, and waits up to ``graceperiod`` seconds for the first one:
        a set-top box switching to the channel gets the stream, not a 404.
        If the first attempt fails instead, the viewer is taken out again.
        """
        if not self.accepting:
            return None
        viewer = Viewer(self.outputbuffer, remote=remote, stream=self.name)
        self.viewers.add(viewer)
        if self.starting:
            _log.info("viewer waiting", stream=self.name, remote=remote,
                      reason="the stream's first upstream attempt is under way")
            self._first_attempt_over.wait(self.graceperiod)
            if not self.online:
                self.viewers.discard(viewer)  # it has received nothing: no counters to keep
                return None
        return viewer

    def leave(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.discard(viewer)
            self.departed.add(viewer, viewer.duration)

    def traffic(self) -> Traffic:
        """The counters of every viewer since start, those still connected included."""
        total = Traffic()
        total.add(self.departed)
        for viewer in self.viewers:
            total.add(viewer, viewer.duration)
        return total

    def evict_stalled(self, droptimeout: float, now: float) -> int:
        """Disconnect viewers that have done nothing but drop for ``droptimeout`` s."""
        stalled = [v for v in self.viewers
                   if v.dropping_since is not None and now - v.dropping_since >= droptimeout]
        for viewer in stalled:
            _log.info("viewer evicted", stream=self.name, remote=viewer.remote,
                      reason=f"only dropping for {droptimeout:g} s (droptimeout)",
                      dropped_packets=viewer.packets_dropped)
            viewer.evict()
        return len(stalled)

    def set_enabled(self, enabled: bool) -> None:
        """Switch the stream on or off; off closes every viewer and refuses new ones."""
        self.enabled = enabled
        if not enabled:
            self.close_viewers()

    def close_viewers(self) -> None:
        self.flush()  # what was accepted goes out before the end
        if self._grace is not None:
            self._grace.kill(block=False)
            self._grace = None
        for viewer in list(self.viewers):
            viewer.close()
