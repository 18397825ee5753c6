"""Open Inference Protocol gRPC codec: ModelInferRequest to InferRequest and outputs to ModelInferResponse.

The same checks as the REST codec (server/codec.py) with the same messages: names, datatypes and
shapes against the model's signature, then each tensor from `raw_input_contents` (as the binary
extension's bytes: views, no copy) or from the typed field of its datatype in `contents`.
Responses carry `raw_output_contents` when the request's inputs were raw (what tritonclient
sends and reads), else typed `contents`, as KServe's server does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlmodel_runtime.backends.base import DTYPES, Array, Signature, TensorSpec, datatype_of
from mlmodel_runtime.server.codec import InferRequest, bytes_payload, from_binary, numeric_payload, tensor_shape
from mlmodel_runtime.server.errors import InvalidInput
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb
from mlmodel_runtime.server.wire import quote

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The InferTensorContents field of each datatype; FP16 (and BF16) travel only as raw contents."""

_FIELDS = tuple(dict.fromkeys(CONTENTS_FIELD.values()))


def decode_infer_request(message: pb.ModelInferRequest, signature: Signature) -> InferRequest:
    """Validate a ModelInferRequest against the model's signature and build its tensors."""
    if not message.inputs:
        raise InvalidInput("request 'inputs' must be a non-empty list")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs")
    specs = {t.name: t for t in signature.inputs}
    inputs: dict[str, Array] = {}
    for index, item in enumerate(message.inputs):
        name = item.name
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(f"unknown input {quote(name)}; the model takes {_names(signature.inputs)}")
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given twice")
        if item.datatype != spec.datatype:
            raise InvalidInput(f"input '{name}': datatype {quote(item.datatype)}, expected {spec.datatype}")
        shape = tensor_shape(list(item.shape), spec)
        filled = [f for f in _FIELDS if len(getattr(item.contents, f))]
        if raw:
            if filled:
                raise InvalidInput(f"input '{name}' has contents although the request uses raw_input_contents")
            inputs[name] = from_binary(memoryview(raw[index]), spec, shape)
        else:
            inputs[name] = _from_contents(item.contents, filled, spec, shape)
    missing = [t for t in signature.inputs if t.name not in inputs]
    if missing:
        raise InvalidInput("missing input " + ", ".join(f"'{t.name}' ({t.datatype} {list(t.shape)})" for t in missing))
    outputs = _requested_outputs(message, signature)
    first = inputs[signature.inputs[0].name]
    rows = first.shape[0] if first.ndim else 0
    return InferRequest(message.id or None, inputs, outputs, (bool(raw),) * len(outputs), rows)


def _from_contents(
    contents: pb.InferTensorContents, filled: list[str], spec: TensorSpec, shape: tuple[int, ...]
) -> Array:
    name = spec.name
    field = CONTENTS_FIELD.get(spec.datatype)
    if field is None:
        raise InvalidInput(f"input '{name}': {spec.datatype} data must be sent in raw_input_contents")
    if any(f != field for f in filled):
        raise InvalidInput(f"input '{name}': {spec.datatype} values go in contents.{field}, found {', '.join(filled)}")
    values: Any = getattr(contents, field)
    count = math.prod(shape)
    if len(values) != count:
        raise InvalidInput(f"input '{name}': {len(values)} values for shape {list(shape)} ({count} expected)")
    if spec.datatype == "BYTES":
        out: Array = np.empty(count, dtype=np.object_)
        out[:] = list(values)
        return out.reshape(shape)
    target = spec.dtype
    if target.kind in "iu" and target.itemsize < 4 and count:
        wide = np.asarray(values, dtype=np.int64)
        info = np.iinfo(target)  # type: ignore[type-var]
        if wide.min() < info.min or wide.max() > info.max:
            raise InvalidInput(f"input '{name}': value out of range for {spec.datatype} [{info.min}, {info.max}]")
        return wide.astype(target).reshape(shape)
    return np.asarray(values, dtype=target).reshape(shape)


def _requested_outputs(message: pb.ModelInferRequest, signature: Signature) -> tuple[str, ...]:
    if not message.outputs:
        return tuple(t.name for t in signature.outputs)
    known = {t.name for t in signature.outputs}
    names: list[str] = []
    for item in message.outputs:
        name = item.name
        if name not in known:
            raise InvalidInput(f"unknown output {quote(name)}; the model returns {_names(signature.outputs)}")
        if name in names:
            raise InvalidInput(f"output '{name}' is requested twice")
        classification = item.parameters.get("classification")
        if classification is not None and classification.WhichOneof("parameter_choice") is not None:
            raise InvalidInput(f"output '{name}': the classification extension is not supported")
        names.append(name)
    return tuple(names)


def encode_infer_response(
    model_name: str, model_version: str, request: InferRequest, outputs: dict[str, Array]
) -> pb.ModelInferResponse:
    """The response: raw_output_contents when the request's inputs were raw (or an output is FP16),
    else typed contents."""
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request.id or "")
    # FP16 has no typed field: a response with one is raw throughout (the protocol has no mix)
    raw = (bool(request.binary) and request.binary[0]) or any(
        datatype_of(outputs[n].dtype) not in CONTENTS_FIELD for n in request.outputs
    )
    for name in request.outputs:
        array = outputs[name]
        datatype = datatype_of(array.dtype)
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(
                bytes_payload(array) if datatype == "BYTES" else numeric_payload(array, datatype)
            )
        else:
            _to_contents(tensor.contents, array, datatype)
    return response


def _to_contents(contents: pb.InferTensorContents, array: Array, datatype: str) -> None:
    field = CONTENTS_FIELD[datatype]
    flat = array.reshape(-1)
    if datatype == "BYTES":
        getattr(contents, field).extend(v if isinstance(v, bytes) else str(v).encode() for v in flat.tolist())
    else:
        getattr(contents, field).extend(np.ascontiguousarray(flat, dtype=DTYPES[datatype]).tolist())


def model_metadata(meta: dict[str, Any]) -> pb.ModelMetadataResponse:
    """The data plane's metadata (the REST JSON shape) as a ModelMetadataResponse."""
    tensor = pb.ModelMetadataResponse.TensorMetadata
    return pb.ModelMetadataResponse(
        name=meta["name"],
        versions=meta["versions"],
        platform=meta["platform"],
        inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["inputs"]],
        outputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in meta["outputs"]],
    )


def _names(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"'{t.name}' ({t.datatype} {list(t.shape)})" for t in specs)
