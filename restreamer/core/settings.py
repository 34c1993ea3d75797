"""What a stream is made of, read once from its resource and the config's
globals: every part of the stream (hub, lifecycle, upstream) reads its
settings here, under the config's own names, and none repeats a default."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, StreamConfig
from ..sources.base import resolve_path


@dataclass(frozen=True)
class Settings:
    """Everything a stream is made of, from its resource and the config's globals.

    Two streams with equal settings serve the same: a reload leaves such a
    stream alone.
    """

    remotes: tuple[str, ...]
    timeout: float
    inputbuffer: int
    mru: int
    clientinterface: str | None
    base_dir: str
    reconnect: float
    readtimeout: float
    graceperiod: float
    faststart: bool
    backlogseconds: float
    backlogbytes: int
    keepalive: float
    ondemand: bool
    idletimeout: float
    tsanalysis: bool
    preamble: bytes
    verify: bool | str  # HTTPS upstreams: check certificates (against this CA bundle, if a path)
    variant: str | None  # HLS upstreams: the variant of a master playlist
    program: int | None  # the one program served, of a multi-program stream
    hls: tuple[float, int] | None  # HLS: (segment target seconds, window), or None: not served

    @classmethod
    def of(cls, resource: StreamConfig, config: Config) -> "Settings":
        """The settings of a stream resource; reads its preamble (none if it
        cannot: the config's warnings say so)."""
        return cls(
            remotes=resource.remotes, timeout=config.timeout, inputbuffer=config.inputbuffer,
            mru=resource.mru, clientinterface=resource.clientinterface, base_dir=config.base_dir,
            reconnect=config.reconnect, readtimeout=config.readtimeout,
            graceperiod=config.graceperiod, faststart=config.faststart_of(resource),
            backlogseconds=config.backlogseconds, backlogbytes=config.backlogbytes,
            keepalive=config.keepalive,
            ondemand=config.ondemand_of(resource), idletimeout=config.idletimeout_of(resource),
            tsanalysis=config.tsanalysis, preamble=_read_preamble(resource, config),
            verify=_verify(resource, config), variant=resource.variant,
            program=resource.program,
            hls=(config.hlssegment, config.hlswindow) if config.hls_of(resource) else None)

    @property
    def connection(self) -> tuple:
        """What an upstream connection is opened with: a change needs a new connection."""
        return (self.remotes, self.timeout, self.inputbuffer, self.mru, self.clientinterface,
                self.base_dir, self.tsanalysis, self.verify, self.variant, self.program)


def _verify(resource: StreamConfig, config: Config) -> bool | str:
    """What HTTPS upstreams are checked against: requests' ``verify``."""
    if resource.insecure:
        return False
    return resolve_path(config.base_dir, config.cafile) if config.cafile else True


def _read_preamble(resource: StreamConfig, config: Config) -> bytes:
    if not resource.preamble:
        return b""
    path = resolve_path(config.base_dir, resource.preamble)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""
