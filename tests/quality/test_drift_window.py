"""The drift monitor's window (quality.drift.DriftMonitor, in-process, a fresh registry): it keeps copies of the
last rows only (bounded by rows, not requests; no view of a request's arrays survives), scores from the newest
`window_rows` rows, reports NaN below `min_rows` and the window's size as a gauge, and samples at the given rate."""

from __future__ import annotations

import math

import numpy as np
from mlmodel_runtime.metrics import RuntimeMetrics
from mlmodel_runtime.quality.baseline import Baseline, reference
from mlmodel_runtime.quality.drift import DriftMonitor
from prometheus_client import CollectorRegistry

RNG = np.random.default_rng(0)
BASELINE = Baseline((reference("x", "input", 0, RNG.standard_normal(5000), 10),),
                    (reference("y", "output", None, RNG.standard_normal(5000), 10),), 10)


def monitor(**kwargs: float) -> tuple[DriftMonitor, CollectorRegistry]:
    registry = CollectorRegistry()
    return DriftMonitor(BASELINE, RuntimeMetrics(registry), "m", "1", **kwargs), registry  # type: ignore[arg-type]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, {"model": "m", "revision": "1", **labels})
    assert got is not None
    return got


def test_the_window_is_bounded_by_rows_and_holds_copies() -> None:
    drift, registry = monitor(window_rows=100, min_rows=10)
    body = RNG.standard_normal((1000, 1)).astype(np.float32)
    for start in range(0, 1000, 32):  # views of one request body, as binary tensors are
        drift.observe({"input": body[start:start + 32]}, {"output": body[start:start + 32, 0]})
    assert sum(s[0] for s in drift._samples) < 100 + 32
    assert not any(np.shares_memory(s[1]["input"], body) for s in drift._samples)
    inputs, outputs = drift.window()
    assert inputs["input"].shape == (100, 1)
    assert outputs["output"].shape == (100, 1)
    np.testing.assert_array_equal(inputs["input"][:, 0], body[-100:, 0])
    assert drift.update() == 100
    assert value(registry, "mlmodel_runtime_drift_window_rows") == 100
    assert value(registry, "mlmodel_runtime_feature_drift", feature="x", score="psi") < 0.5
    assert not math.isnan(value(registry, "mlmodel_runtime_prediction_drift", output="y", score="ks"))


def test_scores_are_nan_until_the_window_holds_min_rows() -> None:
    drift, registry = monitor(window_rows=100, min_rows=50)
    drift.observe({"input": np.zeros((10, 1), np.float32)}, {"output": np.zeros(10, np.float32)})
    assert drift.update() == 10
    assert math.isnan(value(registry, "mlmodel_runtime_feature_drift", feature="x", score="psi"))


def test_sampling_keeps_about_the_rate() -> None:
    drift, _ = monitor(window_rows=100_000, sample_rate=0.25)
    for _ in range(4000):
        drift.observe({"input": np.zeros((1, 1), np.float32)}, {})
    assert 800 < len(drift._samples) < 1200
