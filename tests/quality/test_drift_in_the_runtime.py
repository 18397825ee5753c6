"""Drift scores from a real runtime process (`python -m mlmodel_runtime serve`) whose package carries a baseline
(`pack --baseline` on a CSV of training rows): traffic drawn from the baseline's distribution keeps every
feature's PSI and KS under the thresholds; traffic with one feature shifted crosses them on that feature only
(the others stay under), and the window's row count is exported; a package without a baseline exports no drift
series."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from mlmodel_runtime.packing import QualityInputs, pack

from tests.runtime.process import RuntimeServer, start_server
from tests.support.packages import MLP_INPUT, make_onnx_mlp
from tests.support.waiting import wait_for

FEATURES = ("amount", "age", "score", "tenure")
PSI_OK, PSI_DRIFT = 0.1, 0.25  # the usual reading: < 0.1 stable, > 0.25 a major shift
KS_OK = 0.1
WINDOW = 1000


def baseline_package(root: Path) -> Path:
    rng = np.random.default_rng(1)
    train = rng.standard_normal((5000, 4))
    np.savetxt(root / "train.csv", train, delimiter=",", header=",".join(FEATURES), comments="")
    directory = root / "pkg"
    directory.mkdir()
    make_onnx_mlp(directory / "model.onnx")
    pack(directory, name="mlp", version="1", quality=QualityInputs(baseline=root / "train.csv"))
    return directory


def send(server: RuntimeServer, rows: np.ndarray, per_request: int = 50) -> None:
    for start in range(0, rows.shape[0], per_request):
        chunk = rows[start:start + per_request].astype(np.float32)
        body = {"inputs": [{"name": MLP_INPUT, "datatype": "FP32", "shape": list(chunk.shape),
                            "data": chunk.reshape(-1).tolist()}]}
        assert server.infer(json.dumps(body).encode()).status_code == 200


def scores(server: RuntimeServer, score: str) -> dict[str, float]:
    return {f: server.metric("mlmodel_runtime_feature_drift", feature=f, score=score) for f in FEATURES}


def test_baseline_traffic_stays_under_and_a_shift_crosses_on_the_shifted_feature_only(tmp_path: Path) -> None:
    server = start_server(str(baseline_package(tmp_path)), tmp_path, drift_interval_s=0.2, drift_window_rows=WINDOW)
    try:
        rng = np.random.default_rng(2)
        assert server.metric("mlmodel_runtime_drift_window_rows", model="mlp") == 0
        send(server, rng.standard_normal((WINDOW, 4)))
        wait_for(lambda: server.metric("mlmodel_runtime_drift_window_rows", model="mlp") == WINDOW, 30,
                 "the window to fill")
        wait_for(lambda: not any(np.isnan(v) for v in scores(server, "psi").values()), 30, "scores")
        psi, ks = scores(server, "psi"), scores(server, "ks")
        assert all(v < PSI_OK for v in psi.values()), psi
        assert all(v < KS_OK for v in ks.values()), ks
        assert server.metric("mlmodel_runtime_prediction_drift", output="output[0]", score="psi") < PSI_OK

        shifted = rng.standard_normal((WINDOW, 4))
        shifted[:, 2] += 1.0  # "score" moves by one standard deviation
        send(server, shifted)
        wait_for(lambda: scores(server, "psi")["score"] > PSI_DRIFT, 30, "the shifted feature's PSI to cross")
        psi, ks = scores(server, "psi"), scores(server, "ks")
        assert {f for f, v in psi.items() if v > PSI_DRIFT} == {"score"}, psi
        assert all(v < PSI_OK for f, v in psi.items() if f != "score"), psi
        assert ks["score"] > 0.3, ks
        assert all(v < KS_OK for f, v in ks.items() if f != "score"), ks
        assert server.metric("mlmodel_runtime_feature_drift", feature="score", score="js") > 0.2
    finally:
        server.stop()


def test_no_baseline_no_drift_series(tmp_path: Path) -> None:
    directory = tmp_path / "pkg"
    directory.mkdir()
    make_onnx_mlp(directory / "model.onnx")
    pack(directory, name="mlp", version="1")
    server = start_server(str(directory), tmp_path)
    try:
        assert "mlmodel_runtime_feature_drift{" not in server.metrics_text()
        assert "mlmodel_runtime_drift_window_rows{" not in server.metrics_text()
    finally:
        server.stop()
