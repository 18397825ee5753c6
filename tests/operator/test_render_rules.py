"""Rendering rules beyond the golden files: the startup budget grows with the package, GPU placement
follows the pool, pods meet the restricted Pod Security profile, resources merge safely, user pod labels
cannot take over the selector, and the revision / applied hashes move only when they should."""

from __future__ import annotations

from typing import Any

from mlmodel_operator import names
from mlmodel_operator.config import Startup
from mlmodel_operator.render import render_deployment, render_service, startup_budget_seconds, template_fingerprint
from mlmodel_operator.render.inputs import RenderInput

from tests.operator.factories import config, model, render_input

MIB = 1024 * 1024


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in _container(deployment)["env"]}


def test_startup_budget_scales_with_package_size() -> None:
    startup = Startup()
    small = startup_budget_seconds(2 * MIB, startup)
    large = startup_budget_seconds(20 * 1024 * MIB, startup)
    assert small == startup.base_seconds + 1
    assert large > 10 * small
    assert startup_budget_seconds(10**15, startup) == startup.max_seconds

    def threshold(size: int) -> int:
        probe = _container(render_deployment(render_input(size=size)))["startupProbe"]
        assert probe["httpGet"]["path"] == "/v2/health/startup"
        return int(probe["failureThreshold"] * probe["periodSeconds"])

    assert threshold(2 * MIB) >= small
    assert threshold(20 * 1024 * MIB) >= large
    assert threshold(20 * 1024 * MIB) > 10 * threshold(2 * MIB)
    assert "initialDelaySeconds" not in _container(render_deployment(render_input()))["startupProbe"]


def test_probes_use_the_runtime_endpoints() -> None:
    container = _container(render_deployment(render_input(model(name="m1", resources={"gpu": 1}))))
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/models/m1/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080, "metrics": 8082, "grpc": 8081}


def test_gpu_pool_placement() -> None:
    dep = render_deployment(render_input(model(resources={"gpu": 3})))
    pod = dep["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu-a100"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert _container(dep)["resources"]["limits"]["nvidia.com/gpu"] == "3"
    assert _env(dep)["MLMODEL_DEVICE"] == "cuda"

    custom = config(nodePools=[{"name": "amd", "default": True, "nodeSelector": {"pool": "mi300"},
                                "gpuResourceName": "amd.com/gpu"}])
    pool = custom.pool(None)
    assert pool is not None
    m = model(resources={"gpu": 1})
    dep = render_deployment(RenderInput(m, custom, render_input().package, pool, 1))
    assert _container(dep)["resources"]["limits"]["amd.com/gpu"] == "1"
    assert "tolerations" not in dep["spec"]["template"]["spec"]


def test_cpu_pool_has_no_gpu() -> None:
    dep = render_deployment(render_input(model(nodePool="cpu")))
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "cpu"}
    assert "nvidia.com/gpu" not in _container(dep)["resources"].get("limits", {})
    assert _env(dep)["MLMODEL_DEVICE"] == "cpu"


def test_pods_meet_the_restricted_profile() -> None:
    dep = render_deployment(render_input())
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = _container(dep)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(dep)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/models"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_resources_merge_over_defaults() -> None:
    plain = _container(render_deployment(render_input(model())))["resources"]
    assert plain == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    # The model asks for more memory than the default limit: the default limit follows the request.
    big = _container(render_deployment(render_input(model(resources={"requests": {"memory": "8Gi"}}))))
    assert big["resources"]["limits"]["memory"] == "8Gi"
    own = model(resources={"requests": {"cpu": 2}, "limits": {"cpu": "4", "memory": "3Gi"}})
    assert _container(render_deployment(render_input(own)))["resources"] == {
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "3Gi"},
    }


def test_pod_metadata_cannot_take_over_selector_labels() -> None:
    m = model(podMetadata={"labels": {"team": "risk"}})
    dep = render_deployment(render_input(m))
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "risk"
    for key, value in dep["spec"]["selector"]["matchLabels"].items():
        assert labels[key] == value


def test_credentials_come_from_the_secret_never_inline() -> None:
    env = {e["name"]: e for e in _container(render_deployment(render_input()))["env"]}
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[var]
        assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "models-s3"
    anonymous = model(source={"uri": "s3://models/a/"})
    env_names = {e["name"] for e in _container(render_deployment(render_input(anonymous)))["env"]}
    assert "AWS_ACCESS_KEY_ID" not in env_names


def test_strategies() -> None:
    surge = render_deployment(render_input(model(rollout={"strategy": "Surge"})))["spec"]["strategy"]
    replace = render_deployment(render_input(model(rollout={"strategy": "Replace"})))["spec"]["strategy"]
    assert surge["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert replace["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_fingerprint_ignores_revision_and_replicas_but_not_the_template() -> None:
    base = render_input(model(replicas=1), revision=1)
    assert template_fingerprint(base) == template_fingerprint(render_input(model(replicas=5), revision=9))
    changed = render_input(model(batching={"maxBatchSize": 8}), revision=1)
    assert template_fingerprint(base) != template_fingerprint(changed)


def test_applied_hash_covers_the_whole_object() -> None:
    def applied(**spec: Any) -> str:
        dep = render_deployment(render_input(model(**spec)))
        return str(dep["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION])

    assert applied() == applied()
    assert applied() != applied(replicas=2)
    assert applied() != applied(rollout={"progressDeadlineSeconds": 60})
    service = render_service(render_input())
    assert service["metadata"]["annotations"][names.APPLIED_HASH_ANNOTATION]


def test_owner_reference_makes_objects_collectable() -> None:
    for obj in (render_deployment(render_input()), render_service(render_input())):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "serving.mlmodel.io/v1alpha1", "kind": "MLModel", "name": "fraud-detector",
                       "uid": "0a1b2c3d-uid", "controller": True, "blockOwnerDeletion": True}
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlmodel-operator"


def test_a_recorded_image_renders_that_revision_as_it_was() -> None:
    """A revision keeps the runtime image it was rendered with: rendering it again after the configured image
    changed (a rollback after an upgrade) gives back its very pod template, hence its ReplicaSet."""
    then = render_input()
    recorded = then.runtime_image()
    upgraded = config(runtimeImages={**then.config.runtime_images, "onnx": "registry.example/runtime:2.0"})
    now = RenderInput(then.model, upgraded, then.package, then.pool, then.revision)
    again = RenderInput(then.model, upgraded, then.package, then.pool, then.revision, image=recorded)
    assert _container(render_deployment(now))["image"] == "registry.example/runtime:2.0"
    assert template_fingerprint(now) != template_fingerprint(then)
    assert _container(render_deployment(again))["image"] == recorded
    assert template_fingerprint(again) == template_fingerprint(then)
    assert render_deployment(again)["spec"]["template"] == render_deployment(then)["spec"]["template"]
