"""A model that takes long to start (a 200 MiB package: download, SHA-256, load): no request reaches its pods
before the model is loaded (a client loop through the Service during the rollout sees no failure, and only the
old revision answers until a new pod is Ready), and the startup probe's budget, derived from the package size,
does not kill it (no restart). Prints pod start → Ready for the small and the large package."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hack.traffic import ClientLoop
from tests.e2e.conftest import OPERATOR_CONFIG, InClusterOperator
from tests.e2e.models import INFER_BODY, E2EPackages
from tests.e2e.realpods import model_manifest, pods, restarts, rollout_done, service_url
from tests.operator.cluster import wait_condition
from tests.support.kube import Kubectl
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.objectstore, pytest.mark.slow]
LARGE_MIB = 200


def _seconds_to_ready(pod: dict[str, Any]) -> float:
    def at(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    created = at(pod["metadata"]["creationTimestamp"])
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    return (at(ready["lastTransitionTime"]) - created).total_seconds()


def _host_baseline(s3: Any, bucket: str, prefix: str, folder: Path) -> float:
    """The same package's raw download, SHA-256 and onnxruntime session on the host, no pod, no runtime."""
    import onnxruntime as ort

    started = time.monotonic()
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]:
        path = folder / Path(obj["Key"]).name
        s3.download_file(bucket, obj["Key"], str(path))
        with path.open("rb") as f:
            hashlib.file_digest(f, "sha256")
    ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    return time.monotonic() - started


def test_large_package_is_not_served_before_it_loads_nor_killed_while_loading(
    operator: InClusterOperator, model_ns: str, packages: E2EPackages, kubectl: Kubectl, tmp_path: Path,
) -> None:
    kubectl.apply(model_manifest("m", packages.good("m/1", seed=1), replicas=1), model_ns)
    wait_condition(kubectl, model_ns, "m", "Ready", timeout=240)
    small = _seconds_to_ready(pods(kubectl, model_ns, revision=1)[0])

    large = packages.large("m/2", LARGE_MIB, seed=2)
    startup = OPERATOR_CONFIG["startup"]
    with ClientLoop(service_url(kubectl, model_ns, "m"), INFER_BODY) as loop:
        loop.wait_for_requests(20, 60)
        kubectl.run("patch", "mlmodel", "m", "-n", model_ns, "--type=merge",
                    "-p", json.dumps({"spec": {"source": {"uri": large}}}))
        new = wait_for(lambda: pods(kubectl, model_ns, revision=2), 60, "the new revision's pod")[0]
        probe = new["spec"]["containers"][0]["startupProbe"]
        budget = probe["failureThreshold"] * probe["periodSeconds"]
        assert budget > startup["baseSeconds"], "the startup budget does not grow with the package"
        wait_condition(kubectl, model_ns, "m", "Ready", timeout=300)
        wait_for(lambda: rollout_done(kubectl, model_ns, "m", 2, replicas=1), 120, "only revision 2's pod")
        seen = loop.tally.ok + loop.tally.failed
        loop.wait_for_requests(seen + 20, 60)
    assert loop.tally.failed == 0, loop.tally.summary()
    assert loop.tally.revisions["2"] > 0
    pod = pods(kubectl, model_ns, revision=2)[0]
    assert restarts(pod) == 0, "the startup probe killed a pod that was still loading"
    baseline_dir = tmp_path / "baseline"
    baseline_dir.mkdir()
    baseline = _host_baseline(packages.s3, packages.bucket, "m/2/", baseline_dir)
    print(f"\npod creation → Ready on the real node: {small:.1f}s (small package), "
          f"{_seconds_to_ready(pod):.1f}s ({LARGE_MIB} MiB package; startup budget {budget}s); "
          f"host baseline for the {LARGE_MIB} MiB package (download + SHA-256 + onnxruntime session): {baseline:.1f}s")
