"""GitOps tools read an MLModel's health right at each moment of a canary (spec.rollout.strategy Canary): kstatus
(the real Go library, as Flux reads it) and the chart's Argo CD Lua check give InProgress/Progressing while the
canary runs (Ready=True, the stable revision serving, with Reconciling=True/Canary) and while it is promoted,
Current/Healthy once the candidate serves, and Failed/Degraded after an abort (Stalled=True/RolledBack, the
message naming the abort's figures; while the stable revision gets its replicas back, kstatus still says
InProgress and Argo CD already Degraded). The MLModel objects are the ones the operator's own passes write, against
the fake API with the runtime pods' /metrics as the analysis scrapes them (tests/operator/test_canary_passes.py)."""

from __future__ import annotations

import copy
import shutil
from typing import Any

import pytest
from mlmodel_operator.reconcile import Reconciler

from hack.localcluster.tools import control_plane_binaries
from tests.gitops.health import argocd, kstatus
from tests.operator.fakeapi import NS, Cluster
from tests.operator.test_canary_passes import Traffic, _canary, _serving, _start_canary, _window

pytestmark = pytest.mark.skipif(
    shutil.which(str(control_plane_binaries() / "kstatus")) is None,
    reason="the kstatus binary is built with the local cluster's binaries (`make cluster-up` or hack/build)",
)

AGREE = {"Current": "Healthy", "InProgress": "Progressing", "Failed": "Degraded"}


def _model(world: Cluster) -> dict[str, Any]:
    return copy.deepcopy(world.kube.model(NS, "m"))


def _read(obj: dict[str, Any], expected: str) -> str:
    ks = kstatus(obj)
    argo, message = argocd(obj)
    conditions = {c["type"]: (c["status"], c["reason"]) for c in obj["status"]["conditions"]}
    assert ks == expected, f"kstatus says {ks}, expected {expected}; conditions: {conditions}"
    assert argo == AGREE[expected], f"Argo CD Lua says {argo} ({message}), expected {AGREE[expected]}"
    return message


def _running(world: Cluster, op: Reconciler) -> Traffic:
    """A canary at step 2 of 2 after a passing window, its pods ready."""
    traffic = _start_canary(world, op)
    _window(world, op, traffic)
    world.roll_out("m-canary")
    op.reconcile(NS, "m")
    return traffic


def test_health_through_a_promoted_canary() -> None:
    world, op = _serving(replicas=4)
    _read(_model(world), "Current")

    world.edit("m", {"source": {"uri": "s3://models/m/2/"}})
    op.reconcile(NS, "m")
    started = _model(world)
    assert started["status"]["canary"]["phase"] == "Progressing"
    message = _read(started, "InProgress")
    assert message.startswith("Canary: canary of revision 2: step 1/2"), message

    world.roll_out("m-canary")
    traffic = _start_canary(world, op, "s3://models/m/2/")
    _window(world, op, traffic)
    world.roll_out("m-canary")
    world.roll_out("m")
    op.reconcile(NS, "m")
    at_step_2 = _model(world)
    assert (at_step_2["status"]["canary"]["step"], at_step_2["status"]["canary"]["phase"]) == (2, "Progressing")
    assert "step 2/2" in _read(at_step_2, "InProgress")

    _window(world, op, traffic)
    promoting = _model(world)
    assert promoting["status"]["canary"]["phase"] == "Promoting"
    _read(promoting, "InProgress")

    world.roll_out("m")
    op.reconcile(NS, "m")
    promoted = _model(world)
    assert promoted["status"]["canary"]["phase"] == "Promoted"
    world.roll_out("m")  # back to spec.replicas once the candidate is gone
    op.reconcile(NS, "m")
    _read(_model(world), "Current")


@pytest.mark.parametrize("how", ["analysis", "annotation"])
def test_health_after_an_abort(how: str) -> None:
    world, op = _serving(replicas=4, **_canary({"weight": 25}, {"weight": 50, "untilPromoted": True}))
    traffic = _running(world, op)
    _read(_model(world), "InProgress")
    if how == "analysis":
        _window(world, op, traffic, candidate_ok=18, candidate_failed=2)
        figures = "error ratio 10% > 5% over 40 requests"  # 2 candidate pods at step 2
    else:
        world.edit("m", annotations={"serving.mlmodel.io/abort": "2026-11-22T10:06:00Z"})
        op.reconcile(NS, "m")
        figures = "aborted by request (mlmodel abort)"
    # While the stable revision gets its replicas back, Reconciling=True/RollingBack and Stalled=True/RolledBack
    # hold together: kstatus reads Reconciling first (InProgress), the Lua reads Stalled first (Degraded, at once).
    rolling_back = _model(world)
    assert rolling_back["status"]["canary"]["phase"] == "Aborted"
    assert kstatus(rolling_back) == "InProgress"
    assert argocd(rolling_back)[0] == "Degraded"

    world.roll_out("m")
    op.reconcile(NS, "m")
    aborted = _model(world)
    message = _read(aborted, "Failed")
    assert message.startswith("RolledBack: "), message
    assert "CanaryAborted" in message
    assert figures in message
