"""Pickle-based models saved with joblib (scikit-learn style estimators), only when pickle is allowed.

Loading a pickle runs code from the package: the runtime refuses this format unless MLMODEL_ALLOW_PICKLE
is set (and the operator unless allowPickle is), and the package's SHA-256 digests are verified before the
file is opened. The estimator takes one 2-D input; the first declared output is `predict(X)` and a second
one, when declared, `predict_proba(X)` (classifiers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlmodel_runtime.backends.base import Array, Signature
from mlmodel_runtime.backends.errors import DeviceUnavailable, InferenceError, ModelLoadError


class JoblibBackend:
    format = "joblib"
    platform = "sklearn"
    device = "cpu"

    def __init__(self, path: Path, signature: Signature, *, device: str = "auto") -> None:
        if device == "cuda":
            raise DeviceUnavailable("joblib (scikit-learn) models run on the CPU only; use device 'auto' or 'cpu'")
        if len(signature.inputs) != 1 or not 1 <= len(signature.outputs) <= 2:
            raise ModelLoadError("a joblib model takes one input and declares one or two outputs "
                                 "(predict, and predict_proba for classifiers)")
        try:
            import joblib
        except ImportError:
            raise ModelLoadError("joblib is not installed: install the `pickle` extra of mlmodel-operator") from None
        try:
            self.model: Any = joblib.load(path)
        except Exception as exc:
            raise ModelLoadError(f"{path.name}: cannot be loaded with joblib: {exc}") from exc
        self.input = signature.inputs[0].name
        self.methods = {signature.outputs[0].name: "predict"}
        if len(signature.outputs) == 2:
            self.methods[signature.outputs[1].name] = "predict_proba"
        self.dtypes = {t.name: t.dtype for t in signature.outputs}
        missing = sorted(m for m in self.methods.values() if not callable(getattr(self.model, m, None)))
        if missing:
            raise ModelLoadError(f"{path.name}: the loaded {type(self.model).__name__} has no {', '.join(missing)}")

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        x = inputs[self.input]
        try:
            return {name: np.asarray(getattr(self.model, self.methods[name])(x)).astype(self.dtypes[name], copy=False)
                    for name in outputs}
        except Exception as exc:  # the estimator's own error, about this input
            raise InferenceError(f"{type(self.model).__name__}: {exc}") from exc
