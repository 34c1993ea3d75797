"""A configured stream: its hub, its upstream greenlet and its preamble."""

from __future__ import annotations

from typing import Iterable

from ..config import Config, ConfigError, StreamConfig
from .hub import Hub
from ..log import get_logger
from ..sources import SourceSettings, open_connection
from .upstream import Opener, Upstream


class Stream:
    """Everything restreamer keeps for one ``type: stream`` resource."""

    def __init__(self, resource: StreamConfig, config: Config, opener: Opener = open_connection):
        self.resource = resource
        self.serve = resource.serve
        logger = get_logger("streaming")
        self.hub = Hub(resource.serve, config.outputbuffer, config.graceperiod, logger)
        self.upstream = Upstream(
            self.hub, resource.remotes,
            SourceSettings(timeout=config.timeout, inputbuffer=config.inputbuffer, mru=resource.mru,
                           clientinterface=resource.clientinterface, base_dir=config.base_dir,
                           log=get_logger("source", stream=resource.serve).info),
            reconnect=config.reconnect, readtimeout=config.readtimeout, log=logger,
            opener=opener)
        self.preamble = _read_preamble(resource, config)

    def start(self) -> None:
        self.upstream.start()

    def stop(self) -> None:
        self.hub.set_enabled(False)
        self.upstream.stop()


def _read_preamble(resource: StreamConfig, config: Config) -> bytes:
    if not resource.preamble:
        return b""
    path = config.resolve_path(resource.preamble)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(config.source, f"{resource.where}.preamble",
                          f"cannot read {path}: {e.strerror}") from None


def viewer_count(streams: Iterable[Stream]) -> int:
    """Viewers connected to any of ``streams``."""
    return sum(len(s.hub.viewers) for s in streams)
