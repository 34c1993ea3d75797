"""Health and statistics for the whole server under ``gunicorn -w N``.

Every worker writes its own figures to ``stats-K.json`` in the runtime
directory (K is its census record) each time it samples, and answers with
the sum over every live worker's file, its own figures taken fresh.  A dead
worker's file is ignored (its census lock is free), so its viewers and rates
leave the figures with it.  The viewer count health reports comes from the
census itself, the same count admission holds the limits against.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Callable, Mapping

from ..core.limits import Limits
from ..core.lifecycle import STATES
from ..core.view import StreamView
from ..log import get_logger
from ..sources.base import describe
from .statistics import Statistics, all_totals

if TYPE_CHECKING:
    from ..core.census import Census

_log = get_logger("statistics")


class ServerStatistics(Statistics):
    """:class:`Statistics` summed over the workers that share a census."""

    def __init__(self, streams: Mapping[str, StreamView], limits: Limits, census: "Census",
                 collecting: bool = True, on_sample: Callable[[], None] = lambda: None):
        super().__init__(streams, limits, collecting)
        self.census = census
        self.on_sample = on_sample  # the metrics' mirror keeps pace with the samples
        self.path = census.directory / f"stats-{census.index}.json"
        self._unshared = False  # the last write failed (said once, until one succeeds)

    def sample(self) -> None:
        totals = all_totals(self.streams)
        self.record(totals)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            temporary.write_text(json.dumps(self._own(totals)))
            os.replace(temporary, self.path)  # readers see a whole file, old or new
        except OSError as e:  # a full disk: the siblings see this worker's last figures
            temporary.unlink(missing_ok=True)
            if not self._unshared:
                _log.warning("cannot share statistics", path=str(self.path), reason=describe(e))
            self._unshared = True
        else:
            self._unshared = False
        self.on_sample()

    def _own(self, totals: dict[str, dict[str, int]]) -> dict:
        """This worker's figures, with ``totals`` (:func:`all_totals`) as its counters."""
        return {
            "totals": totals,
            "rates": self._rates,
            # The owner's upstream is one of the remotes; a follower's is its owner.
            "upstream": {path: s.pulled for path, s in self.streams.items() if s.pulled is not None},
            "online": [path for path, s in self.streams.items() if s.online],
            "states": self.states(),
        }

    def _workers(self) -> list[dict]:
        """Every live worker's figures, this one's fresh."""
        figures = [self._own(all_totals(self.streams))]
        for path in self.census.directory.glob("stats-*.json"):
            index = int(path.stem.partition("-")[2])
            if index == self.census.index or not self.census.alive(index):
                continue
            try:
                figures.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # a worker that died while writing
        return figures

    def health(self) -> dict:
        if not self.collecting:
            return super().health()
        workers = self._workers()
        sent = sum(rates.get("bytes_sent", 0.0)
                   for worker in workers for rates in worker["rates"].values())
        return self.health_report(self.census.total(), sent, self._server_states(workers))

    def server_states(self) -> dict[str, str]:
        """Each stream's state across the live workers (see :meth:`_server_states`)."""
        return self._server_states(self._workers())

    def _server_states(self, workers: list[dict]) -> dict[str, str]:
        """A stream's state in the worker closest to serving it: one online worker
        makes it online, whatever the idle others say."""
        states = {}
        for path in self.streams:
            seen = [worker.get("states", {}).get(path) for worker in workers]
            states[path] = min((state for state in seen if state in STATES), key=STATES.index,
                               default="offline")
        return states

    def statistics(self) -> dict:
        if not self.collecting:
            return super().statistics()
        totals: dict[str, dict] = {path: {} for path in self.streams}
        rates: dict[str, dict] = {path: {} for path in self.streams}
        online: dict[str, bool] = dict.fromkeys(self.streams, False)
        upstream: dict[str, str | None] = dict.fromkeys(self.streams)
        workers = self._workers()
        for worker in workers:
            for target, source in ((totals, worker["totals"]), (rates, worker["rates"])):
                for path, values in source.items():
                    if path in target:
                        merged = target[path]
                        for name, value in values.items():
                            merged[name] = merged.get(name, 0) + value
            for path in worker["online"]:
                if path in online:
                    online[path] = True
            upstream.update((p, url) for p, url in worker["upstream"].items() if p in self.streams)
        return self.assemble(totals, rates, online, upstream, self._server_states(workers))
