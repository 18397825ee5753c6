"""The transport's safe reading on its own (pure code): strict length headers, bounded excerpts of
hostile values (deep nesting, huge strings and integers), multi-member gzip decoded whole, data
after a gzip or deflate stream refused, the decompression bound kept, and the codec's messages on
values nested a thousand levels deep."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import numpy as np
import pytest
from mlmodel_runtime.backends.base import Signature, TensorSpec
from mlmodel_runtime.server.codec import decode_request, encode_response
from mlmodel_runtime.server.errors import InvalidInput, PayloadTooLarge, UnsupportedEncoding
from mlmodel_runtime.server.wire import BodyDecoder, excerpt, parse_length

MLP = Signature(inputs=(TensorSpec("input", "FP32", (-1, 4)),), outputs=(TensorSpec("output", "FP32", (-1, 2)),))
TEXT = Signature(inputs=(TensorSpec("text", "BYTES", (-1, 2)),), outputs=(TensorSpec("output", "FP32", (-1,)),))


def nested(depth: int, leaf: Any = "FP32") -> Any:
    """`leaf` inside `depth` lists."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("raw", [b"0", b"12", b"00000000000000000012", b"18446744073709551615"])
def test_lengths_of_digits_only_are_read(raw: bytes) -> None:
    assert parse_length(raw, "Content-Length") == int(raw)


@pytest.mark.parametrize(
    "raw", [b"", b"+12", b"-1", b"1_2", b" 12", b"12 ", b"0x10", b"1e3", "١٢".encode(), b"0" * 5000]
)
def test_anything_else_is_refused_with_a_bounded_message(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match="must be a decimal integer of at most 20 digits") as caught:
        parse_length(raw, "Inference-Header-Content-Length")
    assert len(str(caught.value)) < 200


def test_excerpts_are_bounded_whatever_the_value() -> None:
    assert excerpt(["a", 1, 2.5, True, None, {"k": [1]}]) == '["a", 1, 2.5, true, null, {"k": [1]}]'
    assert excerpt(nested(100_000)) == "[" * 80 + "..."
    assert len(excerpt("x" * 10**7)) <= 84
    assert excerpt(10**5000) == "<integer of 16610 bits>"
    assert len(excerpt({"a" * 1000: list(range(10**6))})) <= 84


def with_nested(tensor: dict[str, Any], field: str, depth: int, leaf: str) -> bytes:
    """A request whose `field` is `leaf` (JSON text) inside `depth` arrays (json.dumps would recurse)."""
    text = json.dumps({"inputs": [{**tensor, field: "@"}]})
    return text.replace('"@"', "[" * depth + leaf + "]" * depth).encode()


@pytest.mark.parametrize("field", ["datatype", "shape", "name", "parameters"])
def test_deeply_nested_values_in_a_request_get_a_bounded_400(field: str) -> None:
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    with pytest.raises(InvalidInput) as caught:
        decode_request(with_nested(tensor, field, 1000, '"FP32"'), None, MLP)
    assert len(str(caught.value)) < 300


def test_deeply_nested_data_gets_a_400() -> None:
    for signature, name, datatype in ((MLP, "input", "FP32"), (TEXT, "text", "BYTES")):
        tensor = {"name": name, "shape": [1, 4 if datatype == "FP32" else 2], "datatype": datatype}
        for depth in (40, 1000):
            with pytest.raises(InvalidInput):
                decode_request(
                    with_nested(tensor, "data", depth, '"a"' if datatype == "BYTES" else "1"), None, signature
                )


def decode(body: bytes, encoding: str | None, limit: int = 1 << 20, chunk: int = 7) -> bytes:
    decoder = BodyDecoder(None if encoding is None else encoding.encode(), limit)
    for start in range(0, len(body), chunk):
        decoder.feed(body[start : start + chunk])
    return bytes(decoder.finish())


def test_every_gzip_member_is_decoded() -> None:
    members = gzip.compress(b'{"a": ') + gzip.compress(b"[1, 2") + gzip.compress(b"]}")
    for chunk in (1, 7, len(members)):
        assert decode(members, "gzip", chunk=chunk) == b'{"a": [1, 2]}'


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("gzip", gzip.compress(b"{}") + b"garbage", "gzip member 2"),
        ("gzip", gzip.compress(b"{}") + b"\0\0\0\0", "gzip member 2"),
        ("gzip", gzip.compress(b"{}") + gzip.compress(b"{}")[:5], "gzip member 2 is truncated"),
        ("gzip", gzip.compress(b"{}")[:-3], "body is truncated"),
        ("deflate", zlib.compress(b"{}") + b"x", "follow the end of the deflate data"),
        ("deflate", zlib.compress(b"{}") + zlib.compress(b"{}"), "follow the end of the deflate data"),
    ],
)
def test_data_after_or_missing_from_the_stream_is_refused(encoding: str, body: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode(body, encoding)


def test_the_decompression_bound_holds_across_members() -> None:
    member = gzip.compress(b" " * 600)
    assert len(decode(member, "gzip", limit=1000)) == 600
    with pytest.raises(PayloadTooLarge):
        decode(member + member, "gzip", limit=1000)
    with pytest.raises(PayloadTooLarge):
        decode(gzip.compress(b" " * 10**7), "gzip", limit=1000, chunk=1 << 20)


def test_identity_bodies_are_kept_in_one_buffer_and_checked_against_their_length() -> None:
    decoder = BodyDecoder(None, 100, expected=6)
    decoder.feed(b"abc")
    decoder.feed(b"def")
    assert decoder.finish() == b"abcdef"
    short = BodyDecoder(b"identity", 100, expected=6)
    short.feed(b"abc")
    with pytest.raises(InvalidInput, match="has 3 bytes, its Content-Length says 6"):
        short.finish()
    chunked = BodyDecoder(None, 5)
    with pytest.raises(PayloadTooLarge):
        chunked.feed(b"abcdef")
    with pytest.raises(UnsupportedEncoding, match='"br"'):
        BodyDecoder(b"br", 100)


@pytest.mark.parametrize(
    "data",
    [[["a", "b"], "c", "d"], [["a"], ["b", "c"]], ["a", ["b"]], [[["a", "b"]], ["c", "d"]], [[], ["a", "b"]]],
)
def test_ragged_bytes_data_is_refused_like_ragged_numbers(data: Any) -> None:
    request = {"inputs": [{"name": "text", "shape": [2, 2], "datatype": "BYTES", "data": data}]}
    with pytest.raises(InvalidInput, match=r"regular|values for shape"):
        decode_request(json.dumps(request).encode(), None, TEXT)


def test_regular_bytes_data_flat_or_nested_is_taken() -> None:
    for data in (["a", "b", "c", "d"], [["a", "b"], ["c", "d"]], [[["a", "b"], ["c", "d"]]]):
        request = {"inputs": [{"name": "text", "shape": [2, 2], "datatype": "BYTES", "data": data}]}
        decoded = decode_request(json.dumps(request).encode(), None, TEXT)
        assert decoded.inputs["text"].tolist() == [[b"a", b"b"], [b"c", b"d"]]


@pytest.mark.parametrize("data", [[1.5, True, 3, 4], [[1, 2], [3, False]], [True, True, True, True]])
def test_true_and_false_among_numbers_are_refused(data: Any) -> None:
    request = {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": data}]}
    with pytest.raises(InvalidInput, match="data must be numbers for FP32"):
        decode_request(json.dumps(request).encode(), None, MLP)


def test_the_word_true_elsewhere_does_not_refuse_numbers() -> None:
    request = {
        "id": "true false",
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
    }
    assert decode_request(json.dumps(request).encode(), None, MLP).inputs["input"].tolist() == [[1, 2, 3, 4]]


def test_non_finite_outputs_are_written_as_triton_writes_them() -> None:
    for dtype in (np.float16, np.float32, np.float64):
        y = np.array([[np.nan, np.inf], [-np.inf, 0.1]], dtype)
        body = encode_response("m", "1", None, ["y"], [y], [False]).body
        assert b'"data":[NaN,Infinity,-Infinity,0.1]' in body
        data = json.loads(body)["outputs"][0]["data"]  # what Python's json and tritonclient read
        assert np.isnan(data[0])
        assert data[1:] == [np.inf, -np.inf, 0.1]


def test_non_finite_inputs_are_read_as_triton_reads_them() -> None:
    request = (
        b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [NaN, Infinity, -Infinity, 1]}]}'
    )
    x = decode_request(request, None, MLP).inputs["input"]
    assert np.isnan(x[0, 0])
    assert x[0, 1:].tolist() == [np.inf, -np.inf, 1]
    for bad in (b'{"inputs": [NaN', b"[" * 5000 + b"NaN" + b"]" * 5000):
        with pytest.raises(InvalidInput, match="malformed JSON"):
            decode_request(bad, None, MLP)
    surrogate = (
        b'{"inputs": [{"name": "text", "shape": [1, 2], "datatype": "BYTES", "data": ["\\ud800", "NaN"]}], "x": NaN}'
    )
    with pytest.raises(InvalidInput, match="not valid Unicode"):
        decode_request(surrogate, None, TEXT)


def test_the_body_buffer_is_made_when_the_first_bytes_come() -> None:
    waiting = BodyDecoder(None, 1 << 30, expected=1 << 30)  # a request still waiting for admission holds nothing
    assert waiting.size == 0
    assert len(waiting._out) == 0
    with pytest.raises(InvalidInput, match="has 0 bytes"):
        waiting.finish()
