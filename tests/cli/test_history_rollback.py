"""`mlmodel history` shows status.history as the operator records it (text and JSON); `mlmodel rollback`
changes nothing but spec.rollbackTo, refuses a revision that is not in the history (exit 2, spec untouched),
and `--clear` removes the pin. Runs against the real API server with the real CRD; the status is written
through the status subresource, in a namespace no operator serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.conftest import crd
from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster
__all__ = ["crd"]

MLMODEL = Path(sys.executable).parent / "mlmodel"


def _entry(revision: int, outcome: str, **extra: str) -> dict[str, Any]:
    uri = f"s3://models/m/{revision}/"
    return {"revision": revision, "uri": uri, "digest": "sha256:" + str(revision) * 64, "format": "onnx",
            "size": 2048, "createdAt": f"2026-11-22T1{revision}:00:00Z", "fingerprint": f"f{revision}",
            "settings": {"source": {"uri": uri, "credentialsSecret": "models-s3"}, "protocol": "http"},
            "outcome": outcome, **extra}


ROLLOUT = {k: v for k, v in _entry(3, "").items() if k != "outcome"}
HISTORY = [_entry(1, "Serving", image="registry.example/mlmodel/runtime:0.1.0"),
           _entry(2, "Failed", reason="CrashLoop", message="revision 2: container restarted 4 times",
                  image="registry.example/mlmodel/runtime:0.2.0")]


def _cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MLMODEL), *args, "--kubeconfig", str(kubeconfig)],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def model(crd: None, kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    body = {"apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel", "metadata": {"name": "m"},
            "spec": {"source": {"uri": "s3://models/m/2/", "credentialsSecret": "models-s3"}, "replicas": 2}}
    kubectl.apply(yaml.safe_dump(body), namespace)
    status = {"status": {"revision": 1, "desiredRevision": 2, "history": HISTORY, "rollout": ROLLOUT}}
    kubectl.run("patch", "mlmodel", "m", "-n", namespace, "--subresource=status", "--type=merge",
                "-p", json.dumps(status))
    got: dict[str, Any] = kubectl.json("get", "mlmodel", "m", "-n", namespace)
    assert got["status"]["history"] == HISTORY, "the CRD keeps status.history"
    return got


def test_history_shows_revisions(model: dict[str, Any], kubeconfig: Path, namespace: str) -> None:
    res = _cli(kubeconfig, "history", "m", "-n", namespace, "--output", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert (data["revision"], data["desiredRevision"]) == (1, 2)
    assert data["history"] == HISTORY
    assert data["rollout"] == ROLLOUT

    text = _cli(kubeconfig, "history", "m", "-n", namespace)
    assert text.returncode == 0, text.stderr
    assert "Failed" in text.stdout
    assert "CrashLoop" in text.stdout
    assert "runtime:0.2.0" in text.stdout, "each revision's runtime image is shown"
    assert "RollingOut" in text.stdout, "the revision in progress is shown after the history"
    assert "serving: revision 1" in text.stderr


def test_rollback_patches_only_rollback_to(
    model: dict[str, Any], kubeconfig: Path, kubectl: Kubectl, namespace: str
) -> None:
    before = model["spec"]
    refused = _cli(kubeconfig, "rollback", "m", "--to-revision", "5", "-n", namespace, "--output", "json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["reason"] == "RevisionNotInHistory"
    assert "kept: 1, 2" in json.loads(refused.stdout)["message"]
    assert kubectl.json("get", "mlmodel", "m", "-n", namespace)["spec"] == before

    res = _cli(kubeconfig, "rollback", "m", "--to-revision", "1", "-n", namespace)
    assert res.returncode == 0, res.stderr
    after = kubectl.json("get", "mlmodel", "m", "-n", namespace)
    assert after["spec"]["rollbackTo"] == {"revision": 1}
    assert {k: v for k, v in after["spec"].items() if k != "rollbackTo"} == before
    assert after["status"] == model["status"], "the CLI never writes status"

    cleared = _cli(kubeconfig, "rollback", "m", "--clear", "-n", namespace)
    assert cleared.returncode == 0, cleared.stderr
    assert "rollbackTo" not in kubectl.json("get", "mlmodel", "m", "-n", namespace)["spec"]


def test_unknown_model_is_a_clear_error(crd: None, kubeconfig: Path, namespace: str) -> None:
    res = _cli(kubeconfig, "history", "nope", "-n", namespace, "--output", "json")
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"ok": False, "reason": "NotFound", "exitCode": 1,
                                      "message": f"MLModel {namespace}/nope: not found"}
