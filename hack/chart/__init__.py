"""Generated parts of the Helm chart: the CRD (the same file as crds/) and the values schema, whose `config`
is the operator's own typed configuration. `python -m hack.chart` writes them; tests check for drift."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.alias_generators import to_camel

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlmodel-operator"
CRD = "serving.mlmodel.io_mlmodels.yaml"


def values_schema() -> dict[str, Any]:
    from mlmodel_operator.config import OperatorConfig

    base: dict[str, Any] = json.loads((Path(__file__).parent / "values.schema.base.json").read_text())
    config = OperatorConfig.model_json_schema(by_alias=True)
    defs = config.pop("$defs", {})
    # The top level of OperatorConfig has snake_case names (pydantic-settings); the file is camelCase.
    config["properties"] = {to_camel(k): v for k, v in config["properties"].items()}
    if "required" in config:
        config["required"] = [to_camel(k) for k in config["required"]]
    config["additionalProperties"] = False
    base["$defs"] = {**defs, "OperatorConfig": config}
    return base


def generated() -> dict[Path, str]:
    """Every generated file of the chart and its content."""
    return {
        CHART / "crds" / CRD: (REPO / "crds" / CRD).read_text(),
        CHART / "values.schema.json": json.dumps(values_schema(), indent=2) + "\n",
    }


def main() -> None:
    for path, content in generated().items():
        path.write_text(content)
        print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
