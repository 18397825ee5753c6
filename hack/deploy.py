"""The operator deployed as users deploy it: `helm install` of the chart, its image built here (`make images`),
two replicas with leader election, on the local cluster's real node.

Used by `make demo` and the end-to-end tests on real pods; `values()` is what differs from the chart's defaults
on this cluster, and nothing else.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import yaml

from hack.localcluster import REAL_POOL, REAL_TOLERATION, Layout, local_operator_config
from hack.localcluster.layout import REPO, read_env_file

CHART = REPO / "charts" / "mlmodel-operator"
NAMESPACE = "mlmodel-system"
RELEASE = "mlmodel-operator"


class DeployError(RuntimeError):
    pass


def image_refs(layout: Layout) -> dict[str, str]:
    """The refs `make images` wrote (runtime, operator)."""
    path = layout.images / "images.json"
    if not path.exists():
        raise DeployError(f"no images built here yet ({path} is missing): run `make images`")
    refs = json.loads(path.read_text())
    return {k: str(refs[k]) for k in ("runtime", "operator")}


def split_ref(ref: str) -> tuple[str, str]:
    """`host/repo/name:tag` → (`host/repo/name`, `tag`)."""
    repo, _, tag = ref.rpartition(":")
    if not repo or "/" in tag:
        raise DeployError(f"image ref without a tag: {ref}")
    return repo, tag


def values(layout: Layout, *, namespaces: list[str], config: dict[str, Any] | None = None,
           replicas: int = 2) -> dict[str, Any]:
    """Helm values for the local cluster: the images built here, the operator pods on the real node, the local
    object store (on the bridge, where pods reach it), the local node pools; `config` overrides config keys.

    `namespaces`: the namespaces this install serves (the chart gives it Roles there, no ClusterRole). Required:
    the test suite runs other operators on the same cluster, and two operators must never serve one model.
    The namespaces must exist before `install`."""
    refs = image_refs(layout)
    store = read_env_file(layout.objectstore_env)
    repo, tag = split_ref(refs["operator"])
    operator_config = local_operator_config(store["AWS_ENDPOINT_URL"], store["AWS_REGION"], refs["runtime"])
    # The chart's own knobs stay (leader election, ports); these replace the chart's examples.
    operator_config |= {"leaderElection": {"enabled": True}, "watch": {"namespaces": namespaces}} | (config or {})
    return {
        "replicaCount": replicas,
        "image": {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"},
        "nodeSelector": {"pool": REAL_POOL},
        "tolerations": [REAL_TOLERATION],
        "config": operator_config,
    }


def helm_argv(layout: Layout) -> list[str]:
    return [str(layout.bin / "helm"), "--kubeconfig", str(layout.kubeconfig)]


def install(layout: Layout, values_: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE,
            timeout: str = "180s") -> subprocess.CompletedProcess[str]:
    """`helm upgrade --install --wait`: the operator's pods are Ready when this returns."""
    folder = layout.root / "deploy"
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{release}-values.yaml"
    file.write_text(yaml.safe_dump(values_, sort_keys=False))
    argv = [*helm_argv(layout), "upgrade", "--install", release, str(CHART), "-n", namespace, "--create-namespace",
            "-f", str(file), "--wait", "--timeout", timeout]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise DeployError(f"helm install {release} failed: {res.stderr.strip()}")
    return res


def uninstall(layout: Layout, *, release: str = RELEASE, namespace: str = NAMESPACE) -> None:
    subprocess.run([*helm_argv(layout), "uninstall", release, "-n", namespace, "--wait", "--timeout", "120s"],
                   capture_output=True, text=True, timeout=300)
