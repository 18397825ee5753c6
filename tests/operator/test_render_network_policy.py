"""The runtime pods' NetworkPolicy (render/network_policy.py): table tests of who may reach which port and
where the pods may go, and the rendered objects accepted by the API server (server-side apply)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_operator.render.network_policy import NetworkRules, Peer, namespace, render_network_policy

from tests.operator.factories import model, render_input
from tests.support.kube import Kubectl

STORE = (Peer(cidr="198.18.0.1/32"),)


def _ports(rule: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["protocol"], p["port"]) for p in rule["ports"]]


CASES: dict[str, tuple[NetworkRules, list[dict[str, Any]]]] = {
    "default: own namespace": (NetworkRules(), [{"podSelector": {}}]),
    "a gateway namespace": (NetworkRules(clients=(namespace("gateway"),)),
                            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]),
    "labelled pods anywhere": (
        NetworkRules(clients=(Peer(namespace_labels={}, pod_labels={"app": "scorer"}),)),
        [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "scorer"}}}],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inference_ports_only_from_the_allowed_clients(case: str) -> None:
    rules, expected = CASES[case]
    policy = render_network_policy(render_input(model(name="m")), rules)
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "m"
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    inference, metrics = spec["ingress"]
    assert inference["from"] == expected
    assert _ports(inference) == [("TCP", 8080), ("TCP", 8081)]
    assert _ports(metrics) == [("TCP", 8082)]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_egress_to_dns_and_the_object_store_only() -> None:
    rules = NetworkRules(object_store=STORE, object_store_port=8333)
    spec = render_network_policy(render_input(model()), rules)["spec"]
    dns, store = spec["egress"]
    assert dns["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                          "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert _ports(dns) == [("UDP", 53), ("TCP", 53)]
    assert store == {"to": [{"ipBlock": {"cidr": "198.18.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 8333}]}
    without_store = render_network_policy(render_input(model()), NetworkRules())["spec"]["egress"]
    assert [r["to"] for r in without_store] == [dns["to"]]  # nothing but DNS


@pytest.mark.cluster
def test_policies_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    for case, (rules, _) in CASES.items():
        policy = render_network_policy(render_input(model(name="m", namespace=namespace)),
                                       NetworkRules(clients=rules.clients, object_store=STORE))
        policy["metadata"]["ownerReferences"] = []  # its MLModel does not exist here
        kubectl.run("apply", "--server-side", "--field-manager=test", "-f", "-", stdin=json.dumps(policy))
        stored = kubectl.json("get", "networkpolicy", "m", "-n", namespace)
        for side in ("ingress", "egress"):  # as rendered: no field the API server would drop or add
            assert stored["spec"][side] == policy["spec"][side], (case, side)
