"""A stream's HLS viewers.

An HLS player holds no connection open: it fetches the playlist and its
segments again and again.  So an HLS viewer is a client (its address and
User-Agent) that keeps asking: it joins with its first request and leaves
when it has asked nothing for a while.  Meanwhile it counts as a viewer in
statistics, metrics, limits and the dashboard, with what it was sent.
"""

from __future__ import annotations

from .counters import Traffic
from ..ts.packets import PACKET_SIZE


class Session(Traffic):
    """One HLS client of a stream: who, since when, last seen when, and what it got."""

    __slots__ = ("key", "remote", "started", "seen", "dropping_since")

    def __init__(self, key: tuple[str, str], remote: str, now: float):
        super().__init__()
        self.key = key
        self.remote = remote
        self.started = self.seen = now
        self.dropping_since = None  # an HLS viewer never lags behind: it asks for what it wants

    @property
    def duration(self) -> float:
        return self.seen - self.started

    def sent(self, size: int, now: float) -> None:
        self.bytes_sent += size
        self.packets_sent += size // PACKET_SIZE
        self.seen = now


class Audience:
    """The HLS sessions of one stream, and the counters of those that have left."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], Session] = {}
        self.departed = Traffic()

    def __len__(self) -> int:
        return len(self.sessions)

    def find(self, key: tuple[str, str], now: float) -> Session | None:
        """The session of a client that asks again, seen now; None for a new one."""
        session = self.sessions.get(key)
        if session is not None:
            session.seen = now
        return session

    def add(self, key: tuple[str, str], remote: str, now: float) -> Session:
        session = self.sessions[key] = Session(key, remote, now)
        return session

    def expire(self, now: float, timeout: float) -> list[Session]:
        """Take out the sessions that have asked nothing for ``timeout`` s."""
        gone = [s for s in self.sessions.values() if now - s.seen >= timeout]
        for session in gone:
            del self.sessions[session.key]
            self.departed.add(session, session.duration)
        return gone

    def traffic(self) -> Traffic:
        """The counters of every session since start, those still going included."""
        total = Traffic()
        total.add(self.departed)
        for session in self.sessions.values():
            total.add(session, session.duration)
        return total
