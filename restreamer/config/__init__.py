"""Load, validate and default a restreamer configuration.

The schema is the one of the original Go restreamer's ``restreamer.json`` so
that existing files keep working; a few keys are new (see the example
configs).  Files may be JSON or YAML.  Each key is declared once below, as a
field of its section, with its kind, default and doc (see :mod:`.keys`).
Every problem is reported as one :class:`ConfigError` line that names the
file, the key path and what is wrong; unknown keys are not errors but produce
warnings naming the nearest valid key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from ..sources import NOTIFICATION_SCHEMES, STATIC_SCHEMES, host_problem, url_problem
from ..sources.base import describe, resolve_path
from . import documents
from .addresses import listen_hint, listen_problem, parse_listen, url_path_problem
from .authentication import AUTH_TYPES, Authentication, check_users
from .errors import ConfigError, ConfigErrors, nearest
from .keys import (REQUIRED, Choice, Count, Flag, Kind, Nested, Reader, Remotes, Seconds, Section, Sections,
                   Strings, Text, join, key)
from .reference import reference as _reference
from .channels import check_channels
from .gateway import MULTICAST, check_gateways

RESOURCE_TYPES = ("stream", "static", "api", "udpxy")
_RESOURCE_TYPE = Choice(RESOURCE_TYPES)
API_KINDS = ("health", "statistics", "check", "control", "prometheus", "dashboard", "playlist")
NOTIFICATION_EVENTS = ("limit_hit", "limit_miss", "heartbeat")
NOTIFICATION_TYPES = ("url",)


# ---------------------------------------------------------------------------
# the schema


@dataclass(frozen=True, kw_only=True)
class Resource(Section):
    """One entry of ``resources``: a :class:`StreamConfig`, :class:`StaticConfig`,
    :class:`ApiConfig` or :class:`UdpxyConfig`."""

    TYPE: ClassVar[str] = ""
    type: str = key(_RESOURCE_TYPE, REQUIRED, "`stream`, `static`, `api` or (new) `udpxy`")
    serve: str = key(Text(url_path_problem), REQUIRED, "the URL path it is served at")
    authentication: Authentication = key(Nested(Authentication), Authentication(),
                                         "who may access it (default: everybody)")
    where: str  # key path of this entry, e.g. "resources[2]", for messages

    @property
    def remote(self) -> str:
        """The one remote of a static or a check/control API."""
        return self.remotes[0]  # type: ignore[attr-defined]


@dataclass(frozen=True, kw_only=True)
class StreamConfig(Resource):
    """A live stream relayed from its remotes."""

    TYPE: ClassVar[str] = "stream"
    remotes: tuple[str, ...] = key(Remotes(url_problem), (), "upstream URLs, tried in turn",
                                   names=("remote", "remotes"))
    mru: int = key(Count(minimum=188), 1500, "largest UDP datagram, bytes")
    clientinterface: str | None = key(Text(), None, "network interface for a multicast join")
    preamble: str | None = key(Text(), None, "TS file sent to each viewer before the stream")
    ondemand: bool | None = key(Flag(), None, "this stream's `ondemand` (default: the global one)",
                                new=True)
    idletimeout: float | None = key(Seconds(), None, "this stream's `idletimeout` (default: the "
                                                     "global one)", new=True)
    insecure: bool = key(Flag(), False, "https remotes: certificates are not checked (with a warning)",
                         new=True)
    faststart: bool | None = key(Flag(), None, "this stream's `faststart` (default: the global key)",
                                 new=True)
    program: int | None = key(Count(minimum=1), None, "serve only this program (its program_number) "
                                                       "of a multi-program stream", new=True)
    variant: str | None = key(Text(), None, "HLS remotes: the variant of a master playlist, by NAME, "
                                            "RESOLUTION or URI (default: the highest BANDWIDTH)", new=True)
    hls: bool | None = key(Flag(), None, "this stream's `hls` (default: the global key)", new=True)
    name: str = key(Text(), "", "the channel's name in the `playlist` API (default: `serve`)", new=True)
    group: str = key(Text(), "", "its group there (`group-title`)", new=True)
    logo: str = key(Text(), "", "the URL of the channel's logo there (`tvg-logo`)", new=True)
    tvgid: str = key(Text(), "", "the channel's EPG id there (`tvg-id`)", new=True)

    @property
    def playlist_path(self) -> str:  # where the stream's HLS playlist is
        return (self.serve[:-3] if self.serve.endswith(".ts") else self.serve) + ".m3u8"

    def check(self, reader: Reader, path: str) -> None:
        if not self.remotes:
            raise reader.fail(f"{path}.remote", "a stream needs at least one remote")
        if self.program is not None and self.program > 0xFFFF:
            raise reader.fail(f"{path}.program", f"{self.program} is not a program_number (1 to 65535)")
        if self.variant is not None and not any(url.startswith(("http:", "https:")) for url in self.remotes):
            reader.warn(f"{path}.variant", "no http(s) remote: only an HLS master playlist has variants")
        if self.insecure:
            reader.warn(f"{path}.insecure", "the certificates of its https remotes are not checked")


@dataclass(frozen=True, kw_only=True)
class StaticConfig(Resource):
    """One file or URL, cached."""

    TYPE: ClassVar[str] = "static"
    remotes: tuple[str, ...] = key(Remotes(lambda url: url_problem(url, STATIC_SCHEMES)), (),
                                   f"the file or URL ({', '.join(STATIC_SCHEMES)})",
                                   names=("remote", "remotes"))
    cache: float = key(Seconds(), 0, "seconds a fetched copy is served (0: fetched every time)")

    def check(self, reader: Reader, path: str) -> None:
        if len(self.remotes) != 1:
            raise reader.fail(f"{path}.remote", "a static resource needs exactly one remote")


@dataclass(frozen=True, kw_only=True)
class ApiConfig(Resource):
    """An API endpoint: health, statistics, check, control, prometheus or dashboard."""

    TYPE: ClassVar[str] = "api"
    api: str = key(Choice(API_KINDS), REQUIRED, "`health`, `statistics`, `check`, `control`, "
                   "`prometheus`, or (new) `dashboard` or `playlist` (an M3U channel list)")
    remotes: tuple[str, ...] = key(Remotes(), (), "check and control: the serve path of a stream",
                                   names=("remote", "remotes"))

    def check(self, reader: Reader, path: str) -> None:
        if self.api in ("check", "control") and len(self.remotes) != 1:
            raise reader.fail(f"{path}.remote", f"the {self.api} API needs the serve path of one stream")


@dataclass(frozen=True, kw_only=True)
class UdpxyConfig(Resource):
    """A udpxy-style gateway: ``udp/GROUP:PORT`` and ``rtp/GROUP:PORT`` below
    ``serve``, each group an on-demand stream (config/gateway.py, core/gateway.py)."""

    TYPE: ClassVar[str] = "udpxy"
    allow: tuple[str, ...] = key(Strings("an address or network"), MULTICAST, "groups (addresses, "
                                 "networks) viewers may ask for; a unicast address only if listed here",
                                 new=True)
    clientinterface: str | None = key(Text(), None, "network interface for a multicast join")
    mru: int = key(Count(minimum=188), 1500, "largest UDP datagram, bytes")
    idletimeout: float | None = key(Seconds(), None, "its groups' `idletimeout` (default: the global "
                                                     "one)", new=True)
    faststart: bool | None = key(Flag(), None, "its groups' `faststart` (default: the global key)",
                                 new=True)

    @property
    def group_prefix(self) -> str:
        """Where its groups' paths begin: ``serve`` with one trailing slash."""
        return self.serve.rstrip("/") + "/"


def _resource_type(reader: Reader, entries: dict, path: str) -> type:
    """The section type of one ``resources`` entry, from its ``type`` key."""
    if entries.get("type") is None:
        raise _RESOURCE_TYPE.missing(reader, f"{path}.type")
    chosen = _RESOURCE_TYPE.read(reader, entries["type"], f"{path}.type")
    return next(cls for cls in _RESOURCE_SECTIONS if cls.TYPE == chosen)


_RESOURCE_SECTIONS = (StreamConfig, StaticConfig, ApiConfig, UdpxyConfig)


@dataclass(frozen=True, kw_only=True)
class Notification(Section):
    """One entry of ``notifications``: an event and where to report it."""

    TYPE: ClassVar[str] = "notification"
    event: str = key(Choice(NOTIFICATION_EVENTS), REQUIRED, "`limit_hit`, `limit_miss` or `heartbeat`")
    type: str = key(Choice(NOTIFICATION_TYPES), "url", "`url`: an HTTP GET")
    url: str = key(Text(lambda url: url_problem(url, NOTIFICATION_SCHEMES)), REQUIRED, "where to send it")
    authentication: Authentication = key(Nested(Authentication, listed=False), Authentication(),
                                         "as whom to log in: `type` and `user`, as for resources")
    where: str


@dataclass(frozen=True, kw_only=True)
class User(Section):
    password: str = key(Text(), REQUIRED)


class _UserList(Kind):
    """``name: {password: ...}``; names keep their case."""

    def read(self, reader: Reader, value: Any, path: str) -> dict[str, str]:
        result = {}
        for name, entry in reader.mapping(value, path, None, fold_case=False).items():
            where = join(path, name)
            if ":" in name:
                raise reader.fail(where, "a user name must not contain ':' (Basic authentication "
                                         "cannot tell where it ends)")
            result[name] = reader.section(User, entry, where).password
            if not result[name]:
                reader.warn(f"{where}.password", "is empty: anyone who knows the user name gets in")
        return result


@dataclass(frozen=True, kw_only=True)
class Config(Section):
    """A validated configuration with every default filled in."""

    listen: str = key(Text(listen_problem, listen_hint), "localhost:http",
                      "`host:port`, `:port`, `[v6]:port`, service names")
    timeout: float = key(Seconds(), 0, "seconds to connect to an upstream and get its response head "
                                       "(0: no limit; HTTP(S): 10 s)")
    reconnect: float = key(Seconds(), 10, "seconds between upstream attempts (0: one attempt only)")
    readtimeout: float = key(Seconds(), 0, "seconds without a valid upstream packet before reconnecting "
                                           "(0: silence is waited out; 10 s of non-TS bytes are not)")
    inputbuffer: int = key(Count(), 1000, "packets; sizes the UDP receive buffer")
    outputbuffer: int = key(Count(minimum=1), 400, "accepted for the original's files; a viewer's "
                                                   "slack is the stream's backlog now")
    maxconnections: int = key(Count(), 0, "hard viewer limit across all streams (0: none)")
    fullconnections: int = key(Count(), 0, "soft limit: health says `full`, notifications fire")
    nostats: bool = key(Flag(), False, "collect no statistics")
    tsanalysis: bool = key(Flag(), True, "analyse every stream's packets: TR 101 290 errors, bitrates, "
                                         "codecs, keyframes (see Operations)", new=True)
    heartbeatinterval: float = key(Seconds(), 60, "seconds between heartbeat notifications")
    log: str = key(Text(), "", "log file, JSON lines (empty: stdout), under the CLI and gunicorn")
    profile: bool = key(Flag(), False, "accepted and ignored, with a warning when true: "
                                       "restreamer has no profiling server (use py-spy)")
    graceperiod: float = key(Seconds(), 10, "seconds viewers wait for an upstream to come back, "
                                            "or, just after a start, for its first packet", new=True)
    droptimeout: float = key(Seconds(), 10, "seconds a viewer may only lose packets before it is "
                                            "disconnected", new=True)
    limitstatus: int = key(Choice((404, 503)), 404, "status over `maxconnections` (404 as the "
                                                    "original, or 503)", new=True)
    faststart: bool = key(Flag(), True, "viewers start at PAT, PMT and the newest RAP in the backlog "
                                        "(false: the live edge); a stream resource may override it",
                          new=True)
    backlogseconds: float = key(Seconds(), 6, "the stream's shared backlog, in seconds: fast start "
                                              "needs a GOP in it; a viewer further behind skips "
                                              "whole GOPs", new=True)
    backlogbytes: int = key(Count(minimum=188), 16 * 1024 * 1024, "the same bound in bytes",
                            new=True)
    keepalive: float = key(Seconds(), 1, "seconds between null packets to viewers while their "
                                         "stream waits for data (0: none)", new=True)
    runtimedir: str = key(Text(), "", "under `gunicorn -c config/gunicorn.conf.py`: the directory "
                                      "the workers share (README, Scaling); empty: chosen there",
                          new=True)
    ondemand: bool = key(Flag(), False, "connect a stream's upstream only while it has viewers "
                                        "(a stream may override it)", new=True)
    idletimeout: float = key(Seconds(), 10, "seconds an on-demand upstream stays connected after "
                                            "its last viewer left", new=True)
    cafile: str = key(Text(), "", "CA bundle (PEM) that https upstreams' certificates are checked "
                                  "against (empty: the system's)", new=True)
    hls: bool = key(Flag(), False, "serve streams also as HLS, at `.m3u8` for `.ts` (a stream may override it)", new=True)
    hlssegment: float = key(Seconds(), 2, "HLS: seconds of whole GOPs a segment aims at", new=True)
    hlswindow: int = key(Count(minimum=1), 6, "HLS: segments listed in a playlist", new=True)
    maxgroups: int = key(Count(), 0, "udpxy gateways: groups open at once in one process (0: no "
                                     "limit); a request for another one gets 503", new=True)
    trustedproxies: tuple[str, ...] = key(Strings("an address or network"), (), "proxies (addresses, "
                                          "networks) whose `X-Forwarded-*` the `playlist` API believes", new=True)
    userlist: dict[str, str] = key(_UserList(), {}, "`name: {password: ...}`")  # user -> password
    resources: tuple[Resource, ...] = key(
        Sections(_RESOURCE_SECTIONS, _resource_type), (), "what is served")
    notifications: tuple[Notification, ...] = key(Sections((Notification,)), (), "HTTP GETs on events")

    source: str = "<dict>"  # file name, for messages
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # worth knowing, nothing wrong: logged at info level
    base_dir: str = "."  # relative paths in the config resolve against this

    @property
    def streams(self) -> tuple[StreamConfig, ...]:
        return tuple(r for r in self.resources if isinstance(r, StreamConfig))

    def faststart_of(self, stream: StreamConfig) -> bool:
        """Whether ``stream``'s viewers start at a RAP: its own key, else the global one."""
        return self.faststart if stream.faststart is None else stream.faststart

    def ondemand_of(self, stream: StreamConfig) -> bool:
        """Whether a stream connects only while it has viewers."""
        return self.ondemand if stream.ondemand is None else stream.ondemand

    def idletimeout_of(self, stream: StreamConfig) -> float:
        """Seconds an on-demand stream keeps its upstream after its last viewer left."""
        return self.idletimeout if stream.idletimeout is None else stream.idletimeout

    def hls_of(self, stream: StreamConfig) -> bool:
        return self.hls if stream.hls is None else stream.hls

    def check(self, reader: Reader, path: str) -> None:
        # Each problem is reported and the others still looked for.
        served: dict[str, str] = {}
        for r in self.resources:
            if isinstance(r, UdpxyConfig):
                continue  # it serves below its path, not at it (check_gateways)
            if r.serve in served:
                reader.report(reader.fail(f"{r.where}.serve",
                                          f"{r.serve!r} is already served by {served[r.serve]}"))
            served.setdefault(r.serve, r.where)
        check_channels(self, reader, served)
        check_gateways(self, reader)
        streams = {r.serve for r in self.streams}
        for r in self.resources:
            if isinstance(r, ApiConfig) and r.api in ("check", "control") and r.remote not in streams:
                reader.report(reader.fail(f"{r.where}.remote", f"{r.remote!r} is not the serve path of "
                                                               f"a stream{nearest(r.remote, streams)}"))
        for section in self.resources + self.notifications:
            reader.attempt(lambda section=section: check_users(
                reader, section.authentication, f"{section.where}.authentication", self.userlist,
                isinstance(section, Resource)))
        if self.graceperiod == 0 and any(self.ondemand_of(r) for r in self.streams):
            reader.warn("graceperiod", "is 0, so the first viewer of an idle on-demand stream is "
                                       "refused: it may wait only graceperiod s for the first packet")
        for r in self.streams:
            if r.preamble:  # the original, too, logs an unreadable preamble and serves without it
                path = resolve_path(self.base_dir, r.preamble)
                try:
                    open(path, "rb").close()
                except OSError as e:
                    reader.warn(f"{r.where}.preamble", f"cannot read {path}: {describe(e)}; "
                                                       "the stream is served without it")
        if self.cafile and not os.path.isfile(resolve_path(self.base_dir, self.cafile)):
            reader.report(reader.fail("cafile", f"no such file: {resolve_path(self.base_dir, self.cafile)}"))
        if self.profile:
            reader.warn("profile", "accepted and ignored: restreamer has no profiling server "
                                   "(profile a running process with py-spy)")


# ---------------------------------------------------------------------------
# loading


def load_config(config: str | os.PathLike | dict | Config) -> Config:
    """A path, a dict in the file's schema, or an already loaded config."""
    if isinstance(config, Config):
        return config
    if isinstance(config, dict):
        return from_dict(config)
    return load(os.fspath(config))


def load(path: str) -> Config:
    """Read and validate the config file at ``path`` (JSON or YAML; a regular file)."""
    text, status = documents.read(path)
    config = parse(text, path)
    if config.userlist and status.st_mode & stat.S_IROTH:
        config = replace(config, warnings=config.warnings + (
            f"{path}: holds passwords (userlist) but other users may read it; chmod o-r {path}",))
    return config


def parse(text: str, source: str = "<string>") -> Config:
    """Parse config text; JSON for ``.json`` files, YAML for ``.yaml``/``.yml``, else sniffed."""
    data = documents.parse(text, source)
    base_dir = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else os.getcwd()
    return from_dict(data, source, base_dir)


def from_dict(data: Any, source: str = "<dict>", base_dir: str | None = None) -> Config:
    """Validate a config given as plain data (the file's schema)."""
    reader = Reader(source)
    ok, config = reader.attempt(lambda: reader.section(Config, {} if data is None else data, "",
                                                       source=source, base_dir=base_dir or os.getcwd()))
    if not ok:
        raise ConfigErrors(reader.errors, reader.warnings)
    return replace(config, warnings=tuple(reader.warnings), notes=tuple(reader.notes))


def host_problems(config: Config) -> list[ConfigError]:
    """What this host lacks to serve ``config`` (``restreamer --check`` asks):
    each stream's and gateway's ``clientinterface``, and ``fork://`` commands."""
    problems = []
    for stream in config.streams:
        found = {host_problem(url, stream.clientinterface) for url in stream.remotes} - {None}
        for problem in sorted(found):
            key = "clientinterface" if "interface" in problem else "remote"
            problems.append(ConfigError(config.source, f"{stream.where}.{key}", problem))
    for gateway in config.resources:
        problem = host_problem("", gateway.clientinterface) if isinstance(gateway, UdpxyConfig) else None
        if problem:
            problems.append(ConfigError(config.source, f"{gateway.where}.clientinterface", problem))
    return problems


def reference() -> str:
    """The README's table of keys, from their declarations."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| {name} | {default} | {doc} |" for name, default, doc in _reference(Config)]
    return "\n".join(rows)


__all__ = ["API_KINDS", "AUTH_TYPES", "ApiConfig", "Authentication", "Config", "ConfigError",
           "NOTIFICATION_EVENTS", "NOTIFICATION_TYPES", "Notification", "RESOURCE_TYPES", "Resource",
           "StaticConfig", "StreamConfig", "UdpxyConfig", "from_dict", "host_problems", "load", "load_config",
           "parse", "parse_listen", "reference"]
