"""spec.auth KubernetesTokens and spec.networkPolicy in reconcile passes, against the fake API
(tests/operator/fakeapi.py), and mlmodel_operator.access's decisions as tables:
- a new model with token auth gets its reviewer ServiceAccount and ClusterRoleBinding before its Deployment,
  whose pods run as that ServiceAccount; steady passes write nothing more;
- auth turned off: the reviewer stays while pods of the token revision still run, then the binding goes and
  then the ServiceAccount; a rollback to a token revision brings them back first;
- the model deleted: its binding, which it cannot own, is deleted by the operator (the ServiceAccount is
  owned: the garbage collector's);
- a binding left by an earlier MLModel of the same name is taken over (its uid label rewritten);
- the NetworkPolicy is applied when the spec or the configuration turns it on, again when it changes, and
  deleted when turned off."""

from __future__ import annotations

from typing import Any

import pytest
from mlmodel_operator import access
from mlmodel_operator.reconcile import Reconciler
from mlmodel_operator.render.auth import render_token_review_rbac

from tests.operator import factories
from tests.operator.fakeapi import NS, Cluster

V1 = "s3://models/m/1/"
V2 = "s3://models/m/2/"
TOKENS = {"mode": "KubernetesTokens"}
BINDING = f"mlmodel:{NS}:m:token-reviewer"
ACCOUNT = "m-token-reviewer"


def _world(**config: Any) -> Cluster:
    world = Cluster(config=factories.config(**config)) if config else Cluster()
    world.secret()
    world.packages.add(V1, "sha256:" + "01" * 32)
    world.packages.add(V2, "sha256:" + "02" * 32)
    return world


def _writes(world: Cluster, start: int = 0) -> list[str]:
    return [str(w) for w in world.kube.writes[start:] if "events" not in str(w) and "mlmodels/status" not in str(w)]


def _steady(world: Cluster, op: Reconciler) -> None:
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    op.reconcile(NS, "m")
    assert _writes(world, before) == []


def test_token_auth_gets_its_reviewer_before_its_pods_and_steady_passes_write_nothing() -> None:
    world = _world()
    world.create("m", V1, auth=TOKENS)
    op = world.reconciler()
    op.reconcile(NS, "m")
    assert _writes(world) == [f"apply serviceaccounts {ACCOUNT}", f"apply clusterrolebindings {BINDING}",
                              "apply deployments m", "apply services m"]
    pod = world.deployment("m")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == ACCOUNT
    binding = world.kube.get("clusterrolebindings", "", BINDING)
    assert binding is not None
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NS}]
    world.roll_out("m")
    op.reconcile(NS, "m")
    _steady(world, op)


def _serving_with_tokens() -> tuple[Cluster, Reconciler]:
    """A token-auth model whose first revision has rolled out."""
    world = _world()
    world.create("m", V1, auth=TOKENS)
    op = world.reconciler()
    for _ in range(2):
        op.reconcile(NS, "m")
        world.roll_out("m")
    return world, op


def test_auth_off_keeps_the_reviewer_until_its_pods_are_gone_then_binding_first() -> None:
    world, op = _serving_with_tokens()
    world.edit("m", {"auth": None})
    before = len(world.kube.writes)
    op.reconcile(NS, "m")  # the new Deployment has no reviewer, its old pods still run as it
    assert "serviceAccountName" not in world.deployment("m")["spec"]["template"]["spec"]
    assert not [w for w in _writes(world, before) if w.startswith("delete")]
    assert world.kube.get("clusterrolebindings", "", BINDING) is not None
    world.roll_out("m")  # the token revision's pods are replaced
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    assert _writes(world, before) == [f"delete clusterrolebindings {BINDING}", f"delete serviceaccounts {ACCOUNT}"]
    assert world.kube.get("serviceaccounts", NS, ACCOUNT) is None
    _steady(world, op)


def test_deleting_the_model_deletes_its_binding() -> None:
    world = _world()
    world.create("m", V1, auth=TOKENS)
    op = world.reconciler()
    op.reconcile(NS, "m")
    world.kube.model(NS, "m")["metadata"]["deletionTimestamp"] = world.clock.stamp()
    op.reconcile(NS, "m")  # a pass that finds it being deleted (kopf's delete handler calls forget the same way)
    assert world.kube.get("clusterrolebindings", "", BINDING) is None
    assert world.kube.get("serviceaccounts", NS, ACCOUNT) is not None  # owned: the garbage collector's
    op.forget(NS, "m")  # again (the delete handler after a pass): nothing left, no error
    assert world.kube.get("clusterrolebindings", "", BINDING) is None


def test_a_binding_of_an_earlier_model_of_the_same_name_is_taken_over() -> None:
    world = _world()
    world.create("m", V1, auth=TOKENS)
    earlier = factories.model(name="m", namespace=NS, auth=TOKENS)
    _, old_binding = render_token_review_rbac(earlier)  # uid 0a1b2c3d-uid: another MLModel
    world.kube.put("clusterrolebindings", dict(old_binding))
    world.reconciler().reconcile(NS, "m")
    binding = world.kube.get("clusterrolebindings", "", BINDING)
    assert binding is not None
    assert binding["metadata"]["labels"]["serving.mlmodel.io/model-uid"] == world.kube.model(NS, "m")["metadata"]["uid"]


def test_network_policy_on_changed_and_off() -> None:
    world = _world()
    world.create("m", V1, networkPolicy={})
    op = world.reconciler()
    op.reconcile(NS, "m")
    policy = world.kube.get("networkpolicies", NS, "m")
    assert policy is not None
    assert policy["spec"]["ingress"][0]["from"] == [{"podSelector": {}}]
    world.edit("m", {"networkPolicy": {"allowFrom": [{"namespace": "gateway"}]}})
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    assert "apply networkpolicies m" in _writes(world, before)
    world.edit("m", {"networkPolicy": {"enabled": False}})
    before = len(world.kube.writes)
    op.reconcile(NS, "m")
    assert "delete networkpolicies m" in _writes(world, before)
    assert world.kube.get("networkpolicies", NS, "m") is None


def test_configuration_gives_every_model_a_policy() -> None:
    world = _world(networkPolicy={"enabled": True})
    world.create("m", V1)
    world.reconciler().reconcile(NS, "m")
    assert world.kube.get("networkpolicies", NS, "m") is not None


# name -> (spec.auth, deployments' pod ServiceAccounts, pods' ServiceAccounts, needed)
NEEDED: dict[str, tuple[dict[str, Any] | None, list[str | None], list[str | None], bool]] = {
    "no auth, nothing runs as it": (None, [None], [None], False),
    "the spec asks for it": (TOKENS, [None], [], True),
    "API keys": ({"mode": "APIKeys", "apiKeysSecret": "k"}, [None], [], False),
    "a Deployment's template (a rollback to a token revision)": (None, [ACCOUNT], [], True),
    "a canary's template": (None, [None, ACCOUNT], [], True),
    "old pods still run as it": (None, [None], [ACCOUNT, None], True),
    "another ServiceAccount": (None, ["default"], ["default"], False),
}


@pytest.mark.parametrize("case", sorted(NEEDED))
def test_when_the_reviewer_is_needed(case: str) -> None:
    auth, templates, pods, expected = NEEDED[case]
    model = factories.model(name="m", namespace=NS, auth=auth)

    def spec(account: str | None) -> dict[str, Any]:
        return {"serviceAccountName": account} if account else {}

    deployments = [{"spec": {"template": {"spec": spec(a)}}} for a in templates]
    assert access.reviewer_needed(model, deployments, [{"spec": spec(a)} for a in pods]) == expected


def test_decisions_apply_only_what_differs() -> None:
    model = factories.model(name="m", namespace=NS, auth=TOKENS, networkPolicy={})
    config = factories.config()
    first = access.decide(model, config, True, access.Live(None, (), None))
    assert [o["kind"] for o in first.apply] == ["ServiceAccount", "ClusterRoleBinding", "NetworkPolicy"]
    account, binding, policy = first.apply
    again = access.decide(model, config, True, access.Live(account, (binding,), policy))
    assert again == access.AccessPlan()
    plain = factories.model(name="m", namespace=NS)
    off = access.decide(plain, config, False, access.Live(account, (binding,), policy))
    assert off.apply == ()
    assert [(r.kind, r.namespace, r.name) for r in off.delete] == [
        ("ClusterRoleBinding", "", BINDING), ("ServiceAccount", NS, ACCOUNT), ("NetworkPolicy", NS, "m")]
    foreign = {**policy, "metadata": {**policy["metadata"], "ownerReferences": [{"kind": "MLModel", "uid": "x"}]}}
    # not ours: left alone
    assert access.decide(plain, config, False, access.Live(None, None, foreign)) == access.AccessPlan()
    assert not access.must_list_bindings(False, None)
    assert access.must_list_bindings(False, account)
