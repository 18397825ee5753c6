"""status.quality, the operator's view of the desired revision's checks (gates.quality_view, pure), as a table:
a package refused by the gate; no gate; a package without examples; examples pending while the revision rolls
out, passed once it served (also after it was superseded), failed with ExamplesMismatch, not run when the
revision failed otherwise; nothing validated in the pass keeps the previous view; equal inputs, equal views
(a steady model writes nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from mlmodel_operator.gates import quality_view
from mlmodel_operator.spec import HistoryEntry, PackageStatus, QualityStatus, RevisionSettings, Source

WITH = PackageStatus(uri="s3://models/2/", digest="sha256:" + "2" * 64, size=10, format="onnx", examples=True)
WITHOUT = WITH.model_copy(update={"examples": False})
PREVIOUS = QualityStatus(revision=1, examples="Passed", gate="Passed")


def entry(revision: int, outcome: str, reason: str | None = None) -> HistoryEntry:
    data: dict[str, Any] = {
        "revision": revision, "uri": "s3://models/x/", "digest": "sha256:" + "0" * 64, "format": "onnx", "size": 10,
        "created_at": "2026-12-05T10:00:00Z", "fingerprint": "f", "outcome": outcome, "reason": reason,
        "settings": RevisionSettings(source=Source(uri="s3://models/x/")),
    }
    return HistoryEntry(**data)


SERVING_1 = entry(1, "Serving")


@pytest.mark.parametrize(
    ("gate", "failure", "package", "history", "expected"),
    [
        (True, "QualityGateFailed", None, [SERVING_1], QualityStatus(revision=None, examples="NotRun", gate="Failed")),
        (False, None, WITHOUT, [SERVING_1, entry(2, "Serving")], QualityStatus(revision=2, examples="NoExamples",
                                                                             gate="NotSet")),
        (True, None, WITH, [SERVING_1], QualityStatus(revision=2, examples="Pending", gate="Passed")),
        (True, None, WITH, [entry(1, "Superseded"), entry(2, "Serving")],
         QualityStatus(revision=2, examples="Passed", gate="Passed")),
        (True, None, WITH, [entry(2, "Superseded"), entry(3, "Serving")],
         QualityStatus(revision=2, examples="Passed", gate="Passed")),
        (False, None, WITH, [SERVING_1, entry(2, "Failed", "ExamplesMismatch")],
         QualityStatus(revision=2, examples="Failed", gate="NotSet")),
        (False, None, WITH, [SERVING_1, entry(2, "Failed", "Unschedulable")],
         QualityStatus(revision=2, examples="NotRun", gate="NotSet")),
        (True, "StoreUnavailable", None, [SERVING_1], PREVIOUS),
    ],
    ids=["gate-failed", "no-gate-no-examples", "pending", "passed", "passed-then-superseded", "mismatch",
         "failed-otherwise", "nothing-validated"],
)
def test_quality_view(gate: bool, failure: str | None, package: PackageStatus | None, history: list[HistoryEntry],
                      expected: QualityStatus) -> None:
    got = quality_view(gate, failure, package, 2 if package else None, history, PREVIOUS)
    assert got == expected
    assert quality_view(gate, failure, package, 2 if package else None, history, PREVIOUS) == got
