"""The Open Inference Protocol over gRPC against a real runtime process (MLMODEL_GRPC_PORT).

tritonclient.grpc, as it is, runs in a subprocess (tests/runtime/grpc_triton_client.py: it registers
the same protobuf names as the runtime's stubs, so it is never imported here): health, server and
model metadata, NOT_FOUND for another model; inference with raw_input_contents and with typed
contents gives what REST gives for the same input; every datatype round-trips through the echo
model both ways. The runtime's own stubs send a set of malformed requests: each one gets a non-OK
status with a message, and the server still answers after them. grpc.health.v1 answers for
readiness, liveness and start-up; both protocols are counted in the metrics by `protocol`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2_grpc as pb_grpc

from tests.runtime.conftest import Serve
from tests.runtime.models import echo_values, json_body
from tests.runtime.process import RuntimeServer
from tests.support.packages import reference_mlp
from tests.support.ports import free_port

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0], [0.0, 0.0, 1.0, -3.5]], dtype=np.float32)
REPO = Path(__file__).resolve().parents[2]


def tensor_json(array: np.ndarray, datatype: str) -> dict[str, Any]:
    flat = array.reshape(-1).tolist()
    data = [bytes(v).hex() for v in flat] if datatype == "BYTES" else flat
    return {"datatype": datatype, "shape": list(array.shape), "data": data}


def triton_grpc(port: int, mode: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run tritonclient.grpc in its own process; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.runtime.grpc_triton_client", str(port), mode],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def mlp(onnx_package: Path, serve: Serve) -> tuple[RuntimeServer, int]:
    port = free_port()
    return serve(onnx_package, grpc_port=port), port


def rest_output(server: RuntimeServer, x: np.ndarray) -> np.ndarray:
    response = server.infer(json_body({"input": x}))
    assert response.status_code == 200, response.text
    output = response.json()["outputs"][0]
    return np.array(output["data"], dtype=np.float32).reshape(output["shape"])


def test_metadata_and_health_through_tritonclient_grpc(mlp: tuple[RuntimeServer, int]) -> None:
    server, port = mlp
    got = triton_grpc(port, "metadata", {})
    assert (got["live"], got["ready"], got["model_ready"]) == (True, True, True)
    rest_server = server.get("/v2").json()
    assert got["server"] == {k: rest_server[k] for k in ("name", "version", "extensions")}
    rest_model = server.get("/v2/models/mlp").json()
    assert got["model"] == got["model_v1"]
    assert got["model"]["name"] == rest_model["name"] == "mlp"
    assert got["model"]["versions"] == rest_model["versions"]
    assert got["model"]["platform"] == rest_model["platform"]
    for side in ("inputs", "outputs"):
        grpc_side = [{**t, "shape": [int(d) for d in t["shape"]]} for t in got["model"][side]]
        assert grpc_side == rest_model[side]
    for key in ("other_ready", "other_metadata"):
        assert got[key]["status"] == "StatusCode.NOT_FOUND", got[key]
        assert "model 'other' is not served here" in got[key]["message"]


@pytest.mark.parametrize("mode", ["raw", "typed"])
def test_infer_equals_rest(mlp: tuple[RuntimeServer, int], mode: str) -> None:
    server, port = mlp
    got = triton_grpc(port, mode, {"inputs": {"input": tensor_json(X, "FP32")}})
    assert got["id"] == f"{mode}-1"
    assert got["model_version"] == "1"
    assert got["raw_outputs"] == (1 if mode == "raw" else 0)  # raw in, raw out; typed in, typed out
    output = got["outputs"]["output"]
    assert (output["datatype"], output["shape"]) == ("FP32", [3, 2])
    grpc_values = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
    np.testing.assert_array_equal(grpc_values, rest_output(server, X))
    np.testing.assert_allclose(grpc_values, reference_mlp(X), rtol=1e-5, atol=1e-5)
    assert server.metric("mlmodel_runtime_requests_total", code="200", protocol="grpc", model="mlp") == 1
    assert server.metric("mlmodel_runtime_requests_total", code="200", protocol="rest", model="mlp") == 1


def test_every_datatype_round_trips_raw(echo_package: Path, serve: Serve) -> None:
    """(Typed contents of every datatype: tests/runtime/test_grpc_codec.py; the echo model takes FP16,
    which has no typed field, and a request is raw for all its inputs or for none.)"""
    port = free_port()
    serve(echo_package, model="echo", grpc_port=port)
    values = echo_values()
    request = {"model": "echo", "inputs": {f"in_{k}": tensor_json(v, k) for k, v in values.items()}}
    got = triton_grpc(port, "raw", request)
    for name, array in values.items():
        output = got["outputs"][f"out_{name}"]
        assert output["datatype"] == name
        assert output["shape"] == list(array.shape)
        assert output["data"] == tensor_json(array, name)["data"], name


def _request(**fields: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=fields.pop("model_name", "mlp"), **fields)
    return request


def _input(name: str = "input", datatype: str = "FP32", shape: tuple[int, ...] = (1, 4), **kw: Any) -> Any:
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(shape), **kw)


def _fp32(values: list[float]) -> pb.InferTensorContents:
    return pb.InferTensorContents(fp32_contents=values)


ROW = np.ones((1, 4), np.float32).tobytes()
MALFORMED: dict[str, tuple[pb.ModelInferRequest, grpc.StatusCode, str]] = {
    "no inputs": (_request(), grpc.StatusCode.INVALID_ARGUMENT, "non-empty"),
    "unknown model": (
        _request(model_name="nope", inputs=[_input()], raw_input_contents=[ROW]),
        grpc.StatusCode.NOT_FOUND,
        "not served here",
    ),
    "unknown version": (
        _request(model_version="9", inputs=[_input()], raw_input_contents=[ROW]),
        grpc.StatusCode.NOT_FOUND,
        "no version '9'",
    ),
    "unknown input": (_request(inputs=[_input("x")], raw_input_contents=[ROW]), grpc.StatusCode.INVALID_ARGUMENT,
                      "unknown input 'x'"),
    "wrong datatype": (_request(inputs=[_input(datatype="INT32")], raw_input_contents=[ROW]),
                       grpc.StatusCode.INVALID_ARGUMENT, "expected FP32"),
    "wrong shape": (_request(inputs=[_input(shape=(1, 3))], raw_input_contents=[ROW]),
                    grpc.StatusCode.INVALID_ARGUMENT, "expected [-1, 4]"),
    "negative shape": (_request(inputs=[_input(shape=(-1, 4))], raw_input_contents=[ROW]),
                       grpc.StatusCode.INVALID_ARGUMENT, "non-negative"),
    "raw too short": (_request(inputs=[_input()], raw_input_contents=[ROW[:-1]]),
                      grpc.StatusCode.INVALID_ARGUMENT, "expected 16"),
    "raw count": (_request(inputs=[_input()], raw_input_contents=[ROW, ROW]),
                  grpc.StatusCode.INVALID_ARGUMENT, "2 entries for 1 inputs"),
    "raw and contents": (
        _request(inputs=[_input(contents=_fp32([1, 2, 3, 4]))], raw_input_contents=[ROW]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "has contents although",
    ),
    "typed count": (_request(inputs=[_input(contents=_fp32([1, 2, 3]))]), grpc.StatusCode.INVALID_ARGUMENT,
                    "3 values for shape [1, 4]"),
    "typed wrong field": (
        _request(inputs=[_input(contents=pb.InferTensorContents(int_contents=[1, 2, 3, 4]))]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "go in contents.fp32_contents",
    ),
    "no data": (_request(inputs=[_input()]), grpc.StatusCode.INVALID_ARGUMENT, "0 values for shape"),
    "twice": (_request(inputs=[_input(), _input()], raw_input_contents=[ROW, ROW]),
              grpc.StatusCode.INVALID_ARGUMENT, "given twice"),
    "unknown output": (
        _request(inputs=[_input()], raw_input_contents=[ROW],
                 outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="y")]),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown output 'y'",
    ),
    "huge shape": (_request(inputs=[_input(shape=(2**40, 4))], raw_input_contents=[ROW]),
                   grpc.StatusCode.INVALID_ARGUMENT, "binary_data_size 16 bytes"),
}


def test_malformed_requests_get_a_status_with_a_message(mlp: tuple[RuntimeServer, int]) -> None:
    server, port = mlp
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        for case, (request, code, message) in MALFORMED.items():
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request, timeout=30)
            error: Any = caught.value
            assert error.code() == code, (case, error.code(), error.details())
            assert message in error.details(), (case, error.details())
        # garbage bytes where a ModelInferRequest belongs
        garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            garbage(b"\xff\xff\xff\xff\x0f", timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed inference.ModelInferRequest" in caught.value.details()
        # still serving
        assert stub.ServerLive(pb.ServerLiveRequest(), timeout=30).live
        ok = stub.ModelInfer(_request(inputs=[_input()], raw_input_contents=[ROW]), timeout=30)
        assert np.frombuffer(ok.raw_output_contents[0], np.float32).shape == (2,)
    assert server.proc.poll() is None
    assert server.metric("mlmodel_runtime_requests_total", code="500", protocol="grpc") == 0
    assert server.metric("mlmodel_runtime_requests_total", code="400", protocol="grpc", model="mlp") >= 12
    assert "Traceback" not in server.logs()


def test_oversized_message_is_resource_exhausted(onnx_package: Path, serve: Serve) -> None:
    port = free_port()
    serve(onnx_package, grpc_port=port, max_request_bytes=1024)
    rows = np.zeros((100, 4), np.float32)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(_request(inputs=[_input(shape=(100, 4))], raw_input_contents=[rows.tobytes()]), timeout=30)
        error: Any = caught.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1024" in error.details()
        assert stub.ModelInfer(_request(inputs=[_input()], raw_input_contents=[ROW]), timeout=30).outputs


def test_grpc_health_service(mlp: tuple[RuntimeServer, int]) -> None:
    _, port = mlp
    serving = health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService", "live", "started"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30).status == serving
        with pytest.raises(grpc.RpcError) as caught:
            health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=30)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        assert next(watch).status == serving
        watch.cancel()


def test_a_busy_grpc_port_stops_the_runtime(onnx_package: Path, serve: Serve) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = serve(onnx_package, grpc_port=taken.getsockname()[1], wait=False)
        assert server.wait(120) != 0
    assert "cannot serve gRPC" in server.logs()


def test_a_full_queue_is_unavailable_over_grpc_and_shared_with_rest(slow_package: Path, serve: Serve) -> None:
    """One queue for both protocols: a REST request computing and one queued fill it (max_queue_size=1), so a
    gRPC request gets UNAVAILABLE with a retry-after trailer; gRPC health stays SERVING meanwhile and turns
    NOT_SERVING once the runtime drains (SIGTERM), as REST readiness does."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.runtime.models import SLOW_WIDTH
    from tests.runtime.test_queue_full_and_probes import slow_request
    from tests.support.waiting import wait_for

    port = free_port()
    server = serve(slow_package, model="slow", max_queue_size=1, grpc_port=port)
    labels = {"model": "slow", "revision": ""}
    request = pb.ModelInferRequest(model_name="slow", raw_input_contents=[np.zeros((1, SLOW_WIDTH), "<f4").tobytes()])
    request.inputs.add(name="input", datatype="FP32", shape=[1, SLOW_WIDTH])
    with ThreadPoolExecutor(2) as pool, grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)  # type: ignore[no-untyped-call]
        health = health_pb2_grpc.HealthStub(channel)
        running = pool.submit(slow_request, server.base_url, 1.0)
        wait_for(lambda: server.metric("mlmodel_runtime_inflight_requests", **labels) == 1, 30, "the first request")
        queued = pool.submit(slow_request, server.base_url, 2.0)
        wait_for(lambda: server.metric("mlmodel_runtime_queue_depth", **labels) == 1, 30, "a queued request")
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=30)
        error: Any = caught.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "model 'slow' is busy" in error.details()
        assert dict(error.trailing_metadata())["retry-after"] == "1"
        check = health_pb2.HealthCheckRequest(service="")
        assert health.Check(check, timeout=30).status == health_pb2.HealthCheckResponse.SERVING
        assert [f.result(120)[0] for f in (running, queued)] == [200, 200]
        # a request computing (about a second) keeps the draining runtime up while health is asked
        last = pool.submit(slow_request, server.base_url, 3.0)
        wait_for(lambda: server.metric("mlmodel_runtime_inflight_requests", **labels) == 1, 30, "the last request")
        server.signal()
        wait_for(lambda: health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING, 30,
                 "gRPC readiness to drop while draining")
        assert last.result(120)[0] == 200
    assert server.wait(60) == 0
