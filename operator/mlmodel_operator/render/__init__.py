"""Desired state as pure functions of (MLModel, operator config, validated package, decisions)."""

from mlmodel_operator.render.deployment import model_dir_size_limit, render_deployment, template_fingerprint
from mlmodel_operator.render.hashing import stable_hash
from mlmodel_operator.render.inputs import RenderInput
from mlmodel_operator.render.probes import startup_budget_seconds
from mlmodel_operator.render.service import render_service

__all__ = [
    "RenderInput",
    "model_dir_size_limit",
    "render_deployment",
    "render_service",
    "stable_hash",
    "startup_budget_seconds",
    "template_fingerprint",
]
