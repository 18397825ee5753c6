"""A serving model whose replica count changes (kubectl scale, an HPA) stays Ready: Reconciling=True with
reason Scaling until the Deployment has the new count; a rollout, or pods with problems, are not scaling."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.spec import MLModelStatus
from mlmodel_operator.status import Observation, PassFacts, Revisions, compute_status
from mlmodel_operator.workload import Problem

from tests.operator.factories import history_entry, package, record

T0 = "2026-01-01T00:00:00Z"
SERVING = Revisions(history=(history_entry(1, "Serving"),), desired=1)


def _conds(**observed: Any) -> dict[str, tuple[str, str]]:
    obs = Observation(**{"exists": True, "up_to_date": True, "revision": 1, "minimum_available": True, **observed})
    facts = PassFacts(generation=1, desired_replicas=obs.desired, url="http://m", selector="a=b", observation=obs,
                      package=package(), applied_revision=1, revisions=SERVING)
    return {c.type: (c.status, c.reason) for c in compute_status(MLModelStatus(), facts, T0).conditions}


def test_scaling_out_keeps_ready() -> None:
    conds = _conds(desired=3, replicas=3, updated=3, ready=1, available=1)
    assert conds["Ready"] == ("True", "Serving")
    assert conds["Reconciling"] == ("True", "Scaling")
    assert conds["Stalled"] == ("False", "Progressing")


def test_scaling_in_keeps_ready() -> None:
    conds = _conds(desired=1, replicas=3, updated=3, ready=3, available=3)
    assert (conds["Ready"], conds["Reconciling"]) == (("True", "Serving"), ("True", "Scaling"))


def test_done_scaling_is_reconciled() -> None:
    conds = _conds(desired=3, replicas=3, updated=3, ready=3, available=3)
    assert (conds["Ready"], conds["Reconciling"]) == (("True", "Serving"), ("False", "Reconciled"))


def test_a_rollout_is_not_scaling() -> None:
    rolling = Revisions(history=(history_entry(1, "Serving"),), rollout=record(2), desired=2, in_rollout=True)
    obs = Observation(exists=True, up_to_date=True, desired=2, replicas=3, updated=1, ready=2, available=2,
                      revision=2, minimum_available=True)
    facts = PassFacts(generation=2, desired_replicas=2, url="http://m", selector="a=b", observation=obs,
                      package=package(), applied_revision=2, revisions=rolling)
    conds = {c.type: (c.status, c.reason) for c in compute_status(MLModelStatus(), facts, T0).conditions}
    assert conds["Ready"] == ("False", "RollingOut")


def test_old_template_pods_left_are_not_scaling() -> None:
    assert _conds(desired=2, replicas=3, updated=2, ready=3, available=3)["Ready"][0] == "False"


def test_a_serving_revision_with_no_available_pod_is_not_ready() -> None:
    assert _conds(desired=2, replicas=2, updated=2, ready=0, available=0)["Ready"][0] == "False"


def test_pod_problems_while_scaling_are_reported_as_such() -> None:
    problem = Problem("ImagePullBackOff", "pod m-x: image not found")
    conds = _conds(desired=3, replicas=3, updated=3, ready=2, available=2, problems=(problem,))
    assert conds["Stalled"] == ("True", "ImagePullBackOff")
