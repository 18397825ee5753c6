"""A real local Kubernetes control plane with simulated GPU nodes, and an S3 object store.

`up()` is idempotent: what runs and answers is kept; what was left behind half-started (a crashed run,
a lost state file) is stopped first. `down()` stops every process it started, by pid.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from . import procs
from .kube import GPU_NODES, ControlPlane
from .layout import Layout, read_env_file
from .objectstore import ObjectStore
from .procs import ClusterError
from .tools import control_plane_binaries, link_tools

__all__ = ["ClusterError", "Layout", "Status", "down", "local_operator_config", "status", "up"]

COMPONENTS = ("cluster", "objectstore")


@dataclass
class Status:
    cluster: bool
    objectstore: bool


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
    store_ok = bool(store_procs) and all(procs.alive(p) for p in store_procs) and ObjectStore(layout).healthy()
    return Status(cluster=cluster_ok, objectstore=store_ok)


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
            raise
        if layout.objectstore_env.exists():
            _write_operator_config(layout)
        return status(layout)


ATTEMPTS = 3


def _start_missing(components: tuple[str, ...], layout: Layout, now: Status) -> None:
    if "objectstore" in components and not now.objectstore:
        _clean(layout, "objectstore")
        t = time.monotonic()
        _log("starting the object store (SeaweedFS S3 gateway)")
        started, state = _attempts("object store", ObjectStore(layout).start)
        procs.save(layout.objectstore_state, started, state)
        _log(f"object store ready at {state['endpoint']} in {time.monotonic() - t:.1f}s")
    if "cluster" in components and not now.cluster:
        binaries = control_plane_binaries()
        link_tools(layout, binaries)
        _clean(layout, "cluster")
        t = time.monotonic()
        _log("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
        plane = ControlPlane(layout, binaries)

        def start() -> tuple[list[procs.Proc], dict[str, object]]:
            _clean(layout, "cluster")  # an earlier attempt's data
            return plane.start()

        started, state = _attempts("cluster", start)
        procs.save(layout.cluster_state, started, state)
        _log(f"cluster ready at {state['server']} in {time.monotonic() - t:.1f}s (all nodes Ready)")


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


def _clean(layout: Layout, component: str) -> None:
    """Stop what the state file names, then anything else still running from this folder."""
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


def local_operator_config(endpoint: str, region: str) -> dict[str, object]:
    """The operator's configuration for the local cluster: its node pools and the given object store."""
    image = "ghcr.io/mlmodel-operator/runtime:0.1.0"
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
