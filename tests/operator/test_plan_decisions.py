"""Pure decisions before acting: node pool resolution (unknown pool, GPUs on a pool without GPUs), format
checks, revision numbers that never repeat (and come back for a template seen before), and Create / Update /
Unchanged from the applied hash."""

from __future__ import annotations

import pytest
from mlmodel_operator import names
from mlmodel_operator.plan import (
    Action,
    Refused,
    classify,
    live_template,
    resolve_format,
    resolve_pool,
    retry_delay,
    revision_number,
)
from mlmodel_operator.render import render_deployment, template_fingerprint
from mlmodel_operator.spec import MLModelStatus

from tests.operator.factories import config, history_entry, model, render_input


def test_pool_resolution() -> None:
    assert resolve_pool(model().spec, config()).name == "gpu-a100"
    assert resolve_pool(model(nodePool="cpu").spec, config()).name == "cpu"
    with pytest.raises(Refused) as info:
        resolve_pool(model(nodePool="tpu-v5").spec, config())
    assert info.value.reason == "UnknownNodePool"
    assert "'tpu-v5'" in info.value.message
    assert "gpu-a100, cpu" in info.value.message
    with pytest.raises(Refused) as info:
        resolve_pool(model(nodePool="cpu", resources={"gpu": 1}).spec, config())
    assert info.value.reason == "NoGPUInPool"
    no_default = config(nodePools=[{"name": "cpu", "nodeSelector": {"pool": "cpu"}}])
    with pytest.raises(Refused, match="no node pool is the default"):
        resolve_pool(model().spec, no_default)


def test_format_resolution() -> None:
    assert resolve_format(model().spec, "onnx", config()) == "onnx"
    assert resolve_format(model(format="onnx").spec, "onnx", config()) == "onnx"
    with pytest.raises(Refused) as info:
        resolve_format(model(format="torchscript").spec, "onnx", config())
    assert info.value.reason == "FormatMismatch"
    with pytest.raises(Refused) as info:
        resolve_format(model().spec, "joblib", config())
    assert info.value.reason == "FormatNotAllowed"


def test_revision_numbers() -> None:
    inp = render_input(revision=4)
    live = live_template(render_deployment(inp), complete=True)
    fingerprint = template_fingerprint(inp)
    assert (live.revision, live.fingerprint) == (4, fingerprint)
    # The live template is the desired one: keep its number.
    assert revision_number(fingerprint, live, MLModelStatus()) == 4
    # Another template: the next number after every one seen.
    assert revision_number("other", live, MLModelStatus(desired_revision=6, revision=5)) == 7
    assert revision_number("other", live, MLModelStatus()) == 5
    nothing = live_template(None, complete=False)
    assert revision_number("other", nothing, MLModelStatus()) == 1
    assert revision_number("other", nothing, MLModelStatus(desired_revision=3)) == 4
    # A template recorded in history before (a revert of the spec) gets its number back; unknown ones
    # count past every number in history, trimmed ones included through status.revision.
    history = [history_entry(2, "Superseded", fingerprint="fp-2"), history_entry(9, "Serving", fingerprint="fp-9")]
    status = MLModelStatus(history=history, revision=9, desired_revision=9)
    assert revision_number("fp-2", nothing, status) == 2
    assert revision_number("fp-new", nothing, status) == 10


def test_classify_from_applied_hash() -> None:
    desired = render_deployment(render_input())
    assert classify(None, desired) is Action.CREATE
    assert classify(desired, desired) is Action.UNCHANGED
    changed = render_deployment(render_input(model(replicas=3)))
    assert classify(desired, changed) is Action.UPDATE
    # Scaled by hand (`kubectl scale deployment`): the hash is the same but replicas differ.
    scaled = {**desired, "spec": {**desired["spec"], "replicas": 5}}
    assert classify(scaled, desired) is Action.UPDATE
    no_hash = {**desired, "metadata": {**desired["metadata"], "annotations": {}}}
    assert names.APPLIED_HASH_ANNOTATION not in no_hash["metadata"]["annotations"]
    assert classify(no_hash, desired) is Action.UPDATE


def test_retry_delay_backs_off_exponentially_to_a_cap() -> None:
    assert [retry_delay(n, 5, 300) for n in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert retry_delay(10_000, 5, 300) == 300
