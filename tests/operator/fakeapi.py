"""The fake-API tier's parts (in the manner of kopf's k8s_mocked): a Kubernetes API in memory with the
semantics a pass relies on, a package validator from a table, a controller that moves Deployments the way
the Deployment controller and the kubelet would, an injected clock and fault points that raise.

FakeKube has KubeApi's methods (reconcile.Kube) and keeps: resourceVersions (a status patch with a stale one
is refused with StaleModel), generations (a Deployment whose spec changed gets a new one, which its status
has not observed yet), RFC 7386 merge patches of status, events by name (a second post of a name is the
409 AlreadyExists that counts as posted), and a log of every write in order.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from mlmodel_operator.adapters import CheckedPackage, Credentials, StaleModel
from mlmodel_operator.adapters.kube import ACCESS_KINDS
from mlmodel_operator.config import OperatorConfig
from mlmodel_operator.faults import FaultInjector
from mlmodel_operator.metrics import OperatorMetrics
from mlmodel_operator.reconcile import Reconciler
from mlmodel_operator.spec import Source
from mlmodel_runtime.package import PackageError
from prometheus_client import CollectorRegistry

from tests.operator.factories import config as make_config

REVISION = "serving.mlmodel.io/revision"
Obj = dict[str, Any]


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass(frozen=True)
class Write:
    verb: str  # apply, patch, create
    resource: str  # deployments, services, mlmodels/status, events
    name: str  # the object's name; for events, the reason

    def __str__(self) -> str:
        return f"{self.verb} {self.resource} {self.name}"


AUTOSCALERS = {"ScaledObject": "scaledobjects", "HorizontalPodAutoscaler": "horizontalpodautoscalers"}


@dataclass
class FakeKube:
    """Objects of one cluster in memory, by (resource, namespace, name)."""

    objects: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    events: dict[str, Obj] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    _version: int = 0

    def _bump(self, obj: Obj) -> str:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        return str(self._version)

    def put(self, resource: str, obj: Obj) -> Obj:
        """Create or replace an object as another client would (not counted as the operator's write)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("generation", 1)
        self._bump(obj)
        self.objects[(resource, meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((resource, namespace, name))

    def _list(self, resource: str, namespace: str, selector: str) -> list[Obj]:
        wanted = dict(pair.split("=", 1) for pair in selector.split(",") if pair)
        return [copy.deepcopy(o) for (r, ns, _), o in sorted(self.objects.items())
                if r == resource and ns == namespace
                and all((o["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())]

    def _read(self, resource: str, namespace: str, name: str) -> Obj | None:
        obj = self.get(resource, namespace, name)
        return copy.deepcopy(obj) if obj is not None else None

    # -- reconcile.Kube --------------------------------------------------------------------

    def get_model(self, namespace: str, name: str) -> Obj | None:
        return self._read("mlmodels", namespace, name)

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self._read("deployments", namespace, name)

    def get_service(self, namespace: str, name: str) -> Obj | None:
        return self._read("services", namespace, name)

    def get_config_map(self, namespace: str, name: str) -> Obj | None:
        return self._read("configmaps", namespace, name)

    def get_http_route(self, namespace: str, name: str) -> Obj | None:
        return self._read("httproutes", namespace, name)

    def delete_canary_object(self, kind: str, namespace: str, name: str) -> bool:
        resource = kind.lower() + "s"
        self.writes.append(Write("delete", resource, name))
        return self.objects.pop((resource, namespace, name), None) is not None

    def list_replicasets(self, namespace: str, selector: str) -> list[Obj]:
        return self._list("replicasets", namespace, selector)

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return self._list("pods", namespace, selector)

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        secret = self._read("secrets", namespace, name)
        return dict(secret.get("stringData") or {}) if secret is not None else None

    def apply(self, obj: Mapping[str, Any]) -> Obj:
        resource = {"Deployment": "deployments", "Service": "services", "ConfigMap": "configmaps",
                    "HTTPRoute": "httproutes", **AUTOSCALERS,
                    **ACCESS_KINDS}[obj["kind"]]
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")  # "" for a cluster-scoped object
        live = self.get(resource, namespace, meta["name"])
        new = copy.deepcopy(dict(obj))
        if live is None:
            new["metadata"] |= {"uid": str(uuid.uuid4()), "generation": 1}
            new["status"] = {}
            if obj["kind"] == "Service":  # the API server allocates a ClusterIP
                new["spec"]["clusterIP"] = f"198.19.0.{len(self.objects) % 250 + 2}"
        elif obj["kind"] == "Service":
            new["spec"]["clusterIP"] = live["spec"].get("clusterIP")
        else:
            changed = live.get("spec") != new.get("spec")
            new["metadata"] |= {"uid": live["metadata"]["uid"],
                                "generation": live["metadata"]["generation"] + (1 if changed else 0)}
            new["status"] = live.get("status", {})
        self._bump(new)
        self.objects[(resource, namespace, meta["name"])] = new
        self.writes.append(Write("apply", resource, meta["name"]))
        return copy.deepcopy(new)

    def patch_model_status(
        self, namespace: str, name: str, status: Mapping[str, Any], resource_version: str | None = None
    ) -> str:
        model = self.get("mlmodels", namespace, name)
        assert model is not None, f"{namespace}/{name}: no such MLModel"
        if resource_version is not None and resource_version != model["metadata"]["resourceVersion"]:
            raise StaleModel(f"{namespace}/{name} changed since it was read")
        model["status"] = merge_patch(model.get("status") or {}, dict(status))
        self.writes.append(Write("patch", "mlmodels/status", name))
        return self._bump(model)

    def post_event(
        self, involved: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime,
        name: str | None = None,
    ) -> None:
        if name is not None and name in self.events:
            return  # 409 AlreadyExists: posted before
        key = name or f"{involved['metadata']['name']}.{uuid.uuid4().hex[:16]}"
        self.events[key] = {"type": type_, "reason": reason, "message": message,
                            "involvedObject": {"name": involved["metadata"]["name"]}}
        self.writes.append(Write("create", "events", reason))

    def get_autoscaler(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._read(AUTOSCALERS[kind], namespace, name)

    def delete_autoscaler(self, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(Write("delete", AUTOSCALERS[kind], name))
        return self.objects.pop((AUTOSCALERS[kind], namespace, name), None) is not None

    def get_access_object(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self._read(ACCESS_KINDS[kind], namespace if kind != "ClusterRoleBinding" else "", name)

    def list_cluster_role_bindings(self, selector: str) -> list[Obj]:
        return self._list("clusterrolebindings", "", selector)

    def delete_access_object(self, kind: str, namespace: str, name: str) -> bool:
        self.writes.append(Write("delete", ACCESS_KINDS[kind], name))
        key = (ACCESS_KINDS[kind], namespace if kind != "ClusterRoleBinding" else "", name)
        return self.objects.pop(key, None) is not None

    def scale_model(self, namespace: str, name: str, replicas: int) -> None:
        model = self.get("mlmodels", namespace, name)
        assert model is not None, f"{namespace}/{name}: no such MLModel"
        model["spec"]["replicas"] = replicas
        model["metadata"]["generation"] += 1
        self._bump(model)
        self.writes.append(Write("patch", "mlmodels/scale", name))

    # -- what tests read -------------------------------------------------------------------

    def model(self, namespace: str, name: str) -> Obj:
        model = self.get("mlmodels", namespace, name)
        assert model is not None
        return model

    def event_reasons(self, type_: str | None = None) -> list[str]:
        return [e["reason"] for e in self.events.values() if type_ is None or e["type"] == type_]


@dataclass
class FakePackages:
    """Package validation from a table: URI -> the package's (digest, size, format) or the error it raises."""

    table: dict[str, CheckedPackage | PackageError] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)

    def add(self, uri: str, digest: str, size: int = 1024, fmt: str = "onnx") -> str:
        self.table[uri] = CheckedPackage(digest, size, fmt, hashed=True)
        return uri

    def check(self, source: Source, credentials: Credentials | None, known_digests: frozenset[str]) -> CheckedPackage:
        self.checks.append(source.uri)
        found = self.table.get(source.uri)
        if found is None:
            raise AssertionError(f"no package {source.uri} in the fake store")
        if isinstance(found, PackageError):
            raise found
        return CheckedPackage(found.digest, found.size, found.format, hashed=found.digest not in known_digests)


class Killed(BaseException):
    """A fault point was reached: the pass stops there, as the process would (not an Exception: nothing
    in the pass may catch it)."""


def _killed() -> NoReturn:
    raise Killed


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def stamp(self, ago: float = 0) -> str:
        return (self.now - timedelta(seconds=ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


NS = "risk"


@dataclass
class Cluster:
    """A fake API, a fake package store and a clock, and a way to make Reconcilers (restarted operators) over them."""

    kube: FakeKube = field(default_factory=FakeKube)
    packages: FakePackages = field(default_factory=FakePackages)
    clock: Clock = field(default_factory=Clock)
    config: OperatorConfig = field(default_factory=make_config)

    # The runtime pods' /metrics as a canary's analysis scrapes them: pod name -> Prometheus text.
    pod_metrics: dict[str, str] = field(default_factory=dict)

    def reconciler(self, fault: str | None = None, metrics: OperatorMetrics | None = None) -> Reconciler:
        """An operator (a fresh one: nothing in memory) that raises Killed at `fault` (POINT[:N])."""
        return Reconciler(self.config, self.kube, self.packages, metrics or OperatorMetrics(CollectorRegistry()),
                          clock=self.clock, faults=FaultInjector(fault, exit=_killed), scrape=self._scrape,
                          monotonic=lambda: self.clock.now.timestamp())

    def _scrape(self, targets: Mapping[str, str]) -> dict[str, str]:
        return {pod: self.pod_metrics[pod] for pod in targets if pod in self.pod_metrics}

    # -- the user ---------------------------------------------------------------------------

    def secret(self, name: str = "models-s3") -> None:
        self.kube.put("secrets", {"metadata": {"name": name, "namespace": NS},
                                  "stringData": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}})

    def create(self, name: str, uri: str, **spec: Any) -> None:
        body: Obj = {
            "apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"source": {"uri": uri, "credentialsSecret": "models-s3"}, "nodePool": "cpu", **spec},
        }
        self.kube.put("mlmodels", body)

    def edit(self, name: str, spec: Mapping[str, Any] | None = None, annotations: Mapping[str, str] | None = None,
             ) -> None:
        """A user's change: a spec change bumps the generation (merge patch semantics)."""
        model = self.kube.model(NS, name)
        if spec:
            model["spec"] = merge_patch(model["spec"], dict(spec))
            model["metadata"]["generation"] += 1
        if annotations:
            model["metadata"]["annotations"] = {**(model["metadata"].get("annotations") or {}), **annotations}
        self.kube._bump(model)

    def hpa_scales(self, name: str, desired: int) -> None:
        """What the HPA controller does: spec.replicas through the scale subresource (not the operator's write)."""
        model = self.kube.model(NS, name)
        model["spec"]["replicas"] = desired
        model["metadata"]["generation"] += 1
        self.kube._bump(model)

    def status(self, name: str) -> Obj:
        return dict(self.kube.model(NS, name).get("status") or {})

    def conditions(self, name: str) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"]) for c in self.status(name).get("conditions", [])}

    def history(self, name: str) -> list[tuple[int, str]]:
        return [(e["revision"], e["outcome"]) for e in self.status(name).get("history", [])]

    # -- the Deployment controller and the kubelet ------------------------------------------

    def deployment(self, name: str) -> Obj:
        found = self.kube.get("deployments", NS, name)
        assert found is not None, f"no Deployment {name}"
        return found

    def revision(self, name: str) -> int:
        return int(self.deployment(name)["spec"]["template"]["metadata"]["labels"][REVISION])

    def roll_out(self, name: str) -> None:
        """The Deployment's rollout completes: its template's ReplicaSet has every replica available."""
        dep = self.deployment(name)
        desired = int(dep["spec"].get("replicas", 1))
        self._replicasets(name, dep, desired)
        self._pods(name, dep, desired, crashing=False)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"], "replicas": desired, "updatedReplicas": desired,
            "readyReplicas": desired, "availableReplicas": desired,
            "conditions": [{"type": "Available", "status": "True"},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}],
        }
        self.kube._bump(dep)

    def crash_loop(self, name: str, restarts: int = 3) -> None:
        """The Deployment's new pods crash-loop; the old ReplicaSet keeps serving (a surge)."""
        dep = self.deployment(name)
        desired = int(dep["spec"].get("replicas", 1))
        old = sum(int((rs.get("status") or {}).get("availableReplicas", 0))
                  for rs in self.kube.list_replicasets(NS, f"app.kubernetes.io/instance={name}")
                  if rs["spec"]["template"]["metadata"]["labels"].get(REVISION) != str(self.revision(name)))
        self._replicasets(name, dep, desired, available=0, keep_old=True)
        self._pods(name, dep, desired, crashing=True, restarts=restarts)
        dep["status"] = {
            "observedGeneration": dep["metadata"]["generation"], "replicas": desired + old,
            "updatedReplicas": desired, "readyReplicas": old, "availableReplicas": old,
            "conditions": [{"type": "Available", "status": "True" if old else "False"},
                           {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
        }
        self.kube._bump(dep)

    def _replicasets(self, name: str, dep: Obj, desired: int, available: int | None = None,
                     keep_old: bool = False) -> None:
        revision = dep["spec"]["template"]["metadata"]["labels"][REVISION]
        for (resource, _, _), rs in list(self.kube.objects.items()):
            if resource == "replicasets" and rs["metadata"]["labels"].get("app.kubernetes.io/instance") == name \
                    and not keep_old:
                rs["spec"]["replicas"] = 0
                rs["status"] = {"replicas": 0, "availableReplicas": 0}
        template = copy.deepcopy(dep["spec"]["template"])
        self.kube.put("replicasets", {
            "metadata": {"name": f"{name}-{revision}", "namespace": NS, "labels": template["metadata"]["labels"]},
            "spec": {"replicas": desired, "template": template},
            "status": {"replicas": desired, "availableReplicas": desired if available is None else available},
        })

    def _pods(self, name: str, dep: Obj, count: int, crashing: bool, restarts: int = 0) -> None:
        revision = dep["spec"]["template"]["metadata"]["labels"][REVISION]
        template = dep["spec"]["template"]
        own = {k: v for k, v in dep["spec"]["selector"]["matchLabels"].items()}
        track = template["metadata"]["labels"].get("serving.mlmodel.io/track")  # a canary's candidate, or not
        for key in [k for k, o in self.kube.objects.items() if k[0] == "pods" and not crashing
                    and own.items() <= o["metadata"]["labels"].items()
                    and o["metadata"]["labels"].get("serving.mlmodel.io/track") == track]:
            del self.kube.objects[key]
        for i in range(count):
            if crashing:
                state: Obj = {"waiting": {"reason": "CrashLoopBackOff"}}
                last: Obj = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": self.clock.stamp(20),
                                            "finishedAt": self.clock.stamp(19)}}
                ready = "False"
            else:
                state, last, ready = {"running": {"startedAt": self.clock.stamp(30)}}, {}, "True"
            self.kube.put("pods", {
                "metadata": {"name": f"{name}-{revision}-{i}", "namespace": NS,
                             "labels": template["metadata"]["labels"], "creationTimestamp": self.clock.stamp(60)},
                "spec": {k: v for k, v in template["spec"].items() if k in ("containers", "serviceAccountName")},
                "status": {"phase": "Running", "podIP": f"{name}-{revision}-{i}.pod", "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": ready, "lastTransitionTime": self.clock.stamp(30)}],
                           "containerStatuses": [{"name": "runtime", "restartCount": restarts, "started": not crashing,
                                                  "ready": not crashing, "state": state, "lastState": last}]},
            })
