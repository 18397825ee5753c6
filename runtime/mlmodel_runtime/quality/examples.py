"""Functional examples: inputs with the outputs the model must give for them, within a tolerance per output.

`mlmodel pack --examples FILE` reads them from a JSON file (V2 request/response pairs, or this module's own
form) or a NumPy `.npz`, checks them against the model's signature and stores them as `examples.json` in the
package, where the manifest's digest covers them. The runtime runs them after loading and warm-up, before it
reports started or ready; `mlmodel verify` runs them locally. A mismatch raises ExamplesMismatch (exit code
17) naming the example, the output and the largest difference.

A value passes when |actual - expected| <= abs + rel * |expected| (numpy.isclose's rule, NaN equal to NaN);
BOOL and BYTES outputs must be equal.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlmodel_runtime.backends.base import DTYPES, Array, Backend, Signature, TensorSpec
from mlmodel_runtime.package.errors import ExamplesMismatch
from mlmodel_runtime.package.models import EXAMPLES_FILE

SCHEMA_VERSION = 1
DEFAULT_ABS = 1e-5
DEFAULT_REL = 1e-4
MAX_EXAMPLES_BYTES = 64 * 1024 * 1024


class ExamplesInvalid(ValueError):
    """An examples file that cannot be read, or does not fit the model's signature (the message says why)."""


@dataclass(frozen=True)
class Tolerance:
    """How far an output's values may be from the expected ones: abs + rel * |expected|."""

    abs: float = DEFAULT_ABS
    rel: float = DEFAULT_REL

    def __post_init__(self) -> None:
        for what, value in (("abs", self.abs), ("rel", self.rel)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ExamplesInvalid(f"tolerance {what} must be a finite number >= 0, got {value!r}")

    def as_json(self) -> dict[str, float]:
        return {"abs": float(self.abs), "rel": float(self.rel)}


@dataclass(frozen=True)
class Example:
    """One request's inputs and the outputs expected for it (a subset of the model's outputs)."""

    name: str
    inputs: Mapping[str, Array]
    outputs: Mapping[str, Array]


@dataclass(frozen=True)
class Examples:
    """The examples of a package and the tolerance of each output (`default` for the others)."""

    examples: tuple[Example, ...]
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    default: Tolerance = Tolerance()

    def tolerance(self, output: str) -> Tolerance:
        return self.tolerances.get(output, self.default)


@dataclass(frozen=True)
class Mismatch:
    """The worst element of an output that is outside its tolerance."""

    example: str
    output: str
    message: str


# -- reading ----------------------------------------------------------------------------------------


def _tensor_from_json(raw: Any, where: str) -> tuple[str, Array]:
    if not isinstance(raw, Mapping):
        raise ExamplesInvalid(f"{where}: a tensor must be an object with name, datatype, shape and data")
    name, datatype, shape, data = raw.get("name"), raw.get("datatype"), raw.get("shape"), raw.get("data")
    if not isinstance(name, str) or not name:
        raise ExamplesInvalid(f"{where}: tensor without a name")
    where = f"{where} tensor {name!r}"
    if datatype not in DTYPES:
        raise ExamplesInvalid(f"{where}: datatype {datatype!r} is not an Open Inference Protocol datatype")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ExamplesInvalid(f"{where}: shape must be a list of non-negative integers")
    if data is None:
        raise ExamplesInvalid(f"{where}: no data (binary tensors are not read from examples files)")
    try:
        if datatype == "BYTES":
            flat = np.asarray(data, dtype=np.object_).reshape(-1)
            array: Array = np.array(
                [v.encode() if isinstance(v, str) else bytes(v) for v in flat], dtype=np.object_
            ).reshape(shape)
        else:
            array = np.asarray(_non_finite(data), dtype=DTYPES[datatype]).reshape(shape)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ExamplesInvalid(f"{where}: data does not fit shape {shape} and datatype {datatype} ({exc})") from None
    return name, array


def _non_finite(data: Any) -> Any:
    """JSON has no NaN: accept the strings "NaN", "Infinity" and "-Infinity" (as V2 servers write them)."""
    if isinstance(data, list):
        return [_non_finite(v) for v in data]
    if isinstance(data, str) and data in ("NaN", "Infinity", "-Infinity", "nan", "inf", "-inf"):
        return float(data)
    return data


def _tensors(raw: Any, where: str) -> dict[str, Array]:
    if not isinstance(raw, list) or not raw:
        raise ExamplesInvalid(f"{where}: expected a non-empty list of tensors")
    found: dict[str, Array] = {}
    for i, item in enumerate(raw):
        name, array = _tensor_from_json(item, f"{where}[{i}]")
        if name in found:
            raise ExamplesInvalid(f"{where}: tensor {name!r} given twice")
        found[name] = array
    return found


def _example_from_json(raw: Any, index: int) -> Example:
    where = f"example {index}"
    if not isinstance(raw, Mapping):
        raise ExamplesInvalid(f"{where}: expected an object")
    name = raw.get("name", f"example-{index}")
    if not isinstance(name, str) or not name:
        raise ExamplesInvalid(f"{where}: name must be a non-empty string")
    where = f"example {name!r}"
    if "request" in raw or "response" in raw:  # a V2 request/response pair
        request, response = raw.get("request"), raw.get("response")
        if not isinstance(request, Mapping) or not isinstance(response, Mapping):
            raise ExamplesInvalid(f"{where}: a V2 pair needs both 'request' and 'response' objects")
        inputs, outputs = request.get("inputs"), response.get("outputs")
    else:
        inputs, outputs = raw.get("inputs"), raw.get("outputs")
    return Example(name, _tensors(inputs, f"{where} inputs"), _tensors(outputs, f"{where} outputs"))


def _tolerances(raw: Any) -> tuple[dict[str, Tolerance], Tolerance | None]:
    """`{"default": {"abs": .., "rel": ..}, "<output>": {...}}` from a file's `tolerance` key."""
    if raw is None:
        return {}, None
    if not isinstance(raw, Mapping):
        raise ExamplesInvalid("tolerance: expected an object of output name -> {abs, rel}")
    found: dict[str, Tolerance] = {}
    for key, value in raw.items():
        if not isinstance(value, Mapping) or set(value) - {"abs", "rel"}:
            raise ExamplesInvalid(f"tolerance {key!r}: expected {{\"abs\": number, \"rel\": number}}")
        found[str(key)] = Tolerance(value.get("abs", DEFAULT_ABS), value.get("rel", DEFAULT_REL))
    return found, found.pop("default", None)


def parse_examples(data: bytes) -> Examples:
    """Examples from JSON: this module's stored form, or V2 pairs (a list, or `{"examples": [...]}`)."""
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExamplesInvalid(f"not valid JSON ({exc})") from None
    body = {"examples": raw} if isinstance(raw, list) else raw
    if not isinstance(body, Mapping) or not isinstance(body.get("examples"), list) or not body["examples"]:
        raise ExamplesInvalid("expected a non-empty list of examples (or an object with one under 'examples')")
    version = body.get("schemaVersion", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ExamplesInvalid(f"schemaVersion {version!r} is not supported (this build reads {SCHEMA_VERSION})")
    examples = tuple(_example_from_json(item, i) for i, item in enumerate(body["examples"]))
    names = [e.name for e in examples]
    if len(set(names)) != len(names):
        raise ExamplesInvalid(f"example names are not unique: {sorted({n for n in names if names.count(n) > 1})}")
    per_output, default = _tolerances(body.get("tolerance"))
    return Examples(examples, per_output, default or Tolerance())


def read_npz(path: Path, signature: Signature) -> Examples:
    """One example from a `.npz`: arrays named after the inputs and outputs (or `input/<name>`, `output/<name>`
    where a name is both)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as exc:
        raise ExamplesInvalid(f"{path.name}: not a readable .npz without pickled objects ({exc})") from None
    inputs: dict[str, Array] = {}
    outputs: dict[str, Array] = {}
    input_names = {t.name for t in signature.inputs}
    output_names = {t.name for t in signature.outputs}
    for key, array in arrays.items():
        if key.startswith("input/"):
            inputs[key.removeprefix("input/")] = array
        elif key.startswith("output/"):
            outputs[key.removeprefix("output/")] = array
        elif key in input_names and key in output_names:
            raise ExamplesInvalid(f"{path.name}: {key!r} is both an input and an output: name it input/{key} "
                                  f"or output/{key}")
        elif key in input_names:
            inputs[key] = array
        elif key in output_names:
            outputs[key] = array
        else:
            raise ExamplesInvalid(f"{path.name}: array {key!r} is neither an input ({_names(signature.inputs)}) "
                                  f"nor an output ({_names(signature.outputs)}) of the model")
    return Examples((Example(path.stem, _as_wire(inputs), _as_wire(outputs)),))


def _as_wire(arrays: Mapping[str, Array]) -> dict[str, Array]:
    """Strings as bytes objects, as the runtime passes BYTES tensors."""
    out: dict[str, Array] = {}
    for name, array in arrays.items():
        if array.dtype.kind in "US":
            flat = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1).tolist()]
            array = np.array(flat, dtype=np.object_).reshape(array.shape)
        out[name] = array
    return out


def read_examples(path: Path, signature: Signature) -> Examples:
    """An examples file as people have them: `.json` or `.npz` (by its ending), checked against `signature`."""
    if not path.is_file():
        raise ExamplesInvalid(f"{path}: no such file")
    if path.stat().st_size > MAX_EXAMPLES_BYTES:
        raise ExamplesInvalid(f"{path}: larger than {MAX_EXAMPLES_BYTES} bytes; keep a few small examples")
    if path.suffix.lower() == ".npz":
        examples = read_npz(path, signature)
    elif path.suffix.lower() == ".json":
        try:
            examples = parse_examples(path.read_bytes())
        except ExamplesInvalid as exc:
            raise ExamplesInvalid(f"{path.name}: {exc}") from None
    else:
        raise ExamplesInvalid(f"{path.name}: examples must be a .json (V2 request/response pairs) or a .npz file")
    check_signature(examples, signature)
    return examples


def with_tolerances(examples: Examples, per_output: Mapping[str, Tolerance], default: Tolerance | None) -> Examples:
    """`examples` with the given tolerances over those of the file (command-line flags win)."""
    return Examples(examples.examples, {**examples.tolerances, **per_output}, default or examples.default)


# -- checking against the signature -------------------------------------------------------------------------


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(t.name for t in specs)


def _check_tensor(where: str, spec: TensorSpec, array: Array) -> None:
    dtype = DTYPES[spec.datatype]
    if spec.datatype == "BYTES":
        if array.dtype != np.object_:
            raise ExamplesInvalid(f"{where}: datatype {array.dtype} does not fit BYTES")
    elif array.dtype != dtype:
        raise ExamplesInvalid(f"{where}: datatype {array.dtype} does not match the signature's {spec.datatype}")
    shape = array.shape
    if len(shape) != len(spec.shape) or any(e != -1 and e != d for d, e in zip(shape, spec.shape, strict=True)):
        raise ExamplesInvalid(f"{where}: shape {list(shape)} does not match the signature's {list(spec.shape)}")


def check_signature(examples: Examples, signature: Signature) -> None:
    """ExamplesInvalid unless every example gives every input and some outputs, as the signature declares them."""
    inputs = {t.name: t for t in signature.inputs}
    outputs = {t.name: t for t in signature.outputs}
    for ex in examples.examples:
        where = f"example {ex.name!r}"
        missing = sorted(set(inputs) - set(ex.inputs))
        unknown = sorted(set(ex.inputs) - set(inputs))
        if missing or unknown:
            raise ExamplesInvalid(
                f"{where}: inputs {sorted(ex.inputs)} do not match the model's inputs ({_names(signature.inputs)})"
                + (f": missing {', '.join(missing)}" if missing else "")
                + (f": unknown {', '.join(unknown)}" if unknown else "")
            )
        extra = sorted(set(ex.outputs) - set(outputs))
        if extra:
            raise ExamplesInvalid(f"{where}: output {', '.join(extra)} is not one of the model's outputs "
                                  f"({_names(signature.outputs)})")
        for name, array in ex.inputs.items():
            _check_tensor(f"{where} input {name!r}", inputs[name], array)
        for name, array in ex.outputs.items():
            _check_tensor(f"{where} output {name!r}", outputs[name], array)
    unknown_tol = sorted(set(examples.tolerances) - set(outputs))
    if unknown_tol:
        raise ExamplesInvalid(f"tolerance for {', '.join(unknown_tol)}: not an output of the model "
                              f"({_names(signature.outputs)})")


# -- the stored form ----------------------------------------------------------------------------------------


def _tensor_json(name: str, array: Array) -> dict[str, Any]:
    datatype = next(k for k, v in DTYPES.items() if v == array.dtype) if array.dtype != np.object_ else "BYTES"
    if datatype == "BYTES":
        data: list[Any] = [v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)
                           for v in array.reshape(-1).tolist()]
    elif array.dtype.kind == "f":
        data = [v if math.isfinite(v) else str(float(v)).replace("inf", "Infinity").replace("nan", "NaN")
                for v in array.astype(np.float64).reshape(-1).tolist()]
    else:
        data = array.reshape(-1).tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def to_json_bytes(examples: Examples) -> bytes:
    """The form stored in the package (read back by parse_examples)."""
    body = {
        "schemaVersion": SCHEMA_VERSION,
        "tolerance": {"default": examples.default.as_json(),
                      **{name: tol.as_json() for name, tol in sorted(examples.tolerances.items())}},
        "examples": [
            {"name": ex.name,
             "inputs": [_tensor_json(n, a) for n, a in ex.inputs.items()],
             "outputs": [_tensor_json(n, a) for n, a in ex.outputs.items()]}
            for ex in examples.examples
        ],
    }
    return (json.dumps(body, indent=1) + "\n").encode()


# -- running ------------------------------------------------------------------------------------------------


def compare(example: str, output: str, expected: Array, actual: Array, tol: Tolerance) -> Mismatch | None:
    """None when `actual` is `expected` within `tol`; else the largest difference, with where it is."""
    where = f"example {example!r} output {output!r}"
    if tuple(actual.shape) != tuple(expected.shape):
        return Mismatch(example, output, f"{where}: shape {list(actual.shape)}, expected {list(expected.shape)}")
    if expected.size == 0:
        return None
    if expected.dtype.kind in "biuf" and actual.dtype.kind in "biuf" and expected.dtype.kind != "b":
        exp = expected.astype(np.float64)
        act = actual.astype(np.float64)
        close = np.isclose(act, exp, rtol=tol.rel, atol=tol.abs, equal_nan=True)
        if bool(close.all()):
            return None
        with np.errstate(invalid="ignore"):
            diff = np.where(close, 0.0, np.abs(act - exp))
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number: the worst there is
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        index = [int(i) for i in worst]
        return Mismatch(
            example, output,
            f"{where}: largest difference {float(diff[worst]):.6g} at {index} (expected {exp[worst]:.9g}, "
            f"got {act[worst]:.9g}; tolerance abs {tol.abs:g} + rel {tol.rel:g}); "
            f"{int((~close).sum())} of {close.size} values outside",
        )
    equal = np.asarray(actual == expected)
    if equal.shape == expected.shape and bool(equal.all()):
        return None
    worst = np.unravel_index(int(np.argmin(equal.reshape(-1))), expected.shape)
    return Mismatch(
        example, output,
        f"{where}: differs at {[int(i) for i in worst]} (expected {expected[worst]!r}, got {actual[worst]!r}); "
        f"{int((~equal).sum())} of {expected.size} values differ",
    )


def run_examples(backend: Backend, examples: Examples) -> list[Mismatch]:
    """Run every example through the model; the mismatches (empty: all passed)."""
    found: list[Mismatch] = []
    for ex in examples.examples:
        names = list(ex.outputs)
        try:
            got = backend.predict(ex.inputs, names)
        except Exception as exc:  # the model cannot even run it: as wrong as a wrong answer
            found.append(Mismatch(ex.name, names[0], f"example {ex.name!r}: the model failed on its inputs: {exc}"))
            continue
        for name in names:
            if name not in got:
                found.append(Mismatch(ex.name, name, f"example {ex.name!r}: the model returned no output {name!r}"))
                continue
            mismatch = compare(ex.name, name, ex.outputs[name], np.asarray(got[name]), examples.tolerance(name))
            if mismatch is not None:
                found.append(mismatch)
    return found


def check_examples(backend: Backend, examples: Examples) -> int:
    """Run the examples; ExamplesMismatch (exit code 17) naming the first mismatch; returns how many ran."""
    mismatches = run_examples(backend, examples)
    if mismatches:
        more = f" (and {len(mismatches) - 1} more mismatches)" if len(mismatches) > 1 else ""
        raise ExamplesMismatch(f"{EXAMPLES_FILE}: {mismatches[0].message}{more}")
    return len(examples.examples)


def load_package_examples(model_dir: Path, signature: Signature) -> Examples | None:
    """The examples stored in a package directory, or None when it has none.

    A stored file that cannot be read or does not fit the signature is an ExamplesMismatch too: the package
    says something about the model that the model cannot be checked against.
    """
    path = model_dir / EXAMPLES_FILE
    if not path.is_file():
        return None
    try:
        examples = parse_examples(path.read_bytes())
        check_signature(examples, signature)
    except ExamplesInvalid as exc:
        raise ExamplesMismatch(f"{EXAMPLES_FILE}: {exc}") from None
    return examples


def check_package_examples(model_dir: Path, fmt: str, *, allow_pickle: bool = False) -> int:
    """Load the package's model as the runtime does (with warm-up) and run its examples (`mlmodel verify`)."""
    from mlmodel_runtime.backends.loading import load_model

    model = load_model(model_dir, served_name="verify", format_override=fmt, allow_pickle=allow_pickle)
    examples = load_package_examples(model_dir, model.signature)
    return 0 if examples is None else check_examples(model.backend, examples)
