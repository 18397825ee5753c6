"""spec.protocol: grpc on the real node: the kubelet's native gRPC probes (grpc.health.v1 on port 8081)
pass the pod into Ready, and the Open Inference Protocol answers over gRPC through the Service's grpc
port (kube-proxy, from the host) with the runtime's own stubs."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.e2e.conftest import InClusterOperator
from tests.e2e.models import E2EPackages
from tests.e2e.realpods import model_manifest, pods, ready
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]


def _infer(target: str) -> Any:
    request = pb.ModelInferRequest(model_name="g", raw_input_contents=[np.ones((1, 4), "<f4").tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=10)  # type: ignore[no-untyped-call]


def test_native_grpc_probes_make_the_pod_ready(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl,
) -> None:
    kubectl.apply(model_manifest("g", packages.good("g/1", seed=1), replicas=1, protocol="grpc"), model_ns)
    wait_condition(kubectl, model_ns, "g", "Ready", timeout=300)
    pod = pods(kubectl, model_ns)[0]
    assert ready(pod)
    container = pod["spec"]["containers"][0]
    for probe, service in (("startupProbe", "started"), ("readinessProbe", ""), ("livenessProbe", "live")):
        action = container[probe]
        assert "httpGet" not in action, probe
        assert action["grpc"] == {"port": 8081, "service": service}, probe
    assert all(s["ready"] and s["restartCount"] == 0 for s in pod["status"]["containerStatuses"])

    with grpc.insecure_channel(f"{pod['status']['podIP']}:8081") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert check.status == health_pb2.HealthCheckResponse.SERVING

    svc = kubectl.json("get", "service", "g", "-n", model_ns)
    port = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert (port["port"], port["appProtocol"]) == (8081, "kubernetes.io/h2c")
    target = f"{svc['spec']['clusterIP']}:8081"

    def answers() -> bool:  # kube-proxy writes the Service's rules a moment after the pod is Ready
        try:
            return bool(_infer(target).raw_output_contents)
        except grpc.RpcError:
            return False

    wait_for(answers, 30, f"{target} to answer over gRPC")
    response = _infer(target)
    assert response.model_name == "g"
    assert np.frombuffer(response.raw_output_contents[0], "<f4").shape == (2,)
