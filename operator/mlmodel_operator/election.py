"""Leader election for operator replicas: what to do with the Lease (pure; the Lease I/O is in adapters.lease).

The rules are client-go's leaderelection: a replica may take over a Lease only when the record (holder and
renew time) has not changed for a whole lease duration *as measured on its own monotonic clock* since it
first saw that record. So clocks of different nodes never need to agree, and a fresh replica waits one full
duration before it takes over a lease it has never seen renewed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LeaseAction(enum.Enum):
    """What a replica does with the Lease on this attempt."""

    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # we hold it
    TAKE_OVER = "take-over"  # released, or its holder stopped renewing a full duration ago
    WAIT = "wait"  # someone else holds it


@dataclass(frozen=True)
class LeaseView:
    """What matters of a coordination.k8s.io/v1 Lease."""

    holder: str | None
    renew_time: str | None
    duration_seconds: float
    transitions: int
    resource_version: str

    @property
    def record(self) -> tuple[str | None, str | None]:
        return (self.holder, self.renew_time)


@dataclass(frozen=True)
class Observed:
    """The record this replica last saw and when it first saw it (monotonic seconds)."""

    record: tuple[str | None, str | None]
    since: float


def track(lease: LeaseView | None, last: Observed | None, now: float) -> Observed | None:
    """The record seen now, and since when (kept while it does not change)."""
    if lease is None:
        return None
    if last is not None and last.record == lease.record:
        return last
    return Observed(lease.record, now)


def lease_action(lease: LeaseView | None, identity: str, observed: Observed | None, now: float) -> LeaseAction:
    if lease is None:
        return LeaseAction.CREATE
    if lease.holder == identity:
        return LeaseAction.RENEW
    if not lease.holder:
        return LeaseAction.TAKE_OVER
    if observed is not None and observed.record == lease.record and now - observed.since >= lease.duration_seconds:
        return LeaseAction.TAKE_OVER
    return LeaseAction.WAIT


def lost(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """The leader gives up (and exits) when it could not renew for `renew_deadline` seconds: before the lease
    expires for the others, so that there are never two writers."""
    return now - last_renewed >= renew_deadline
