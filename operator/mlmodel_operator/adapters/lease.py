"""Lease-based leader election among operator replicas (coordination.k8s.io/v1), client-go's protocol.

`acquire()` blocks until this replica holds the Lease; `keep()` renews it in a thread and calls `on_lost`
when renewal has failed for the renew deadline; `release()` hands it over at a clean shutdown.

`holds()` is the fence every write checks first (adapters.kube): true only while the last successful renewal
*began* less than the renew deadline ago on this process's monotonic clock. Another replica takes over only
after it has seen the same record unchanged for a whole lease duration on its own clock, which starts after
our renewal reached the API server; so a replica that was paused (SIGSTOP, a frozen VM, a long GC) finds on
waking that it can no longer prove it leads, and writes nothing, whatever its lease thread is doing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mlmodel_operator.election import LeaseAction, LeaseView, Observed, lease_action, lost, track

log = logging.getLogger(__name__)


def _micro_time(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.clock = clock  # monotonic seconds; injected by tests to stand for a pause
        self._observed: Observed | None = None
        self._stop = threading.Event()
        # Monotonic time at which the last successful acquire/renew request was sent (-inf: never).
        self._renewed_at = float("-inf")
        # Every Lease call gives up within the renew deadline, so the renew loop never hangs past it.
        self._timeout = max(renew_deadline, 0.5)

    def holds(self) -> bool:
        """Can this replica still prove it holds the Lease? (thread-safe: one float read)"""
        return not lost(self._renewed_at, self.clock(), self.renew_deadline)

    def fence(self, on_lost: Callable[[], NoReturn]) -> Callable[[], None]:
        """The check to run before every write: `on_lost` (which must not return: exit the process) when this
        replica can no longer prove it holds the Lease."""

        def check() -> None:
            if not self.holds():
                on_lost()

        return check

    def _read(self) -> tuple[LeaseView | None, dict[str, Any] | None]:
        try:
            response: Any = self.api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=self._timeout)
            raw = json.loads(response.data)
        except ApiException as exc:
            if exc.status == 404:
                return None, None
            raise
        spec = raw.get("spec") or {}
        view = LeaseView(
            holder=spec.get("holderIdentity") or None,
            renew_time=spec.get("renewTime"),
            duration_seconds=float(spec.get("leaseDurationSeconds") or self.lease_duration),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(raw["metadata"]["resourceVersion"]),
        )
        return view, raw

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease afterwards."""
        sent = self.clock()  # the lease is ours from no earlier than this, whatever the reply's delay
        view, raw = self._read()
        now = self.clock()
        self._observed = track(view, self._observed, now)
        action = lease_action(view, self.identity, self._observed, now)
        if action is LeaseAction.WAIT:
            return False
        stamp = _micro_time(datetime.now(UTC))
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "renewTime": stamp,
        }
        try:
            if action is LeaseAction.CREATE:
                spec |= {"acquireTime": stamp, "leaseTransitions": 0}
                body: Any = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                self.api.create_namespaced_lease(
                    self.namespace, body, _preload_content=False, _request_timeout=self._timeout)
            else:
                assert view is not None
                assert raw is not None
                if action is LeaseAction.TAKE_OVER:
                    spec |= {"acquireTime": stamp, "leaseTransitions": view.transitions + 1}
                    log.info("taking over lease %s/%s from %s", self.namespace, self.name, view.holder or "nobody")
                # resourceVersion makes this a compare-and-swap: of two replicas taking over, one gets a 409.
                body = {"metadata": {**raw["metadata"]}, "spec": {**(raw.get("spec") or {}), **spec}}
                self.api.replace_namespaced_lease(
                    self.name, self.namespace, body, _preload_content=False, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        self._renewed_at = sent
        return True

    def acquire(self) -> None:
        log.info("waiting to lead through lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not self._stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("leading as %s", self.identity)
                    return
            except Exception as exc:  # the API may be briefly unreachable; keep trying
                log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            self._stop.wait(self.retry_period)

    def keep(self, on_lost: Callable[[], None]) -> threading.Thread:
        """Renew every retry period in a daemon thread; `on_lost` when renewal failed for the renew deadline."""

        def run() -> None:
            while not self._stop.wait(self.retry_period):
                # Checked before renewing too: a replica that wakes from a pause past its deadline stops
                # at once, without a renew call that may block or (worse) find the Lease free again.
                if not self.holds():
                    break
                try:
                    self.try_acquire_or_renew()
                except Exception as exc:
                    log.warning("renewing lease %s/%s: %s", self.namespace, self.name, exc)
                if not self.holds():
                    break
            else:
                return
            log.error("lost the lease %s/%s: stopping so that only the new leader writes", self.namespace, self.name)
            on_lost()

        thread = threading.Thread(target=run, name="lease-renewer", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """At a clean shutdown: stop renewing and empty the holder, so a standby takes over at once."""
        self._stop.set()
        try:
            view, raw = self._read()
            if view is None or raw is None or view.holder != self.identity:
                return
            released: Any = {
                "metadata": raw["metadata"],
                "spec": {**(raw.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1},
            }
            self.api.replace_namespaced_lease(
                self.name, self.namespace, released, _preload_content=False, _request_timeout=self._timeout)
            log.info("released lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("releasing lease %s/%s: %s", self.namespace, self.name, exc)
