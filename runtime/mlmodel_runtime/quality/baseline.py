"""The drift baseline: the training data's distribution of each input feature and each output, in the package.

`mlmodel pack --baseline DATA` reads rows (CSV with a header, `.npy`, `.npz`, Parquet when pyarrow is
installed), runs the model on them for the outputs, and stores `baseline.json`: per feature and per output
column, quantile cut points (equal-frequency bins), the baseline's share of values in each bin, the share of
NaNs, and a quantile sketch (for the Kolmogorov-Smirnov score). See docs/quality.md.

Tabular models only: the first input must be `[-1, n]` (each of the n columns a feature; a `[-1]` input is one
feature); outputs `[-1, k]` or `[-1]` give k (or one) output columns. Other shapes (images, sequences,
several inputs) are refused with a message; drift for them needs embeddings, which this does not do.

Edge cases: NaNs are left out of the bins and counted apart (`nan`); a constant column gets three bins (below,
equal, above the constant); fewer rows than bins gives fewer (unique) cut points, and `mlmodel pack` warns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlmodel_runtime.backends.base import Array, Backend, Signature, TensorSpec
from mlmodel_runtime.package.models import BASELINE_FILE

SCHEMA_VERSION = 1
DEFAULT_BINS = 10
SKETCH_POINTS = 256
MAX_ROWS = 200_000
"""Rows used from a larger baseline (a seeded random sample): plenty for 10-20 bins."""
PREDICT_BATCH = 1024


class BaselineInvalid(ValueError):
    """A baseline that cannot be read or does not fit the model (the message says why)."""


@dataclass(frozen=True)
class Column:
    """One feature or output column's reference distribution."""

    name: str
    tensor: str
    index: int | None  # the column in a [-1, n] tensor; None for a [-1] tensor
    cuts: tuple[float, ...]  # bin i holds cuts[i-1] < x <= cuts[i] (searchsorted side="left")
    shares: tuple[float, ...]  # len(cuts) + 1 shares of the non-NaN values, summing to 1
    sketch: tuple[float, ...]  # quantiles at evenly spaced probabilities (for KS)
    nan: float  # share of NaN values
    rows: int

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "tensor": self.tensor, "index": self.index, "cuts": list(self.cuts),
                "shares": list(self.shares), "sketch": list(self.sketch), "nan": self.nan, "rows": self.rows}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Column:
        return cls(str(raw["name"]), str(raw["tensor"]), None if raw["index"] is None else int(raw["index"]),
                   tuple(float(x) for x in raw["cuts"]), tuple(float(x) for x in raw["shares"]),
                   tuple(float(x) for x in raw["sketch"]), float(raw["nan"]), int(raw["rows"]))


@dataclass(frozen=True)
class Baseline:
    features: tuple[Column, ...]
    outputs: tuple[Column, ...]
    bins: int

    def to_json_bytes(self) -> bytes:
        body = {"schemaVersion": SCHEMA_VERSION, "bins": self.bins,
                "features": [c.as_json() for c in self.features], "outputs": [c.as_json() for c in self.outputs]}
        return (json.dumps(body) + "\n").encode()


def parse_baseline(data: bytes) -> Baseline:
    try:
        raw = json.loads(data)
        if raw.get("schemaVersion") != SCHEMA_VERSION:
            raise BaselineInvalid(f"schemaVersion {raw.get('schemaVersion')!r} is not {SCHEMA_VERSION}")
        return Baseline(tuple(Column.from_json(c) for c in raw["features"]),
                        tuple(Column.from_json(c) for c in raw["outputs"]), int(raw["bins"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BaselineInvalid(f"{BASELINE_FILE}: {exc}") from None


# -- the reference distribution of one column -----------------------------------------------------------


def bin_index(cuts: Sequence[float] | Array, values: Array) -> Array:
    """The bin of each (non-NaN) value: i where cuts[i-1] < x <= cuts[i]."""
    return np.searchsorted(np.asarray(cuts, dtype=np.float64), values, side="left")


def shares_of(cuts: Sequence[float] | Array, values: Array) -> Array:
    """The share of `values` (NaNs left out) in each of the len(cuts) + 1 bins; zeros when there are none."""
    finite = values[~np.isnan(values)]
    counts = np.bincount(bin_index(cuts, finite), minlength=len(cuts) + 1).astype(np.float64)
    total = counts.sum()
    return counts / total if total else counts


def reference(name: str, tensor: str, index: int | None, values: Array, bins: int) -> Column:
    """Quantile cut points and shares of one column. NaNs are counted apart; a constant column gets the cuts
    (just below the constant, the constant): below / equal / above."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    nan = float(np.isnan(values).mean()) if values.size else 0.0
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        raise BaselineInvalid(f"{name}: no values that are not NaN")
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        cuts = np.array([np.nextafter(low, -np.inf), low])
    else:
        used = min(bins, int(np.unique(finite).size))  # fewer values than bins: one bin per value at most
        inner = np.quantile(finite, np.linspace(0, 1, used + 1)[1:-1])
        cuts = np.unique(inner)
    sketch = np.quantile(finite, (np.arange(SKETCH_POINTS) + 0.5) / SKETCH_POINTS)
    return Column(name, tensor, index, tuple(float(c) for c in cuts), tuple(float(s) for s in shares_of(cuts, finite)),
                  tuple(float(s) for s in sketch), nan, int(values.size))


# -- reading the data --------------------------------------------------------------------------------------


def feature_input(signature: Signature) -> TensorSpec:
    """The one tabular input: `[-1, n]` or `[-1]`, numeric (BaselineInvalid otherwise)."""
    if len(signature.inputs) != 1:
        raise BaselineInvalid(f"drift baselines need a model with one tabular input; this one has "
                              f"{len(signature.inputs)} ({', '.join(t.name for t in signature.inputs)})")
    spec = signature.inputs[0]
    _check_tabular(spec, "input")
    return spec


def _check_tabular(spec: TensorSpec, what: str) -> None:
    if spec.datatype in ("BYTES", "BOOL") or len(spec.shape) not in (1, 2) or spec.shape[0] != -1 or (
            len(spec.shape) == 2 and spec.shape[1] == -1):
        raise BaselineInvalid(f"{what} {spec.name!r} is {spec.datatype} {list(spec.shape)}: drift baselines need "
                              "numeric tabular tensors, [-1, n] or [-1] (see docs/quality.md for other shapes)")


def columns_of(spec: TensorSpec) -> int:
    return spec.shape[1] if len(spec.shape) == 2 else 1


def _read_csv(path: Path) -> tuple[list[str] | None, Array]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise BaselineInvalid(f"{path.name}: empty")
    header: list[str] | None = None
    try:
        float(rows[0][0])
    except ValueError:
        header, rows = rows[0], rows[1:]
    try:
        data = np.array([[float(v) if v.strip() else np.nan for v in row] for row in rows if row], dtype=np.float64)
    except ValueError as exc:
        raise BaselineInvalid(f"{path.name}: not numbers ({exc})") from None
    return header, data


def _read_parquet(path: Path) -> tuple[list[str], Array]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise BaselineInvalid(f"{path.name}: reading Parquet needs pyarrow (pip install pyarrow); "
                              "or give the baseline as CSV, .npy or .npz") from None
    table = pq.read_table(path)
    return list(table.column_names), np.column_stack([np.asarray(c.to_numpy(), dtype=np.float64)
                                                      for c in table.columns])


def read_rows(path: Path, spec: TensorSpec) -> tuple[list[str], Array]:
    """(feature names, rows [N, n] float64) from the baseline file, for the input `spec`."""
    if not path.is_file():
        raise BaselineInvalid(f"{path}: no such file")
    suffix = path.suffix.lower()
    header: list[str] | None
    try:
        if suffix == ".csv":
            header, data = _read_csv(path)
        elif suffix == ".npy":
            header, data = None, np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if spec.name not in npz.files:
                    raise BaselineInvalid(f"{path.name}: no array named {spec.name!r} (the model's input); "
                                          f"found {', '.join(npz.files)}")
                header, data = None, npz[spec.name]
        elif suffix == ".parquet":
            header, data = _read_parquet(path)
        else:
            raise BaselineInvalid(f"{path.name}: a baseline is .csv, .npy, .npz or .parquet")
    except (OSError, ValueError) as exc:
        if isinstance(exc, BaselineInvalid):
            raise
        raise BaselineInvalid(f"{path.name}: cannot be read ({exc})") from None
    data = np.asarray(data, dtype=np.float64)
    if data.size == 0:
        raise BaselineInvalid(f"{path.name}: no rows")
    if data.ndim == 1:
        data = data.reshape(-1, 1)
    n = columns_of(spec)
    if data.ndim != 2 or data.shape[1] != n:
        raise BaselineInvalid(f"{path.name}: rows of {list(data.shape[1:])} values; the input {spec.name!r} "
                              f"{list(spec.shape)} needs {n} per row")
    names = header if header is not None and len(header) == n else [
        f"{spec.name}[{i}]" if len(spec.shape) == 2 else spec.name for i in range(n)]
    return names, data


def compute_baseline(path: Path, signature: Signature, backend: Backend | None,
                     bins: int = DEFAULT_BINS) -> tuple[Baseline, tuple[str, ...]]:
    """The baseline of the rows in `path` (and of the model's outputs on them, when `backend` is given), and
    warnings for what was adjusted."""
    if bins < 2:
        raise BaselineInvalid(f"bins must be at least 2, got {bins}")
    spec = feature_input(signature)
    names, data = read_rows(path, spec)
    warnings: list[str] = []
    if data.shape[0] > MAX_ROWS:
        keep = np.random.default_rng(0).choice(data.shape[0], MAX_ROWS, replace=False)
        data = data[np.sort(keep)]
        warnings.append(f"baseline: a random {MAX_ROWS} of its rows are used")
    if data.shape[0] < bins:
        warnings.append(f"baseline: {data.shape[0]} rows, fewer than the {bins} bins: each column gets at most "
                        f"{data.shape[0]} bins, and drift scores will be coarse (give at least {bins * 100} rows)")
    index = (lambda i: i) if len(spec.shape) == 2 else (lambda i: None)
    features = tuple(reference(name, spec.name, index(i), data[:, i], bins) for i, name in enumerate(names))
    for column in features:
        if column.nan:
            warnings.append(f"baseline: feature {column.name} is NaN in {column.nan:.1%} of rows (left out of bins)")
        if len(column.cuts) == 2 and column.cuts[0] == np.nextafter(column.cuts[1], -np.inf):
            warnings.append(f"baseline: feature {column.name} is constant ({column.cuts[1]:g})")
    outputs: tuple[Column, ...] = ()
    if backend is not None:
        outputs = _output_columns(backend, signature, spec, data, bins)
    return Baseline(features, outputs, bins), tuple(warnings)


def _output_columns(backend: Backend, signature: Signature, spec: TensorSpec, data: Array,
                    bins: int) -> tuple[Column, ...]:
    tabular = []
    for out in signature.outputs:
        try:
            _check_tabular(out, "output")
        except BaselineInvalid:
            continue  # e.g. a label as BYTES: no drift score for it
        tabular.append(out)
    if not tabular:
        return ()
    rows = np.nan_to_num(data, nan=0.0).astype(spec.dtype)  # the model sees no NaN from the baseline
    if len(spec.shape) == 1:
        rows = rows.reshape(-1)
    got: dict[str, list[Array]] = {o.name: [] for o in tabular}
    for start in range(0, rows.shape[0], PREDICT_BATCH):
        result = backend.predict({spec.name: rows[start:start + PREDICT_BATCH]}, [o.name for o in tabular])
        for o in tabular:
            got[o.name].append(np.asarray(result[o.name]))
    columns = []
    for o in tabular:
        values = np.concatenate(got[o.name]).reshape(rows.shape[0], -1)
        for i in range(values.shape[1]):
            name = f"{o.name}[{i}]" if len(o.shape) == 2 else o.name
            columns.append(reference(name, o.name, i if len(o.shape) == 2 else None, values[:, i], bins))
    return tuple(columns)
