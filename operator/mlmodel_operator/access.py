"""Who may reach and call a model, decided purely for each pass: the token reviewer's RBAC of spec.auth
KubernetesTokens and the NetworkPolicy of spec.networkPolicy / the configuration (docs/access.md).

- The reviewer (render.auth.render_token_review_rbac: a ServiceAccount owned by the MLModel and a
  ClusterRoleBinding to system:auth-delegator) is needed while spec.auth asks for KubernetesTokens or any pod
  template or pod of the model runs as it: a rollback to, or the last pods of, a revision with token auth
  keep it. It is applied before the pass's Deployment, so that the pods' ServiceAccount exists when they are
  created. Once nothing needs it, the binding goes first and the ServiceAccount after it (so a ServiceAccount
  left by a pass cut short still marks that a binding may be there).
- The binding is cluster-scoped and so cannot be owned by the namespaced MLModel: it is found by its labels
  (namespace, model) and deleted by the operator when not needed, when it was made for an earlier MLModel of
  the same name (its uid label), and when the model is deleted (`Reconciler.forget`, which runs under kopf's
  finalizer on the MLModel, so a model deleted while no operator runs is cleaned up when one starts).
- The NetworkPolicy (render.network_policy) is applied when the live one's applied-hash differs and deleted
  when it is turned off.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.render.auth import render_token_review_rbac, token_reviewer_name, uses_tokens
from mlmodel_operator.render.network_policy import network_rules, render_network_policy
from mlmodel_operator.spec import MLModel

Object = Mapping[str, Any]


@dataclass(frozen=True)
class Ref:
    """An object to delete; namespace "" for a cluster-scoped one."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class AccessPlan:
    apply: tuple[Object, ...] = ()  # in this order (the ServiceAccount before its binding)
    delete: tuple[Ref, ...] = ()  # in this order (the binding before its ServiceAccount)


@dataclass(frozen=True)
class Live:
    """What a pass read: the reviewer's ServiceAccount, the bindings labelled for this model (None: not listed,
    since neither anything needs a reviewer nor its ServiceAccount exists), the NetworkPolicy."""

    account: Object | None
    bindings: tuple[Object, ...] | None
    policy: Object | None


def _pod_spec(template_owner: Object | None, *path: str) -> Object:
    node: Any = template_owner or {}
    for key in path:
        node = node.get(key) or {}
    return node if isinstance(node, Mapping) else {}


def reviewer_needed(model: MLModel, deployments: Iterable[Object | None], pods: Iterable[Object]) -> bool:
    """spec.auth asks for Kubernetes tokens, or a Deployment's pod template or a pod runs as the reviewer."""
    if uses_tokens(model):
        return True
    account, _ = token_reviewer_name(model.metadata.namespace, model.metadata.name)
    specs = [_pod_spec(d, "spec", "template", "spec") for d in deployments]
    specs += [_pod_spec(pod, "spec") for pod in pods]
    return any(spec.get("serviceAccountName") == account for spec in specs)


def must_list_bindings(needed: bool, account: Object | None) -> bool:
    return needed or account is not None


def _hash(obj: Object | None) -> str | None:
    if obj is None:
        return None
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH_ANNOTATION)
    return str(value) if value is not None else None


def _owned_by(obj: Object, model: MLModel) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") == model.kind and r.get("uid") == model.metadata.uid for r in refs)


def decide(model: MLModel, config: OperatorConfig, needed: bool, live: Live) -> AccessPlan:
    namespace = model.metadata.namespace
    apply: list[Object] = []
    delete: list[Ref] = []
    bindings = live.bindings or ()
    if needed:
        account, binding = render_token_review_rbac(model)
        if _hash(live.account) != _hash(account):
            apply.append(account)
        current = [b for b in bindings if b["metadata"]["name"] == binding["metadata"]["name"]]
        if not current or _hash(current[0]) != _hash(binding):
            apply.append(binding)
        # One made for an earlier MLModel of this name differs in its uid label: the apply takes it over.
    else:
        delete += [Ref("ClusterRoleBinding", "", b["metadata"]["name"]) for b in bindings]
        if live.account is not None and not live.account["metadata"].get("deletionTimestamp"):
            delete.append(Ref("ServiceAccount", namespace, live.account["metadata"]["name"]))
    rules = network_rules(model, config)
    if rules is not None:
        policy = render_network_policy(model, rules)
        if _hash(live.policy) != _hash(policy):
            apply.append(policy)
    elif live.policy is not None and _owned_by(live.policy, model):
        delete.append(Ref("NetworkPolicy", namespace, model.metadata.name))
    return AccessPlan(tuple(apply), tuple(delete))
