"""The viewer limits: admission holds the server to ``maxconnections``
viewers, and health, statistics and notifications report it full from
``fullconnections`` on (the config keys keep the Go original's names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config


@dataclass(frozen=True)
class Limits:
    """Viewers the server takes at most, and from how many on it is full (0: no limit)."""

    max_viewers: int = 0
    full_viewers: int = 0

    @classmethod
    def of(cls, config: "Config") -> "Limits":
        return cls(config.maxconnections, config.fullconnections)

    def status(self, viewers: int) -> str:
        """overload at ``max_viewers``, full at ``full_viewers``, else ok."""
        if self.max_viewers and viewers >= self.max_viewers:
            return "overload"
        if self.full_viewers and viewers >= self.full_viewers:
            return "full"
        return "ok"
