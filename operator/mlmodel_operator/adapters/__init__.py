"""I/O: the Kubernetes API (kube) and the object store through mlmodel_runtime.package (packages)."""

from mlmodel_operator.adapters.kube import KubeApi, StaleModel, connect
from mlmodel_operator.adapters.packages import CheckedPackage, Credentials, PackageValidator

__all__ = ["CheckedPackage", "Credentials", "KubeApi", "PackageValidator", "StaleModel", "connect"]
