"""The CRD in crds/ is generated from the typed spec: it has not drifted, it is structural, every field
is described (for kubectl explain), and it carries the subresources, printer columns and names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mlmodel_operator.crdgen import CRD_FILE, build_crd, main, missing_descriptions, render_crd_yaml

REPO = Path(__file__).resolve().parents[2]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(_walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}[{i}]"))
    return out


def test_checked_in_crd_matches_the_types() -> None:
    checked_in = (REPO / CRD_FILE).read_text()
    assert checked_in == render_crd_yaml(), "crds/ drifted from mlmodel_operator/spec.py: run `make crds`"


def test_check_flag_reports_drift(tmp_path: Path) -> None:
    stale = tmp_path / "crd.yaml"
    stale.write_text("stale\n")
    assert main(["--output", str(stale), "--check"]) == 1
    assert main(["--output", str(stale)]) == 0
    assert main(["--output", str(stale), "--check"]) == 0
    assert yaml.safe_load(stale.read_text())["kind"] == "CustomResourceDefinition"


def test_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "title" not in node, path
        assert "propertyNames" not in node, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
        if "properties" in node:
            assert node.get("type") == "object", path
    assert "x-kubernetes-preserve-unknown-fields" not in yaml.safe_dump(schema)


def test_every_field_has_a_description() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert missing_descriptions(schema) == []
    spec = schema["properties"]["spec"]
    assert "package" in spec["properties"]["source"]["properties"]["uri"]["description"].lower()


def test_defaults_bounds_and_rules() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props = spec["properties"]
    assert "default" not in props["replicas"]  # unset: 1, or the autoscaler's (spec.autoscaling)
    assert props["replicas"]["minimum"] == 0
    assert props["rollout"]["default"] == {}
    assert props["rollout"]["properties"]["strategy"]["enum"] == ["Surge", "Replace", "Canary"]
    assert props["revisionHistoryLimit"]["default"] == 10
    assert props["rollbackTo"]["properties"]["revision"]["minimum"] == 1
    assert props["rollbackTo"]["required"] == ["revision"]
    assert props["rollout"]["properties"]["autoRollback"]["default"] is True
    batching_rules = [r["rule"] for r in props["batching"]["x-kubernetes-validations"]]
    assert any("maxBatchSize > 1" in rule for rule in batching_rules)
    assert props["source"]["required"] == ["uri"]
    assert spec.get("required") == ["source"]


def test_names_subresources_and_columns() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "mlmodels.serving.mlmodel.io"
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["mlm"]
    assert names["categories"] == ["ml"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Ready", "Reason", "Revision", "Available", "URL", "Age", "Examples", "Gate"]
    assert [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority") == 1] == ["Examples", "Gate"]


def test_status_history_is_typed_and_carries_no_rules() -> None:
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    history = status["properties"]["history"]
    assert history["maxItems"] == 100
    entry = history["items"]["properties"]
    assert entry["outcome"]["enum"] == ["Serving", "Superseded", "Failed", "RolledBack"]
    assert {"revision", "uri", "digest", "createdAt", "settings", "fingerprint"} <= set(entry)
    assert set(status["properties"]["rollout"]["properties"]) == set(entry) - {"outcome", "reason", "message"}
    # The spec's CEL rules are not repeated on the status copy of its settings (only the operator writes it).
    assert "x-kubernetes-validations" not in yaml.safe_dump(status)
