"""tritonclient.grpc against a runtime's gRPC port, run as its own process (`python -m
tests.runtime.grpc_triton_client PORT MODE < inputs.json`): tritonclient registers the protocol's
protobuf names (package `inference`) as the runtime's stubs do, and one process cannot hold both.

Reads {"inputs": {name: tensor}} on stdin and prints one JSON object of what the server answered,
tensors as {"datatype", "shape", "data"} (BYTES data in hex). MODE:
- `metadata`: health, server and model metadata, and the errors for a model that is not served;
- `raw`: ModelInfer with raw_input_contents, as the client sends by default (outputs as_numpy);
- `typed`: ModelInfer with typed `contents` built on the client's own stubs (outputs from `contents`).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

_FIELDS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_DTYPES = {
    "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8,
    "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64, "FP16": np.float16, "FP32": np.float32,
    "FP64": np.float64, "BYTES": np.object_,
}


def to_array(tensor: dict[str, Any]) -> np.ndarray:
    if tensor["datatype"] == "BYTES":
        values = [bytes.fromhex(v) for v in tensor["data"]]
        return np.array(values, dtype=np.object_).reshape(tensor["shape"])
    return np.array(tensor["data"], dtype=_DTYPES[tensor["datatype"]]).reshape(tensor["shape"])


def to_json(datatype: str, array: np.ndarray) -> dict[str, Any]:
    flat = array.reshape(-1).tolist()
    data = [bytes(v).hex() for v in flat] if datatype == "BYTES" else flat
    return {"datatype": datatype, "shape": list(array.shape), "data": data}


def error(exc: InferenceServerException) -> dict[str, str]:
    return {"status": str(exc.status()), "message": str(exc.message())}


def metadata(client: triton.InferenceServerClient) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready("mlp"),
        "server": MessageToDict(client.get_server_metadata()),
        "model": MessageToDict(client.get_model_metadata("mlp")),
        "model_v1": MessageToDict(client.get_model_metadata("mlp", "1")),
    }
    for key, call in (("other_ready", client.is_model_ready), ("other_metadata", client.get_model_metadata)):
        try:
            call("other")
            out[key] = {"status": "OK"}
        except InferenceServerException as exc:
            out[key] = error(exc)
    return out


def infer_raw(client: triton.InferenceServerClient, model: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    tensors = []
    for name, array in inputs.items():
        datatype = str(inputs_datatypes[name])
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(model, tensors, request_id="raw-1")
    response = result.get_response()
    return {
        "id": response.id,
        "model_version": response.model_version,
        "raw_outputs": len(response.raw_output_contents),
        "outputs": {o.name: to_json(o.datatype, result.as_numpy(o.name)) for o in response.outputs},
    }


def infer_typed(port: int, model: str, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    request = service_pb2.ModelInferRequest(model_name=model, id="typed-1")
    for name, array in inputs.items():
        datatype = str(inputs_datatypes[name])
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(array.shape))
        getattr(tensor.contents, _FIELDS[datatype]).extend(array.reshape(-1).tolist())
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    outputs = {}
    for o in response.outputs:
        values = list(getattr(o.contents, _FIELDS[o.datatype]))
        outputs[o.name] = to_json(o.datatype, np.array(values, dtype=_DTYPES[o.datatype]).reshape(list(o.shape)))
    return {
        "id": response.id,
        "model_version": response.model_version,
        "raw_outputs": len(response.raw_output_contents),
        "outputs": outputs,
    }


inputs_datatypes: dict[str, str] = {}


def main() -> None:
    port, mode = int(sys.argv[1]), sys.argv[2]
    request = json.load(sys.stdin)
    inputs = {}
    for name, tensor in request.get("inputs", {}).items():
        inputs_datatypes[name] = tensor["datatype"]
        inputs[name] = to_array(tensor)
    model = request.get("model", "mlp")
    client = triton.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        if mode == "metadata":
            out = metadata(client)
        elif mode == "raw":
            out = infer_raw(client, model, inputs)
        else:
            out = infer_typed(port, model, inputs)
    finally:
        client.close()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
