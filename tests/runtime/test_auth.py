"""Request authentication. In process: API keys (hashed, every key compared, a removed key refused once
the folder is read again), the token check's cache (a hit sends no review, verdicts both ways expire,
the cache is bounded, an unreachable API server is a 503 that is not cached). Against a real runtime
with API keys from a folder (as a mounted Secret): inference and metadata need a key (401 with
WWW-Authenticate without one, over REST and gRPC), health and metrics stay open, a key removed from
the folder stops working and a new one starts without a restart, and no key appears in the logs or
the metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from mlmodel_runtime.server.auth import ApiKeys, TokenReviewer, bearer_token
from mlmodel_runtime.server.errors import AuthUnavailable, Forbidden, Unauthenticated
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.runtime.conftest import Serve
from tests.runtime.models import json_body
from tests.support.clock import FakeMonotonic
from tests.support.ports import free_port
from tests.support.waiting import wait_for

X = np.ones((1, 4), np.float32)


def store_key(folder: Path, name: str, key: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(hashlib.sha256(key.encode()).hexdigest() + "\n")


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer ", None),
     (b"Bearer xyz", "xyz")],
)
def test_bearer_token(header: str | bytes | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_api_keys_are_hashed_and_rotate(tmp_path: Path) -> None:
    clock = FakeMonotonic()
    store_key(tmp_path, "team-a", "key-a")
    store_key(tmp_path, "team-b", "key-b")
    (tmp_path / "..data").mkdir()  # a Secret volume's own entries are not keys
    keys = ApiKeys(tmp_path, reload_s=1.0, clock=clock)
    assert await keys.identify("key-a") == "apikey:team-a"
    assert await keys.identify("key-b") == "apikey:team-b"
    with pytest.raises(Unauthenticated, match="invalid API key"):
        await keys.identify(hashlib.sha256(b"key-a").hexdigest())  # the stored hash is not a key
    with pytest.raises(Unauthenticated, match="missing bearer token"):
        await keys.identify(None)
    (tmp_path / "team-a").unlink()
    assert await keys.identify("key-a") == "apikey:team-a"  # read again at most every reload_s
    clock.now += 1.0
    with pytest.raises(Unauthenticated):
        await keys.identify("key-a")
    assert await keys.identify("key-b") == "apikey:team-b"


class FakeReviews:
    def __init__(self) -> None:
        self.users = {"good": "system:serviceaccount:ns:allowed", "other": "system:serviceaccount:ns:other"}
        self.allowed = {"system:serviceaccount:ns:allowed"}
        self.calls: list[str] = []
        self.down = False

    def token_review(self, token: str) -> dict[str, Any]:
        self.calls.append("token")
        if self.down:
            raise AuthUnavailable("cannot check the token now: the API server is unreachable")
        user = self.users.get(token)
        return {"status": {"authenticated": user is not None, "user": {"username": user, "groups": []}}}

    def access_review(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.calls.append("access")
        assert spec["resourceAttributes"] == {"namespace": "ns", "verb": "get", "group": "serving.mlmodel.io",
                                              "resource": "mlmodels", "name": "m"}
        return {"status": {"allowed": spec["user"] in self.allowed}}


async def test_token_verdicts_are_cached_both_ways_and_expire() -> None:
    clock, reviews = FakeMonotonic(), FakeReviews()
    reviewer = TokenReviewer(reviews, "ns", "m", ttl_s=30, max_entries=100, clock=clock)
    assert await reviewer.identify("good") == "system:serviceaccount:ns:allowed"
    assert await reviewer.identify("good") == "system:serviceaccount:ns:allowed"
    denied = r"system:serviceaccount:ns:other may not get mlmodels\.serving\.mlmodel\.io 'm'"
    with pytest.raises(Forbidden, match=denied):
        await reviewer.identify("other")
    with pytest.raises(Forbidden):
        await reviewer.identify("other")
    with pytest.raises(Unauthenticated, match="not valid"):
        await reviewer.identify("garbage")
    assert reviewer.reviews == 3  # one per token: the repeats were hits
    clock.now += 30
    reviews.allowed.clear()  # the binding was removed: seen once the verdict expires
    with pytest.raises(Forbidden):
        await reviewer.identify("good")
    assert reviewer.reviews == 4


async def test_token_cache_is_bounded_and_outages_are_not_cached() -> None:
    reviews = FakeReviews()
    reviewer = TokenReviewer(reviews, "ns", "m", ttl_s=30, max_entries=50, clock=FakeMonotonic())
    for i in range(500):
        with pytest.raises(Unauthenticated):
            await reviewer.identify(f"t{i}")
    assert len(reviewer) == 50
    reviews.down = True
    with pytest.raises(AuthUnavailable):
        await reviewer.identify("good")
    reviews.down = False
    assert await reviewer.identify("good") == "system:serviceaccount:ns:allowed"


def _grpc_infer(port: int, key: str | None) -> Any:
    request = pb.ModelInferRequest(model_name="mlp", raw_input_contents=[X.tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, 4])
    metadata = (("authorization", f"Bearer {key}"),) if key else None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        return stub.ModelInfer(request, metadata=metadata, timeout=30)


def test_api_keys_on_a_real_runtime(onnx_package: Path, serve: Serve, tmp_path: Path) -> None:
    keys = tmp_path / "api-keys"
    store_key(keys, "team-a", "secret-key-a")
    grpc_port = free_port()
    server = serve(onnx_package, grpc_port=grpc_port, auth="apikeys", auth_api_keys_dir=keys)
    body = json_body({"input": X})

    def infer(key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return server.infer(body, headers)

    missing = infer(None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in missing.json()["error"]
    assert infer("wrong").status_code == 401
    assert infer("secret-key-a").status_code == 200
    assert server.get("/v2/models/mlp").status_code == 401
    assert server.client.get("/v2/models/mlp", headers={"Authorization": "Bearer secret-key-a"}).status_code == 200
    assert server.get("/v2").status_code == 401
    for open_path in ("/v2/health/live", "/v2/health/ready", "/v2/models/mlp/ready"):
        assert server.get(open_path).status_code == 200, open_path
    assert server.metric("mlmodel_runtime_requests_total", code="401", protocol="rest", model="mlp") == 2

    with pytest.raises(grpc.RpcError) as caught:
        _grpc_infer(grpc_port, None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_infer(grpc_port, "secret-key-a").raw_output_contents

    # rotation: a new key in, the old one out, the same process
    store_key(keys, "team-a-2", "secret-key-a2")
    (keys / "team-a").unlink()
    wait_for(lambda: infer("secret-key-a").status_code == 401, 30, "the removed key to be refused")
    assert infer("secret-key-a2").status_code == 200
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_infer(grpc_port, "secret-key-a")
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert server.proc.poll() is None

    for text in (server.logs(), server.metrics_text()):
        for secret in ("secret-key-a", hashlib.sha256(b"secret-key-a").hexdigest()):
            assert secret not in text
