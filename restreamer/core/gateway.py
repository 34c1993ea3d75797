"""The udpxy gateway's groups: a group that a viewer asks for by URL
(``/udp/GROUP:PORT``, ``/rtp/GROUP:PORT`` below a ``udpxy`` resource's
``serve``) becomes an on-demand stream, as a configured ``ondemand`` stream is:
joined with its first viewer, left ``idletimeout`` seconds after its last
(see :mod:`.stream`), and then forgotten, so the relay holds only the groups
in use.  While open, a group is one of the relay's streams: statistics,
metrics, the dashboard, limits and admission see it as any other.

Every viewer of a group shares its one stream, however its path was spelt
(``@GROUP`` or ``GROUP``): the stream's path is the group's one spelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import gevent

from ..config import Config, StreamConfig, UdpxyConfig
from ..config.gateway import Group, networks, parse_group, refusal
from .admission import Refusal
from .claims import Claims
from .clock import Clock
from .settings import Settings
from .stream import Stream
from .pull import Upstreams
from .upstream import Opener


@dataclass
class _Open:
    """An open group: its stream, and the requests that hold it."""

    stream: Stream
    group: Group
    gateway: str  # the serve path of its udpxy resource
    pending: int = 0  # requests between finding it and the end of their admission


class Gateway:
    """The open groups of every ``udpxy`` resource, by path; each is also in
    the relay's ``streams`` while it is open."""

    def __init__(self, streams: dict[str, Stream], config: Config, opener: Opener,
                 claims: Claims | None, clock: Clock, upstreams: Upstreams | None = None):
        self.streams = streams
        self.upstreams = upstreams  # a group joins a configured stream's pull of the same remote
        self.config = config
        self.opener = opener
        # A group is claimed alone under gunicorn -w N: a worker that owns a
        # configured stream's upstream serves no group it has not opened.
        self.claims = claims
        self.clock = clock
        self.groups: dict[str, _Open] = {}

    def open(self, resource: UdpxyConfig, rest: str) -> Stream | Refusal:
        """The stream of the group that ``rest`` (the path below the gateway's)
        names, opened if it is not; or why not: 400 (malformed), 403 (not
        allowed), 503 (``maxgroups`` open).  The caller admits its viewer and
        then calls :meth:`settle`, whatever came of it."""
        try:
            group = parse_group(rest)
        except ValueError as e:
            return Refusal(str(e), 400)
        refused = refusal(group, networks(resource.allow))
        if refused is not None:
            return Refusal(refused[1], refused[0])
        path = resource.group_prefix + group.path
        found = self.groups.get(path)
        if found is None:
            limit = self.config.maxgroups
            if limit and len(self.groups) >= limit:
                return Refusal(f"{limit} groups are open, as many as maxgroups allows", 503)
            stream = Stream(group_stream(resource, group, path), self.config, self.opener, self.claims,
                            clock=self.clock, upstreams=self.upstreams, alone=True)
            stream.start()  # on demand: the viewer's admission connects it
            found = self.groups[path] = _Open(stream, group, resource.serve)
            self.streams[path] = stream
        found.pending += 1
        return found.stream

    def settle(self, stream: Stream) -> None:
        """A request that :meth:`open` gave ``stream`` has been admitted or
        refused: a group left with nothing to do (a refused first viewer, a
        HEAD request) is forgotten at once."""
        found = self.groups.get(stream.serve)
        if found is None or found.stream is not stream:
            return
        found.pending -= 1
        self._forget_unused(found)

    def sweep(self) -> None:
        """Forget the groups gone idle (every second: see Relay)."""
        for found in list(self.groups.values()):
            self._forget_unused(found)

    def configure(self, config: Config) -> None:
        """A reloaded config: groups whose gateway is gone, or no longer allows
        them, are closed; the others take their gateway's new settings."""
        self.config = config
        gateways = {r.serve: r for r in config.resources if isinstance(r, UdpxyConfig)}
        for found in list(self.groups.values()):
            resource = gateways.get(found.gateway)
            if resource is None:
                self._forget(found, f"its gateway {found.gateway} is no longer configured")
                continue
            refused = refusal(found.group, networks(resource.allow))
            if refused is not None:
                self._forget(found, refused[1])
                continue
            stream = found.stream
            changed = group_stream(resource, found.group, stream.serve)
            settings = Settings.of(changed, config)
            if changed != stream.resource or settings != stream.settings:
                gevent.spawn(stream.reconfigure, changed, settings)

    def _forget_unused(self, found: _Open) -> None:
        stream = found.stream
        if not (found.pending or stream.hub.viewers or stream.audience) and stream.lifecycle.idle:
            self._forget(found, "idle")

    def _forget(self, found: _Open, reason: str) -> None:
        stream = found.stream
        del self.groups[stream.serve]
        if self.streams.get(stream.serve) is stream:
            del self.streams[stream.serve]
        stream.log.info("group closed", gateway=found.gateway, reason=reason)
        gevent.spawn(stream.stop)  # its viewers, if any, are closed


def group_stream(resource: UdpxyConfig, group: Group, path: str) -> StreamConfig:
    """The stream resource a group is served as: its gateway's keys, on demand."""
    return StreamConfig(type="stream", serve=path, remotes=(group.remote,), mru=resource.mru,
                        clientinterface=resource.clientinterface, ondemand=True,
                        idletimeout=resource.idletimeout, faststart=resource.faststart, hls=False,
                        authentication=resource.authentication, name=group.name,
                        where=f"{resource.where} ({group.path})")
