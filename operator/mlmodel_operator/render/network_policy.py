"""A NetworkPolicy for a model's runtime pods (pure): who may reach which port, and where the pods may go.

Ingress: the inference ports (REST 8080, gRPC 8081) only from the allowed clients (by default the pods of
the model's own namespace), the metrics port (8082) only from the configured scraper. Egress: DNS and the
object store only (the runtime downloads its package in an init step and then talks to no one else; with
token authentication the API server is a further destination). Everything else is denied by the policy's
existence.

Rendering only: the reconcile pass does not apply it yet, and spec/config do not carry these rules yet
(`NetworkRules` is what they would fill in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput
from mlmodel_operator.render.service import object_metadata

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
    scraper: Peer = field(default_factory=lambda: namespace("monitoring"))
    """Who may read the metrics port."""
    object_store: tuple[Peer, ...] = ()
    """Where the object store is (CIDRs, or pods when it runs in the cluster); empty: no egress to it."""
    object_store_port: int = 443
    dns: Peer = field(default_factory=lambda: Peer({NAMESPACE_NAME_LABEL: "kube-system"}, {"k8s-app": "kube-dns"}))


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def render_network_policy(inp: RenderInput, rules: NetworkRules) -> dict[str, Any]:
    name = inp.model.metadata.name
    clients = [peer.to_k8s() for peer in rules.clients] or [{"podSelector": {}}]  # {}: this namespace's pods
    egress: list[dict[str, Any]] = [
        {"to": [rules.dns.to_k8s()], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    if rules.object_store:
        egress.append({"to": [p.to_k8s() for p in rules.object_store], "ports": _tcp(rules.object_store_port)})
    policy: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": object_metadata(inp),
        "spec": {
            "podSelector": {"matchLabels": names.selector_labels(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": clients, "ports": _tcp(names.HTTP_PORT, names.GRPC_PORT)},
                {"from": [rules.scraper.to_k8s()], "ports": _tcp(names.METRICS_PORT)},
            ],
            "egress": egress,
        },
    }
    policy["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION] = stable_hash(policy)
    return policy
