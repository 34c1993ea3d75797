"""The life of one stream: whether its upstream is delivering, may come back,
or is gone, and what its viewers are told.

Upstream events drive it (:meth:`Lifecycle.begin`, :meth:`~Lifecycle.connected`,
:meth:`~Lifecycle.delivering`, :meth:`~Lifecycle.disconnected`,
:meth:`~Lifecycle.attempt_over`, :meth:`~Lifecycle.given_up`), and so does the
control API's switch (:meth:`~Lifecycle.set_enabled`).  Its state is one of
:data:`STATES`:

- *idle*: on demand, enabled, not pulling: the next viewer connects it;
- *connecting*: the upstream's first attempt is under way;
- *online*: a connection is delivering packets;
- *waiting*: the connection ended; for the grace period viewers are held
  (and new ones let in) for the upstream to come back;
- *offline*: nothing delivers and nothing is waited for;
- *disabled*: switched off by the control API.

It tells the hub when a new connection begins (viewers restart at a RAP) and
when to close the viewers; it counts switches (connections replaced while
viewers were held) and what each upstream URL delivered.
"""

from __future__ import annotations

from typing import Callable

from gevent.event import Event

from .clock import REAL, Clock, Timer
from .hub import Hub
from ..redact import redact_url

#: The states, from the closest to serving viewers to the farthest.
STATES = ("online", "waiting", "connecting", "offline", "idle", "disabled")


class Lifecycle:
    """One stream's up and down, driven by its upstream's events."""

    def __init__(self, hub: Hub, graceperiod: float, ondemand: bool = False,
                 pulling: Callable[[], bool] = lambda: True, clock: Clock = REAL):
        self.hub = hub
        self.log = hub.log
        self.clock = clock
        self.graceperiod = graceperiod
        self.ondemand = ondemand
        self._pulling = pulling  # the stream's upstream runs (an on-demand one may not)
        self.enabled = True  # the control API's switch
        self.online = False  # a connection is delivering packets
        self.url: str | None = None  # the upstream currently connected
        self._grace: Timer | None = None
        # Cleared when an upstream starts; set once its first attempt has
        # delivered a packet or ended.  Admission waits on it.
        self.first_attempt_done = Event()
        self.first_attempt_done.set()
        self.switches = 0
        self.switch_gap = 0.0  # seconds viewers saw no data, over all switches
        self._lost_url: str | None = None  # the connection the held viewers had
        self._received_by_url: dict[str, tuple[int, int]] = {}  # of finished connections
        self._received_at_connect = (0, 0)
        # Whether viewers wait graceperiod when the connection ends: not when
        # it was closed on purpose (an on-demand stream that went idle).
        self.hold = True

    def configure(self, graceperiod: float, ondemand: bool) -> None:
        self.graceperiod = graceperiod
        self.ondemand = ondemand

    # -- what it is ------------------------------------------------------------

    @property
    def connecting(self) -> bool:
        """The upstream's first attempt is under way: no packet yet, no failure yet."""
        return not self.first_attempt_done.is_set()

    @property
    def waiting(self) -> bool:
        """The grace period runs: the upstream may come back."""
        return self._grace is not None

    @property
    def idle(self) -> bool:
        """On demand, enabled and not pulling: the next viewer connects it."""
        return self.ondemand and self.enabled and not self._pulling()

    @property
    def state(self) -> str:
        """One of :data:`STATES`."""
        if self.idle:
            return "idle"
        if not self.enabled:
            return "disabled"
        if self.online:
            return "online"
        if self._grace is not None:
            return "waiting"
        return "connecting" if self.connecting else "offline"

    @property
    def expecting(self) -> bool:
        """Data flows, may soon flow again, or is about to flow for the first time."""
        return self.enabled and (self.online or self._grace is not None or self.connecting)

    @property
    def accepting(self) -> bool:
        """New viewers are let in: data is expected, or flows once a viewer asks (idle)."""
        return self.expecting or self.idle

    @property
    def serving(self) -> bool:
        """What the check API reports: online, or idle and ready to connect."""
        return self.enabled and (self.online or self.idle)

    # -- upstream events ---------------------------------------------------------

    def begin(self) -> None:
        """An upstream starts (at start-up, on demand, with new remotes): viewers
        joining now wait for its first attempt."""
        self.hold = True
        self.first_attempt_done.clear()

    def attempt_over(self) -> None:
        """An attempt has ended (or the upstream stopped): nobody waits for a first packet."""
        self.first_attempt_done.set()

    def connected(self, url: str) -> None:
        """A connection to ``url`` is open: viewers continue at its first start."""
        self.url = url
        hub = self.hub
        self._received_at_connect = (hub.packets_received, hub.bytes_received)
        hub.restart_at_rap()

    def delivering(self) -> None:
        """The connection's first packets are here: online."""
        if self.online:
            return
        self.online = True
        self.first_attempt_done.set()
        if self._grace is not None:
            self._cancel_grace()
            if self.hub.viewers:  # a reconnect with nobody watching is no switch: nobody saw a gap
                self._switched()
        self.log.info("stream online", url=self.url)

    def disconnected(self) -> None:
        """The connection ended: wait for it for the grace period, letting viewers
        in meanwhile, whether or not anyone watches now (unless :attr:`hold` is
        off: it was closed on purpose and nobody waits for it)."""
        hub = self.hub
        hub.flush()
        if self.url is not None:
            self._received_by_url = self.received_by_url()
        url, self.url = self.url, None
        if not self.online:
            return
        self.online = False
        if self.hold and self.graceperiod > 0:
            self._grace = self.clock.later(self.graceperiod, self._grace_expired)
            self._lost_url = url
            self.log.info("stream waiting", viewers=len(hub.viewers), graceperiod=self.graceperiod)
        else:
            hub.close_viewers()

    def given_up(self) -> None:
        """No further attempt will be made: nobody waits for one."""
        self.attempt_over()
        if self._grace is not None:
            self._cancel_grace()
            self.log.info("stream offline", viewers=len(self.hub.viewers),
                          reason="no further upstream attempt")
            self.hub.close_viewers()

    def set_enabled(self, enabled: bool) -> None:
        """Switch the stream on or off; off closes every viewer and refuses new ones."""
        self.enabled = enabled
        if not enabled:
            self._cancel_grace()
            self.hub.close_viewers()

    # -- counts ------------------------------------------------------------------

    def received_by_url(self) -> dict[str, tuple[int, int]]:
        """(packets, bytes) received from each upstream URL, the current one included."""
        totals = dict(self._received_by_url)
        if self.url is not None:
            hub = self.hub
            packets, size = totals.get(self.url, (0, 0))
            base_packets, base_bytes = self._received_at_connect
            totals[self.url] = (packets + hub.packets_received - base_packets,
                                size + hub.bytes_received - base_bytes)
        return totals

    def _switched(self) -> None:
        """Held viewers continue with a new connection: count and log the gap they saw."""
        gap = self.clock.now() - self.hub.last_data
        self.switches += 1
        self.switch_gap += gap
        self.log.info("upstream switched", old_url=redact_url(self._lost_url or ""),
                      new_url=redact_url(self.url or ""), gap=round(gap, 3),
                      viewers=len(self.hub.viewers))

    def _grace_expired(self) -> None:
        self._grace = None
        self.log.info("stream offline", viewers=len(self.hub.viewers),
                      reason="upstream did not come back within the grace period")
        self.hub.close_viewers()

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.close()
            self._grace = None
