"""Open Inference Protocol (V2) REST codec: JSON tensors and the binary tensor data extension.

Hand-written on purpose: the hot path parses the body once with orjson, checks it against the
model's signature and converts each tensor with one numpy call, without building pydantic models
of the payload. Every problem raises InvalidInput with a message that names the tensor and what
was expected.

Binary extension (Triton's `binary_tensor_data`): the body is a JSON header of
`Inference-Header-Content-Length` bytes followed by the raw tensors, in the order of the inputs
that carry `parameters.binary_data_size`; the response does the same for outputs requested with
`parameters.binary_data` (or all of them with the request parameter `binary_data_output`).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mlmodel_runtime.backends.base import DTYPES, Array, Signature, TensorSpec, datatype_of
from mlmodel_runtime.server.errors import InvalidInput
from mlmodel_runtime.server.wire import excerpt, quote

_INT_KINDS = "iu"
_NUMERIC_KINDS = "iuf"
_LENGTH = struct.Struct("<I")


@dataclass(slots=True)
class InferRequest:
    """A decoded, validated inference request."""

    id: str | None
    inputs: dict[str, Array]
    outputs: tuple[str, ...]
    """Names of the outputs to return, in response order."""
    binary: tuple[bool, ...]
    """For each of `outputs`: send it as binary data."""
    rows: int
    """Size of the first dimension of the first input (the batch, when the model has one)."""


@dataclass(slots=True)
class EncodedResponse:
    body: bytes
    header_length: int | None
    """Set when binary outputs follow the JSON header."""


def decode_request(body: bytes | bytearray, header_length: int | None, signature: Signature) -> InferRequest:
    """Parse and validate an infer request body against the model's signature."""
    view = memoryview(body)
    if header_length is not None:
        if header_length < 0 or header_length > len(body):
            raise InvalidInput(f"Inference-Header-Content-Length is {header_length} but the body has {len(body)} bytes")
        header, binary = view[:header_length], view[header_length:]
    else:
        header_length = len(body)
        header, binary = view, view[:0]
    # `true`/`false` among numbers is refused (numpy would take them as 1 and 0); looking for them
    # costs a pass over each list, so only when the JSON text has one at all (a scan at C speed)
    literals = body.find(b"true", 0, header_length) >= 0 or body.find(b"false", 0, header_length) >= 0
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError as exc:
        request = _with_non_finite(header, exc)
    if not isinstance(request, dict):
        raise InvalidInput(f"request must be a JSON object, found {_json_type(request)}")

    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("request 'id' must be a string")
    parameters = _object(request.get("parameters"), "request 'parameters'")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidInput("request parameter 'binary_data_output' must be true or false")

    inputs, offset = _decode_inputs(request.get("inputs"), binary, signature, literals)
    if offset != len(binary):
        raise InvalidInput(
            f"the body carries {len(binary)} bytes after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    outputs, flags = _decode_outputs(request.get("outputs"), signature, binary_default)
    first = inputs[signature.inputs[0].name]
    return InferRequest(request_id, inputs, outputs, flags, first.shape[0] if first.ndim else 0)


def _with_non_finite(header: memoryview, error: orjson.JSONDecodeError) -> Any:
    """JSON with NaN, Infinity or -Infinity among the numbers, which Triton reads (and its client
    writes) but orjson refuses: parsed again with the standard library, else the first error stands."""
    text = bytes(header)
    if b"NaN" in text or b"Infinity" in text:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            pass
    raise InvalidInput(f"malformed JSON in request: {error}") from None


def _decode_inputs(
    raw: Any, binary: memoryview, signature: Signature, literals: bool = True
) -> tuple[dict[str, Array], int]:
    if not isinstance(raw, list) or not raw:
        raise InvalidInput("request 'inputs' must be a non-empty list")
    specs = {t.name: t for t in signature.inputs}
    inputs: dict[str, Array] = {}
    offset = 0
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise InvalidInput(f"inputs[{index}] must be an object, found {_json_type(item)}")
        name = item.get("name")
        if not isinstance(name, str):
            raise InvalidInput(f"inputs[{index}] has no 'name' string")
        spec = specs.get(name)
        if spec is None:
            raise InvalidInput(f"unknown input {quote(name)}; the model takes {_names(signature.inputs)}")
        if name in inputs:
            raise InvalidInput(f"input '{name}' is given twice")
        datatype = item.get("datatype")
        if datatype != spec.datatype:
            raise InvalidInput(f"input '{name}': datatype {excerpt(datatype)}, expected {spec.datatype}")
        shape = tensor_shape(item.get("shape"), spec)
        size = _binary_size(item.get("parameters"), name)
        if size is None:
            if "data" not in item:
                raise InvalidInput(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
            array = from_json(item["data"], spec, shape, literals)
        else:
            if "data" in item:
                raise InvalidInput(f"input '{name}' has both 'data' and parameters.binary_data_size")
            if offset + size > len(binary):
                raise InvalidInput(
                    f"input '{name}': binary_data_size {size} runs past the end of the body "
                    f"({len(binary) - offset} bytes left)"
                )
            array = from_binary(binary[offset : offset + size], spec, shape)
            offset += size
        inputs[name] = array
    missing = [t for t in signature.inputs if t.name not in inputs]
    if missing:
        raise InvalidInput("missing input " + ", ".join(f"'{t.name}' ({t.datatype} {list(t.shape)})" for t in missing))
    return inputs, offset


def _decode_outputs(raw: Any, signature: Signature, binary_default: bool) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    if raw is None:
        names = tuple(t.name for t in signature.outputs)
        return names, (binary_default,) * len(names)
    if not isinstance(raw, list):
        raise InvalidInput("request 'outputs' must be a list")
    known = {t.name for t in signature.outputs}
    names_list: list[str] = []
    flags: list[bool] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"outputs[{index}] must be an object with a 'name' string")
        name = item["name"]
        if name not in known:
            raise InvalidInput(f"unknown output {quote(name)}; the model returns {_names(signature.outputs)}")
        if name in names_list:
            raise InvalidInput(f"output '{name}' is requested twice")
        parameters = _object(item.get("parameters"), f"output '{name}' parameters")
        if parameters.get("classification"):
            raise InvalidInput(f"output '{name}': the classification extension is not supported")
        flag = parameters.get("binary_data", binary_default)
        if not isinstance(flag, bool):
            raise InvalidInput(f"output '{name}': parameters.binary_data must be true or false")
        names_list.append(name)
        flags.append(flag)
    if not names_list:
        names = tuple(t.name for t in signature.outputs)
        return names, (binary_default,) * len(names)
    return tuple(names_list), tuple(flags)


def tensor_shape(raw: Any, spec: TensorSpec) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(d) is int and d >= 0 for d in raw):
        raise InvalidInput(f"input '{spec.name}': 'shape' must be a list of non-negative integers, got {excerpt(raw)}")
    shape = tuple(raw)
    if len(shape) != len(spec.shape) or any(e != -1 and e != d for d, e in zip(shape, spec.shape, strict=True)):
        raise InvalidInput(f"input '{spec.name}': shape {excerpt(raw)}, expected {list(spec.shape)}")
    return shape


def _binary_size(raw: Any, name: str) -> int | None:
    parameters = _object(raw, f"input '{name}' parameters")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
    return size


def from_json(data: Any, spec: TensorSpec, shape: tuple[int, ...], literals: bool = True) -> Array:
    """Convert JSON `data` (flat or regularly nested, row-major) to an array of `shape`, strictly typed.

    `literals`: whether `true`/`false` may be among the values (else the check for them is skipped).
    """
    count = math.prod(shape)
    name = spec.name
    if not isinstance(data, list):
        data = [data]
    if spec.datatype == "BYTES":
        flat = _flatten(data, name)
        if len(flat) != count:
            raise InvalidInput(f"input '{name}': {len(flat)} values for shape {list(shape)} ({count} expected)")
        out: Array = np.empty(count, dtype=np.object_)
        for i, value in enumerate(flat):
            if not isinstance(value, str):
                raise InvalidInput(f"input '{name}': BYTES data must be strings, found {_json_type(value)}")
            try:
                out[i] = value.encode()
            except UnicodeEncodeError:  # a lone surrogate (\ud800), which only the fallback parser lets through
                raise InvalidInput(f"input '{name}': BYTES element {i} is not valid Unicode") from None
        return out.reshape(shape)
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError, TypeError):
        raise InvalidInput(f"input '{name}': data is not a regular array of numbers") from None
    if array.size != count:
        raise InvalidInput(f"input '{name}': {array.size} values for shape {list(shape)} ({count} expected)")
    kind = array.dtype.kind
    target = spec.dtype
    if count:
        if spec.datatype == "BOOL":
            if kind != "b":
                raise InvalidInput(f"input '{name}': BOOL data must be true or false")
        elif kind not in _NUMERIC_KINDS or (literals and _has_bool(data)):
            raise InvalidInput(f"input '{name}': data must be numbers for {spec.datatype}")
        elif target.kind in _INT_KINDS:
            info = np.iinfo(target)  # type: ignore[type-var]
            if kind == "f":
                # numpy makes floats of ints that fit no one integer type (e.g. -1 with 2**64-1)
                array = _exact_ints(data, array.shape, name, spec.datatype)
            if array.min() < info.min or array.max() > info.max:
                raise InvalidInput(f"input '{name}': value out of range for {spec.datatype} [{info.min}, {info.max}]")
    if target.kind == "f" and array.dtype != target:
        with np.errstate(over="ignore"):  # beyond FP16/FP32 range becomes inf, as a cast does
            return array.astype(target).reshape(shape)
    return array.astype(target, copy=False).reshape(shape)


def _exact_ints(data: Any, shape: tuple[int, ...], name: str, datatype: str) -> Array:
    """Integers (only) as an array that holds them exactly: uint64, int64 or Python ints."""
    values = np.asarray(data, dtype=np.object_).reshape(-1).tolist()
    if not all(type(v) is int for v in values):
        raise InvalidInput(f"input '{name}': data must be integers for {datatype}")
    low, high = min(values), max(values)
    if low >= 0 and high < 2**64:
        return np.array(values, dtype=np.uint64).reshape(shape)
    if low >= -(2**63) and high < 2**63:
        return np.array(values, dtype=np.int64).reshape(shape)
    return np.array(values, dtype=np.object_).reshape(shape)  # out of every range: refused next


def from_binary(raw: memoryview, spec: TensorSpec, shape: tuple[int, ...]) -> Array:
    """Interpret `raw` (little-endian, row-major) as a tensor of `shape`."""
    count = math.prod(shape)
    name = spec.name
    if spec.datatype == "BYTES":
        return _bytes_elements(raw, count, name).reshape(shape)
    dtype = spec.dtype
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise InvalidInput(
            f"input '{name}': binary_data_size {len(raw)} bytes, expected {expected} for {spec.datatype} {list(shape)}"
        )
    array: Array = np.frombuffer(raw, dtype=dtype)
    if not array.flags.aligned:
        array = array.copy()
    if spec.datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"input '{name}': BOOL bytes must be 0 or 1")
    return array.reshape(shape)


def _bytes_elements(raw: memoryview, count: int, name: str) -> Array:
    if count * 4 > len(raw):  # every element has a 4-byte length; also keeps a lying shape from allocating
        raise InvalidInput(f"input '{name}': {len(raw)} bytes cannot hold {count} BYTES elements")
    out: Array = np.empty(count, dtype=np.object_)
    offset, end = 0, len(raw)
    for i in range(count):
        if offset + 4 > end:
            raise InvalidInput(f"input '{name}': binary BYTES data ends after {i} of {count} elements")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"input '{name}': BYTES element {i} of {length} bytes runs past the data")
        out[i] = bytes(raw[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidInput(f"input '{name}': {end - offset} bytes left after {count} BYTES elements")
    return out


def _flatten(data: list[Any], name: str) -> list[Any]:
    """The leaves of regularly nested lists (like numpy: every list at one depth of one length)."""
    flat: list[Any] = []
    stack = [iter(data)]
    lengths = [len(data)]  # the length of the lists at each depth, from the first one seen
    leaf_depth = -1
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                depth = len(stack)
                if depth >= 32:
                    raise InvalidInput(f"input '{name}': data is nested too deeply")
                if (leaf_depth >= 0 and depth >= leaf_depth) or (len(lengths) > depth and lengths[depth] != len(value)):
                    raise InvalidInput(f"input '{name}': data is not a regular (non-ragged) array")
                if len(lengths) == depth:
                    lengths.append(len(value))
                stack.append(iter(value))
                break
            if leaf_depth < 0:
                leaf_depth = len(stack)
            elif leaf_depth != len(stack):
                raise InvalidInput(f"input '{name}': data is not a regular (non-ragged) array")
            flat.append(value)
        else:
            stack.pop()
    if leaf_depth >= 0 and leaf_depth != len(lengths):
        raise InvalidInput(f"input '{name}': data is not a regular (non-ragged) array")
    return flat


def _has_bool(data: Any) -> bool:
    """Whether a `true` or `false` is among the (regularly nested, numeric) values."""
    stack = [data]
    while stack:
        values = stack.pop()
        if values and isinstance(values[0], list):
            stack.extend(values)
        elif bool in set(map(type, values)):
            return True
    return False


def request_bytes(request: InferRequest) -> int:
    """Memory the decoded inputs hold: the arrays, and the bytes objects of BYTES tensors."""
    total = 0
    for array in request.inputs.values():
        total += array.nbytes
        if array.dtype == np.object_:
            total += sum(len(v) + 33 for v in array.reshape(-1).tolist())  # 33: a bytes object's header
    return total


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    names: Sequence[str],
    arrays: Sequence[Array],
    binary: Sequence[bool],
) -> EncodedResponse:
    """Build the V2 response; binary outputs go after the JSON header, in output order."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name, array, as_binary in zip(names, arrays, binary, strict=True):
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if as_binary:
            raw = bytes_payload(array) if datatype == "BYTES" else numeric_payload(array, datatype)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif datatype == "BYTES":
            entry["data"] = [_text(v) for v in array.reshape(-1).tolist()]
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        outputs.append(entry)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if request_id is not None:
        response["id"] = request_id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if b"null" in header:  # orjson writes NaN and infinities as null (a scan at C speed, then the exact check)
        for entry, array in zip(outputs, arrays, strict=True):
            if "data" in entry and array.dtype.kind == "f" and not np.isfinite(array).all():
                entry["data"] = _non_finite_json(array)
        header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join((header, *chunks)), len(header))


_NON_FINITE = {"nan": b"NaN", "inf": b"Infinity", "-inf": b"-Infinity"}


def _non_finite_json(array: Array) -> orjson.Fragment:
    """Float data with NaN or infinities written as Triton writes them (rapidjson's NaN, Infinity and
    -Infinity literals, which Python's json and tritonclient read), not as null, which loses which one."""
    parts = []
    for value in array.reshape(-1):
        text = str(value)  # numpy's shortest text for the value's own precision, as orjson writes it
        parts.append(_NON_FINITE.get(text) or text.encode())
    return orjson.Fragment(b"[" + b",".join(parts) + b"]")


def numeric_payload(array: Array, datatype: str) -> bytes:
    wire = DTYPES[datatype]
    return np.ascontiguousarray(array, dtype=wire).tobytes()


def bytes_payload(array: Array) -> bytes:
    parts: list[bytes] = []
    for value in array.reshape(-1).tolist():
        raw = value if isinstance(value, bytes) else str(value).encode()
        parts.append(_LENGTH.pack(len(raw)))
        parts.append(raw)
    return b"".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _object(raw: Any, what: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} must be an object")
    return raw


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(f"'{t.name}' ({t.datatype} {list(t.shape)})" for t in specs)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)
