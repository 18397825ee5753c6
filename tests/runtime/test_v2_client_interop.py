"""The standard V2 client (tritonclient.http, as it is) against a real runtime: health, metadata,
and inference in JSON and binary modes (inputs and outputs, each way), requested outputs; and
every datatype echoed back unchanged through the model, as JSON and as binary data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.runtime.conftest import Serve
from tests.runtime.models import binary_body, echo_values, json_body
from tests.runtime.process import RuntimeServer
from tests.support.packages import reference_mlp

X = np.array([[0.5, -1.0, 2.0, 0.25], [1.5, 0.0, -0.5, 3.0]], dtype=np.float32)


@pytest.fixture
def mlp(onnx_package: Path, serve: Serve) -> RuntimeServer:
    return serve(onnx_package)


@pytest.fixture
def client(mlp: RuntimeServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(f"127.0.0.1:{mlp.port}")
    yield client
    client.close()


def test_health_and_metadata_through_tritonclient(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("other")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.get_model_metadata("mlp")["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    with pytest.raises(InferenceServerException, match="model 'other' is not served here"):
        client.get_model_metadata("other")


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_infer_in_json_and_binary_modes(
    client: triton.InferenceServerClient, binary_in: bool, binary_out: bool
) -> None:
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=binary_in)
    wanted = triton.InferRequestedOutput("output", binary_data=binary_out)
    result = client.infer("mlp", [tensor], outputs=[wanted], request_id="r-1")
    np.testing.assert_allclose(result.as_numpy("output"), reference_mlp(X), rtol=1e-5, atol=1e-5)
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_version"] == "1"
    assert ("parameters" in response["outputs"][0]) == binary_out


def test_without_requested_outputs_the_client_gets_every_output_as_binary(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X)
    result = client.infer("mlp", [tensor], model_version="1")
    output = result.get_output("output")
    assert output["parameters"]["binary_data_size"] == X.shape[0] * 2 * 4
    np.testing.assert_allclose(result.as_numpy("output"), reference_mlp(X), rtol=1e-5, atol=1e-5)


def test_client_errors_carry_the_servers_message(client: triton.InferenceServerClient) -> None:
    tensor = triton.InferInput("input", [2, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"input 'input': shape \[2, 3\], expected \[-1, 4\]"):
        client.infer("mlp", [tensor])


@pytest.mark.parametrize("mode", ["json", "binary", "tritonclient"])
def test_every_datatype_comes_back_unchanged(echo_package: Path, serve: Serve, mode: str) -> None:
    server = serve(echo_package, model="echo")
    values = echo_values()
    if mode == "tritonclient":
        client = triton.InferenceServerClient(f"127.0.0.1:{server.port}")
        inputs = []
        for name, arr in values.items():
            tensor = triton.InferInput(f"in_{name}", list(arr.shape), name)
            tensor.set_data_from_numpy(arr, binary_data=name != "FP16")  # FP16 also as JSON
            inputs.append(tensor)
        result = client.infer("echo", inputs)
        got = {name: result.as_numpy(f"out_{name}") for name in values}
        client.close()
    else:
        named = {f"in_{k}": v for k, v in values.items()}
        if mode == "json":
            response = server.infer(json_body(named))
            assert response.status_code == 200, response.text
            outputs = {o["name"]: o for o in response.json()["outputs"]}
            got = {}
            for name, arr in values.items():
                data = outputs[f"out_{name}"]["data"]
                if name == "BYTES":
                    data = [s.encode() for s in data]
                got[name] = np.array(data, dtype=arr.dtype).reshape(outputs[f"out_{name}"]["shape"])
        else:
            body, headers = binary_body(named, parameters={"binary_data_output": True})
            response = server.infer(body, headers)
            assert response.status_code == 200, response.text
            result = triton.InferResult.from_response_body(
                response.content, header_length=int(response.headers["inference-header-content-length"])
            )
            got = {name: result.as_numpy(f"out_{name}") for name in values}
    for name, arr in values.items():
        assert got[name] is not None, name
        assert got[name].dtype == arr.dtype, name
        assert got[name].tolist() == arr.tolist(), name
