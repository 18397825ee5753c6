"""A monotonic clock that moves only when a test moves it (for code that takes `clock=time.monotonic`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeMonotonic:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now
