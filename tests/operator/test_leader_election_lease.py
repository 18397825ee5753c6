"""Two electors on a real Lease: exactly one leads; the other takes over when the leader stops renewing
(after the lease duration) and at once when the leader releases it at a clean shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mlmodel_operator.adapters.lease import LeaseElector

from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture
def electors(kube_api: Any, namespace: str) -> Iterator[tuple[LeaseElector, LeaseElector]]:
    def make(identity: str) -> LeaseElector:
        return LeaseElector(kube_api, name="op", namespace=namespace, identity=identity,
                            lease_duration=3, renew_deadline=2, retry_period=0.2)

    a, b = make("a"), make("b")
    yield a, b
    a._stop.set()
    b._stop.set()


def _holder(kube_api: Any, namespace: str) -> str | None:
    from kubernetes import client

    lease: Any = client.CoordinationV1Api(kube_api).read_namespaced_lease("op", namespace)
    return lease.spec.holder_identity  # type: ignore[no-any-return]


def test_one_leader_then_takeover_after_the_lease_expires(
    electors: tuple[LeaseElector, LeaseElector], kube_api: Any, namespace: str
) -> None:
    a, b = electors
    a.acquire()
    lost_a = threading.Event()
    a.keep(on_lost=lost_a.set)
    assert _holder(kube_api, namespace) == "a"

    # b sees a renewing: it may not take over, however long it tries within a's renewals.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert not b.try_acquire_or_renew()
        time.sleep(0.2)  # poll

    a._stop.set()  # a dies without releasing (as with SIGKILL)
    started = time.monotonic()
    wait_for(b.try_acquire_or_renew, 10, "b to take over the abandoned lease", interval=0.2)
    assert time.monotonic() - started >= 2.5, "no takeover before a full lease duration without renewals"
    assert _holder(kube_api, namespace) == "b"


def test_release_hands_over_at_once(
    electors: tuple[LeaseElector, LeaseElector], kube_api: Any, namespace: str
) -> None:
    a, b = electors
    a.acquire()
    assert not b.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew(), "a released lease is taken at the next attempt"
    assert _holder(kube_api, namespace) == "b"
