"""What rendering needs: the model, the operator configuration and the decisions made before."""

from __future__ import annotations

from dataclasses import dataclass

from mlmodel_operator.config import NodePool, OperatorConfig
from mlmodel_operator.spec import MLModel, PackageStatus


@dataclass(frozen=True)
class RenderInput:
    """Everything the runtime's objects are a function of; no client, no clock."""

    model: MLModel
    config: OperatorConfig
    package: PackageStatus  # the validated package: digest, size, format
    pool: NodePool  # the resolved node pool (spec.nodePool or the default)
    revision: int  # the operator's revision number for this pod template
    image: str | None = None  # the revision's recorded runtime image; None: the configured one for its format

    def runtime_image(self) -> str:
        return self.image or self.config.runtime_images[self.package.format]  # type: ignore[index]
