"""Pickle-based (joblib, scikit-learn) packages: refused with the contract's exit code 15 unless pickle is
allowed; when allowed, a real runtime serves what the estimator computes in-process (predict and
predict_proba), and an input the estimator cannot take is a 400, not a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.runtime.conftest import Serve
from tests.runtime.models import json_body
from tests.support.packages import build_package

X = np.array([[0.1, 2.0, -1.0, 0.5], [3.0, -0.5, 0.0, 1.0], [-2.0, 0.0, 1.5, -1.0]], dtype=np.float64)


@pytest.fixture
def classifier(tmp_path: Path) -> tuple[Any, Path]:
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features = rng.standard_normal((64, 4))
    labels = (features[:, 0] + features[:, 1] > 0).astype(np.int64)
    model = LogisticRegression().fit(features, labels)
    path = tmp_path / "src" / "model.joblib"
    path.parent.mkdir()
    joblib.dump(model, path)
    package = build_package(
        tmp_path / "pkg", path, name="fraud-lr", version="1", format="joblib",
        inputs=[{"name": "input", "datatype": "FP64", "shape": [-1, 4]}],
        outputs=[{"name": "label", "datatype": "INT64", "shape": [-1]},
                 {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}],
        extra_files={"README.md": "# lr\n", "requirements.txt": "scikit-learn\n"},
    )
    return model, package


def test_refused_unless_pickle_is_allowed(classifier: tuple[Any, Path], serve: Serve) -> None:
    _, package = classifier
    server = serve(package, model="fraud-lr", wait=False)
    assert server.wait(timeout=60) == 15
    assert "FormatNotAllowed" in server.logs()


def test_served_when_allowed(classifier: tuple[Any, Path], serve: Serve) -> None:
    model, package = classifier
    server = serve(package, model="fraud-lr", allow_pickle=True)
    response = server.infer(json_body({"input": X}))
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    np.testing.assert_array_equal(outputs["label"]["data"], model.predict(X))
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 2)), model.predict_proba(X))
    assert server.get("/v2/models/fraud-lr").json()["platform"] == "sklearn"

    wrong = server.infer(json_body({"input": np.zeros((2, 3))}))
    assert wrong.status_code == 400
    assert "input" in wrong.json()["error"]
