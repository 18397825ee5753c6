"""Kubernetes events worth posting when a pass changes the status (never on a steady model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlmodel_operator.spec import MLModelStatus
from mlmodel_operator.status.conditions import find


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def events_between(before: MLModelStatus, after: MLModelStatus) -> list[EventSpec]:
    """Events for the transitions from `before` to `after`."""
    out: list[EventSpec] = []
    started = after.rollout
    if started is not None and (before.rollout is None or before.rollout.revision != started.revision):
        message = f"revision {started.revision}: package {started.uri} ({started.digest})"
        out.append(EventSpec("Normal", "RolloutStarted", message))
    old_stalled, new_stalled = find(before.conditions, "Stalled"), find(after.conditions, "Stalled")
    # On a flip or a new reason only: a message that changes (another pod) is not worth an event.
    if new_stalled and new_stalled.status == "True" and (
        old_stalled is None or old_stalled.status != "True" or old_stalled.reason != new_stalled.reason
    ):
        out.append(EventSpec("Warning", new_stalled.reason, new_stalled.message))
    old_ready, new_ready = find(before.conditions, "Ready"), find(after.conditions, "Ready")
    if new_ready and new_ready.status == "True" and (old_ready is None or old_ready.status != "True"):
        out.append(EventSpec("Normal", "Ready", new_ready.message))
    return out
