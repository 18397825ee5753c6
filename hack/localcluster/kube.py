"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler and kwok's simulated nodes."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import network, pki, procs
from .layout import REPO, Layout
from .procs import ClusterError, Proc

STAGES = REPO / "hack" / "cluster" / "kwok-stages.yaml"
AUDIT_POLICY = REPO / "hack" / "cluster" / "audit-policy.yaml"

GPU_PRODUCT = "NVIDIA-A100-SXM4-80GB"
GPU_NODES = ("gpu-a100-0", "gpu-a100-1")
CPU_NODES = ("cpu-0",)
GPUS_PER_NODE = 4


def kubeconfig_for(layout: Layout, client: str, server: str) -> dict[str, Any]:
    def b64(name: str) -> str:
        return base64.b64encode((layout.pki / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "mlmodel-local", "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [{"name": client, "user": {
            "client-certificate-data": b64(f"{client}.crt"), "client-key-data": b64(f"{client}.key")}}],
        "contexts": [{"name": "mlmodel-local", "context": {"cluster": "mlmodel-local", "user": client}}],
        "current-context": "mlmodel-local",
    }


def _node(name: str, *, gpu: bool) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
    spec: dict[str, Any] = {}
    if gpu:
        labels |= {
            "pool": "gpu-a100",
            "node.kubernetes.io/instance-type": "a2-ultragpu-4g",
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": GPU_PRODUCT,
            "nvidia.com/gpu.count": str(GPUS_PER_NODE),
        }
        capacity["nvidia.com/gpu"] = str(GPUS_PER_NODE)
        spec["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    else:
        labels |= {"pool": "cpu", "node.kubernetes.io/instance-type": "n2-standard-16"}
        capacity |= {"cpu": "16", "memory": "64Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
        "spec": spec,
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def nodes_manifest() -> list[dict[str, Any]]:
    return [_node(n, gpu=True) for n in GPU_NODES] + [_node(n, gpu=False) for n in CPU_NODES]


class ControlPlane:
    def __init__(self, layout: Layout, binaries: Path, host: str = network.LOOPBACK) -> None:
        """`host`: the address the apiserver listens on: loopback, or the bridge's gateway when pods (the real
        node's) must reach it too."""
        self.layout = layout
        self.bin = binaries
        self.host = host
        self.logs = layout.cluster / "logs"

    # --- health checks -------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.layout.pki / "admin.crt"), str(self.layout.pki / "admin.key"))
        return ctx

    def get(self, server: str, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(server + path, context=self._ssl(), timeout=3) as r:
            return int(r.status), r.read().decode()

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        res = subprocess.run(
            [str(self.bin / "kubectl"), "--kubeconfig", str(self.layout.kubeconfig), *args],
            input=stdin, capture_output=True, text=True, timeout=60,
        )
        if res.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def nodes_ready(self) -> bool:
        items = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        # Ready, and the node lifecycle controller has lifted the not-ready taint (else nothing schedules yet).
        ready = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
            and not any(t["key"].startswith("node.kubernetes.io/") for t in n.get("spec", {}).get("taints", []))
        }
        return ready >= set(GPU_NODES + CPU_NODES)

    def healthy(self, state: dict[str, object]) -> bool:
        server = str(state.get("server", ""))
        try:
            return bool(server) and self.get(server, "/readyz")[0] == 200
        except Exception:
            return False

    # --- start ----------------------------------------------------------------------------------

    def start(self) -> tuple[list[Proc], dict[str, object]]:
        c, b = self.layout.cluster, self.bin
        pki.ensure(self.layout.pki)
        pki.ensure_front_proxy(self.layout.pki)
        ports: set[int] = set()
        etcd_client, etcd_peer = procs.free_port(ports), procs.free_port(ports)
        api, cm, sched, kwok = (procs.free_port(ports) for _ in range(4))
        server = f"https://{self.host}:{api}"
        started: list[Proc] = []

        def kubeconfig(client: str) -> str:
            path = c / f"{client}.kubeconfig"
            path.write_text(yaml.safe_dump(kubeconfig_for(self.layout, client, server)))
            path.chmod(0o600)
            return str(path)

        try:
            etcd = procs.start("etcd", [
                str(b / "etcd"), "--name=local", f"--data-dir={c / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=local=http://127.0.0.1:{etcd_peer}",
                "--listen-metrics-urls=", "--unsafe-no-fsync", "--quota-backend-bytes=4294967296",
                "--log-level=warn",
            ], self.logs / "etcd.log")
            started.append(etcd)
            p = self.layout.pki
            apiserver = procs.start("kube-apiserver", [
                str(b / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                f"--bind-address={self.host}", f"--advertise-address={self.host}", f"--secure-port={api}",
                f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--client-ca-file={p / 'ca.crt'}",
                "--authorization-mode=Node,RBAC", "--anonymous-auth=false",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={network.SERVICE_CIDR}",
                # The default admission chain of a real cluster (PodSecurity included) is on, NodeRestriction too
                # for the real node's kubelet. Privileged pods are allowed unless Pod Security refuses them.
                "--enable-admission-plugins=NodeRestriction",
                "--allow-privileged=true", "--profiling=false",
                # The `kubernetes` Service's endpoint is the apiserver's address: pods reach it on the bridge.
                # A loopback address cannot be an endpoint, so without the bridge there is none.
                "--endpoint-reconciler-type=" + ("none" if self.host == network.LOOPBACK else "lease"),
                f"--kubelet-client-certificate={p / 'admin.crt'}", f"--kubelet-client-key={p / 'admin.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                # Writes to MLModels, Deployments and Services, one JSON line each, synchronously.
                f"--audit-policy-file={AUDIT_POLICY}", f"--audit-log-path={self.layout.audit_log}",
                "--audit-log-mode=blocking", "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
                *aggregation_flags(p), "--v=1",
            ], self.logs / "kube-apiserver.log")
            started.append(apiserver)
            procs.wait_until(lambda: self._etcd_ok(etcd_client), 30, "etcd health", [etcd])
            procs.wait_until(lambda: self.get(server, "/readyz")[0] == 200, 90, "kube-apiserver /readyz",
                             [etcd, apiserver])
            self.layout.kubeconfig.write_text(yaml.safe_dump(kubeconfig_for(self.layout, "admin", server)))
            self.layout.kubeconfig.chmod(0o600)

            started.append(procs.start("kube-controller-manager", [
                str(b / "kube-controller-manager"), f"--kubeconfig={kubeconfig('controller-manager')}",
                f"--authentication-kubeconfig={c / 'controller-manager.kubeconfig'}",
                f"--authorization-kubeconfig={c / 'controller-manager.kubeconfig'}",
                "--bind-address=127.0.0.1", f"--secure-port={cm}", "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
                f"--cluster-signing-cert-file={p / 'ca.crt'}", f"--cluster-signing-key-file={p / 'ca.key'}",
                f"--service-cluster-ip-range={network.SERVICE_CIDR}", "--allocate-node-cidrs=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
                "--v=1",
            ], self.logs / "kube-controller-manager.log"))
            started.append(procs.start("kube-scheduler", [
                str(b / "kube-scheduler"), f"--kubeconfig={kubeconfig('scheduler')}",
                f"--authentication-kubeconfig={c / 'scheduler.kubeconfig'}",
                f"--authorization-kubeconfig={c / 'scheduler.kubeconfig'}",
                "--bind-address=127.0.0.1", f"--secure-port={sched}", "--leader-elect=false", "--v=1",
            ], self.logs / "kube-scheduler.log"))
            started.append(procs.start("kwok", [
                str(b / "kwok"), f"--kubeconfig={kubeconfig('kwok')}", f"--config={STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--node-ip={network.KWOK_NODE_IP}", f"--cidr={network.KWOK_POD_CIDR}",
                f"--server-address=127.0.0.1:{kwok}",
                "--node-lease-duration-seconds=40",
            ], self.logs / "kwok.log"))
            self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(nodes_manifest()))
            procs.wait_until(self.nodes_ready, 60, "all nodes Ready", started)
            return started, {"server": server, "ports": {"etcd": etcd_client, "apiserver": api}}
        except BaseException:
            procs.stop(started)
            raise

    def ensure_aggregation(self, recorded: list[Proc], state: dict[str, object]) -> list[Proc]:
        """A control plane started before the apiserver had the aggregation layer's flags gets a new apiserver
        with them (same etcd, same address: the objects stay, clients reconnect). Returns the processes now."""
        old = next(p for p in recorded if p.name == "kube-apiserver")
        if any(a.startswith("--proxy-client-cert-file=") for a in old.argv):
            return recorded
        pki.ensure_front_proxy(self.layout.pki)
        argv = [a for a in old.argv if a != "--v=1"] + [*aggregation_flags(self.layout.pki), "--v=1"]
        server = str(state["server"])
        procs.stop([old])
        new = procs.start("kube-apiserver", argv, self.logs / "kube-apiserver.log")
        try:
            procs.wait_until(lambda: self.get(server, "/readyz")[0] == 200, 90, "kube-apiserver /readyz", [new])
        except ClusterError:
            procs.stop([new])  # back to the apiserver as it was, so that the cluster keeps running
            new = procs.start("kube-apiserver", old.argv, self.logs / "kube-apiserver.log")
            procs.wait_until(lambda: self.get(server, "/readyz")[0] == 200, 90, "kube-apiserver /readyz", [new])
            raise
        return [new if p is old else p for p in recorded]

    @staticmethod
    def _etcd_ok(port: int) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return bool(json.loads(r.read()).get("health") == "true")


def aggregation_flags(p: Path) -> list[str]:
    """The aggregation layer: extension API servers (KEDA's metrics server) trust the front-proxy CA for the
    user the apiserver names in request headers; the apiserver dials their endpoints directly (they run on this
    machine, not behind kube-proxy)."""
    return [
        f"--requestheader-client-ca-file={p / 'front-proxy-ca.crt'}",
        f"--requestheader-allowed-names={pki.FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        "--enable-aggregator-routing=true",
    ]
