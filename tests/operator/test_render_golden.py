"""Golden files pin the rendered Deployment and Service (tests/golden/). Regenerate after an intended
change with `pytest tests/operator/test_render_golden.py --update-golden` (or UPDATE_GOLDEN=1) and
review the diff."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from mlmodel_operator.render import RenderInput, render_deployment, render_service

from tests.operator.factories import model, render_input

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

CASES: dict[str, RenderInput] = {
    "gpu-surge": render_input(
        model(
            resources={"gpu": 2, "requests": {"cpu": "2", "memory": "8Gi"}},
            batching={"maxBatchSize": 32, "maxDelayMs": 5},
            podMetadata={"labels": {"team": "risk"}, "annotations": {"example.com/owner": "risk-team"}},
            protocol="grpc",
        ),
        revision=3,
        size=20 * 1024**3,
    ),
    "cpu-replace": render_input(
        model(name="tiny", namespace="ml", nodePool="cpu", replicas=2, rollout={"strategy": "Replace"},
              source={"uri": "s3://models/tiny.zip"}),
        revision=1,
        size=2 * 1024 * 1024,
    ),
}


def _dump(obj: dict[str, Any]) -> str:
    return yaml.safe_dump(obj, sort_keys=False, width=110)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["deployment", "service"])
def test_rendered_objects_match_golden_files(case: str, kind: str, update_golden: bool) -> None:
    render = render_deployment if kind == "deployment" else render_service
    text = _dump(render(CASES[case]))
    path = GOLDEN / f"{kind}-{case}.yaml"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with --update-golden"
    assert text == path.read_text(), f"{path.name} differs: review, then run with --update-golden"
