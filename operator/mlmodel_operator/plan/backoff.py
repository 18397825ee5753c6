"""How long to wait before retrying a pass that hit a temporary error (pure)."""

from __future__ import annotations


def retry_delay(attempt: int, first: float, maximum: float) -> float:
    """Exponential backoff: `first` seconds for attempt 0, doubled each time, capped at `maximum`."""
    return float(min(maximum, first * 2 ** min(attempt, 30)))
