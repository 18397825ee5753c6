"""The real node's lifecycle, on the local cluster (the node, its bridge and its name are the machine's: one
cluster at a time has it):
- a second `up` while it runs is a no-op;
- a killed kubelet, or a killed containerd, is noticed by `status` and `up` restarts the node alone (the control
  plane keeps running), and a pod on the node runs again;
- the node state is lost while it runs: the next `up` finds its processes by their folder, stops them, unmounts
  what they mounted, and starts afresh;
- a cluster in another folder runs with kwok's nodes only and says why.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hack.localcluster import Layout, down, status, up
from hack.localcluster import network as net
from hack.localcluster.node import NAME
from hack.localcluster.procs import alive, load, stray_pids
from tests.support.kube import Kubectl
from tests.support.realnode import require_real_node_or_skip
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def node_layout(kubeconfig: Path) -> Layout:
    layout = Layout.default()
    if kubeconfig.resolve() != layout.kubeconfig.resolve():
        pytest.skip("needs the local cluster")
    now = status(layout)
    if not now.node:
        require_real_node_or_skip(now.node_unavailable or "the real node is not running")
    return layout


def _pids(path: Path) -> dict[str, int]:
    return {p.name: p.pid for p in load(path)[0]}


def _node_ready(kubectl: Kubectl) -> bool:
    node = kubectl.json("get", "node", NAME)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


PAUSE_POD = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  nodeSelector: {pool: real}
  tolerations: [{key: mlmodel.io/real-node, operator: Exists, effect: NoSchedule}]
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: %s
    imagePullPolicy: Never
    securityContext: {runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false,
                      capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
"""


def _running(kubectl: Kubectl, namespace: str) -> bool:
    pod = kubectl.json("get", "pod", "sleeper", "-n", namespace)
    statuses = pod["status"].get("containerStatuses") or []
    return bool(statuses) and all(s.get("ready") for s in statuses)


def test_killed_node_parts_are_restarted_alone(node_layout: Layout, kubectl: Kubectl, namespace: str) -> None:
    layout = node_layout
    plane = _pids(layout.cluster_state)
    node = _pids(layout.node_state)
    assert set(node) == {"containerd", "kubelet", "kube-proxy"}
    assert up(layout=layout).node
    assert _pids(layout.node_state) == node, "up on a running node is a no-op"

    sandbox = str(load(layout.node_state)[1]["sandbox_image"])
    kubectl.apply(PAUSE_POD % sandbox, namespace)
    wait_for(lambda: _running(kubectl, namespace), 60, "a pod on the real node")

    for part in ("kubelet", "containerd"):
        os.kill(_pids(layout.node_state)[part], signal.SIGKILL)
        wait_for(lambda: not status(layout).node, 10, f"status to notice the killed {part}")
        assert up(layout=layout).node
        assert _pids(layout.cluster_state) == plane, "the control plane was restarted too"
        wait_for(lambda: _node_ready(kubectl), 60, "the node Ready again")
        wait_for(lambda: _running(kubectl, namespace), 90, f"the pod running again after the {part} restart")

    # The state file is lost: its processes are found by their folder and stopped, then a fresh start.
    old = load(layout.node_state)[0]
    before = {p.pid for p in old}
    layout.node_state.unlink()
    assert up(layout=layout).node
    after = set(_pids(layout.node_state).values())
    assert not before & after
    assert not [p.name for p in old if alive(p)]
    assert set(stray_pids(str(layout.node) + "/")) >= after
    wait_for(lambda: _running(kubectl, namespace), 90, "the pod running again on the fresh node")
    assert _pids(layout.cluster_state) == plane


def test_another_folder_runs_without_the_real_node(node_layout: Layout, tmp_path: Path) -> None:
    other = Layout(tmp_path / "local")
    try:
        now = up(("cluster",), other)
        assert now.cluster
        assert not now.node
        assert now.node_unavailable is not None
        assert str(node_layout.root) in now.node_unavailable
        server = str(load(other.cluster_state)[1]["server"])
        assert server.startswith(f"https://{net.LOOPBACK}:"), server
    finally:
        down(("cluster",), other)
    # The real node and its bridge stay with the cluster that has them.
    assert net.bridge_exists()
    assert status(node_layout).node
    assert all(alive(p) for p in load(node_layout.node_state)[0])
