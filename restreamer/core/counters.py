"""The traffic counters of a viewer, and of a stream's viewers added up.

One type, one list of names: viewers count into it on the data path (per
chunk, never per packet), hubs keep the totals of viewers that have left in
it, and statistics and metrics read it.
"""

from __future__ import annotations


class Traffic:
    """What was sent to, or dropped for, one viewer or many."""

    #: Every counter, in the order reports list them.
    COUNTERS = ("packets_sent", "bytes_sent", "packets_dropped", "bytes_dropped")

    __slots__ = COUNTERS + ("stream_time",)

    def __init__(self) -> None:
        self.packets_sent = 0
        self.bytes_sent = 0
        self.packets_dropped = 0
        self.bytes_dropped = 0
        self.stream_time = 0.0  # seconds streamed, of viewers that have left

    def add(self, other: "Traffic", duration: float = 0.0) -> None:
        """Add another's counters (and ``duration`` seconds of streaming) to these."""
        self.packets_sent += other.packets_sent
        self.bytes_sent += other.bytes_sent
        self.packets_dropped += other.packets_dropped
        self.bytes_dropped += other.bytes_dropped
        self.stream_time += other.stream_time + duration

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.COUNTERS}
