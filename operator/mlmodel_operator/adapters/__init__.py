"""I/O: the Kubernetes API (kube) and the object store through mlmodel_runtime.package (packages)."""

from mlmodel_operator.adapters.kube import KubeApi, connect
from mlmodel_operator.adapters.packages import Credentials, PackageValidator

__all__ = ["Credentials", "KubeApi", "PackageValidator", "connect"]
