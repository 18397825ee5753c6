"""The operator's reading of a runtime that failed its examples (plan.evidence, pure): exit code 17 at the first
restart is the revision's failure with reason ExamplesMismatch (not CrashLoop), quoting the runtime's
termination message (example, output, largest difference); the other package exit codes stay CrashLoop; the
exit code tables of the operator and the runtime agree on 17."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.plan import Limits, revision_failure
from mlmodel_runtime.package.errors import ExamplesMismatch

NOW = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
SAID = ("ExamplesMismatch: examples.json: example 'three-rows' output 'output': largest difference 10.7 at [0, 1] "
        "(expected 3.93, got -6.78; tolerance abs 1e-05 + rel 0.0001); 6 of 6 values outside")


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def exited_pod(code: int, message: str | None) -> dict[str, Any]:
    last: dict[str, Any] = {"exitCode": code, "reason": "Error", "startedAt": ago(5), "finishedAt": ago(3)}
    if message is not None:
        last["message"] = message
    return {
        "metadata": {"name": "m-2-abc", "creationTimestamp": ago(30), "labels": {names.REVISION_LABEL: "2"}},
        "spec": {"containers": [{"name": "runtime", "startupProbe": {"periodSeconds": 5, "failureThreshold": 12}}]},
        "status": {"phase": "Running", "containerStatuses": [{
            "name": "runtime", "restartCount": 1, "started": False, "ready": False,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": last}}]},
    }


def test_exit_code_17_is_examples_mismatch_with_the_runtime_message() -> None:
    found = revision_failure(None, [exited_pod(17, SAID)], 2, NOW, Limits())
    assert found is not None
    assert found.reason == "ExamplesMismatch"
    assert "exit code 17 (ExamplesMismatch)" in found.message
    assert "example 'three-rows' output 'output': largest difference 10.7" in found.message


def test_without_a_termination_message_the_reason_still_names_the_examples() -> None:
    found = revision_failure(None, [exited_pod(17, None)], 2, NOW, Limits())
    assert found is not None
    assert found.reason == "ExamplesMismatch"
    assert found.message.endswith("exit code 17 (ExamplesMismatch)")


def test_other_package_exit_codes_stay_crash_loops() -> None:
    found = revision_failure(None, [exited_pod(13, "DigestMismatch: model.onnx: sha256 expected a found b")], 2,
                             NOW, Limits())
    assert found is not None
    assert found.reason == "CrashLoop"
    assert "exit code 13 (DigestMismatch): DigestMismatch: model.onnx" in found.message


def test_the_tables_agree_on_17() -> None:
    assert names.RUNTIME_EXIT_REASONS[ExamplesMismatch.exit_code] == ExamplesMismatch.reason
    assert ExamplesMismatch.exit_code not in names.TEMPORARY_EXIT_CODES
