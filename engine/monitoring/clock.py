"""Time, injected: monitors and writers take a :class:`Clock` so tests advance a fake one."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def monotonic_s(self) -> float:
        """Seconds on a clock that never goes back (window lengths, rotation ages)."""

    def wall_ms(self) -> int:
        """Milliseconds since the Unix epoch (timestamps written to files)."""


class SystemClock:
    """The process clock: ``time.monotonic`` and ``time.time``."""

    def monotonic_s(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000
