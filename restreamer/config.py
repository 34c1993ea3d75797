"""Load, validate and default a restreamer configuration.

The schema is the one of the original Go restreamer's ``restreamer.json`` so
that existing files keep working; a few keys are new (see the example
configs).  Files may be JSON or YAML.  Every problem is reported as one
:class:`ConfigError` line that names the file, the key path and what is wrong;
unknown keys are not errors but produce warnings naming the nearest valid key.
"""

from __future__ import annotations

import difflib
import json
import os
import socket
import stat
from dataclasses import dataclass, field, replace
from typing import Any, Callable
from urllib.parse import urlsplit

import yaml

#: URL schemes a stream's remote may use.
STREAM_SCHEMES = (
    "http", "https", "file", "tcp", "udp", "unix", "unixgram", "unixpacket", "fork", "loop",
)
#: URL schemes a static resource's remote may use.
STATIC_SCHEMES = ("file", "http", "https")
RESOURCE_TYPES = ("stream", "static", "api")
API_KINDS = ("health", "statistics", "check", "control", "prometheus")
AUTH_TYPES = ("basic", "bearer")
NOTIFICATION_EVENTS = ("limit_hit", "limit_miss", "heartbeat")
NOTIFICATION_TYPES = ("url",)


class ConfigError(Exception):
    """A configuration that cannot be used; ``str()`` is one line for the operator."""


@dataclass(frozen=True)
class Authentication:
    """Who may access a resource (``users``), or as whom a notification logs in (``user``)."""

    type: str | None = None
    realm: str = ""
    user: str | None = None
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resource:
    """One entry of ``resources``: a stream, a static file or an API endpoint."""

    type: str
    serve: str
    where: str  # key path of this entry, e.g. "resources[2]", for messages
    api: str | None = None
    remotes: tuple[str, ...] = ()
    cache: float = 0
    mru: int = 1500
    clientinterface: str | None = None
    preamble: str | None = None
    authentication: Authentication = field(default_factory=Authentication)


@dataclass(frozen=True)
class Notification:
    """One entry of ``notifications``: an event and where to report it."""

    event: str
    type: str
    url: str
    authentication: Authentication = field(default_factory=Authentication)


@dataclass(frozen=True)
class Config:
    """A validated configuration with every default filled in."""

    source: str = "<dict>"  # file name, for messages
    listen: str = "localhost:http"
    timeout: float = 0
    reconnect: float = 10
    readtimeout: float = 0
    inputbuffer: int = 1000
    outputbuffer: int = 400
    maxconnections: int = 0
    fullconnections: int = 0
    nostats: bool = False
    heartbeatinterval: float = 60
    log: str = ""
    profile: bool = False
    graceperiod: float = 10
    droptimeout: float = 10
    limitstatus: int = 404
    userlist: dict[str, str] = field(default_factory=dict)  # user -> password
    resources: tuple[Resource, ...] = ()
    notifications: tuple[Notification, ...] = ()
    warnings: tuple[str, ...] = ()
    base_dir: str = "."  # relative paths in the config resolve against this

    @property
    def streams(self) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if r.type == "stream")

    def resolve_path(self, path: str) -> str:
        """A path from the config, relative to the config file's directory."""
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(path)))


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
    """Read and validate the config file at ``path`` (JSON or YAML)."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e.reason} at byte {e.start}") from None
    config = parse(text, path)
    if config.userlist and _readable_by_others(path):
        config = replace(config, warnings=config.warnings + (
            f"{path}: holds passwords (userlist) but other users may read it; chmod o-r {path}",))
    return config


def _readable_by_others(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IROTH)
    except OSError:
        return False


def parse(text: str, source: str = "<string>") -> Config:
    """Parse config text; JSON for ``.json`` files, YAML for ``.yaml``/``.yml``, else sniffed."""
    ext = os.path.splitext(source)[1].lower()
    as_json = ext == ".json" or (ext not in (".yaml", ".yml") and text.lstrip().startswith("{"))
    try:
        data = json.loads(text) if as_json else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}: line {e.lineno} column {e.colno}: invalid JSON: {e.msg}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: document is nested too deeply") from None
    base_dir = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else os.getcwd()
    return from_dict(data, source, base_dir)


def from_dict(data: Any, source: str = "<dict>", base_dir: str | None = None) -> Config:
    """Validate a config given as plain data (the file's schema)."""
    if data is None:
        data = {}
    reader = _Reader(source)
    top = reader.mapping(data, "", _TOP_KEYS)
    userlist = _userlist(reader, top.get("userlist"))
    resources = tuple(
        _resource(reader, item, f"resources[{i}]", userlist)
        for i, item in enumerate(reader.sequence(top.get("resources"), "resources"))
    )
    _check_unique_serve(reader, resources)
    _check_api_targets(reader, resources)
    notifications = tuple(
        _notification(reader, item, f"notifications[{i}]", userlist)
        for i, item in enumerate(reader.sequence(top.get("notifications"), "notifications"))
    )
    listen = reader.string(top, "listen", "", default=Config.listen)
    _check_listen(reader, listen)
    return Config(
        source=source,
        listen=listen,
        timeout=reader.seconds(top, "timeout", "", Config.timeout),
        reconnect=reader.seconds(top, "reconnect", "", Config.reconnect),
        readtimeout=reader.seconds(top, "readtimeout", "", Config.readtimeout),
        inputbuffer=reader.count(top, "inputbuffer", "", Config.inputbuffer),
        outputbuffer=reader.count(top, "outputbuffer", "", Config.outputbuffer, minimum=1),
        maxconnections=reader.count(top, "maxconnections", "", Config.maxconnections),
        fullconnections=reader.count(top, "fullconnections", "", Config.fullconnections),
        nostats=reader.boolean(top, "nostats", "", Config.nostats),
        heartbeatinterval=reader.seconds(top, "heartbeatinterval", "", Config.heartbeatinterval),
        log=reader.string(top, "log", "", default=Config.log),
        profile=reader.boolean(top, "profile", "", Config.profile),
        graceperiod=reader.seconds(top, "graceperiod", "", Config.graceperiod),
        droptimeout=reader.seconds(top, "droptimeout", "", Config.droptimeout),
        limitstatus=reader.choice(top, "limitstatus", "", (404, 503), Config.limitstatus),
        userlist=userlist,
        resources=resources,
        notifications=notifications,
        warnings=tuple(reader.warnings),
        base_dir=base_dir or os.getcwd(),
    )


# ---------------------------------------------------------------------------
# schema

_TOP_KEYS = (
    "listen", "timeout", "reconnect", "readtimeout", "inputbuffer", "outputbuffer",
    "maxconnections", "fullconnections", "nostats", "heartbeatinterval", "log", "profile",
    "graceperiod", "droptimeout", "limitstatus", "userlist", "resources", "notifications",
)
_RESOURCE_KEYS = (
    "type", "api", "serve", "remote", "remotes", "clientinterface", "cache", "mru",
    "preamble", "authentication",
)
_AUTH_KEYS = ("type", "realm", "user", "users")
_NOTIFICATION_KEYS = ("event", "type", "url", "authentication")
_USER_KEYS = ("password",)


class _Reader:
    """Typed access to config values that knows each value's key path."""

    def __init__(self, source: str):
        self.source = source
        self.warnings: list[str] = []

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    def mapping(self, value: Any, path: str, known: tuple[str, ...],
                fold_case: bool = True) -> dict[str, Any]:
        """The entries of ``value`` whose keys are ``known``, warning about the others.

        Keys match case-insensitively, as Go's encoding/json matches the
        original's struct fields (``"Listen"`` works); ``fold_case=False``
        is for keys that are data, such as user names.
        """
        if not isinstance(value, dict):
            raise self.fail(path or "top level", f"expected a mapping of keys, got {_kind(value)}")
        result = {}
        for key, item in value.items():
            if key == "":  # "" keys are comments, as in the original
                continue
            if not isinstance(key, str):
                raise self.fail(_join(path, str(key)), "keys must be strings")
            name = key.lower() if fold_case else key
            if name not in known:
                near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                self.warnings.append(f"{self.source}: {_join(path, key)}: unknown key ignored{hint}")
                continue
            result[name] = item  # of keys differing only in case the last wins, as in Go
        return result

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {_kind(value)}")
        return value

    def string(self, data: dict, key: str, path: str, default: str | None = None,
               required: bool = False) -> Any:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(_join(path, key), "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(_join(path, key), f"expected a string, got {_kind(value)}")
        return value

    def _number(self, data: dict, key: str, path: str, default: Any, accept: Callable[[Any], bool],
                what: str, minimum: float) -> Any:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not accept(value):
            raise self.fail(_join(path, key), f"expected {what}, got {_kind(value)}")
        if value < minimum or value != value or value == float("inf"):
            raise self.fail(_join(path, key), f"must be a finite number >= {minimum}, got {value!r}")
        return value

    def seconds(self, data: dict, key: str, path: str, default: float) -> float:
        return self._number(data, key, path, default, lambda v: isinstance(v, (int, float)),
                            "a number of seconds", 0)

    def count(self, data: dict, key: str, path: str, default: int, minimum: int = 0) -> int:
        return self._number(data, key, path, default, lambda v: isinstance(v, int),
                            "a whole number", minimum)

    def boolean(self, data: dict, key: str, path: str, default: bool) -> bool:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(_join(path, key), f"expected true or false, got {_kind(value)}")
        return value

    def choice(self, data: dict, key: str, path: str, choices: tuple, default: Any = None,
               required: bool = False) -> Any:
        value = data.get(key)
        if value is None:
            if required:
                raise self.fail(_join(path, key), f"is required (one of {_list(choices)})")
            return default
        if isinstance(value, bool) or value not in choices:
            raise self.fail(_join(path, key), f"must be one of {_list(choices)}, got {value!r}")
        return value


def _userlist(reader: _Reader, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    users = reader.mapping(value, "userlist", tuple(value) if isinstance(value, dict) else (),
                           fold_case=False)
    result = {}
    for name, entry in users.items():
        path = _join("userlist", name)
        fields = reader.mapping(entry, path, _USER_KEYS)
        result[name] = reader.string(fields, "password", path, required=True)
    return result


def _authentication(reader: _Reader, value: Any, path: str, userlist: dict[str, str],
                    ) -> Authentication:
    if value is None:
        return Authentication()
    fields = reader.mapping(value, path, _AUTH_KEYS)
    kind = reader.string(fields, "type", path)
    if kind is not None and kind not in AUTH_TYPES:
        # The original denies everything for an unknown type; keep that, but say so.
        reader.warnings.append(
            f"{reader.source}: {path}.type: unknown authentication type {kind!r} "
            f"(expected one of {_list(AUTH_TYPES)}); all access to this resource is denied")
    user = reader.string(fields, "user", path)
    users = reader.sequence(fields.get("users"), f"{path}.users")
    for i, name in enumerate(users):
        if not isinstance(name, str):
            raise reader.fail(f"{path}.users[{i}]", f"expected a user name, got {_kind(name)}")
    for where, name in [(f"{path}.user", user)] + [(f"{path}.users[{i}]", u) for i, u in enumerate(users)]:
        if name is not None and name not in userlist:
            raise reader.fail(where, f"user {name!r} is not in userlist")
    return Authentication(type=kind, realm=reader.string(fields, "realm", path, default=""),
                          user=user, users=tuple(users))


def _resource(reader: _Reader, value: Any, path: str, userlist: dict[str, str]) -> Resource:
    fields = reader.mapping(value, path, _RESOURCE_KEYS)
    kind = reader.choice(fields, "type", path, RESOURCE_TYPES, required=True)
    serve = reader.string(fields, "serve", path, required=True)
    if not serve.startswith("/"):
        raise reader.fail(f"{path}.serve", f"must be a URL path starting with '/', got {serve!r}")
    remotes = _remotes(reader, fields, path)
    api = None
    if kind == "api":
        api = reader.choice(fields, "api", path, API_KINDS, required=True)
        if api in ("check", "control") and len(remotes) != 1:
            raise reader.fail(f"{path}.remote", f"the {api} API needs the serve path of one stream")
    elif kind == "stream":
        if not remotes:
            raise reader.fail(f"{path}.remote", "a stream needs at least one remote")
        for i, url in enumerate(remotes):
            _check_url(reader, url, _remote_path(fields, path, i), STREAM_SCHEMES)
    elif kind == "static":
        if len(remotes) != 1:
            raise reader.fail(f"{path}.remote", "a static resource needs exactly one remote")
        _check_url(reader, remotes[0], _remote_path(fields, path, 0), STATIC_SCHEMES)
    return Resource(
        type=kind,
        serve=serve,
        where=path,
        api=api,
        remotes=remotes,
        cache=reader.seconds(fields, "cache", path, Resource.cache),
        mru=reader.count(fields, "mru", path, Resource.mru, minimum=188),
        clientinterface=reader.string(fields, "clientinterface", path),
        preamble=reader.string(fields, "preamble", path),
        authentication=_authentication(reader, fields.get("authentication"),
                                       f"{path}.authentication", userlist),
    )


def _remotes(reader: _Reader, fields: dict, path: str) -> tuple[str, ...]:
    """``remote`` and ``remotes`` merged, ``remote`` first, duplicates dropped."""
    merged: list[str] = []
    single = reader.string(fields, "remote", path)
    if single:
        merged.append(single)
    for i, url in enumerate(reader.sequence(fields.get("remotes"), f"{path}.remotes")):
        if not isinstance(url, str):
            raise reader.fail(f"{path}.remotes[{i}]", f"expected a URL string, got {_kind(url)}")
        if url and url not in merged:
            merged.append(url)
    return tuple(merged)


def _remote_path(fields: dict, path: str, index: int) -> str:
    if fields.get("remote"):
        return f"{path}.remote" if index == 0 else f"{path}.remotes[{index - 1}]"
    return f"{path}.remotes[{index}]"


def _check_url(reader: _Reader, url: str, path: str, schemes: tuple[str, ...]) -> None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise reader.fail(path, f"invalid URL {url!r}: {e}") from None
    if parts.scheme not in schemes:
        raise reader.fail(path, f"unsupported URL scheme in {url!r} (expected one of {_list(schemes)})")
    if parts.scheme in ("http", "https", "tcp", "udp") and not parts.hostname:
        raise reader.fail(path, f"URL {url!r} has no host")
    if parts.scheme in ("tcp", "udp") and port is None:
        raise reader.fail(path, f"URL {url!r} has no port")
    if parts.scheme in ("file", "unix", "unixgram", "unixpacket", "fork") and not parts.path:
        raise reader.fail(path, f"URL {url!r} has no path")
    if parts.scheme == "loop" and not (parts.path or parts.netloc):
        raise reader.fail(path, f"URL {url!r} names no file")


def _check_unique_serve(reader: _Reader, resources: tuple[Resource, ...]) -> None:
    seen: dict[str, str] = {}
    for r in resources:
        if r.serve in seen:
            raise reader.fail(f"{r.where}.serve", f"{r.serve!r} is already served by {seen[r.serve]}")
        seen[r.serve] = r.where


def _check_api_targets(reader: _Reader, resources: tuple[Resource, ...]) -> None:
    streams = {r.serve for r in resources if r.type == "stream"}
    for r in resources:
        if r.api in ("check", "control") and r.remotes[0] not in streams:
            raise reader.fail(f"{r.where}.remote", f"{r.remotes[0]!r} is not the serve path of a stream")


def _notification(reader: _Reader, value: Any, path: str, userlist: dict[str, str]) -> Notification:
    fields = reader.mapping(value, path, _NOTIFICATION_KEYS)
    url = reader.string(fields, "url", path, required=True)
    _check_url(reader, url, f"{path}.url", ("http", "https"))
    return Notification(
        event=reader.choice(fields, "event", path, NOTIFICATION_EVENTS, required=True),
        type=reader.choice(fields, "type", path, NOTIFICATION_TYPES, default="url"),
        url=url,
        authentication=_authentication(reader, fields.get("authentication"),
                                       f"{path}.authentication", userlist),
    )


def _check_listen(reader: _Reader, listen: str) -> None:
    try:
        parse_listen(listen)
    except ValueError as e:
        raise reader.fail("listen", str(e)) from None


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``:port``, ``[v6]:port`` or ``host:service`` -> (host, port).

    An empty host means all interfaces, as in Go's ``net.Listen``.
    """
    host, sep, port = listen.rpartition(":")
    if not sep:
        raise ValueError(f"expected host:port, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"IPv6 addresses need brackets, as in [::1]:8000, got {listen!r}")
    if port.isdigit():
        number = int(port)
    else:
        try:
            number = socket.getservbyname(port, "tcp")
        except OSError:
            raise ValueError(f"unknown service or port {port!r} in {listen!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} out of range in {listen!r}")
    return host, number


def _join(path: str, key: str) -> str:
    # A key with a newline or other control character would break the
    # one-line message: such keys are shown quoted.
    key = key if key.isprintable() else repr(key)
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _list(choices: tuple) -> str:
    return ", ".join(str(c) for c in choices)
