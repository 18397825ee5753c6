"""A NetworkPolicy for a model's runtime pods (pure): who may reach which port, and where the pods may go.

Ingress: the inference ports (REST 8080, gRPC 8081) only from the allowed clients (spec.networkPolicy.allowFrom;
by default the pods of the model's own namespace), the metrics port (8082) only from the configured scrapers and
the operator (which scrapes it for canary analysis). Egress: DNS, the object store and, with KubernetesTokens
auth, the API server only (the runtime downloads its package and then talks to no one else). Everything else is
denied by the policy's existence, where the cluster's network plugin enforces NetworkPolicy at all.

`network_rules` decides from the spec and the operator's configuration whether there is one and what it allows;
`render_network_policy` writes it. It selects the model's pods by the model's selector labels, so a canary's
candidate pods are covered too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import NetworkPeerConfig, OperatorConfig
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.owner import model_owner_reference
from mlmodel_operator.spec import MLModel, NetworkPeer

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Peer:
    """Pods by namespace and pod labels (either may be left out), or addresses by CIDR."""

    namespace_labels: Mapping[str, str] | None = None
    pod_labels: Mapping[str, str] | None = None
    cidr: str | None = None

    def to_k8s(self) -> dict[str, Any]:
        if self.cidr is not None:
            return {"ipBlock": {"cidr": self.cidr}}
        peer: dict[str, Any] = {}
        if self.namespace_labels is not None:
            peer["namespaceSelector"] = _selector(self.namespace_labels)
        if self.pod_labels is not None:
            peer["podSelector"] = _selector(self.pod_labels)
        return peer


def _selector(labels: Mapping[str, str]) -> dict[str, Any]:
    """matchLabels, or {} (everything) without labels, as the API server stores an empty one."""
    return {"matchLabels": dict(sorted(labels.items()))} if labels else {}


def namespace(name: str) -> Peer:
    return Peer(namespace_labels={NAMESPACE_NAME_LABEL: name})


@dataclass(frozen=True)
class NetworkRules:
    clients: tuple[Peer, ...] = ()
    """Who may call the inference ports; empty: every pod of the model's own namespace."""
    metrics_from: tuple[Peer, ...] = field(default_factory=lambda: (namespace("monitoring"),))
    """Who may read the metrics port: the scrapers and the operator."""
    object_store: tuple[Peer, ...] = ()
    """Where the object store is (CIDRs, or pods when it runs in the cluster); empty: no egress to it."""
    object_store_port: int = 443
    api_server: tuple[Peer, ...] = ()
    """The API server, for KubernetesTokens auth; empty: no egress to it."""
    api_server_port: int = 443
    dns: Peer = field(default_factory=lambda: Peer({NAMESPACE_NAME_LABEL: "kube-system"}, {"k8s-app": "kube-dns"}))


def _configured(peer: NetworkPeerConfig) -> Peer:
    if peer.cidr is not None:
        return Peer(cidr=peer.cidr)
    labels = {NAMESPACE_NAME_LABEL: peer.namespace} if peer.namespace is not None else peer.namespace_labels
    return Peer(namespace_labels=labels, pod_labels=peer.pod_labels)


def _client(peer: NetworkPeer) -> Peer:
    """A spec.networkPolicy.allowFrom entry: without a namespace, pods of the model's own (no namespaceSelector)."""
    if peer.namespace is None:
        return Peer(pod_labels=peer.pod_labels or {})
    return Peer(namespace_labels={NAMESPACE_NAME_LABEL: peer.namespace}, pod_labels=peer.pod_labels)


def network_rules(model: MLModel, config: OperatorConfig) -> NetworkRules | None:
    """The model's rules; None: no NetworkPolicy (spec.networkPolicy unset and off in the configuration, or
    spec.networkPolicy.enabled false)."""
    spec, conf = model.spec.network_policy, config.network_policy
    if not (spec.enabled if spec is not None else conf.enabled):
        return None
    tokens = model.spec.auth is not None and model.spec.auth.mode == "KubernetesTokens"
    return NetworkRules(
        clients=tuple(_client(p) for p in spec.allow_from) if spec is not None else (),
        metrics_from=tuple(_configured(p) for p in (*conf.scrapers, *conf.operator)),
        object_store=tuple(_configured(p) for p in conf.object_store),
        object_store_port=conf.object_store_port,
        api_server=tuple(_configured(p) for p in conf.api_server) if tokens else (),
        api_server_port=conf.api_server_port,
    )


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def render_network_policy(model: MLModel, rules: NetworkRules) -> dict[str, Any]:
    name = model.metadata.name
    clients = [peer.to_k8s() for peer in rules.clients] or [{"podSelector": {}}]  # {}: this namespace's pods
    egress: list[dict[str, Any]] = [
        {"to": [rules.dns.to_k8s()], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    # shadow copies of a canary (docs/canary.md): from the stable pods to the candidate's, in this namespace
    egress.append({"to": [{"podSelector": {"matchLabels": names.canary_selector_labels(name)}}],
                   "ports": _tcp(names.HTTP_PORT)})
    if rules.object_store:
        egress.append({"to": [p.to_k8s() for p in rules.object_store], "ports": _tcp(rules.object_store_port)})
    if rules.api_server:
        egress.append({"to": [p.to_k8s() for p in rules.api_server], "ports": _tcp(rules.api_server_port)})
    ingress: list[dict[str, Any]] = [{"from": clients, "ports": _tcp(names.HTTP_PORT, names.GRPC_PORT)}]
    if rules.metrics_from:  # none: nobody may scrape (no rule at all: a rule without `from` admits everyone)
        ingress.append({"from": [p.to_k8s() for p in rules.metrics_from], "ports": _tcp(names.METRICS_PORT)})
    policy: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": model.metadata.namespace,
            "labels": names.object_labels(name),
            "annotations": {},
            "ownerReferences": [model_owner_reference(model)],
        },
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }
    policy["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(policy)
    return policy
