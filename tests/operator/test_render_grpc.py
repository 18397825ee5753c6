"""gRPC in the rendered objects: the runtime always serves it (MLMODEL_GRPC_PORT, container port grpc), the
Service exposes it with Kubernetes' appProtocol for clear-text HTTP/2, and spec.protocol: grpc turns the
three probes into native gRPC probes on grpc.health.v1 (REST probes otherwise); the protocol is a revision
setting, so a rollback renders a revision's probes as they were."""

from __future__ import annotations

from typing import Any

import pytest
from mlmodel_operator.render import render_deployment, render_service
from mlmodel_operator.spec import RevisionSettings

from tests.operator.factories import model, render_input


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize("protocol", [None, "http", "grpc"])
def test_grpc_is_always_served_and_exposed(protocol: str | None) -> None:
    fields: dict[str, Any] = {} if protocol is None else {"protocol": protocol}
    inp = render_input(model(name="m1", **fields))
    container = _container(render_deployment(inp))
    assert {"name": "MLMODEL_GRPC_PORT", "value": "8081"} in container["env"]
    assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    ports = {p["name"]: p for p in render_service(inp)["spec"]["ports"]}
    assert ports["grpc"] == {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP",
                             "appProtocol": "kubernetes.io/h2c"}
    assert ports["http"]["appProtocol"] == "http"


PROBES: dict[str, dict[str, dict[str, Any]]] = {
    "http": {
        "startupProbe": {"httpGet": {"path": "/v2/health/startup", "port": "http", "scheme": "HTTP"}},
        "readinessProbe": {"httpGet": {"path": "/v2/models/m1/ready", "port": "http", "scheme": "HTTP"}},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http", "scheme": "HTTP"}},
    },
    "grpc": {
        "startupProbe": {"grpc": {"port": 8081, "service": "started"}},
        "readinessProbe": {"grpc": {"port": 8081, "service": ""}},
        "livenessProbe": {"grpc": {"port": 8081, "service": "live"}},
    },
}


@pytest.mark.parametrize("protocol", sorted(PROBES))
def test_probes_follow_spec_protocol(protocol: str) -> None:
    container = _container(render_deployment(render_input(model(name="m1", protocol=protocol))))
    for probe, action in PROBES[protocol].items():
        kinds = {"httpGet", "grpc", "tcpSocket", "exec"} & set(container[probe])
        assert {k: container[probe][k] for k in kinds} == action, probe
    # the timing does not depend on the protocol
    http = _container(render_deployment(render_input(model(name="m1"))))
    for probe in PROBES[protocol]:
        assert {k: v for k, v in container[probe].items() if k not in ("httpGet", "grpc")} == {
            k: v for k, v in http[probe].items() if k not in ("httpGet", "grpc")
        }


def test_protocol_is_kept_with_the_revision() -> None:
    spec = model(protocol="grpc").spec
    kept = RevisionSettings.of(spec)
    assert kept.protocol == "grpc"
    assert kept.apply_to(model().spec).protocol == "grpc"
    older = {k: v for k, v in kept.model_dump(by_alias=True).items() if k != "protocol"}  # a record from before
    assert RevisionSettings.model_validate(older).protocol == "http"


@pytest.mark.parametrize(
    ("rate_limit", "env"),
    [
        (None, {}),
        ({"requestsPerSecond": 50}, {"MLMODEL_RATE_LIMIT_RPS": "50", "MLMODEL_RATE_LIMIT_BURST": "0"}),
        ({"requestsPerSecond": 0.5, "burst": 20}, {"MLMODEL_RATE_LIMIT_RPS": "0.5", "MLMODEL_RATE_LIMIT_BURST": "20"}),
    ],
)
def test_rate_limit_reaches_the_runtime(rate_limit: dict[str, Any] | None, env: dict[str, str]) -> None:
    fields: dict[str, Any] = {} if rate_limit is None else {"rateLimit": rate_limit}
    spec = model(**fields).spec
    container = _container(render_deployment(render_input(model(**fields))))
    rendered = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("MLMODEL_RATE_LIMIT")}
    assert rendered == env
    assert RevisionSettings.of(spec).rate_limit == spec.rate_limit  # a revision keeps its limit
