"""The GitOps health tests run a real operator: they reuse the operator tests' fixtures."""

from tests.operator.conftest import crd, credentials, model_namespace, operator, packages

__all__ = ["crd", "credentials", "model_namespace", "operator", "packages"]
