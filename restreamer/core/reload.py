"""Reloading a running relay's configuration (the CLI does it on SIGHUP).

The new file is validated, and every stream it adds is built (preambles
read), before anything changes: a bad file leaves the running config serving.
Then, resource by resource, keyed by ``serve``:

- unchanged streams are not touched: same hub, same upstream connection, and
  their viewers see no gap;
- a changed stream keeps its hub and viewers and takes its new settings; only
  if what its connection is opened with changed (remotes, say) is the
  upstream replaced, the viewers held for the grace period meanwhile;
- a removed stream closes its viewers and is gone (404 from then on);
- an added stream is served at once.

APIs, statics, authentication, users and limits are read per request (see
:mod:`restreamer.web.blueprint`), so they take effect for new requests.
``listen`` needs a restart: a change is logged and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import gevent

from ..config import Config, ConfigError, Resource, StaticConfig, StreamConfig, load
from ..log import get_logger
from .relay import Relay
from .settings import Settings
from .stream import Stream

#: Keys whose change takes a restart; a reload logs and ignores them.
RESTART_KEYS = ("listen",)
#: Config fields that are not settings: where it came from, and the resources (diffed one by one).
_NOT_SETTINGS = ("source", "base_dir", "warnings", "resources")

_log = get_logger("restreamer")


@dataclass
class Plan:
    """What a reload changes, worked out (and validated) before anything is changed."""

    config: Config
    added: list[str] = field(default_factory=list)  # serve paths, of every resource type
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # global keys that changed
    new_streams: dict[str, Stream] = field(default_factory=dict)
    gone_streams: list[str] = field(default_factory=list)
    changed_streams: dict[str, tuple[StreamConfig, Settings]] = field(default_factory=dict)


def reload(relay: Relay, path: str, overrides: dict | None = None) -> Plan | None:
    """Re-read the config file at ``path`` and apply it; None (logged) if it is bad.

    ``overrides`` are keys the command line set over the file's (``--listen``).
    """
    try:
        config = replace(load(path), **(overrides or {}))
        running = relay.config
        restart = [key for key in RESTART_KEYS if getattr(config, key) != getattr(running, key)]
        config = replace(config, **{key: getattr(running, key) for key in restart})
        plan = make_plan(relay, config)
    except ConfigError as e:
        _log.error("config reload failed", reason=str(e),
                   detail="the running config keeps serving")
        return None
    for warning in config.warnings:
        _log.warning("config warning", detail=warning)
    for note in config.notes:
        _log.info("config note", detail=note)
    for key in restart:
        _log.warning("config key needs a restart", key=key,
                     detail=f"{key} keeps its running value until restreamer is restarted")
    apply(relay, plan)
    _log.info("config reloaded", added=plan.added, removed=plan.removed, changed=plan.changed,
              unchanged=len(plan.unchanged), settings=plan.settings + restart)
    return plan


def make_plan(relay: Relay, config: Config) -> Plan:
    """What applying ``config`` to ``relay`` changes; builds the added streams."""
    old_config = relay.config
    plan = Plan(config, settings=[
        f.name for f in fields(Config)
        if f.name not in _NOT_SETTINGS and getattr(old_config, f.name) != getattr(config, f.name)])
    old = {r.serve: r for r in old_config.resources}
    new = {r.serve: r for r in config.resources}
    for serve, resource in new.items():
        if not isinstance(resource, StreamConfig):
            continue
        settings = Settings.of(resource, config)
        # A udpxy group at this path is not this stream: the gateway closes it.
        stream = None if serve in relay.gateway.groups else relay.streams.get(serve)
        if stream is None:
            plan.new_streams[serve] = Stream(resource, config, relay.opener, relay.claims, settings,
                                             relay.clock, relay.upstreams)
        elif settings != stream.settings or resource != stream.resource:
            plan.changed_streams[serve] = (resource, settings)
    for serve, resource in old.items():
        if isinstance(resource, StreamConfig) and not isinstance(new.get(serve), StreamConfig):
            plan.gone_streams.append(serve)
    plan.removed = [serve for serve in old if serve not in new]
    for serve, resource in new.items():
        before = old.get(serve)
        if before is None:
            plan.added.append(serve)
        elif (not _same(before, old_config, resource, config)
              or (serve in plan.changed_streams
                  and plan.changed_streams[serve][1] != relay.streams[serve].settings)):
            plan.changed.append(serve)
        else:
            plan.unchanged.append(serve)
    return plan


def apply(relay: Relay, plan: Plan) -> None:
    """Make ``relay`` serve ``plan.config``; the streams' changes run side by side."""
    relay.streams.update(plan.new_streams)
    if relay.started:  # connecting before anyone can ask for them: their viewers wait, never 404
        for stream in plan.new_streams.values():
            stream.start()
    relay.configure(plan.config)  # from here on, requests see the new resources
    gone = [relay.streams.pop(serve) for serve in plan.gone_streams]
    jobs = [gevent.spawn(stream.stop) for stream in gone]
    jobs += [gevent.spawn(relay.streams[serve].reconfigure, resource, settings)
             for serve, (resource, settings) in plan.changed_streams.items()]
    gevent.joinall(jobs)


def _same(before: Resource, old: Config, after: Resource, new: Config) -> bool:
    """Whether a resource serves the same under both configs (a stream's
    settings aside: :class:`Settings` compares those)."""
    if replace(before, where="") != replace(after, where=""):
        return False
    if _credentials(before, old) != _credentials(after, new):
        return False
    if isinstance(after, StaticConfig):
        return (old.timeout, old.base_dir) == (new.timeout, new.base_dir)
    return True


def _credentials(resource: Resource, config: Config) -> dict[str, str]:
    auth = resource.authentication
    names = ([auth.user] if auth.user else []) + list(auth.users)
    return {name: config.userlist.get(name, "") for name in names}
