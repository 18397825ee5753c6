"""MLMODEL_AUTH=kubernetes against the real API server: a runtime process checks tokens as a reviewer
ServiceAccount that holds only `system:auth-delegator` (TokenReview and SubjectAccessReview, nothing else).
A token of a ServiceAccount bound to `get` on this MLModel passes (REST and gRPC); one of another
ServiceAccount is 403 naming it (gRPC PERMISSION_DENIED); a garbage token, a forged JWT and the token
of a deleted ServiceAccount are 401; no token appears in the runtime's logs or metrics. (The cache:
tests/runtime/test_auth.py.)"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import yaml
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.runtime.conftest import Serve
from tests.runtime.models import json_body
from tests.support.kube import Kubectl
from tests.support.ports import free_port

pytestmark = [pytest.mark.cluster]

X = np.ones((1, 4), np.float32)
ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: use-mlp}
rules:
- {apiGroups: [serving.mlmodel.io], resources: [mlmodels], resourceNames: [mlp], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: use-mlp}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: use-mlp}
subjects: [{kind: ServiceAccount, name: allowed}]
"""


@pytest.fixture
def reviewer_kubeconfig(kubectl: Kubectl, namespace: str, kubeconfig: Path, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig of a ServiceAccount bound to system:auth-delegator only (what the runtime's pod gets)."""
    kubectl.run("create", "serviceaccount", "reviewer", "-n", namespace)
    binding = f"{namespace}-reviewer"
    kubectl.run("create", "clusterrolebinding", binding, "--clusterrole=system:auth-delegator",
                f"--serviceaccount={namespace}:reviewer")
    admin = yaml.safe_load(kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    token = kubectl.run("create", "token", "reviewer", "-n", namespace, "--duration=1h").stdout.strip()
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "reviewer",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "reviewer", "user": {"token": token}}],
        "contexts": [{"name": "reviewer", "context": {"cluster": "local", "user": "reviewer"}}],
    }
    path = tmp_path / "reviewer.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield path
    kubectl.run("delete", "clusterrolebinding", binding, "--ignore-not-found", check=False)


def _token(kubectl: Kubectl, namespace: str, account: str) -> str:
    kubectl.run("create", "serviceaccount", account, "-n", namespace)
    token: str = kubectl.run("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    return token


def _grpc(port: int, token: str) -> Any:
    request = pb.ModelInferRequest(model_name="mlp", raw_input_contents=[X.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        return stub.ModelInfer(request, metadata=(("authorization", f"Bearer {token}"),), timeout=30)


def test_service_account_tokens(
    onnx_package: Path, serve: Serve, kubectl: Kubectl, namespace: str, reviewer_kubeconfig: Path
) -> None:
    kubectl.apply(ROLE, namespace)
    allowed, other = _token(kubectl, namespace, "allowed"), _token(kubectl, namespace, "other")
    deleted = _token(kubectl, namespace, "deleted")
    kubectl.run("delete", "serviceaccount", "deleted", "-n", namespace)
    grpc_port = free_port()
    server = serve(onnx_package, grpc_port=grpc_port, auth="kubernetes", auth_namespace=namespace,
                   auth_kubeconfig=reviewer_kubeconfig)
    body = json_body({"input": X})

    def infer(token: str) -> httpx.Response:
        return server.infer(body, {"Authorization": f"Bearer {token}"})

    assert infer(allowed).status_code == 200
    assert infer(allowed).status_code == 200
    assert _grpc(grpc_port, allowed).raw_output_contents
    denied = infer(other)
    assert denied.status_code == 403
    assert f"system:serviceaccount:{namespace}:other may not get" in denied.json()["error"]
    with pytest.raises(grpc.RpcError) as caught:
        _grpc(grpc_port, other)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    garbage = infer("not-a-token")
    assert garbage.status_code == 401
    assert "not valid" in garbage.json()["error"]
    assert infer(deleted).status_code == 401  # its ServiceAccount is gone: the token is revoked
    fake_jwt = ".".join(base64.urlsafe_b64encode(p).decode().rstrip("=") for p in (b'{"alg":"RS256"}', b"{}", b"x"))
    assert infer(fake_jwt).status_code == 401

    reviews = [r for r in server.log_records() if "TokenReview" in str(r)]
    assert reviews == []  # nothing logged per review
    text = server.logs() + server.metrics_text()
    for token in (allowed, other, deleted):
        assert token not in text
        assert token.split(".")[1] not in text  # not even the claims
