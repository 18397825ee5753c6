"""Leader election decisions (pure): create a missing Lease, renew our own, wait while another holder renews,
take over a released Lease at once and an abandoned one only after a full duration on our own clock."""

from __future__ import annotations

import pytest
from mlmodel_operator.election import LeaseAction, LeaseView, Observed, lease_action, lost, track


def lease(holder: str | None, renew: str = "t1", duration: float = 15) -> LeaseView:
    return LeaseView(holder=holder, renew_time=renew, duration_seconds=duration, transitions=0, resource_version="1")


@pytest.mark.parametrize(
    ("current", "observed", "now", "expected"),
    [
        (None, None, 0.0, LeaseAction.CREATE),
        (lease("me"), None, 0.0, LeaseAction.RENEW),
        (lease(None), None, 0.0, LeaseAction.TAKE_OVER),  # released at a clean shutdown
        (lease("other"), None, 100.0, LeaseAction.WAIT),  # never seen before: wait a full duration first
        (lease("other"), Observed(("other", "t1"), 90.0), 100.0, LeaseAction.WAIT),  # seen 10 s < 15 s ago
        (lease("other"), Observed(("other", "t1"), 85.0), 100.0, LeaseAction.TAKE_OVER),  # unchanged for 15 s
        (lease("other", "t2"), Observed(("other", "t1"), 0.0), 100.0, LeaseAction.WAIT),  # it renewed since
    ],
)
def test_lease_action(current: LeaseView | None, observed: Observed | None, now: float, expected: LeaseAction) -> None:
    assert lease_action(current, "me", observed, now) is expected


def test_track_keeps_first_sight_of_an_unchanged_record() -> None:
    first = track(lease("other"), None, 10.0)
    assert first == Observed(("other", "t1"), 10.0)
    assert track(lease("other"), first, 20.0) is first
    assert track(lease("other", "t2"), first, 20.0) == Observed(("other", "t2"), 20.0)
    assert track(None, first, 20.0) is None


@pytest.mark.parametrize(("renewed", "now", "expected"), [(0.0, 9.9, False), (0.0, 10.0, True)])
def test_leader_gives_up_at_the_renew_deadline(renewed: float, now: float, expected: bool) -> None:
    assert lost(renewed, now, renew_deadline=10.0) is expected
