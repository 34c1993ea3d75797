"""The assembly layer: a :class:`~restreamer.core.relay.Relay` wired together
with its operations (statistics, Prometheus metrics, notifications, the
dashboard's overview) into one :class:`Service`, started and stopped as one.

This is the one place that knows both the core and operations: the core
never imports ops, and ops read the streams only through the core's
read-only views (:mod:`restreamer.core.view`).  The web layer, the CLI and
gunicorn's worker all serve a Service.  Under ``gunicorn -w N`` (a relay
with a census) statistics and metrics answer for the whole server.
"""

from __future__ import annotations

import os
from typing import Any

from .config import ApiConfig, Config, load_config
from .core.relay import Relay
from .core.stream import Stream
from .core.view import StreamViews
from .ops.metrics import MetricsMirror, create_registry, create_shared_registry
from .ops.notifications import Notifier
from .ops.overview import Overview
from .ops.server_statistics import ServerStatistics
from .ops.statistics import Statistics


class Service:
    """A relay and its operations."""

    def __init__(self, relay: Relay):
        self.relay = relay
        config = relay.config
        views = StreamViews(relay.streams)
        if relay.census is None:
            self.statistics = Statistics(views, relay.limits, collecting=not config.nostats)
            self.metrics = create_registry(views)
        else:
            mirror = MetricsMirror(views)
            self.metrics = create_shared_registry(mirror)
            self.statistics = ServerStatistics(views, relay.limits, relay.census,
                                               collecting=not config.nostats, on_sample=mirror.sync)
            mirror.server_states = self.statistics.server_states
        self.notifier = self._notifier(config)
        self.overview = Overview(views, relay.limits, _controls(config))
        self.started = False
        relay.on_configure.append(self._configure)
        relay.on_viewers_changed.append(self._viewers_changed)

    @classmethod
    def of(cls, source: str | os.PathLike | dict | Config | Relay | Service) -> Service:
        """The service of a config file path, a dict in the file's schema, a
        loaded config or a relay; a service is taken as it is."""
        if isinstance(source, Service):
            return source
        return cls(source if isinstance(source, Relay) else Relay(load_config(source)))

    @property
    def config(self) -> Config:
        return self.relay.config

    @property
    def streams(self) -> dict[str, Stream]:
        return self.relay.streams

    def start(self) -> None:
        """Start every stream and the operations; again does nothing."""
        if self.started:
            return
        self.started = True
        self.relay.start()
        for operation in self._operations():
            operation.start()

    def stop(self) -> None:
        """Stop the operations, then close every viewer and upstream."""
        if not self.started:
            return
        self.started = False
        for operation in self._operations():
            operation.stop()
        self.relay.stop()

    def _operations(self) -> tuple[Statistics, Overview, Notifier]:
        return self.statistics, self.overview, self.notifier

    def _configure(self, old: Config, config: Config) -> None:
        """A reloaded config's limits, statistics and notifications apply from now on."""
        self.statistics.limits = self.overview.limits = self.relay.limits
        self.overview.controls = _controls(config)
        self.statistics.collecting = not config.nostats
        if _notifying(old) != _notifying(config):
            self.notifier.stop()
            self.notifier = self._notifier(config)
        else:
            self.notifier.config = config
        if not self.started:
            return
        if self.statistics.collecting:
            self.statistics.start()
        else:
            self.statistics.stop()
        self.notifier.start()

    def _viewers_changed(self, count: int) -> None:
        self.notifier.viewers_changed(count)

    def _notifier(self, config: Config) -> Notifier:
        census = self.relay.census
        if census is None:
            return Notifier(config)
        return Notifier(config, crossed=census.crossed, beats=lambda: census.first)


def _notifying(config: Config) -> tuple[Any, ...]:
    """What the notifier is built from."""
    return (config.notifications, config.userlist, config.heartbeatinterval, config.timeout)


def _controls(config: Config) -> dict[str, str]:
    """Each stream's control API path, for the dashboard's buttons."""
    return {r.remote: r.serve for r in config.resources
            if isinstance(r, ApiConfig) and r.api == "control"}
