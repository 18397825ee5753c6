"""The runtime pods' NetworkPolicy (render/network_policy.py): table tests of whether there is one and who may
reach which port and where the pods may go, for each spec.networkPolicy and configuration, and the rendered
objects accepted by the API server (server-side apply) exactly as rendered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.render.network_policy import NetworkRules, network_rules, render_network_policy
from mlmodel_operator.spec import MLModel, MLModelSpec
from pydantic import ValidationError

from tests.operator.cluster import mlmodel
from tests.operator.factories import config, model
from tests.support.kube import Kubectl

MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
OPERATOR = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mlmodel-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "mlmodel-operator"}}}
DNS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
ON: dict[str, Any] = {
    "enabled": True,
    "operator": [{"namespace": "mlmodel-system", "podLabels": {"app.kubernetes.io/name": "mlmodel-operator"}}],
    "objectStore": [{"cidr": "198.18.0.1/32"}], "objectStorePort": 8333,
    "apiServer": [{"cidr": "10.96.0.1/32"}, {"cidr": "192.168.1.5/32"}], "apiServerPort": 6443,
}
TOKENS = {"mode": "KubernetesTokens"}


def _ports(rule: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["protocol"], p["port"]) for p in rule["ports"]]


def _policy(m: MLModel, c: OperatorConfig) -> dict[str, Any] | None:
    rules = network_rules(m, c)
    return None if rules is None else render_network_policy(m, rules)


# name -> (spec fields, configuration's networkPolicy, whether there is one)
ENABLED: dict[str, tuple[dict[str, Any], dict[str, Any] | None, bool]] = {
    "default configuration, no spec": ({}, None, False),
    "configuration on": ({}, ON, True),
    "spec turns it on": ({"networkPolicy": {}}, None, True),
    "spec opts out where the configuration is on": ({"networkPolicy": {"enabled": False}}, ON, False),
    "spec enabled false, configuration off": ({"networkPolicy": {"enabled": False}}, None, False),
}


@pytest.mark.parametrize("case", sorted(ENABLED))
def test_whether_a_model_gets_a_policy(case: str) -> None:
    spec, conf, expected = ENABLED[case]
    c = config(networkPolicy=conf) if conf is not None else config()
    assert (_policy(model(name="m", **spec), c) is not None) == expected


# name -> (spec.networkPolicy.allowFrom, the inference rule's `from`)
CLIENTS: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    "default: own namespace": ([], [{"podSelector": {}}]),
    "a gateway namespace": ([{"namespace": "gateway"}],
                            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}]),
    "labelled pods of the own namespace": ([{"podLabels": {"app": "scorer"}}],
                                           [{"podSelector": {"matchLabels": {"app": "scorer"}}}]),
    "labelled pods of another namespace and a namespace": (
        [{"namespace": "apps", "podLabels": {"app": "scorer", "tier": "a"}}, {"namespace": "batch"}],
        [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}},
          "podSelector": {"matchLabels": {"app": "scorer", "tier": "a"}}},
         {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}}}],
    ),
}


@pytest.mark.parametrize("case", sorted(CLIENTS))
def test_inference_ports_only_from_the_allowed_clients(case: str) -> None:
    allow, expected = CLIENTS[case]
    policy = _policy(model(name="m", networkPolicy={"allowFrom": allow}), config(networkPolicy=ON))
    assert policy is not None
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "m",
                                                   "app.kubernetes.io/name": "mlmodel-runtime"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    inference, metrics = spec["ingress"]
    assert inference["from"] == expected
    assert _ports(inference) == [("TCP", 8080), ("TCP", 8081)]
    assert _ports(metrics) == [("TCP", 8082)]
    assert metrics["from"] == [MONITORING, OPERATOR]  # the scraper and the operator (canary analysis)


def test_metrics_port_from_the_configured_scrapers_and_operator_only() -> None:
    conf = {**ON, "scrapers": [{"namespaceLabels": {"team": "obs"}, "podLabels": {"app": "prometheus"}}]}
    policy = _policy(model(name="m"), config(networkPolicy=conf))
    assert policy is not None
    metrics = policy["spec"]["ingress"][1]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}},
                                "podSelector": {"matchLabels": {"app": "prometheus"}}}, OPERATOR]
    # No scraper and no operator configured: no metrics rule at all (a rule without peers would admit everyone).
    nobody = _policy(model(name="m"), config(networkPolicy={"enabled": True, "scrapers": []}))
    assert nobody is not None
    assert [_ports(rule) for rule in nobody["spec"]["ingress"]] == [[("TCP", 8080), ("TCP", 8081)]]


# name -> (spec.auth, configuration, the egress rules' (to, ports))
EGRESS: dict[str, tuple[dict[str, Any] | None, dict[str, Any], list[tuple[Any, list[tuple[str, int]]]]]] = {
    "DNS only": (None, {"enabled": True}, [(DNS, [("UDP", 53), ("TCP", 53)])]),
    "DNS and the object store": (None, ON, [(DNS, [("UDP", 53), ("TCP", 53)]),
                                            ([{"ipBlock": {"cidr": "198.18.0.1/32"}}], [("TCP", 8333)])]),
    "tokens: the API server too": (TOKENS, ON, [
        (DNS, [("UDP", 53), ("TCP", 53)]), ([{"ipBlock": {"cidr": "198.18.0.1/32"}}], [("TCP", 8333)]),
        ([{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "192.168.1.5/32"}}], [("TCP", 6443)])]),
    "API keys: no API server": ({"mode": "APIKeys", "apiKeysSecret": "k"}, ON, [
        (DNS, [("UDP", 53), ("TCP", 53)]), ([{"ipBlock": {"cidr": "198.18.0.1/32"}}], [("TCP", 8333)])]),
}


# a canary's shadow copies: from the stable pods to the candidate's (docs/canary.md)
SHADOW_COPIES = ([{"podSelector": {"matchLabels": {"serving.mlmodel.io/track": "canary",
                                                    "serving.mlmodel.io/canary-of": "m"}}}], [("TCP", 8080)])


@pytest.mark.parametrize("case", sorted(EGRESS))
def test_egress_to_dns_the_object_store_and_for_tokens_the_api_server_only(case: str) -> None:
    auth, conf, expected = EGRESS[case]
    m = model(name="m", auth=auth)
    policy = _policy(m, config(networkPolicy=conf))
    assert policy is not None
    assert [(rule["to"], _ports(rule)) for rule in policy["spec"]["egress"]] == [expected[0], SHADOW_COPIES,
                                                                                   *expected[1:]]


def test_policy_is_owned_by_the_model_and_hashed() -> None:
    policy = _policy(model(name="m"), config(networkPolicy=ON))
    assert policy is not None
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "0a1b2c3d-uid"
    assert policy["metadata"]["ownerReferences"][0]["controller"] is True
    other = _policy(model(name="m", networkPolicy={"allowFrom": [{"namespace": "x"}]}), config(networkPolicy=ON))
    assert other is not None
    hash_key = "serving.mlmodel.io/applied-hash"
    assert policy["metadata"]["annotations"][hash_key] != other["metadata"]["annotations"][hash_key]


def test_bad_network_policy_specs_are_refused() -> None:
    with pytest.raises(ValidationError):
        MLModelSpec.model_validate({"source": {"uri": "s3://b/m/"},
                                    "networkPolicy": {"allowFrom": [{"namespace": "Not_A_Namespace"}]}})
    # A peer that names nothing is refused at admission (the CRD's minProperties; on the API server below).
    assert MLModelSpec.model_json_schema(by_alias=True)["$defs"]["NetworkPeer"]["minProperties"] == 1


@pytest.mark.parametrize("bad", [{"cidr": "10.0.0.0/8", "namespace": "x"}, {}, {"namespace": "a",
                                                                               "namespaceLabels": {"a": "b"}}])
def test_bad_configured_peers_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        config(networkPolicy={"enabled": True, "objectStore": [bad]})


@pytest.mark.cluster
def test_policies_are_accepted_by_the_api_server(kubectl: Kubectl, namespace: str) -> None:
    for case, (allow, _) in CLIENTS.items():
        for auth in (None, TOKENS):
            m = model(name="m", namespace=namespace, networkPolicy={"allowFrom": allow}, auth=auth)
            rules = network_rules(m, config(networkPolicy=ON))
            assert isinstance(rules, NetworkRules)
            policy = render_network_policy(m, rules)
            policy["metadata"]["ownerReferences"] = []  # its MLModel does not exist here
            kubectl.run("apply", "--server-side", "--field-manager=test", "-f", "-", stdin=json.dumps(policy))
            stored = kubectl.json("get", "networkpolicy", "m", "-n", namespace)
            for side in ("ingress", "egress"):  # as rendered: no field the API server would drop or add
                assert stored["spec"][side] == policy["spec"][side], (case, side)


@pytest.mark.cluster
def test_an_empty_peer_is_refused_at_admission(crd: None, kubectl: Kubectl, namespace: str) -> None:
    bad = mlmodel("m", "s3://models/m/1/", networkPolicy={"allowFrom": [{}]})
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=bad, check=False)
    assert result.returncode != 0
    assert "allowFrom[0]" in result.stderr, result.stderr
