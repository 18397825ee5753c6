"""A real local Kubernetes control plane with simulated GPU nodes and one real node, and an S3 object store.

Beside them, for autoscaling: a Prometheus scraping the runtime pods on the real node (prometheus.py) and KEDA's
operator and metrics API server (keda.py), both against this cluster's apiserver.

The real node (node.py) runs where it can (Linux, root); elsewhere the cluster has kwok's nodes only and
`status().node_unavailable` says why. With it, the apiserver and the object store listen on the bridge's gateway
address, where pods reach them; without it, on 127.0.0.1.

`up()` is idempotent: what runs and answers is kept; what was left behind half-started (a crashed run,
a lost state file) is stopped first. `down()` stops every process it started, by pid.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import keda, network, procs
from . import prometheus as prom
from .kube import GPU_NODES, ControlPlane
from .layout import Layout, read_env_file
from .node import NAME as NODE_NAME
from .node import POOL as REAL_POOL
from .node import TOLERATION as REAL_TOLERATION
from .node import RealNode, install_packages, node_ready
from .objectstore import LocalObjectStore
from .procs import ClusterError
from .tools import control_plane_binaries, link_tools

__all__ = ["ALL_COMPONENTS", "REAL_POOL", "REAL_TOLERATION", "ClusterError", "Layout", "Status", "down",
           "local_operator_config", "status", "up"]

COMPONENTS = ("cluster", "objectstore", "prometheus", "keda")  # `make cluster-up`
ALL_COMPONENTS = COMPONENTS


@dataclass
class Status:
    cluster: bool  # the control plane answers, and the real node is Ready where this machine can run one
    objectstore: bool
    node: bool = False  # the real node runs (containerd, kubelet, kube-proxy healthy)
    node_unavailable: str | None = None  # why this machine runs kwok's nodes only
    prometheus: bool = False  # scrapes the runtime pods, discovering them through the running cluster
    keda: bool = False  # KEDA's operator runs and its metrics API server is Available through the apiserver
    keda_unavailable: str | None = None  # why this machine runs no KEDA (no real node: no bridge address)


def _log(msg: str) -> None:
    print(f"[localcluster] {msg}", flush=True)


def status(layout: Layout | None = None) -> Status:
    layout = layout or Layout.default()
    cluster_procs, cluster_state = procs.load(layout.cluster_state)
    store_procs, _ = procs.load(layout.objectstore_state)
    cluster_ok = bool(cluster_procs) and all(procs.alive(p) for p in cluster_procs)
    if cluster_ok:
        # Only ask the apiserver when the processes are there (it needs no binaries rebuilt for that).
        cluster_ok = ControlPlane(layout, layout.bin).healthy(cluster_state)
    store_ok = bool(store_procs) and all(procs.alive(p) for p in store_procs) and LocalObjectStore(layout).healthy()
    unavailable = _unavailable(layout)
    node_procs, node_state = procs.load(layout.node_state)
    node_ok = (unavailable is None and bool(node_procs) and all(procs.alive(p) for p in node_procs)
               and RealNode(layout, layout.bin).healthy(node_state))
    server = str(cluster_state.get("server", ""))
    prom_ok = cluster_ok and prom.running(layout, server)
    keda_ok = cluster_ok and keda.running(layout, ControlPlane(layout, layout.bin).kubectl)
    return Status(cluster=cluster_ok and (node_ok or unavailable is not None), objectstore=store_ok,
                  node=node_ok, node_unavailable=unavailable, prometheus=prom_ok, keda=keda_ok,
                  keda_unavailable=None if unavailable is None else f"{KEDA_NEEDS} ({unavailable})")


def _unavailable(layout: Layout) -> str | None:
    """Why this cluster runs without the real node (this machine cannot, or another folder's cluster has it)."""
    def alive(root: Path) -> bool:
        other = Layout(root)
        return any(procs.alive(p) for f in (other.cluster_state, other.objectstore_state) for p in procs.load(f)[0])

    return network.real_node_unsupported(layout.root, alive)


def _host(layout: Layout) -> str:
    """Where the apiserver and the object store listen: the bridge when a real node can run, else loopback."""
    if _unavailable(layout) is not None:
        return network.LOOPBACK
    network.claim(layout.root)
    network.ensure_bridge()
    return network.HOST_IP


def up(components: tuple[str, ...] = COMPONENTS, layout: Layout | None = None) -> Status:
    layout = layout or Layout.default()
    with procs.locked(layout.lock):
        now = status(layout)
        try:
            _start_missing(components, layout, now)
        except BaseException:
            # Leave nothing running: stop what this call started (what ran before is untouched).
            down_now = [c for c in components if not getattr(now, c)]
            for component in down_now:
                _clean(layout, component)
            _release_network_if_unused(layout)
            raise
        if layout.objectstore_env.exists():
            _write_operator_config(layout)
        return status(layout)


ATTEMPTS = 3


def _start_missing(components: tuple[str, ...], layout: Layout, now: Status) -> None:
    host = _host(layout)
    store_endpoint = str(procs.load(layout.objectstore_state)[1].get("endpoint", ""))
    if "objectstore" in components and (not now.objectstore or not store_endpoint.startswith(f"http://{host}:")):
        _clean(layout, "objectstore")
        t = time.monotonic()
        _log("starting the object store (SeaweedFS S3 gateway)")
        started, state = _attempts("object store", LocalObjectStore(layout, host).start)
        procs.save(layout.objectstore_state, started, state)
        _log(f"object store ready at {state['endpoint']} in {time.monotonic() - t:.1f}s")
    if "cluster" in components and not now.cluster:
        binaries = control_plane_binaries()
        link_tools(layout, binaries)
        plane_procs, plane_state = procs.load(layout.cluster_state)
        plane_ok = bool(plane_procs) and all(procs.alive(p) for p in plane_procs)
        if plane_ok and ControlPlane(layout, binaries).healthy(plane_state) and _plane_host_ok(layout, plane_state):
            _start_node(layout, binaries, str(plane_state["server"]))  # only the node is missing
            _start_addons(components, layout, now, host)
            return
        _clean(layout, "cluster")
        t = time.monotonic()
        _log("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
        plane = ControlPlane(layout, binaries, host)

        def start() -> tuple[list[procs.Proc], dict[str, object]]:
            _clean(layout, "cluster")  # an earlier attempt's data
            return plane.start()

        started, state = _attempts("cluster", start)
        procs.save(layout.cluster_state, started, state)
        _log(f"cluster ready at {state['server']} in {time.monotonic() - t:.1f}s (kwok nodes Ready)")
        _start_node(layout, binaries, str(state["server"]))
    _start_addons(components, layout, now, host)


KEDA_NEEDS = "KEDA's metrics API server needs the real node's bridge address (the apiserver cannot dial loopback)"


def _start_addons(components: tuple[str, ...], layout: Layout, now: Status, host: str) -> None:
    """Prometheus and KEDA, on the cluster now running (they need its apiserver)."""
    wanted = [c for c in ("prometheus", "keda") if c in components and not getattr(now, c)]
    if "keda" in wanted and host == network.LOOPBACK:
        _log(f"no KEDA on this machine: {KEDA_NEEDS}")
        wanted.remove("keda")
    if not wanted:
        return
    plane_procs, plane_state = procs.load(layout.cluster_state)
    plane = ControlPlane(layout, layout.bin)
    if not (plane_procs and all(procs.alive(p) for p in plane_procs) and plane.healthy(plane_state)):
        raise ClusterError(f"{' and '.join(wanted)} need the cluster: start it too (`make cluster-up`)")
    server = str(plane_state["server"])
    if "prometheus" in wanted and not prom.running(layout, server):
        _clean(layout, "prometheus")
        t = time.monotonic()
        _log("starting Prometheus (scraping the runtime pods on the real node)")
        started, state = prom.Prometheus(layout, host).start(server)
        procs.save(prom.state_file(layout), started, state)
        _log(f"Prometheus ready at {state['url']} in {time.monotonic() - t:.1f}s")
    if "keda" in wanted and not keda.running(layout, plane.kubectl):
        _clean(layout, "keda")
        updated = plane.ensure_aggregation(plane_procs, plane_state)
        if updated is not plane_procs:
            _log("kube-apiserver restarted with the aggregation layer's flags (for KEDA's metrics API server)")
            procs.save(layout.cluster_state, updated, plane_state)
        t = time.monotonic()
        _log("starting KEDA (operator, metrics API server)")
        started, state = keda.Keda(layout, plane.kubectl, host).start()
        procs.save(keda.state_file(layout), started, state)
        _log(f"KEDA ready in {time.monotonic() - t:.1f}s ({keda.API_SERVICE} Available)")


def _plane_host_ok(layout: Layout, state: dict[str, object]) -> bool:
    """A control plane started on loopback cannot serve a real node's pods: it is started again."""
    on_bridge = str(state.get("server", "")).startswith(f"https://{network.HOST_IP}:")
    return on_bridge or _unavailable(layout) is not None


def _start_node(layout: Layout, binaries: Path, server: str) -> None:
    unavailable = _unavailable(layout)
    if unavailable is not None:
        _log(f"no real node on this machine ({unavailable}): kwok's simulated nodes only")
        return
    _clean(layout, "node")
    install_packages()
    t = time.monotonic()
    _log(f"starting the real node {NODE_NAME} (containerd, kubelet, kube-proxy on bridge {network.BRIDGE})")
    node = RealNode(layout, binaries)
    started, state = node.start(server)
    procs.save(layout.node_state, started, state)
    plane = ControlPlane(layout, binaries)
    try:
        procs.wait_until(lambda: node_ready(json.loads(plane.kubectl("get", "nodes", "-o", "json"))["items"]),
                         90, f"node {NODE_NAME} Ready", started)
    except BaseException:
        _clean(layout, "node")
        raise
    _log(f"real node {NODE_NAME} Ready in {time.monotonic() - t:.1f}s (pool={REAL_POOL})")


def _attempts(
    what: str, start: Callable[[], tuple[list[procs.Proc], dict[str, object]]]
) -> tuple[list[procs.Proc], dict[str, object]]:
    """Ports are chosen free, but another process can take one before the daemon binds it: a start that
    fails (having stopped what it started) is tried again on other ports."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return start()
        except ClusterError as exc:
            if attempt == ATTEMPTS:
                raise
            _log(f"the {what} did not start (attempt {attempt} of {ATTEMPTS}), trying other ports: "
                 f"{str(exc).splitlines()[0]}")
    raise AssertionError("unreachable")


def down(components: tuple[str, ...] = COMPONENTS, layout: Layout | None = None) -> None:
    layout = layout or Layout.default()
    with procs.locked(layout.lock):
        for component in components:
            _clean(layout, component)
        _release_network_if_unused(layout)


def _clean(layout: Layout, component: str) -> None:
    """Stop what the state file names, then anything else still running from this folder. The real node goes
    with the cluster; the bridge goes when neither the cluster nor the object store is left on it."""
    if component == "cluster":
        _clean(layout, "keda")
        _clean(layout, "prometheus")
        _clean(layout, "node")
    if component in ("prometheus", "keda"):
        _clean_addon(layout, component)
        return
    if component == "node":
        if _unavailable(layout) is not None and not layout.node_state.exists():
            return  # never ran here (and the machine's iptables may be another cluster's)
        recorded, state = procs.load(layout.node_state)
        live = [p for p in recorded if procs.alive(p)]
        if live:
            _log("stopping the real node: " + ", ".join(f"{p.name} (pid {p.pid})" for p in live))
        RealNode(layout, layout.bin).clean(recorded, state)
        layout.node_state.unlink(missing_ok=True)
        return
    _clean_component(layout, component)


def _clean_addon(layout: Layout, component: str) -> None:
    state_file = prom.state_file(layout) if component == "prometheus" else keda.state_file(layout)
    recorded, _ = procs.load(state_file)
    live = [p for p in recorded if procs.alive(p)]
    if live:
        _log(f"stopping {component}: " + ", ".join(f"{p.name} (pid {p.pid})" for p in live))
    if component == "keda" and live:
        plane_procs, plane_state = procs.load(layout.cluster_state)
        plane = ControlPlane(layout, layout.bin)
        if plane_procs and plane.healthy(plane_state):
            keda.unregister(plane.kubectl)
    if component == "prometheus":
        prom.Prometheus(layout, "").clean(recorded)
    else:
        keda.Keda(layout, None, "").clean(recorded)
    state_file.unlink(missing_ok=True)


def _release_network_if_unused(layout: Layout) -> None:
    """The bridge (and what goes with it) once neither the cluster nor the object store is left on it."""
    users = [f for f in (layout.cluster_state, layout.objectstore_state)
             if any(procs.alive(p) for p in procs.load(f)[0])]
    if not users and network.owner() == str(layout.root):
        RealNode(layout, layout.bin).release_network()
        network.release(layout.root)


def _clean_component(layout: Layout, component: str) -> None:
    state_file, folder = {
        "cluster": (layout.cluster_state, layout.cluster),
        "objectstore": (layout.objectstore_state, layout.objectstore),
    }[component]
    recorded, state = procs.load(state_file)
    live = [p for p in recorded if procs.alive(p)]
    if live:
        _log(f"stopping {component}: " + ", ".join(f"{p.name} (pid {p.pid})" for p in live))
    # The object store's data is wiped at every start, so it gets no long graceful shutdown.
    procs.stop(recorded, timeout=3 if component == "objectstore" else 15)
    strays = procs.stray_pids(str(folder) + "/")
    if strays:
        _log(f"stopping {len(strays)} leftover {component} process(es) from an earlier run: {strays}")
        procs.kill_pids(strays)
    procs.remove_files(state.get("sockets"))
    state_file.unlink(missing_ok=True)
    if component == "cluster":
        import shutil

        shutil.rmtree(layout.cluster / "etcd", ignore_errors=True)
        layout.audit_log.unlink(missing_ok=True)  # it described the cluster just wiped


def local_operator_config(endpoint: str, region: str, runtime_image: str | None = None) -> dict[str, object]:
    """The operator's configuration for the local cluster: its node pools and the given object store.
    `runtime_image`: the runtime image built here (`make images`), for models on the real node's pool."""
    image = runtime_image or "ghcr.io/mlmodel-operator/runtime:0.1.0"
    return {
        "nodePools": [
            {
                "name": "gpu-a100",
                "default": True,
                "nodeSelector": {"pool": "gpu-a100"},
                "gpuResourceName": "nvidia.com/gpu",
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            {"name": "cpu", "nodeSelector": {"pool": "cpu"}},
            # The real node (containerd + kubelet): pods there really run the runtime image.
            {"name": REAL_POOL, "nodeSelector": {"pool": REAL_POOL}, "tolerations": [REAL_TOLERATION]},
        ],
        "runtimeImages": {"onnx": image, "torchscript": image + "-torch", "torch-export": image + "-torch"},
        "defaultResources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "allowedFormats": ["onnx", "torchscript", "torch-export"],
        "allowPickle": False,
        "objectStore": {"endpoint": endpoint, "region": region},
        "watch": {"namespaces": []},
    }


def _write_operator_config(layout: Layout) -> None:
    env = read_env_file(layout.objectstore_env)
    config = local_operator_config(env["AWS_ENDPOINT_URL"], env["AWS_REGION"])
    layout.operator_config.parent.mkdir(parents=True, exist_ok=True)
    layout.operator_config.write_text(
        f"# Written by `make cluster-up` for the local cluster ({len(GPU_NODES)} GPU nodes).\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
