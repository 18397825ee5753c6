"""spec.autoscaling in a reconcile pass, decided purely: what to write to the scale subresource, which
autoscaler object to apply or delete, and what status.autoscaling says.

- spec.replicas unset under spec.autoscaling (just turned on, or a new model): the pass first sets it, through
  the scale subresource as an HPA does, to the replicas running now kept within [minReplicas, maxReplicas]
  (minReplicas for a new model). An HPA whose target reads 0 replicas does not scale at all, and a jump to
  minReplicas would drop replicas that serve: this one write avoids both. From then on the HPA owns the
  field; the operator renders the Deployment from it for whichever revision serves (a rollback included), so
  a rollback never scales the serving revision below what the HPA asked for.
- The autoscaler (render.autoscaling) is applied when the live one's applied-hash differs, and deleted when
  spec.autoscaling goes (status.autoscaling says one was there) or the engine changed.
- status.autoscaling: the HPA's desired and current replicas and conditions; `problem` names a failing one
  (e.g. ScalingActive False: the metric is missing), while the replicas stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.render.autoscaling import autoscaler_kind, render_autoscaler
from mlmodel_operator.spec import Autoscaling, AutoscalingStatus, MLModel

Object = Mapping[str, Any]
KINDS = ("ScaledObject", "HorizontalPodAutoscaler")


@dataclass(frozen=True)
class AutoscalerPlan:
    scale_to: int | None = None  # write spec.replicas through the scale subresource first
    apply: Object | None = None  # the autoscaler to apply (it differs from the live one)
    delete: tuple[str, ...] = ()  # kinds of autoscaler to delete (spec.autoscaling went, or the engine changed)
    status: AutoscalingStatus | None = None  # status.autoscaling


def scale_to(model: MLModel, running: int | None) -> int | None:
    """The replicas to set when spec.autoscaling is on and spec.replicas is unset; None otherwise."""
    auto = model.spec.autoscaling
    if auto is None or model.spec.replicas is not None:
        return None
    current = running if running else auto.min_replicas
    return max(auto.min_replicas, min(auto.max_replicas, current))


def decide(model: MLModel, config: OperatorConfig, live: Mapping[str, Object | None], hpa: Object | None,
           running: int | None) -> AutoscalerPlan:
    """`live`: the autoscaler objects read, by kind (a kind not read: absent); `hpa`: the HPA of the model
    (KEDA's or ours); `running`: the Deployment's spec.replicas (None: no Deployment)."""
    wanted = render_autoscaler(model, config)
    kind = autoscaler_kind(config)[1] if wanted is not None else None
    ours = {k: obj for k, obj in live.items() if obj is not None and _owned_by(obj, model)}
    # One being deleted already (KEDA's finalizer holds a ScaledObject until its HPA is gone) is not deleted again.
    delete = tuple(k for k in KINDS if k != kind and k in ours and not ours[k]["metadata"].get("deletionTimestamp"))
    apply = None
    if wanted is not None and _hash(ours.get(kind or "")) != _hash(wanted):
        apply = wanted
    # Set while spec.autoscaling is (the HPA may not exist yet): a later pass knows there is something to delete.
    status = None
    if model.spec.autoscaling is not None:
        status = observe(hpa, model.spec.autoscaling) or AutoscalingStatus(hpa=model.metadata.name)
    return AutoscalerPlan(scale_to(model, running), apply, delete, status)


def _owned_by(obj: Object, model: MLModel) -> bool:
    """Rendered by the operator for this model (KEDA's HPA, of the same name, belongs to the ScaledObject)."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("kind") == model.kind and r.get("uid") == model.metadata.uid for r in refs)


def _hash(obj: Object | None) -> str | None:
    if obj is None:
        return None
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH_ANNOTATION)
    return str(value) if value is not None else None


def observe(hpa: Object | None, bounds: Autoscaling) -> AutoscalingStatus | None:
    """status.autoscaling from the HPA as read (None: it does not exist yet). `atLimit` compares what it wants
    with the bounds, not its ScalingLimited condition, which flips with every sample near a bound (a status
    write each time)."""
    if hpa is None:
        return None
    status = hpa.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}

    def state(type_: str) -> bool | None:
        cond = conditions.get(type_)
        return None if cond is None else cond.get("status") == "True"

    failing = next((conditions[t] for t in ("AbleToScale", "ScalingActive") if state(t) is False), None)
    desired = status.get("desiredReplicas")
    at_limit = None
    if desired is not None and desired >= bounds.max_replicas:
        at_limit = "maxReplicas"
    elif desired is not None and desired <= bounds.min_replicas:
        at_limit = "minReplicas"
    return AutoscalingStatus(
        hpa=str(hpa["metadata"]["name"]),
        desired_replicas=desired,
        current_replicas=status.get("currentReplicas"),
        able_to_scale=state("AbleToScale"),
        scaling_active=state("ScalingActive"),
        at_limit=at_limit,
        problem=f"{failing.get('reason')}: {failing.get('message')}" if failing else None,
    )
