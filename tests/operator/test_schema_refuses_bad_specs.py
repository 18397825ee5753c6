"""The API server refuses invalid MLModels at admission (OpenAPI bounds and CEL rules from the generated
CRD), with messages that name the field: `kubectl apply` fails and nothing is stored. The samples in
crds/samples/ are admitted and read by the typed spec as the API server stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlmodel_operator.spec import MLModel, MLModelSpec

from tests.operator.cluster import mlmodel
from tests.support.kube import Kubectl

pytestmark = pytest.mark.cluster

URI = "s3://models/m/1/"

CASES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "negative-replicas": ({"replicas": -1}, ["spec.replicas", "greater than or equal to 0"]),
    "not-s3": ({"source": {"uri": "http://example.com/m"}}, ["spec.source.uri"]),
    "delay-without-batch": ({"batching": {"maxDelayMs": 5}},
                            ["spec.batching.maxDelayMs", "maxDelayMs requires maxBatchSize > 1"]),
    "gpu-in-limits": ({"resources": {"limits": {"nvidia.com/gpu": 1}}},
                      ["spec.resources.limits", "use resources.gpu for GPUs"]),
    "limit-below-request": ({"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}},
                            ["spec.resources.limits", "at least the request"]),
    "bad-strategy": ({"rollout": {"strategy": "BlueGreen"}}, ['spec.rollout.strategy', '"Surge", "Replace", "Canary"']),
    "reserved-pod-label": ({"podMetadata": {"labels": {"app.kubernetes.io/name": "x"}}},
                           ["spec.podMetadata.labels", "set by the operator"]),
    "unknown-format": ({"format": "tensorflow"}, ["spec.format"]),
    "canary-without-steps": ({"rollout": {"strategy": "Canary"}},
                             ["spec.rollout.canary", "required when spec.rollout.strategy is Canary"]),
    "canary-steps-with-surge": ({"rollout": {"strategy": "Surge", "canary": {"steps": [{"weight": 10}]}}},
                                ["spec.rollout.canary", "only used with spec.rollout.strategy Canary"]),
    "canary-no-step": ({"rollout": {"strategy": "Canary", "canary": {"steps": []}}},
                       ["spec.rollout.canary.steps", "at least 1"]),
    "shadow-only-step-without-shadow": ({"rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 0}]}}},
                                        ["spec.rollout.canary.steps", "needs spec.rollout.canary.shadow"]),
    "disagreement-without-shadow": (
        {"rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 5}], "analysis": {"maxDisagreement": 0.1}}}},
        ["spec.rollout.canary.analysis", "maxDisagreement needs spec.rollout.canary.shadow"]),
    "canary-weight-over-100": ({"rollout": {"strategy": "Canary", "canary": {"steps": [{"weight": 150}]}}},
                               ["spec.rollout.canary.steps[0].weight", "less than or equal to 100"]),
    "bad-node-pool-name": ({"nodePool": "GPU_Pool"}, ["spec.nodePool"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_invalid_spec_is_refused_with_the_field_named(case: str, crd: None, kubectl: Kubectl, namespace: str) -> None:
    spec, fragments = CASES[case]
    manifest = mlmodel("m", spec.pop("source", {"uri": URI})["uri"], **spec)
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=manifest, check=False)
    assert result.returncode != 0
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    assert kubectl.run("get", "mlmodel", "m", "-n", namespace, check=False).returncode != 0


def test_name_must_suit_a_service(crd: None, kubectl: Kubectl, namespace: str) -> None:
    result = kubectl.run("apply", "-n", namespace, "-f", "-", stdin=mlmodel("9-lives", URI), check=False)
    assert result.returncode != 0
    assert "metadata.name must be a DNS-1035 label" in result.stderr


def test_valid_spec_gets_defaults(crd: None, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(mlmodel("m", URI), namespace)
    spec = kubectl.json("get", "mlmodel", "m", "-n", namespace)["spec"]
    assert "replicas" not in spec  # no default: spec.autoscaling may own it (MLModelSpec.desired_replicas)
    assert spec["rollout"] == {"strategy": "Surge", "progressDeadlineSeconds": 600, "autoRollback": True}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["resources"] == {"gpu": 0}


SAMPLES = Path(__file__).resolve().parents[2] / "crds" / "samples"


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_samples_are_admitted(sample: str, crd: None, kubectl: Kubectl, namespace: str) -> None:
    """Each sample is admitted by the API server, and what the server would store (its defaults applied) is what
    the operator's typed spec reads from the sample."""
    written = yaml.safe_load((SAMPLES / sample).read_text())
    typed = MLModelSpec.model_validate(written["spec"])
    stored = kubectl.json("apply", "--dry-run=server", "-n", namespace, "-o", "json", "-f", str(SAMPLES / sample))
    model = MLModel.model_validate(stored)
    assert model.spec == typed
    assert model.spec.model_dump(by_alias=True, exclude_none=True) == stored["spec"]
