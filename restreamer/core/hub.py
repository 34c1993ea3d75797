"""The hub of one stream: its backlog, its viewers, and the hand-out of every
chunk from the upstream to them.

The upstream's data is gathered for a short window and appended to the
stream's :class:`~restreamer.core.backlog.Backlog` as one shared chunk.  Each
viewer is a :class:`~restreamer.core.cursor.Cursor` in that backlog, which
the hub moves.  Viewers that keep up and whose socket the web layer lent are
*direct*: written to here, by a non-blocking send per chunk; the others are
woken to take what is new from their cursor.  A viewer that falls out of the
backlog resumes, whole GOPs later, at a place where a decoder can start (PAT,
PMT, then a RAP).

Whether the upstream is up, waiting or gone is not the hub's business: the
stream's :class:`~restreamer.core.lifecycle.Lifecycle` tells it when a new
connection begins (:meth:`Hub.restart_at_rap`) and when to close its viewers.
Counters are kept per chunk, never per packet.
"""

from __future__ import annotations

from .backlog import Backlog
from .clock import REAL, Clock
from .counters import Traffic
from .keepalive import Keepalives
from .settings import Settings
from .splice import Splices
from ..log import get_logger
from ..ts.packets import PACKET_SIZE
from ..ts.starts import StartPoints
from .viewer import Viewer

_log = get_logger("streaming")

# Coalescing.  Upstreams often write a few packets at a time (an encoder's
# 1316-byte UDP-sized writes come ~400 times a second at 4 Mbit/s); handing
# each out would cost a send per viewer per write.  So chunks are gathered
# for a short window and handed out together.  The window grows with the
# number of viewers, and is capped so the delay it adds stays small.
MIN_WINDOW = 0.020  # seconds
MAX_WINDOW = 0.022
WINDOW_PER_VIEWER = 0.000020
#: Hand-outs begin at least this far apart.  Each costs a fixed part (the
#: upstream read, start points, TS analysis, the event loop's wake-up) and a
#: send per viewer, which per byte is cheaper the more it carries; a window
#: plus the hand-out itself make the period at 1000 viewers, this makes it
#: the same at fewer, so that data waits about as long at any count.
PERIOD = 0.036
#: Gathered bytes that are handed out at once, whatever the window.
FLUSH_BYTES = 64 * 1024
#: A connection with no PAT this long after its first packet (not its accept: data may
#: come later) is served as it comes: fast start never holds back what it cannot parse.
NO_PAT_SECONDS = 0.5


class Hub:
    """Fan-out point of a stream: ``publish()`` in, viewers out."""

    def __init__(self, name: str, settings: Settings, clock: Clock = REAL):
        self.name = name
        self.clock = clock
        self.log = _log.bind(stream=name)
        self.backlog = Backlog(settings.backlogbytes, settings.backlogseconds)
        self.faststart = settings.faststart
        self.keepalive = settings.keepalive
        self.viewers: set[Viewer] = set()
        self._direct: set[Viewer] = set()  # caught up, written to by publish's greenlet
        self._others: set[Viewer] = set()  # every other viewer
        # Totals since start; those of viewers still connected are added on read.
        self.packets_received = 0
        self.bytes_received = 0
        self.departed = Traffic()  # counters of viewers that have left
        self._pending: list[bytes] = []  # chunks gathered for the current window
        self._pending_bytes = 0
        self._timer = None  # ends the current window
        self.splices = Splices()  # output PSI versions, and the viewers' jumps
        self._points = StartPoints(self.splices.versions)  # of the current connection
        self._first_packet_at: float | None = None  # of the current connection
        self._connection_first = 0  # index of the current connection's first chunk
        self._raw = False  # the current connection carries no PAT: served as it comes
        self._pats = 0  # PATs seen by _points when the last PAT was recorded
        self._pat_chunk = -1  # index of the newest chunk that holds a PAT
        self.last_data = clock.now()  # when the last chunk was handed out
        self.keepalives = Keepalives(self)
        #: Told of every chunk appended and of every new connection (the HLS
        #: segmenter, core/segments.py): ``chunk(piece, start, now)``, ``discontinuity(now)``.
        self.listener = None

    def configure(self, settings: Settings) -> None:
        """Take a reloaded stream's fast start, backlog bounds and keepalive interval."""
        self.faststart = settings.faststart
        self.backlog.max_bytes = settings.backlogbytes
        self.backlog.max_seconds = settings.backlogseconds
        self.keepalive = settings.keepalive

    # -- upstream side -----------------------------------------------------

    def publish(self, chunk: bytes, at_once: bool = False) -> None:
        """Take one chunk of whole packets for every viewer.  Never blocks.

        The chunk reaches the viewers at the end of the current coalescing
        window, together with the others of that window; with ``at_once``
        (an upstream that gathers a window's data itself), it ends the window now.
        """
        self.packets_received += len(chunk) // PACKET_SIZE
        self.bytes_received += len(chunk)
        if self._pending_bytes + len(chunk) > FLUSH_BYTES:
            self.flush()
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if at_once:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.later(self.until_next(), self.flush)

    @property
    def window(self) -> float:
        """Seconds of upstream data gathered into one hand-out, for this many viewers."""
        return min(MAX_WINDOW, MIN_WINDOW + len(self.viewers) * WINDOW_PER_VIEWER)

    def until_next(self) -> float:
        """Seconds from now to the next hand-out: a window's gathering, and
        at least :data:`PERIOD` after the last one began."""
        return max(self.window, self.last_data + PERIOD - self.clock.now())

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
        now = self.clock.now()
        self.last_data = now
        points = self._points
        starts = points.scan(chunk)
        patch = self.splices.versions.patch  # a changed program gets new PSI versions
        chunk = patch(chunk)
        if starts:
            starts = [(offset, patch(prefix)) for offset, prefix in starts]
        backlog = self.backlog
        first = backlog.append(chunk, now, starts)
        if self.listener is not None:
            for piece, prefix in backlog.appended(first, len(starts)):
                self.listener.chunk(piece, prefix, now)
        if points.pats != self._pats:
            self._pats = points.pats
            self._pat_chunk = backlog.end - 1
        if self._first_packet_at is None:
            self._first_packet_at = now
            self._connection_first = first
        if not self._raw and self._pats == 0 and now - self._first_packet_at > NO_PAT_SECONDS:
            self._raw = True
        self._hand_out(first)
        self._trim(now)

    def _hand_out(self, first: int) -> None:
        """Write the new chunks (``first`` on) to the direct viewers, wake the others."""
        backlog = self.backlog
        direct = self._direct
        caught_up = []
        for viewer in self._others:
            cursor = viewer.cursor
            if cursor.index is None:
                self._place(viewer, first if cursor.awaiting is None else cursor.awaiting)
            if viewer.idle:
                if viewer.send is not None and not viewer.closed and cursor.caught_up(first):
                    caught_up.append(viewer)  # the direct path's viewer waits for this
                else:
                    viewer.wake()
        for viewer in caught_up:
            viewer.cursor.direct = True
            self._others.discard(viewer)
            direct.add(viewer)
        fallen = []
        if direct:
            # Usually one chunk; more where the window was split at a start.
            pieces = []
            for index in range(first, backlog.end):
                chunk = backlog.chunk(index)
                pieces.append((index, chunk, len(chunk), len(chunk) // PACKET_SIZE))
            for viewer in direct:
                if viewer.closed:  # its cursor stopped at the end of what it was sent
                    fallen.append((viewer, None, 0))
                    continue
                for index, chunk, size, packets in pieces:
                    sent = viewer.send_now(chunk)
                    if sent != size:
                        fallen.append((viewer, index, sent))
                        break
                    viewer.bytes_sent += size
                    viewer.packets_sent += packets
        for viewer, index, sent in fallen:
            if index is None:
                self._undirect(viewer)
                continue
            self._fall(viewer, index, sent)

    def _undirect(self, viewer: Viewer) -> None:
        self._direct.discard(viewer)
        self._others.add(viewer)

    def _fall(self, viewer: Viewer, index: int, sent: int) -> None:
        """A direct viewer's socket is full (``sent`` bytes of chunk ``index`` went):
        its own greenlet takes over from there.  ``sent`` -1: the client is gone,
        and the greenlet, woken, ends."""
        gone = sent < 0
        sent = max(sent, 0)
        viewer.bytes_sent += sent
        viewer.packets_sent = viewer.bytes_sent // PACKET_SIZE
        viewer.cursor.resume(index, sent, self.backlog.position(index) + sent)
        if gone:
            viewer.closed = True
            viewer.cursor.stop_at = viewer.cursor.index
        self._undirect(viewer)
        viewer.wake()

    def _trim(self, now: float) -> None:
        """Drop what is beyond the backlog's bounds; viewers still on it skip ahead."""
        backlog = self.backlog
        drop = backlog.excess(now)
        if not drop:
            return
        first = backlog.first + drop
        pids = None
        for viewer in self._others:
            cursor = viewer.cursor
            if cursor.index is not None and cursor.index < first:
                if pids is None:
                    pids = self._points.pids
                self.splices.leave(cursor, backlog, pids, self._pat_chunk)
                cursor.skip_to(backlog.position(first))
                if cursor.stop_at is None:
                    if cursor.dropping_since is None:
                        cursor.dropping_since = now
                    self._place(viewer, first)
                else:
                    cursor.index = cursor.stop_at  # closing: what is gone is not sent
            elif cursor.index is None and cursor.stop_at is None and cursor.position:
                # waiting for a start after a skip: what passes meanwhile is lost too
                cursor.skip_to(backlog.position(first))
        backlog.drop(drop)

    def _place(self, viewer: Viewer, since: int) -> None:
        """Give a viewer waiting for a start the oldest one at or after chunk ``since``.

        On a connection that carries no PAT the viewer resumes at ``since``
        itself, or, if it has been sent nothing yet, at the connection's first chunk.
        """
        backlog = self.backlog
        start = backlog.start_from(since)
        if start is not None:
            index, prefix = start
            if viewer.bytes_sent:  # a jump: marked so that receivers take it
                prefix = self.splices.front(backlog, index, prefix, self._points.pids,
                                            self.clock.now())
                if prefix is None:
                    viewer.cursor.awaiting = index
                    return
            viewer.cursor.place(index, backlog.position(index), prefix,
                                had_pat=bool(prefix) or self._points.at_pats)
        elif self._raw:
            if not viewer.bytes_sent:  # waited for a PAT that never came: all of it
                since = max(self._connection_first, backlog.first)
            viewer.cursor.place(since, backlog.position(since), b"", had_pat=False)
        else:
            return  # the next start is still to come
        viewer.wake()

    def restart_at_rap(self) -> None:
        """A new upstream connection: viewers continue at its first start
        (PAT, PMT, RAP), never mid-GOP, and never with a torn packet.

        Streams whose last connection carried no PAT are continued as they
        come, as is every stream with fast start off.
        """
        self.flush()
        had_pat = self._pats > 0
        pids = self._points.pids
        self._points = StartPoints(self.splices.versions)
        self._first_packet_at = None
        self._pats = 0
        self._raw = False
        if self.listener is not None:
            self.listener.discontinuity(self.clock.now())
        if not self.faststart or not had_pat:
            return
        backlog = self.backlog
        backlog.clear_starts()
        for viewer in list(self._direct):
            self._fall(viewer, backlog.end, 0)
        for viewer in self._others:
            cursor = viewer.cursor
            if cursor.stop_at is None and cursor.index is not None:
                self.splices.leave(cursor, backlog, pids, self._pat_chunk)
                cursor.skip_to(backlog.total)
        self.keepalives.hold()

    # -- viewer side ---------------------------------------------------------

    def add(self, remote: str = "", head: bytes = b"", keepalive: bool = True,
            current: bool = True) -> Viewer:
        """A new viewer of this stream.

        With fast start the viewer is placed at the newest start in the
        backlog (PAT, PMT, RAP), or waits for the next one (on a connection
        that has sent no PAT yet: its first); without, or on a stream that
        carries no PAT, it joins at the live edge.  ``current`` False: the backlog is the
        past (the upstream is away), so the viewer waits for the next
        connection's first start.  ``head`` is sent before anything else (the
        preamble).  ``keepalive`` False: no null packets for this viewer (a
        sibling worker, which keeps its own viewers alive and must not take
        null packets for a stream back).
        """
        viewer = Viewer(self.backlog, self.log, self.clock.now, remote=remote, head=head,
                        keepalive=keepalive)
        backlog = self.backlog
        self._trim(self.clock.now())
        if self.faststart and not self._raw:
            # Before the connection's first PAT there is no start yet: the viewer
            # waits for the first one, as one joining during a reconnect does.
            start = backlog.newest_start() if current and self._pats else None
            if start is not None:
                self._place(viewer, start[0])
        else:
            viewer.cursor.at_edge(backlog)
        self.viewers.add(viewer)
        self._others.add(viewer)
        self.keepalives.arm()
        return viewer

    def remove(self, viewer: Viewer, counted: bool = True) -> None:
        """Take a viewer out; ``counted``: its counters stay in the stream's totals
        (not for a viewer that received nothing, or a sibling worker's)."""
        if viewer not in self.viewers:
            return
        viewer.cursor.direct = False
        self.viewers.discard(viewer)
        self._direct.discard(viewer)
        self._others.discard(viewer)
        if counted:
            self.departed.add(viewer, viewer.duration)

    def traffic(self) -> Traffic:
        """The counters of every viewer since start, those still connected included."""
        total = Traffic()
        total.add(self.departed)
        for viewer in self.viewers:
            total.add(viewer, viewer.duration)
        return total

    def evict_stalled(self, droptimeout: float) -> int:
        """Disconnect viewers that have done nothing but drop for ``droptimeout`` s."""
        now = self.clock.now()
        stalled = [v for v in self.viewers if v.cursor.dropping_since is not None
                   and now - v.cursor.dropping_since >= droptimeout]
        for viewer in stalled:
            viewer.log.info("viewer evicted", reason=f"only dropping for {droptimeout:g} s (droptimeout)",
                            dropped_packets=viewer.packets_dropped)
            viewer.evict()
        return len(stalled)

    def close_viewers(self) -> None:
        """End every viewer's response once what was accepted has gone out."""
        self.flush()
        for viewer in list(self.viewers):
            viewer.close()
