"""The operator under failure, as an SRE would try it before trusting it:

- a leader paused (SIGSTOP) past its Lease and then resumed (SIGCONT) writes nothing after the standby has
  taken over: not a status patch, not an apply, not one of kopf's annotations, not an event (the audit log
  counts writes per ServiceAccount, one per replica); it exits with the lost-lease status instead;
- deleting a model while its timer pass is running (a slow object store keeps every pass in flight for
  seconds) releases kopf's finalizer within seconds, not after kopf's default 60 s cancellation poll;
- a restart with a rolled-back and a stalled model logs no ERROR line: those are known, reported states.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlparse

import pytest
import yaml
from mlmodel_operator.adapters import KubeApi
from mlmodel_operator.adapters.lease import LeaseElector
from mlmodel_operator.metrics import OperatorMetrics
from prometheus_client import CollectorRegistry

from tests.operator.cluster import (
    OperatorProcess,
    Packages,
    create_store_secret,
    get_model,
    mlmodel,
    wait_condition,
)
from tests.operator.conftest import FAILURE_DETECTION, REPO, crd, start_operator
from tests.operator.factories import LOCAL_CONFIG
from tests.support.audit import AuditLog
from tests.support.delayproxy import DelayProxy
from tests.support.kube import Kubectl
from tests.support.ports import free_port
from tests.support.tokens import token_kubeconfig
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]
__all__ = ["crd"]

LEASE: dict[str, Any] = {"enabled": True, "leaseName": "mlmodel-operator-fence", "leaseDurationSeconds": 3,
                         "renewDeadlineSeconds": 2, "retryPeriodSeconds": 0.5}
EXIT_LOST_LEASE = 3  # mlmodel_operator.__main__.EXIT_LOST_LEASE
CRASHLOOP = {"labels": {"mlmodel.io/simulate": "crashloop"}}


def _holder(kubectl: Kubectl, namespace: str) -> str | None:
    res = kubectl.run("get", "lease", str(LEASE["leaseName"]), "-n", namespace, "-o", "json", check=False)
    return json.loads(res.stdout)["spec"].get("holderIdentity") if res.returncode == 0 else None


def _events_by(kubectl: Kubectl, namespace: str, instance: str) -> set[str]:
    items = kubectl.json("get", "events", "-n", namespace)["items"]
    return {e["metadata"]["name"] for e in items if e.get("reportingInstance") == instance}


@pytest.fixture
def replicas(
    crd: None, kubeconfig: Path, kubectl: Kubectl, namespace: str, s3_env: dict[str, str], tmp_path: Path
) -> Iterator[dict[str, OperatorProcess]]:
    """Two replicas, each with its own ServiceAccount (so the audit log tells their writes apart), bound to
    cluster-admin in this namespace only; "a" leads."""
    started: dict[str, OperatorProcess] = {}

    def start(identity: str) -> OperatorProcess:
        account = f"replica-{identity}"
        kubectl.run("create", "serviceaccount", account, "-n", namespace)
        kubectl.run("create", "rolebinding", account, "--clusterrole=cluster-admin",
                    f"--serviceaccount={namespace}:{account}", "-n", namespace)
        token = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
        metrics_port, health_port = free_port(), free_port()
        config: dict[str, Any] = {
            **LOCAL_CONFIG,
            "objectStore": {"endpoint": s3_env["AWS_ENDPOINT_URL"], "region": s3_env["AWS_REGION"]},
            "resync": {"intervalSeconds": 2.0, "retryDelaySeconds": 1.0},
            "failureDetection": FAILURE_DETECTION,
            "leaderElection": {**LEASE, "leaseNamespace": namespace},
            "metricsPort": metrics_port,
            "healthPort": health_port,
        }
        config_file = tmp_path / f"{identity}.yaml"
        config_file.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG"))}
        env |= {"KUBECONFIG": str(token_kubeconfig(kubeconfig, token, tmp_path / f"{identity}.kubeconfig")),
                "POD_NAME": identity, "POD_NAMESPACE": namespace}
        log_file = tmp_path / f"{identity}.log"
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlmodel_operator", "--config", str(config_file), "--namespace", namespace],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        started[identity] = OperatorProcess(proc, log_file, metrics_port, health_port)
        wait_for(started[identity].healthy, 60, f"replica {identity} to answer /healthz (log: {log_file})")
        return started[identity]

    replicas = {"a": start("a")}
    wait_for(lambda: _holder(kubectl, namespace) == "a", 30, "a to take the Lease")
    replicas["b"] = start("b")
    try:
        yield replicas
    finally:
        for running in started.values():
            if running.proc.poll() is None:
                running.proc.send_signal(signal.SIGCONT)
        kubectl.run("delete", "mlmodels", "--all", "-n", namespace, "--timeout=60s", check=False)
        for running in started.values():
            running.stop()


def test_a_paused_leader_writes_nothing_after_the_takeover(
    replicas: dict[str, OperatorProcess], kubectl: Kubectl, namespace: str, s3: Any, bucket: str,
    s3_env: dict[str, str], tmp_path: Path, audit_log: AuditLog | None,
) -> None:
    if audit_log is None:
        pytest.skip("needs the local cluster's audit log to count each replica's writes")
    a, b = replicas["a"], replicas["b"]
    create_store_secret(kubectl, namespace, s3_env)
    packages = Packages(s3, bucket, tmp_path / "packages")
    packages.folder.mkdir()
    store = urlparse(s3_env["AWS_ENDPOINT_URL"])
    a_user = f"system:serviceaccount:{namespace}:replica-a"
    with DelayProxy(store.hostname or "127.0.0.1", store.port or 80, delay=1.0) as slow_store:
        body = yaml.safe_load(mlmodel("m", packages.onnx("m/1", seed=1), nodePool="cpu"))
        body["spec"]["source"]["endpoint"] = slow_store.url
        kubectl.apply(yaml.safe_dump(body), namespace)
        first = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving", timeout=120)
        assert _events_by(kubectl, namespace, "a"), "the leader posted the model's events, under its own identity"

        # A new revision; the leader freezes in the middle of validating it (a store request in flight), and
        # stays frozen past its Lease while more work arrives that it would act on when it wakes.
        kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"source": {"uri": packages.onnx("m/2", seed=2)}}}))
        wait_for(lambda: any("/m/2/" in line for line in slow_store.held), 60,
                 "the leader's pass to be reading revision 2's package")
        a.proc.send_signal(signal.SIGSTOP)
        paused = audit_log.mark()  # nothing a writes from here on can be before the takeover
        events_before = _events_by(kubectl, namespace, "a")
        kubectl.apply(mlmodel("other", packages.onnx("other/1", seed=3), nodePool="cpu"), namespace)
        kubectl.apply(mlmodel("bad", packages.onnx("bad/1", seed=4), nodePool="cpu", podMetadata=CRASHLOOP),
                      namespace)
        wait_for(lambda: _holder(kubectl, namespace) == "b", 30, "b to take over the Lease")

        def new_revision_serving() -> dict[str, Any] | None:
            obj = wait_condition(kubectl, namespace, "m", "Ready", reason="Serving", timeout=60)
            return obj if obj["status"]["package"]["digest"] != first["status"]["package"]["digest"] else None

        wait_for(new_revision_serving, 120, "b to finish the rollout of m's revision 2")
        wait_condition(kubectl, namespace, "other", "Ready", reason="Serving", timeout=90)
        wait_condition(kubectl, namespace, "bad", "Stalled", timeout=90)

        # It wakes with a pass half done, queued watch events, timers due and a lease thread past its deadline.
        a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: a.proc.poll() is not None, 30, "the resumed replica to exit")
        assert a.proc.returncode == EXIT_LOST_LEASE, a.log_tail()
        # b goes on serving: one more spec change is picked up by it alone.
        kubectl.run("patch", "mlmodel", "other", "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"replicas": 2}}))
        wait_for(lambda: get_model(kubectl, namespace, "other")["status"].get("observedGeneration") == 2, 60,
                 "b to observe the new generation of other")

    writes = audit_log.writes(since=paused, namespace=namespace)
    by_a = [str(w) for w in writes if w.user == a_user]
    print(f"\nwrites by the paused leader after the takeover: {len(by_a)}; by the new leader: "
          f"{sum(w.user.endswith(':replica-b') for w in writes)}")
    assert by_a == [], "the paused leader wrote after it lost the Lease:\n" + "\n".join(by_a)
    assert any(w.user.endswith(":replica-b") for w in writes), "the new leader's writes are in the log"
    assert _events_by(kubectl, namespace, "a") == events_before, "the paused leader posted events after waking"
    assert b.metric("mlmodel_operator_leader") == 1


class LeaseLost(Exception):
    pass


def test_the_fence_refuses_every_write_once_the_own_clock_is_past_the_renew_deadline(
    crd: None, kube_api: Any, kubectl: Kubectl, namespace: str
) -> None:
    """The deterministic half of the paused-leader test: whether the renewer thread has noticed or not (after
    a pause it may be the last thread to run), a write checks the replica's own monotonic clock first."""
    now = [1000.0]
    elector = LeaseElector(kube_api, name="fenced", namespace=namespace, identity="a", lease_duration=3,
                           renew_deadline=2, retry_period=0.2, clock=lambda: now[0])
    elector.acquire()

    def lost() -> NoReturn:
        raise LeaseLost

    kube = KubeApi(kube_api, "fence-test", OperatorMetrics(CollectorRegistry()), fence=elector.fence(lost))
    kubectl.apply(mlmodel("m", "s3://bucket/m/", secret=None), namespace)
    model = get_model(kubectl, namespace, "m")
    kube.patch_model_status(namespace, "m", {"revision": 1})
    now[0] += 2.5  # frozen past the renew deadline: the renewer never ran in between
    with pytest.raises(LeaseLost):
        kube.patch_model_status(namespace, "m", {"revision": 2})
    with pytest.raises(LeaseLost):
        kube.post_event(model, "Normal", "Test", "never posted", datetime.now(UTC))
    with pytest.raises(LeaseLost):
        kube.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "m", "namespace": namespace},
                    "spec": {"ports": [{"port": 80}]}})
    assert get_model(kubectl, namespace, "m")["status"]["revision"] == 1
    assert kubectl.run("get", "service", "m", "-n", namespace, check=False).returncode != 0
    assert not [e for e in kubectl.json("get", "events", "-n", namespace)["items"] if e["reason"] == "Test"]
    # Renewed again (nobody took the Lease meanwhile): it may write again.
    assert elector.try_acquire_or_renew()
    kube.patch_model_status(namespace, "m", {"revision": 3})
    assert get_model(kubectl, namespace, "m")["status"]["revision"] == 3


def _delete_and_time(kubectl: Kubectl, namespace: str, name: str) -> float:
    started = time.monotonic()
    kubectl.run("delete", "mlmodel", name, "-n", namespace, "--wait=false")
    wait_for(lambda: kubectl.run("get", "mlmodel", name, "-n", namespace, check=False).returncode != 0, 90,
             f"{name} to be gone (its finalizer released)")
    return time.monotonic() - started


def test_deleting_a_model_during_its_timer_pass_releases_the_finalizer_promptly(
    operator: OperatorProcess, kubectl: Kubectl, model_namespace: str, credentials: str, packages: Packages,
    s3_env: dict[str, str],
) -> None:
    namespace = model_namespace
    store = urlparse(s3_env["AWS_ENDPOINT_URL"])
    times = []
    with DelayProxy(store.hostname or "127.0.0.1", store.port or 80, delay=0.5) as slow_store:
        for i in range(3):
            body = yaml.safe_load(mlmodel(f"m{i}", packages.onnx(f"m{i}/1", seed=i), nodePool="cpu"))
            body["spec"]["source"]["endpoint"] = slow_store.url
            kubectl.apply(yaml.safe_dump(body), namespace)
            wait_condition(kubectl, namespace, f"m{i}", "Ready", reason="Serving", timeout=120)
            # Each pass reads the package's manifest through the slow store: a resync pass is in flight.
            wait_for(lambda: slow_store.holding > 0, 30, "a resync pass in the middle of a store request")
            times.append(_delete_and_time(kubectl, namespace, f"m{i}"))
    print(f"\ndelete -> finalizer gone under a running timer pass: p50 {statistics.median(times):.1f}s "
          f"max {max(times):.1f}s ({', '.join(f'{t:.1f}' for t in times)})")
    # kopf's default polls a stopping timer again after 60 s; the operator waits for the pass instead.
    assert max(times) < 20, times


def test_a_restart_logs_no_error_for_rolled_back_and_stalled_models(
    crd: None, kubectl: Kubectl, namespace: str, kubeconfig: Path, s3_env: dict[str, str], s3: Any, bucket: str,
    tmp_path: Path,
) -> None:
    create_store_secret(kubectl, namespace, s3_env)
    packages = Packages(s3, bucket, tmp_path / "packages")
    packages.folder.mkdir()
    first = start_operator(tmp_path / "first", kubeconfig, s3_env, [namespace])
    try:
        kubectl.apply(mlmodel("m", packages.onnx("m/1", seed=1), nodePool="cpu"), namespace)
        wait_condition(kubectl, namespace, "m", "Ready", reason="Serving", timeout=90)
        kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--type=merge", "-p", json.dumps(
            {"spec": {"source": {"uri": packages.onnx("m/2", seed=2)}, "podMetadata": CRASHLOOP}}))
        wait_condition(kubectl, namespace, "m", "RolledBack", timeout=120)
        kubectl.apply(mlmodel("broken", packages.digest_mismatch("broken/1"), nodePool="cpu"), namespace)
        wait_condition(kubectl, namespace, "broken", "Stalled", timeout=60)
    finally:
        first.stop()

    second = start_operator(tmp_path / "second", kubeconfig, s3_env, [namespace])
    try:
        # Both models resumed: one pass each at least, and a resync of each after that.
        wait_for(lambda: second.metric("mlmodel_operator_reconcile_total") >= 4, 60, "the resumed passes")
        log = second.log_file.read_text(errors="replace")
        errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
        assert errors == [], "\n".join(errors)
        assert get_model(kubectl, namespace, "m")["status"]["revision"] == 1
    finally:
        kubectl.run("delete", "mlmodels", "--all", "-n", namespace, "--timeout=60s", check=False)
        second.stop()
