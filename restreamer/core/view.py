"""What operations (statistics, metrics, the dashboard) read of a stream: a
read-only view of its figures, so that they never reach into its hub.

A view is made per reading and holds nothing of its own: the stream's
counters live on the data path (per chunk), and reading them costs that
path nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Mapping

from ..redact import redact_url
from .counters import Traffic

if TYPE_CHECKING:
    from ..ts.analysis import Analyser
    from .stream import Stream


@dataclass(frozen=True)
class Received:
    """What arrived from one upstream URL, shown without its secrets."""

    url: str
    online: bool  # it is the upstream delivering now
    packets_received: int
    bytes_received: int


@dataclass(frozen=True)
class ViewerFigures:
    """One viewer as the dashboard lists it."""

    remote: str
    duration: float  # seconds since it joined
    bytes_sent: int
    packets_dropped: int
    hls: bool = False  # an HLS client, counted while it keeps asking


class StreamView:
    """One stream's figures, read when asked."""

    __slots__ = ("_stream",)

    def __init__(self, stream: "Stream"):
        self._stream = stream

    @property
    def path(self) -> str:
        return self._stream.serve

    @property
    def state(self) -> str:
        """One of :data:`restreamer.core.lifecycle.STATES`."""
        return self._stream.state

    @property
    def online(self) -> bool:
        """An upstream is delivering (whatever the control API's switch says)."""
        return self._stream.lifecycle.online

    @property
    def upstream(self) -> str | None:
        """The URL of the upstream delivering now, without its secrets."""
        return self._stream.shown_upstream

    @property
    def pulled(self) -> str | None:
        """The remote this process pulls now, shown: not a gunicorn worker's owner."""
        stream = self._stream
        url = stream.lifecycle.url
        if not stream.lifecycle.online or url not in stream.resource.remotes:
            return None
        return stream.shown_urls[url]

    @property
    def remotes(self) -> list[str]:
        """The stream's remotes, shown."""
        stream = self._stream
        return [stream.shown_urls[url] for url in stream.resource.remotes]

    @property
    def analyser(self) -> "Analyser | None":
        return self._stream.analyser

    @property
    def viewers(self) -> int:
        """Viewers of the stream now, HLS clients included (sibling workers that
        relay it are not viewers)."""
        stream = self._stream
        return len(stream.hub.viewers) - len(stream.siblings) + len(stream.audience)

    def totals(self) -> dict[str, int]:
        """Counters since start, viewers still watching included."""
        stream = self._stream
        hub = stream.hub
        traffic = hub.traffic()
        if stream.ownership is None:
            received = (hub.packets_received, hub.bytes_received)
        else:
            traffic = _without(traffic, stream.siblings)
            received = _from_remotes(stream)
        traffic.add(stream.audience.traffic())
        # A follower worker's switches mirror its owner's: only the owner's count.
        switching = stream.ownership is None or stream.ownership.owner
        return dict(traffic.as_dict(), viewers=self.viewers,
                    packets_received=received[0], bytes_received=received[1],
                    stream_time_ns=int(traffic.stream_time * 1e9),
                    switches=stream.lifecycle.switches if switching else 0,
                    switch_gap_ns=int(stream.lifecycle.switch_gap * 1e9) if switching else 0,
                    missing=stream.pull.missing if switching else 0,
                    backlog_bytes=hub.backlog.size)

    def received(self, every_url: bool) -> list[Received]:
        """What arrived from each remote; ``every_url`` adds the URLs the stream
        had before a reload changed its remotes, and under gunicorn its owner
        worker's socket."""
        stream = self._stream
        lifecycle = stream.lifecycle
        counts = dict.fromkeys(stream.resource.remotes, (0, 0))
        counts.update((url, count) for url, count in lifecycle.received_by_url().items()
                      if every_url or url in counts)
        return [Received(stream.shown_urls.get(url) or redact_url(url),
                         lifecycle.online and lifecycle.url == url,
                         packets, size)
                for url, (packets, size) in counts.items()]

    def audience(self) -> list[ViewerFigures]:
        """The viewers now, the longest-watching first (sibling workers are not viewers)."""
        siblings = self._stream.siblings
        viewers = sorted((v for v in self._stream.hub.viewers if v not in siblings),
                         key=lambda v: v.started)
        figures = [ViewerFigures(v.remote, v.duration, v.bytes_sent, v.packets_dropped)
                   for v in viewers]
        sessions = sorted(self._stream.audience.sessions.values(), key=lambda s: s.started)
        return figures + [ViewerFigures(s.remote, s.duration, s.bytes_sent, 0, hls=True) for s in sessions]

    # -- what the dashboard explains -------------------------------------------

    @property
    def name(self) -> str:
        """The channel's name (``name``), else its path."""
        return self._stream.resource.name or self._stream.serve

    @property
    def hls(self) -> str | None:
        """The path of the stream's HLS playlist, if it is served as HLS."""
        stream = self._stream
        return stream.resource.playlist_path if stream.segmenter is not None else None

    @property
    def online_since(self) -> float | None:
        """Wall-clock seconds since when the current upstream connection delivers."""
        stream = self._stream
        return stream.pull.connected_since if stream.lifecycle.online else None

    @property
    def reconnects(self) -> int:
        """Connections after the first."""
        return max(0, self._stream.pull.connections - 1)

    @property
    def last_error(self) -> tuple[str, str, float] | None:
        """The last upstream error: (reason, URL as shown, wall-clock time)."""
        return self._stream.pull.last_error

    @property
    def shared_with(self) -> list[str]:
        """The other streams this stream's upstream connection feeds (equal remotes);
        in a follower worker, those that follow the same owner's pull here."""
        stream = self._stream
        ownership = stream.ownership
        if ownership is not None and not ownership.owner:
            return sorted(other.hub.name for other in ownership.sharing)
        return sorted(pull.hub.name for pull in stream.pull.sharing)

    @property
    def next_attempt(self) -> float | None:
        """Wall-clock time of the next upstream attempt, while one is awaited."""
        return self._stream.pull.next_attempt


class StreamViews(Mapping[str, StreamView]):
    """The views of a relay's streams by path, following its reloads."""

    def __init__(self, streams: Mapping[str, "Stream"]):
        self._streams = streams

    def __getitem__(self, path: str) -> StreamView:
        return StreamView(self._streams[path])

    def __iter__(self) -> Iterator[str]:
        # Snapshots: a reading that yields between slices outlives no change
        # of the streams (a udpxy group opened or forgotten, a reload).
        return iter(list(self._streams))

    def items(self) -> list[tuple[str, StreamView]]:  # type: ignore[override]
        return [(path, StreamView(stream)) for path, stream in list(self._streams.items())]

    def values(self) -> list[StreamView]:  # type: ignore[override]
        return [StreamView(stream) for stream in list(self._streams.values())]

    def __len__(self) -> int:
        return len(self._streams)


def _without(traffic: Traffic, siblings) -> Traffic:
    """``traffic`` without what went to sibling workers (they count their own viewers')."""
    for sibling in siblings:
        for name in Traffic.COUNTERS:
            setattr(traffic, name, getattr(traffic, name) - getattr(sibling, name))
        traffic.stream_time -= sibling.duration
    return traffic


def _from_remotes(stream: "Stream") -> tuple[int, int]:
    """(packets, bytes) received from the stream's remotes, not from its owner worker."""
    remotes = set(stream.resource.remotes)
    received = [counts for url, counts in stream.lifecycle.received_by_url().items() if url in remotes]
    return sum(p for p, _ in received), sum(b for _, b in received)
