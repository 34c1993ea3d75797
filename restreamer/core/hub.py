"""The hub of one stream: its backlog, its viewers, and the hand-out of every
chunk from the upstream to them.

The upstream's data is gathered for a short window and appended to the
stream's :class:`~restreamer.core.backlog.Backlog` as one shared chunk.  Each
viewer is a position in that backlog.  Viewers that keep up and whose socket
the web layer lent (the direct path) are written to here, by a non-blocking
send per chunk; the others are woken to take what is new from their
position.  A viewer that falls out of the backlog resumes, whole GOPs later,
at a place where a decoder can start (PAT, PMT, then a RAP).

A hub outlives upstream connections.  It is *online* from the first packet
of a connection until that connection ends; then it waits for a grace period
for the upstream to come back (letting viewers in meanwhile), and closes its
viewers if it does not.  Counters are kept per chunk, never per packet.
"""

from __future__ import annotations

import time

import gevent
from gevent.event import Event

from .backlog import Backlog
from .counters import Traffic
from ..log import get_logger
from ..redact import redact_url
from ..ts.packets import PACKET_SIZE
from ..ts.psi import NULL_PACKET
from ..ts.starts import StartPoints
from .viewer import Viewer

_log = get_logger("streaming")

# Coalescing.  Upstreams often write a few packets at a time (an encoder's
# 1316-byte UDP-sized writes come ~400 times a second at 4 Mbit/s); handing
# each out would cost a send per viewer per write.  So chunks are gathered
# for a short window and handed out together.  The window grows with the
# number of viewers, where the saving is largest, and is capped so the delay
# it adds stays small.
MIN_WINDOW = 0.020  # seconds
MAX_WINDOW = 0.022
WINDOW_PER_VIEWER = 0.000020
#: Gathered bytes that are handed out at once, whatever the window.
FLUSH_BYTES = 64 * 1024
#: A connection that has sent no PAT for this long is served as it comes
#: (raw or synthetic packets): fast start never holds back what it cannot parse.
NO_PAT_SECONDS = 0.5


class Hub:
    """Fan-out point of a stream: ``publish()`` in, viewers out."""

    def __init__(self, name: str):
        self.name = name
        self.graceperiod = 10.0
        self.faststart = True
        self.keepalive = 1.0
        self.backlog = Backlog(16 * 1024 * 1024, 6.0)
        self.viewers: set[Viewer] = set()
        self._live: set[Viewer] = set()  # caught up, written to by publish's greenlet
        self._others: set[Viewer] = set()  # every other viewer
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
        self._lost_url: str | None = None  # the connection the held viewers had
        self._pending: list[bytes] = []  # chunks gathered for the current window
        self._pending_bytes = 0
        self._timer = None  # ends the current window
        self._points = StartPoints()  # of the current connection
        self._connected_at = time.monotonic()
        self._raw = False  # the current connection carries no PAT: served as it comes
        self._pats = 0  # PATs seen by _points when the last PAT was recorded
        self._pat_chunk = -1  # index of the newest chunk that holds a PAT
        self._last_data = time.monotonic()
        self._last_null = 0.0
        self._keepalive = None

    def configure(self, *, graceperiod: float, faststart: bool, backlog_bytes: int,
                  backlog_seconds: float, keepalive: float) -> None:
        """Set the grace period, fast start, the backlog's bounds and the keepalive interval."""
        self.graceperiod = graceperiod
        self.faststart = faststart
        self.backlog.max_bytes = backlog_bytes
        self.backlog.max_seconds = backlog_seconds
        self.keepalive = keepalive

    # -- upstream side -----------------------------------------------------

    def publish(self, chunk: bytes, at_once: bool = False) -> None:
        """Take one chunk of whole packets for every viewer.  Never blocks.

        The chunk reaches the viewers at the end of the current coalescing
        window, together with the others of that window; with ``at_once``
        (an upstream that gathers a window's data itself), it ends the window now.
        """
        self.packets_received += len(chunk) // PACKET_SIZE
        self.bytes_received += len(chunk)
        if not self.online:
            self._come_online()
        if self._pending_bytes + len(chunk) > FLUSH_BYTES:
            self.flush()
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
        """Append what was gathered to the backlog and hand it to the viewers."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_bytes = 0
        chunk = pending[0] if len(pending) == 1 else b"".join(pending)
        now = time.monotonic()
        self._last_data = now
        points = self._points
        starts = points.scan(chunk)
        backlog = self.backlog
        first = backlog.append(chunk, now, starts)
        if points.pats != self._pats:
            self._pats = points.pats
            self._pat_chunk = backlog.end - 1
        if not self._raw and self._pats == 0 and now - self._connected_at > NO_PAT_SECONDS:
            self._raw = True
        self._deliver(first)
        self._trim(now)

    def _deliver(self, first: int) -> None:
        """Write the new chunks to the live viewers, wake the others."""
        backlog = self.backlog
        fallen = []
        if self._live:
            # Usually one chunk; more where the window was split at a start.
            pieces = []
            for index in range(first, backlog.end):
                chunk = backlog.chunk(index)
                pieces.append((index, chunk, len(chunk), len(chunk) // PACKET_SIZE))
            for viewer in self._live:
                for index, chunk, size, packets in pieces:
                    try:
                        sent = viewer.send(chunk)
                    except BlockingIOError:
                        sent = 0
                    except OSError:
                        sent = -1
                    if sent != size:
                        fallen.append((viewer, index, sent))
                        break
                    viewer.bytes_sent += size
                    viewer.packets_sent += packets
        for viewer, index, sent in fallen:
            self._fall(viewer, index, max(sent, 0))
            if sent < 0:
                viewer.closed = True  # the client is gone: its greenlet finds out by sending
                viewer.stop_at = viewer.next
        for viewer in self._others:
            if viewer.next is None:
                self._place(viewer, first)
            if viewer.idle:
                viewer.wake()

    def _fall(self, viewer: Viewer, index: int, sent: int) -> None:
        """A live viewer's socket is full: its own greenlet takes over from chunk ``index``."""
        viewer.bytes_sent += sent
        viewer.packets_sent = viewer.bytes_sent // PACKET_SIZE
        viewer.next = index
        viewer.offset = sent
        viewer.pos = self.backlog.position(index) + sent
        viewer.live = False
        self._live.discard(viewer)
        self._others.add(viewer)
        viewer.wake()

    def fall_behind(self, viewer: Viewer, sent: int) -> None:
        """Stop writing to ``viewer`` here (it ends, or waits elsewhere)."""
        if viewer.live:
            self._fall(viewer, self.backlog.end, sent)

    def go_live(self, viewer: Viewer) -> None:
        """A viewer of the direct path has caught up: write to it from now on."""
        if viewer in self.viewers and not viewer.closed:
            viewer.live = True
            self._others.discard(viewer)
            self._live.add(viewer)

    def _trim(self, now: float) -> None:
        """Drop what is beyond the backlog's bounds; viewers still on it skip ahead."""
        backlog = self.backlog
        drop = backlog.excess(now)
        if not drop:
            return
        first = backlog.first + drop
        for viewer in self._others:
            if viewer.next is not None and viewer.next < first:
                self._cut(viewer)
                self._count_drop(viewer, backlog.position(first))
                viewer.pos = backlog.position(first)
                if viewer.stop_at is None:
                    if viewer.dropping_since is None:
                        viewer.dropping_since = now
                    self._place(viewer, first)
                else:
                    viewer.next = viewer.stop_at  # closing: what is gone is not sent
            elif viewer.next is None and viewer.stop_at is None and viewer.pos:
                # waiting for a start after a skip: what passes meanwhile is lost too
                self._count_drop(viewer, backlog.position(first))
                viewer.pos = max(viewer.pos, backlog.position(first))
        backlog.drop(drop)

    def _cut(self, viewer: Viewer) -> None:
        """Take a viewer off its position, finishing the packet it is in the
        middle of (viewers get whole packets only).  What its head still
        holds of whole packets (a start's PAT and PMT, a null packet) goes too."""
        if viewer.bytes_sent:
            torn = len(viewer.head) % PACKET_SIZE
            viewer.head = viewer.head[:torn] if torn else b""
        if viewer.offset % PACKET_SIZE:
            chunk = self.backlog.chunk(viewer.next)
            tail = PACKET_SIZE - viewer.offset % PACKET_SIZE
            viewer.head = bytes(viewer.head) + chunk[viewer.offset:viewer.offset + tail]
            viewer.pos += tail
        viewer.next = None
        viewer.offset = 0

    def _place(self, viewer: Viewer, since: int) -> None:
        """Give a viewer waiting for a start the oldest one at or after chunk ``since``.

        Streams that cannot be parsed, and streams that fast start is off for
        and that carry no PAT, resume at ``since`` itself.
        """
        backlog = self.backlog
        start = backlog.start_from(since)
        if start is not None:
            index, prefix = start
            if prefix or self._points.at_pats:
                viewer.psi = True
            if prefix:
                viewer.head = bytes(viewer.head) + prefix
        elif self._raw:
            index = since
        else:
            return  # the next start is still to come
        self._count_drop(viewer, backlog.position(index))
        viewer.next = index
        viewer.offset = 0
        viewer.start_index = index
        viewer.pos = backlog.position(index)
        viewer.wake()

    @staticmethod
    def _count_drop(viewer: Viewer, position: int) -> None:
        if viewer.pos and position > viewer.pos:
            skipped = position - viewer.pos
            viewer.bytes_dropped += skipped
            viewer.packets_dropped += skipped // PACKET_SIZE

    def restart_at_rap(self) -> None:
        """A new upstream connection: viewers continue at its first start
        (PAT, PMT, RAP), never mid-GOP, and never with a torn packet.

        Streams whose last connection carried no PAT are continued as they
        come, as is every stream with fast start off.
        """
        self.flush()
        had_pat = self._pats > 0
        self._points = StartPoints()
        self._connected_at = time.monotonic()
        self._pats = 0
        if not self.faststart or not had_pat:
            return
        backlog = self.backlog
        backlog.clear_starts()
        for viewer in list(self._live):
            self._fall(viewer, backlog.end, 0)
        for viewer in self._others:
            if viewer.stop_at is None and viewer.next is not None:
                self._cut(viewer)
                self._count_drop(viewer, backlog.total)
                viewer.pos = backlog.total

    def upstream_connected(self, url: str) -> None:
        self.url = url
        self._received_at_connect = (self.packets_received, self.bytes_received)
        self.restart_at_rap()
        self._raw = False

    def upstream_lost(self, hold: bool = True) -> None:
        """The upstream connection ended: wait for it for the grace period,
        letting viewers in meanwhile, whether or not anyone watches now
        (``hold=False``: it was closed on purpose and nobody waits for it)."""
        self.flush()
        if self.url is not None:
            self._received_by_url = self.received_by_url()
        url, self.url = self.url, None
        if not self.online:
            return
        self.online = False
        if not hold:
            self.close_viewers()
        elif self.graceperiod > 0:
            self._grace = gevent.spawn_later(self.graceperiod, self._grace_expired)
            self._lost_url = url
            _log.info("stream waiting", stream=self.name, viewers=len(self.viewers),
                          graceperiod=self.graceperiod)
        else:
            self.close_viewers()

    def upstream_gone(self) -> None:
        """No further upstream attempt will be made: nobody waits for one."""
        self.first_attempt_over()
        if self._grace is not None:
            self._grace.kill(block=False)
            self._grace = None
            _log.info("stream offline", stream=self.name, viewers=len(self.viewers),
                      reason="no further upstream attempt")
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
            if self.viewers:  # a reconnect with nobody watching is no switch: nobody saw a gap
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

    # -- keepalive -----------------------------------------------------------

    def _arm_keepalive(self) -> None:
        if self.keepalive > 0 and self._keepalive is None:
            tick = self.keepalive / 4
            self._keepalive = gevent.get_hub().loop.timer(tick, tick)
            self._keepalive.start(self._keep_alive)

    def _keep_alive(self) -> None:
        """While no data comes, a null packet every ``keepalive`` s to each
        viewer that is waiting for data and has had its PAT, so that players
        do not give up on a stream that is coming back."""
        if not self.viewers:
            self._keepalive.close()
            self._keepalive = None
            return
        now = time.monotonic()
        if now - max(self._last_data, self._last_null) < self.keepalive:
            return
        self._last_null = now
        end = self.backlog.end
        fallen = []
        for viewer in self._live:
            if viewer.keepalive and (viewer.psi or self._pat_chunk >= viewer.start_index):
                viewer.psi = True
                try:
                    sent = viewer.send(NULL_PACKET)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    continue  # the next chunk's send finds out
                viewer.bytes_sent += sent
                if sent < PACKET_SIZE:
                    fallen.append((viewer, sent))
                else:
                    viewer.packets_sent += 1
        for viewer, sent in fallen:
            self._fall(viewer, end, 0)
            viewer.head = memoryview(NULL_PACKET)[sent:]
        for viewer in self._others:
            if (viewer.idle and viewer.keepalive and not viewer.head and viewer.stop_at is None
                    and (viewer.next is None or viewer.next >= end)
                    and (viewer.psi or (viewer.next is not None
                                        and viewer.start_index <= self._pat_chunk < viewer.next))):
                viewer.psi = True
                viewer.head = NULL_PACKET
                viewer.wake()

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

    def join(self, remote: str = "", head: bytes = b"", keepalive: bool = True) -> Viewer | None:
        """A new viewer of this stream, or None if the stream does not take one now.

        With fast start the viewer is placed at the newest start in the
        backlog (PAT, PMT, RAP), or waits for the next one (always, while
        the upstream is away); without, on a stream that cannot be parsed,
        or on a connection that has sent no PAT yet, it joins at the live edge.  ``head`` is
        sent before anything else (the preamble).  ``keepalive`` False: no
        null packets for this viewer (a sibling worker's hub, which keeps its
        own viewers alive and must not take null packets for a stream back).

        Right after a start (of the server, a gunicorn worker, the app whose
        first request starts the upstreams, or an on-demand upstream) the
        stream is not online for a moment.  A viewer that tunes in then is added at once, so it misses
        no packet, and waits up to ``graceperiod`` seconds for the first one:
        a set-top box switching to the channel gets the stream, not a 404.
        If the first attempt fails, or the stream is switched off meanwhile,
        the viewer is taken out again and refused.
        """
        if not self.accepting:
            return None
        viewer = Viewer(self, remote=remote, stream=self.name, head=head)
        viewer.keepalive = keepalive
        backlog = self.backlog
        self._trim(time.monotonic())
        if self.faststart and not self._raw and self._pats:
            # While the upstream is away the backlog is the past: a viewer
            # arriving then starts with the next connection.
            start = backlog.newest_start() if self.online else None
            if start is not None:
                self._place(viewer, start[0])
        else:
            viewer.next = viewer.start_index = backlog.end
            viewer.pos = backlog.total
        self.viewers.add(viewer)
        self._others.add(viewer)
        self._arm_keepalive()
        if self.starting:
            _log.info("viewer waiting", stream=self.name, remote=remote,
                      reason="the stream's first upstream attempt is under way")
            self._first_attempt_over.wait(self.graceperiod)
            if not self.online or not self.enabled or viewer.closed:
                self.forget(viewer)  # it has received nothing: no counters to keep
                return None
        return viewer

    def forget(self, viewer: Viewer) -> None:
        """Take a viewer out without adding its counters to the stream's."""
        viewer.live = False
        self.viewers.discard(viewer)
        self._live.discard(viewer)
        self._others.discard(viewer)

    def leave(self, viewer: Viewer) -> None:
        if viewer in self.viewers:
            self.forget(viewer)
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
