"""Lists that live in more than one place agree, so that adding to one without the others fails here: the model
formats (the CRD's spec.format, the package contract's ModelFormat, the runtime's backends, the pickle-based
ones, the operator's default allowed formats); the package failure reasons that set PackageValid=False and the
runtime's package error classes; and the spec fields a revision keeps (RevisionSettings) against MLModelSpec, so
that no field the pod template is rendered from can come from the current spec on a rollback."""

from __future__ import annotations

from typing import get_args

from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.spec import PICKLE_FORMATS, Format, MLModelSpec, RevisionSettings
from mlmodel_operator.status import PACKAGE_REASONS
from mlmodel_runtime.backends import FORMATS
from mlmodel_runtime.package import ModelFormat, errors

from tests.operator.factories import model

# Reasons of package errors raised when the runtime runs the model, never while a package is validated.
RAISED_WHILE_SERVING = {"ExamplesMismatch"}


def _subclasses(cls: type[errors.PackageError]) -> list[type[errors.PackageError]]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_model_formats_agree() -> None:
    contract = {f.value for f in ModelFormat}
    assert set(get_args(Format)) == contract
    assert set(FORMATS) == contract
    assert {f.value for f in ModelFormat if f.is_pickle} == PICKLE_FORMATS
    default = OperatorConfig.model_fields["allowed_formats"].get_default(call_default_factory=True)
    assert set(default) == contract - PICKLE_FORMATS


def test_every_permanent_package_error_sets_package_valid_false() -> None:
    permanent = {c.reason for c in _subclasses(errors.PackageError) if not c.temporary}
    assert permanent - RAISED_WHILE_SERVING <= PACKAGE_REASONS
    temporary = {c.reason for c in _subclasses(errors.PackageError) if c.temporary}
    assert not temporary & PACKAGE_REASONS  # a store outage says nothing about the package


def test_every_spec_field_is_kept_by_a_revision_or_listed_outside_them() -> None:
    spec, kept, outside = set(MLModelSpec.model_fields), set(RevisionSettings.model_fields), \
        RevisionSettings.OUTSIDE_REVISIONS
    assert kept <= spec
    assert not kept & outside
    assert spec - kept <= outside, f"classify the new spec fields {sorted(spec - kept - outside)}"
    for name in kept:
        assert RevisionSettings.model_fields[name].annotation == MLModelSpec.model_fields[name].annotation, name


def test_a_revision_keeps_and_gives_back_every_field_it_holds() -> None:
    first = model(format="onnx", nodePool="cpu", resources={"gpu": 1}, batching={"maxBatchSize": 8, "maxDelayMs": 2},
                  podMetadata={"labels": {"team": "risk"}}, replicas=3).spec
    later = model(replicas=5, rollout={"autoRollback": False}).spec
    restored = RevisionSettings.of(first).apply_to(later)
    for name in RevisionSettings.model_fields:
        assert getattr(restored, name) == getattr(first, name), name
    for name in MLModelSpec.model_fields.keys() - RevisionSettings.model_fields.keys():
        assert getattr(restored, name) == getattr(later, name), name
