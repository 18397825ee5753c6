"""Generate the MLModel CustomResourceDefinition from the typed spec (`python -m mlmodel_operator.crdgen`).

pydantic's JSON Schema is close to, but not, a Kubernetes structural schema: it uses `$ref`,
`anyOf` with `null` for optional fields, titles and `propertyNames`. `structural()` rewrites it:
references inlined, optionals unwrapped, titles dropped. The result is checked in under crds/ and a
test fails when it drifts from the types.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from mlmodel_operator.spec import GROUP, KIND, PLURAL, SINGULAR, VERSION, MLModelSpec, MLModelStatus

CRD_FILE = Path("crds") / f"{GROUP}_{PLURAL}.yaml"

# Keys of JSON Schema that a Kubernetes structural schema does not accept or does not need.
_DROPPED_KEYS = frozenset({"title", "propertyNames", "$defs", "examples"})

# metadata.name also names the Service and goes into label values: a DNS-1035 label.
_NAME_RULE = {
    "rule": "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
    "message": (
        "metadata.name must be a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting "
        "with a letter): it also names the model's Service"
    ),
    "reason": "FieldValueInvalid",
}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
     "description": "Whether the desired revision is serving."},
    {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
     "description": "Why the model is or is not ready."},
    {"name": "Revision", "type": "integer", "jsonPath": ".status.revision",
     "description": "The revision now serving."},
    {"name": "Available", "type": "string", "jsonPath": ".status.availability",
     "description": "Available/desired replicas."},
    {"name": "URL", "type": "string", "jsonPath": ".status.url",
     "description": "In-cluster inference URL."},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Examples", "type": "string", "jsonPath": ".status.quality.examples", "priority": 1,
     "description": "Whether the desired revision passed its package's examples."},
    {"name": "Gate", "type": "string", "jsonPath": ".status.quality.gate", "priority": 1,
     "description": "Whether the desired revision's package passed spec.qualityGate."},
]


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema rewritten as a Kubernetes structural OpenAPI v3 schema."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = dict(node)
        ref = node.pop("$ref", None)
        if ref is not None:
            target = copy.deepcopy(defs[ref.rsplit("/", 1)[-1]])
            # The property's own description wins over the referenced model's docstring.
            target.update(node)
            node = target
        any_of = node.get("anyOf")
        if any_of is not None and not node.get("x-kubernetes-int-or-string"):
            non_null = [option for option in any_of if option.get("type") != "null"]
            if len(non_null) != 1:
                raise ValueError(f"unions are not structural: {any_of}")
            del node["anyOf"]
            merged = walk(non_null[0])
            merged.update({k: v for k, v in node.items() if k != "default" or v is not None})
            node = merged
        if node.get("default", "") is None:
            del node["default"]
        if "const" in node:
            node["enum"] = [node.pop("const")]
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROPPED_KEYS:
                continue
            if key == "properties":
                out[key] = {name: walk(prop) for name, prop in value.items()}
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                out[key] = walk(value)
            else:
                out[key] = walk(value) if key == "anyOf" else value
        if "properties" in out or "additionalProperties" in out:
            out.setdefault("type", "object")
        return out

    return walk(schema)  # type: ignore[no-any-return]


def without_validations(schema: Any) -> Any:
    """The schema without CEL rules: status repeats spec types (history), but only the operator writes it,
    from specs that passed admission, and the rules would cost CEL budget on every status write."""
    if isinstance(schema, list):
        return [without_validations(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {k: without_validations(v) for k, v in schema.items() if k != "x-kubernetes-validations"}


def missing_descriptions(schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of properties without a description (kubectl explain would show nothing for them)."""
    found: list[str] = []
    for name, prop in schema.get("properties", {}).items():
        here = f"{path}.{name}"
        if here == ".metadata":
            continue  # standard object metadata: the API server forbids describing it
        if not prop.get("description"):
            found.append(here)
        found.extend(missing_descriptions(prop, here))
    if isinstance(schema.get("items"), dict):
        found.extend(missing_descriptions(schema["items"], f"{path}[]"))
    return found


def openapi_schema() -> dict[str, Any]:
    """The whole object's schema: apiVersion, kind, metadata, spec and status."""
    spec = structural(MLModelSpec.model_json_schema(by_alias=True, mode="validation"))
    status = without_validations(structural(MLModelStatus.model_json_schema(by_alias=True, mode="serialization")))
    spec["description"] = (
        "The desired state: which package to serve, in which format, on which node pool, with how "
        "many replicas and how to roll out a new revision."
    )
    status["description"] = "The observed state, written by the operator (kstatus conventions)."
    return {
        "type": "object",
        "description": (
            "MLModel serves a machine-learning model package from object storage on Kubernetes: the "
            "operator validates the package, then runs and rolls out the model runtime."
        ),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion: serving.mlmodel.io/v1alpha1."},
            "kind": {"type": "string", "description": "Kind: MLModel."},
            # The API server allows nothing but `type` here (not even a description).
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "x-kubernetes-validations": [_NAME_RULE],
    }


def build_crd() -> dict[str, Any]:
    """The CustomResourceDefinition, as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "annotations": {"serving.mlmodel.io/generated-by": "python -m mlmodel_operator.crdgen"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": ["mlm"],
                "categories": ["ml"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    header = "# Generated by `python -m mlmodel_operator.crdgen` from mlmodel_operator/spec.py: do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=True, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the MLModel CRD generated from the typed spec.")
    parser.add_argument("--output", type=Path, default=CRD_FILE, help=f"file to write (default {CRD_FILE})")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs instead of writing")
    args = parser.parse_args(argv)
    text = render_crd_yaml()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run `make crds`", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
