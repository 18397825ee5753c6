"""The gRPC codec, in process: typed contents and raw contents of every datatype decode to the same
arrays and encode back unchanged; values out of a narrow integer type's range, FP16 in typed
contents and a request mixing raw and typed inputs are refused with a message; responses are raw
when the request was raw (or an output is FP16), typed otherwise; the errors' gRPC codes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from mlmodel_runtime.backends.base import Signature, TensorSpec
from mlmodel_runtime.server.codec import bytes_payload, numeric_payload
from mlmodel_runtime.server.errors import InvalidInput, ModelNotFound, ModelNotReady, PayloadTooLarge, status_for
from mlmodel_runtime.server.grpc_codec import CONTENTS_FIELD, decode_infer_request, encode_infer_response
from mlmodel_runtime.server.grpc_service import grpc_code
from mlmodel_runtime.server.oip import grpc_predict_v2_pb2 as pb

from tests.runtime.models import ECHO_TYPES, echo_values

SIGNATURE = Signature(
    tuple(TensorSpec(f"in_{t}", t, (-1, 2)) for t in ECHO_TYPES),
    tuple(TensorSpec(f"out_{t}", t, (-1, 2)) for t in ECHO_TYPES),
)


def one(datatype: str) -> Signature:
    return Signature((TensorSpec("x", datatype, (-1, 2)),), (TensorSpec("y", datatype, (-1, 2)),))


def raw_of(array: np.ndarray, datatype: str) -> bytes:
    return bytes_payload(array) if datatype == "BYTES" else numeric_payload(array, datatype)


@pytest.mark.parametrize("datatype", sorted(ECHO_TYPES))
def test_raw_and_typed_contents_decode_alike_and_encode_back(datatype: str) -> None:
    array = echo_values()[datatype]
    raw = pb.ModelInferRequest(model_name="m", raw_input_contents=[raw_of(array, datatype)])
    raw.inputs.add(name="x", datatype=datatype, shape=[2, 2])
    from_raw = decode_infer_request(raw, one(datatype))
    assert from_raw.inputs["x"].tolist() == array.tolist()
    encoded = encode_infer_response("m", "1", from_raw, {"y": from_raw.inputs["x"]})
    assert list(encoded.raw_output_contents) == [raw_of(array, datatype)]
    assert list(encoded.outputs[0].shape) == [2, 2]
    if datatype == "FP16":
        return
    typed = pb.ModelInferRequest(model_name="m")
    tensor = typed.inputs.add(name="x", datatype=datatype, shape=[2, 2])
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend(array.reshape(-1).tolist())
    from_typed = decode_infer_request(typed, one(datatype))
    assert from_typed.inputs["x"].dtype == from_raw.inputs["x"].dtype
    assert from_typed.inputs["x"].tolist() == array.tolist()
    back = encode_infer_response("m", "1", from_typed, {"y": from_typed.inputs["x"]})
    assert not back.raw_output_contents
    assert list(getattr(back.outputs[0].contents, CONTENTS_FIELD[datatype])) == array.reshape(-1).tolist()


@pytest.mark.parametrize(("datatype", "value"), [("INT8", 128), ("INT16", -40000), ("UINT8", 256), ("UINT16", 70000)])
def test_typed_values_out_of_a_narrow_range_are_refused(datatype: str, value: int) -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[1, 2])
    getattr(tensor.contents, CONTENTS_FIELD[datatype]).extend([0, value])
    with pytest.raises(InvalidInput, match=f"value out of range for {datatype}"):
        decode_infer_request(request, one(datatype))


def test_fp16_in_typed_contents_is_refused() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP16", shape=[1, 2])
    with pytest.raises(InvalidInput, match="FP16 data must be sent in raw_input_contents"):
        decode_infer_request(request, one("FP16"))


def test_an_fp16_output_makes_the_response_raw() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 2], contents=pb.InferTensorContents(fp32_contents=[1, 2]))
    signature = Signature((TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("y", "FP16", (-1, 2)),))
    decoded = decode_infer_request(request, signature)
    response = encode_infer_response("m", "1", decoded, {"y": np.array([[1, 2]], np.float16)})
    assert np.frombuffer(response.raw_output_contents[0], "<f2").tolist() == [1.0, 2.0]


def test_requested_outputs_in_their_order() -> None:
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[np.zeros((1, 2), "<f4").tobytes()])
    request.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    signature = Signature((TensorSpec("x", "FP32", (-1, 2)),), (TensorSpec("a", "FP32", (-1, 2)),
                                                                 TensorSpec("b", "FP32", (-1, 2))))
    request.outputs.add(name="b")
    request.outputs.add(name="a")
    assert decode_infer_request(request, signature).outputs == ("b", "a")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (ModelNotReady("x"), grpc.StatusCode.UNAVAILABLE),
        (PayloadTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (RuntimeError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_map_to_grpc_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert grpc_code(status_for(error)) == code
