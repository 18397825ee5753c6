"""The owner reference of everything rendered for a model (pure)."""

from __future__ import annotations

from typing import Any

from mlmodel_operator.spec import MLModel


def model_owner_reference(model: MLModel) -> dict[str, Any]:
    """The MLModel as the controlling owner of a namespaced object rendered for it: garbage-collected with it."""
    return {
        "apiVersion": model.api_version,
        "kind": model.kind,
        "name": model.metadata.name,
        "uid": model.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
