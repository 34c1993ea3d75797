"""A configured stream: its hub, its upstream greenlet and its preamble."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..config import Config, ConfigError, StreamConfig
from .hub import Hub
from ..sources import SourceSettings, open_connection
from ..ts.analysis import Analyser
from .ownership import FOLLOW_RECONNECT, Ownership
from ..sources.base import describe, resolve_path
from .upstream import Opener, Upstream


_NO_RELAYS: frozenset = frozenset()


class Stream:
    """Everything restreamer keeps for one ``type: stream`` resource."""

    def __init__(self, resource: StreamConfig, config: Config, opener: Opener = open_connection,
                 shared: Path | None = None):
        self.resource = resource
        self.serve = resource.serve
        self.hub = Hub(resource.serve, config.outputbuffer, config.graceperiod)
        self.analyser = Analyser() if config.tsanalysis else None
        settings = SourceSettings(timeout=config.timeout, inputbuffer=config.inputbuffer,
                                  mru=resource.mru, clientinterface=resource.clientinterface,
                                  base_dir=config.base_dir, stream=resource.serve)
        self.upstream = Upstream(self.hub, resource.remotes, settings, reconnect=config.reconnect,
                                 readtimeout=config.readtimeout, opener=opener,
                                 analyser=self.analyser)
        #: Under ``gunicorn -w N``: which worker pulls the remotes (see core/ownership.py).
        self.ownership = None if shared is None else Ownership(
            self.hub, shared, self.upstream,
            lambda url: Upstream(self.hub, [url], settings, reconnect=FOLLOW_RECONNECT,
                                 readtimeout=0, opener=opener, analyser=self.analyser))
        self.preamble = _read_preamble(resource, config)

    def start(self) -> None:
        (self.ownership or self.upstream).start()

    def stop(self) -> None:
        self.hub.set_enabled(False)
        (self.ownership or self.upstream).stop()

    @property
    def relays(self) -> set | frozenset:
        """The hub's viewers that are sibling workers, not anyone's audience."""
        return self.ownership.relays if self.ownership is not None else _NO_RELAYS


def _read_preamble(resource: StreamConfig, config: Config) -> bytes:
    if not resource.preamble:
        return b""
    path = resolve_path(config.base_dir, resource.preamble)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(config.source, f"{resource.where}.preamble",
                          f"cannot read {path}: {describe(e)}") from None


def viewer_count(streams: Iterable[Stream]) -> int:
    """Viewers connected to any of ``streams``."""
    return sum(len(s.hub.viewers) - len(s.relays) for s in streams)
