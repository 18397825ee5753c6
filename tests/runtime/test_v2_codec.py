"""The V2 codec on its own (pure code): JSON tensors of every datatype, flat and nested data, the
binary tensor data extension in both directions, requested outputs, and a clear InvalidInput for
every malformed request (names, datatypes, shapes, lengths, non-numeric data, lying headers)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from mlmodel_runtime.backends.base import DTYPES, Signature, TensorSpec
from mlmodel_runtime.server.codec import decode_request, encode_response
from mlmodel_runtime.server.errors import InvalidInput
from tritonclient.http import InferResult

MLP = Signature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)),),
    outputs=(TensorSpec("output", "FP32", (-1, 2)), TensorSpec("scores", "FP32", (-1,))),
)
TWO_INPUTS = Signature(
    inputs=(TensorSpec("a", "INT64", (-1, 2)), TensorSpec("b", "BOOL", (-1,))),
    outputs=(TensorSpec("y", "INT64", (-1, 2)),),
)


def body(*inputs: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **top}).encode()


def tensor(
    name: str = "input", shape: list[int] | None = None, datatype: str = "FP32", data: Any = None
) -> dict[str, Any]:
    shape = [1, 4] if shape is None else shape
    return {"name": name, "shape": shape, "datatype": datatype, "data": list(range(4)) if data is None else data}


def binary_body(header: dict[str, Any], *chunks: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(chunks), len(head)


# ---- JSON inputs


@pytest.mark.parametrize("data", [[0.5, 1, 2, 3], [[0.5, 1, 2, 3]]], ids=["flat", "nested"])
def test_json_data_flat_or_nested_becomes_the_declared_dtype_and_shape(data: list[Any]) -> None:
    request = decode_request(body(tensor(data=data)), None, MLP)
    x = request.inputs["input"]
    assert x.dtype == np.float32
    assert x.shape == (1, 4)
    assert x.tolist() == [[0.5, 1, 2, 3]]
    assert request.rows == 1
    assert request.outputs == ("output", "scores")
    assert request.binary == (False, False)


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("BOOL", [True, False]),
        ("UINT8", [0, 255]),
        ("UINT16", [0, 65535]),
        ("UINT32", [0, 2**32 - 1]),
        ("UINT64", [0, 2**64 - 1]),
        ("INT8", [-128, 127]),
        ("INT16", [-(2**15), 2**15 - 1]),
        ("INT32", [-(2**31), 2**31 - 1]),
        ("INT64", [-(2**63), 2**63 - 1]),
        ("FP16", [0.5, -2.0]),
        ("FP32", [0.25, 3]),
        ("FP64", [1e300, -1.5]),
        ("BYTES", ["abc", "é"]),
    ],
)
def test_every_datatype_decodes_from_json(datatype: str, data: list[Any]) -> None:
    signature = Signature((TensorSpec("x", datatype, (2,)),), (TensorSpec("y", datatype, (2,)),))
    x = decode_request(body(tensor("x", [2], datatype, data)), None, signature).inputs["x"]
    assert x.dtype == DTYPES[datatype]
    expected = [s.encode() for s in data] if datatype == "BYTES" else data
    assert x.tolist() == expected


def test_requested_outputs_pick_outputs_and_binary_flags() -> None:
    raw = body(
        tensor(),
        outputs=[{"name": "scores", "parameters": {"binary_data": True}}, {"name": "output"}],
    )
    request = decode_request(raw, None, MLP)
    assert request.outputs == ("scores", "output")
    assert request.binary == (True, False)
    everything_binary = decode_request(body(tensor(), parameters={"binary_data_output": True}), None, MLP)
    assert everything_binary.binary == (True, True)


# ---- binary inputs


def test_binary_inputs_follow_the_json_header_in_order() -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.int64)
    b = np.array([True, False])
    header = {
        "inputs": [
            {"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
            {"name": "a", "shape": [2, 2], "datatype": "INT64", "parameters": {"binary_data_size": 32}},
        ]
    }
    raw, length = binary_body(header, b.tobytes(), a.tobytes())
    request = decode_request(raw, length, TWO_INPUTS)
    np.testing.assert_array_equal(request.inputs["a"], a)
    np.testing.assert_array_equal(request.inputs["b"], b)


def test_binary_bytes_elements_carry_a_length_prefix() -> None:
    signature = Signature((TensorSpec("s", "BYTES", (-1,)),), (TensorSpec("t", "BYTES", (-1,)),))
    payload = b"".join(struct.pack("<I", len(v)) + v for v in (b"ab", b"", b"\x00\xff"))
    header = {
        "inputs": [{"name": "s", "shape": [3], "datatype": "BYTES", "parameters": {"binary_data_size": len(payload)}}]
    }
    raw, length = binary_body(header, payload)
    assert decode_request(raw, length, signature).inputs["s"].tolist() == [b"ab", b"", b"\x00\xff"]


# ---- what clients get wrong


def _bad(raw: bytes, signature: Signature = MLP, header_length: int | None = None) -> str:
    with pytest.raises(InvalidInput) as info:
        decode_request(raw, header_length, signature)
    return str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (body(), "non-empty list"),
        (json.dumps({"inputs": "x"}).encode(), "non-empty list"),
        (body(tensor("other")), "unknown input 'other'; the model takes 'input' (FP32 [-1, 4])"),
        (body(tensor(), tensor()), "input 'input' is given twice"),
        (body(tensor(datatype="FP64")), 'input \'input\': datatype "FP64", expected FP32'),
        (body(tensor(shape=[4])), "input 'input': shape [4], expected [-1, 4]"),
        (body(tensor(shape=[1, 5], data=list(range(5)))), "input 'input': shape [1, 5], expected [-1, 4]"),
        (body(tensor(shape=[1, -4])), "'shape' must be a list of non-negative integers"),
        (body(tensor(shape=[2, 4])), "input 'input': 4 values for shape [2, 4] (8 expected)"),
        (body(tensor(data=[1, 2, "x", 4])), "input 'input': data must be numbers for FP32"),
        (body(tensor(data=[1, 2, None, 4])), "input 'input': data must be numbers for FP32"),
        (body(tensor(data=[[1, 2], [3]])), "input 'input': data is not a regular array of numbers"),
        (body(tensor(data=[True, False, True, False])), "data must be numbers for FP32"),
        (body({"name": "input", "shape": [1, 4], "datatype": "FP32"}), "has neither 'data' nor"),
        (body(tensor(), outputs=[{"name": "nope"}]), "unknown output 'nope'; the model returns 'output'"),
        (body(tensor(), parameters={"binary_data_output": "yes"}), "'binary_data_output' must be true or false"),
    ],
)
def test_bad_requests_say_what_was_expected(raw: bytes, expected: str) -> None:
    assert expected in _bad(raw)


def test_missing_inputs_are_named_with_their_spec() -> None:
    message = _bad(body(tensor("a", [1, 2], "INT64", [1, 2])), TWO_INPUTS)
    assert message == "missing input 'b' (BOOL [-1])"


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [
        ("INT8", [1, 300], "value out of range for INT8 [-128, 127]"),
        ("UINT8", [-1, 2], "value out of range for UINT8 [0, 255]"),
        ("INT32", [1.5, 2], "data must be integers for INT32"),
        ("BOOL", [1, 0], "BOOL data must be true or false"),
        ("BYTES", [1, 2], "BYTES data must be strings"),
    ],
)
def test_values_must_fit_the_datatype(datatype: str, data: list[Any], expected: str) -> None:
    signature = Signature((TensorSpec("x", datatype, (2,)),), (TensorSpec("y", datatype, (2,)),))
    assert expected in _bad(body(tensor("x", [2], datatype, data)), signature)


def test_binary_lengths_that_lie_are_refused() -> None:
    x = np.zeros((1, 4), dtype=np.float32).tobytes()
    declared = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "parameters": {"binary_data_size": 16}}]
    }
    raw, length = binary_body(declared, x)
    assert "Inference-Header-Content-Length is 9999" in _bad(raw, header_length=9999)
    assert "malformed JSON" in _bad(raw, header_length=length - 3)
    short = {"inputs": [{**declared["inputs"][0], "parameters": {"binary_data_size": 12}}]}
    raw, length = binary_body(short, x[:12])
    assert "binary_data_size 12 bytes, expected 16 for FP32 [1, 4]" in _bad(raw, header_length=length)
    raw, length = binary_body(declared, x[:8])
    assert "runs past the end of the body (8 bytes left)" in _bad(raw, header_length=length)
    raw, length = binary_body(declared, x + b"extra")
    assert "carries 21 bytes after the JSON header but the inputs' binary_data_size add up to 16" in _bad(
        raw, header_length=length
    )


def test_a_huge_declared_bytes_shape_is_refused_before_allocating() -> None:
    signature = Signature((TensorSpec("s", "BYTES", (-1,)),), (TensorSpec("t", "BYTES", (-1,)),))
    header = {"inputs": [{"name": "s", "shape": [10**15], "datatype": "BYTES", "parameters": {"binary_data_size": 8}}]}
    raw, length = binary_body(header, b"\0" * 8)
    assert "8 bytes cannot hold 1000000000000000 BYTES elements" in _bad(raw, signature, length)


def test_bool_bytes_other_than_0_or_1_are_refused() -> None:
    signature = Signature((TensorSpec("b", "BOOL", (2,)),), (TensorSpec("y", "BOOL", (2,)),))
    header = {"inputs": [{"name": "b", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}}]}
    raw, length = binary_body(header, b"\x01\x07")
    assert "BOOL bytes must be 0 or 1" in _bad(raw, signature, length)


# ---- responses, read back with the Triton client's own decoder


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize(
    "array",
    [
        np.array([[1.5, -2.25]], dtype=np.float32),
        np.array([[1, -2]], dtype=np.int64),
        np.array([True, False]),
        np.array([0.5, 2.0], dtype=np.float16),
        np.array([7, 255], dtype=np.uint8),
        np.array([b"ab", b"c"], dtype=np.object_),
    ],
    ids=lambda a: str(a.dtype),
)
def test_responses_round_trip_through_tritonclient(array: np.ndarray, binary: bool) -> None:
    encoded = encode_response("m", "3", "req-1", ["y"], [array], [binary])
    result = InferResult.from_response_body(encoded.body, header_length=encoded.header_length)
    back = result.as_numpy("y")
    assert back is not None
    assert back.shape == array.shape
    expected = array.tolist()
    if array.dtype == np.object_ and not binary:  # JSON carries BYTES as strings
        expected = [v.decode() for v in expected]
    assert back.tolist() == expected
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("m", "3", "req-1")
    assert (encoded.header_length is not None) == binary


def test_json_output_data_is_flat_and_float32_prints_short() -> None:
    encoded = encode_response("m", "1", None, ["y"], [np.array([[0.1, 2.0], [3.0, 4.5]], dtype=np.float32)], [False])
    output = json.loads(encoded.body)["outputs"][0]
    assert output == {"name": "y", "datatype": "FP32", "shape": [2, 2], "data": [0.1, 2.0, 3.0, 4.5]}
    assert "id" not in json.loads(encoded.body)
