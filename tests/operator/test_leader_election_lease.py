"""Two electors on a real Lease: exactly one leads, and the other does not take over across the leader's
renewals; it takes over when the leader stops renewing (no sooner than a lease duration on its own clock
after it saw the record last change) and at once when the leader releases the Lease at a clean shutdown.
No test depends on how fast this machine runs: renewals are counted, and a takeover has a lower bound only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mlmodel_operator.adapters.lease import LeaseElector

from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def electors(kube_api: Any, namespace: str) -> Iterator[Callable[[float], tuple[LeaseElector, LeaseElector]]]:
    """Two electors, a and b, on one Lease of the given duration."""
    made: list[LeaseElector] = []

    def make(lease_duration: float = 3) -> tuple[LeaseElector, LeaseElector]:
        pair = tuple(LeaseElector(kube_api, name="op", namespace=namespace, identity=identity,
                                  lease_duration=lease_duration, renew_deadline=lease_duration * 2 / 3,
                                  retry_period=0.2) for identity in ("a", "b"))
        made.extend(pair)
        return pair[0], pair[1]

    yield make
    for elector in made:
        elector._stop.set()


def _lease(kube_api: Any, namespace: str) -> Any:
    from kubernetes import client

    return client.CoordinationV1Api(kube_api).read_namespaced_lease("op", namespace)


def _holder(kube_api: Any, namespace: str) -> str | None:
    return _lease(kube_api, namespace).spec.holder_identity  # type: ignore[no-any-return]


def test_no_takeover_while_the_leader_renews(
    electors: Callable[[float], tuple[LeaseElector, LeaseElector]], kube_api: Any, namespace: str
) -> None:
    # A lease long enough that a slow machine never lets it lapse between two renewals: what is tested is that b
    # sees the record change and waits, over several of a's renewals, not how fast a renews.
    a, b = electors(60)
    a.acquire()
    a.keep(on_lost=lambda: None)
    renewals: set[str] = set()

    def renewed_five_times() -> bool:
        assert not b.try_acquire_or_renew(), "b took over a lease that a keeps renewing"
        renewals.add(str(_lease(kube_api, namespace).spec.renew_time))
        return len(renewals) >= 5

    wait_for(renewed_five_times, 60, "five renewals by a, with b trying in between")
    assert _holder(kube_api, namespace) == "a"


def test_takeover_after_the_lease_expires(
    electors: Callable[[float], tuple[LeaseElector, LeaseElector]], kube_api: Any, namespace: str
) -> None:
    a, b = electors(3)
    a.acquire()
    assert _holder(kube_api, namespace) == "a"
    seen = time.monotonic()
    assert not b.try_acquire_or_renew()  # b has now seen a's record, no sooner than `seen`
    # a dies without releasing (as with SIGKILL): it never renews again
    wait_for(b.try_acquire_or_renew, 30, "b to take over the abandoned lease", interval=0.2)
    # b's own clock: no takeover before a full lease duration since it first saw the unchanged record
    assert time.monotonic() - seen >= 3
    assert _holder(kube_api, namespace) == "b"


def test_release_hands_over_at_once(
    electors: Callable[[float], tuple[LeaseElector, LeaseElector]], kube_api: Any, namespace: str
) -> None:
    a, b = electors(3)
    a.acquire()
    assert not b.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew(), "a released lease is taken at the next attempt"
    assert _holder(kube_api, namespace) == "b"
