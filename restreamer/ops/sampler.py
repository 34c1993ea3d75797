"""A figure kept up to date by sampling once an interval in a greenlet of its own."""

from __future__ import annotations

import gevent


class Sampler:
    """Calls :meth:`sample` every :attr:`interval` seconds between :meth:`start` and :meth:`stop`."""

    interval = 1.0
    _sampler: gevent.Greenlet | None = None

    def sample(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._sampler is None:
            self._sampler = gevent.spawn(self._sample_forever)

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None

    def _sample_forever(self) -> None:
        while True:
            self.sample()
            gevent.sleep(self.interval)
