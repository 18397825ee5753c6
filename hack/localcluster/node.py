"""The real node: containerd + runc + bridge CNI, a kubelet and kube-proxy, beside kwok's simulated nodes.

Everything lives in the project's own folder (`.local/node/`): containerd's root, state and socket, runc's state,
the kubelet's root and pod logs, the CNI config and its address allocations. `clean()` stops what runs there,
removes its containers, mounts, network namespaces, iptables chains and the bridge, and keeps containerd's image
store (a cache: images built here stay loaded). ../shared/REAL-NODE.md records why each setting is what it is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from . import network, procs
from .layout import Layout
from .procs import ClusterError, Proc

NAME = "real-0"
POOL = "real"
LABELS = {"pool": POOL, "mlmodel.io/real-node": "true", "node.kubernetes.io/instance-type": "local"}
# Only pods that ask for the real node run there: the rest of the suite's pods (kwok's) stay simulated, and an
# image that exists nowhere never reaches a real kubelet.
TAINT = {"key": "mlmodel.io/real-node", "value": "true", "effect": "NoSchedule"}
TOLERATION = {"key": TAINT["key"], "operator": "Exists", "effect": TAINT["effect"]}
RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"
# command or file -> the Debian package that brings it
PACKAGES = {"containerd": "containerd", "ctr": "containerd", RUNC: "runc",
            f"{CNI_BIN}/bridge": "containernetworking-plugins", "iptables": "iptables", "buildah": "buildah"}
# Left behind by the kubelet and by kube-proxy --cleanup.
OWN_CHAINS = ("KUBE-KUBELET-CANARY", "KUBE-FIREWALL", "KUBE-PROXY-CANARY", "KUBE-IPTABLES-HINT")
FORWARD_CHAIN = "MLMODEL-FORWARD"  # ours: nothing from the bridge is forwarded anywhere but the bridge


def _log(msg: str) -> None:
    print(f"[localcluster] {msg}", flush=True)


def _missing() -> list[str]:
    return sorted({pkg for what, pkg in PACKAGES.items()
                   if not (Path(what).exists() if what.startswith("/") else shutil.which(what))})


def install_packages() -> None:
    """Debian packages the real node needs, installed with apt when missing (as `make tools` does)."""
    missing = _missing()
    if not missing:
        return
    _log(f"installing Debian packages for the real node: {' '.join(missing)}")
    error = apt_install(missing)
    if error:
        raise ClusterError(error)


def apt_install(packages: list[str]) -> str | None:
    """`apt-get install` (after an `apt-get update` when the first try fails); the error, or None."""
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, capture_output=True, env=env).returncode == 0:
        return None
    subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return None if res.returncode == 0 else f"apt-get install {' '.join(packages)} failed: {res.stderr.strip()[-500:]}"


def run(argv: list[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(argv)}: {(res.stderr or res.stdout).strip()[-800:]}")
    return res


class RealNode:
    def __init__(self, layout: Layout, binaries: Path) -> None:
        self.layout = layout
        self.bin = binaries
        self.dir = layout.node
        self.socket = layout.containerd_socket
        self.logs = self.dir / "logs"

    @property
    def runc_root(self) -> Path:
        return self.dir / "runc"

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args], check=check, timeout=timeout)

    # --- configuration (files under .local/node) -------------------------------------------------

    def _containerd_config(self, sandbox_image: str) -> Path:
        d = self.dir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"
[{cri}]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{self.dir / 'cni' / 'net.d'}"
  [{cri}.containerd]
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        Root = "{self.runc_root}"
"""
        path = d / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def _cni_config(self) -> None:
        net = self.dir / "cni" / "net.d"
        net.mkdir(parents=True, exist_ok=True)
        first = network.REAL_POD_CIDR.split("/")[0].rsplit(".", 1)[0] + ".10"
        conf = {
            "cniVersion": "1.0.0",
            "name": "mlmodel",
            "plugins": [{
                "type": "bridge", "bridge": network.BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.REAL_POD_CIDR, "rangeStart": first, "gateway": network.HOST_IP}]],
                    # Routes to the cluster's own ranges only: no default route, nothing leaves the machine.
                    "routes": [{"dst": network.CLUSTER_CIDR}, {"dst": network.SERVICE_CIDR}],
                    "dataDir": str(self.dir / "cni" / "ipam"),
                },
            }],
        }
        (net / "10-mlmodel.conflist").write_text(json.dumps(conf, indent=2))

    def _kubelet_config(self, ports: set[int]) -> tuple[Path, int]:
        port, healthz = procs.free_port(ports), procs.free_port(ports)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,  # this machine's kernel runs cgroup v1 (hybrid); 1.35 refuses it by default
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "address": network.HOST_IP,  # the apiserver reaches it on the node's InternalIP (logs, exec)
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                               "x509": {"clientCAFile": str(self.layout.pki / "ca.crt")}},
            "authorization": {"mode": "Webhook"},
            "evictionHard": {"memory.available": "100Mi"},
            "imageGCHighThresholdPercent": 100,  # images built here are never pulled again: keep them
            "imageGCLowThresholdPercent": 99,
            "podLogsDir": str(self.dir / "pod-logs"),
            "volumePluginDir": str(self.dir / "volume-plugins"),
            "serializeImagePulls": False,
            "maxPods": 48,
            "shutdownGracePeriod": "0s",
        }
        path = self.dir / "kubelet" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path, healthz

    # --- the pause image ---------------------------------------------------------------------------

    def _pause_image(self) -> tuple[str, Path]:
        """A FROM-scratch image of our pause binary, built once with buildah and kept as an OCI archive."""
        binary = self.bin / "pause"
        digest = run(["sha256sum", str(binary)]).stdout.split()[0][:12]
        ref = f"localhost/mlmodel/pause:{digest}"
        cache = Path(os.environ.get("MLMODEL_CACHE", Path.home() / ".cache" / "mlmodel-operator")) / "images"
        archive = cache / f"pause-{digest}.tar"
        if archive.exists():
            return ref, archive
        cache.mkdir(parents=True, exist_ok=True)
        buildah = ["buildah"]
        container = run([*buildah, "from", "scratch"]).stdout.strip()
        try:
            run([*buildah, "copy", "--chmod", "0755", container, str(binary), "/pause"])
            run([*buildah, "config", "--entrypoint", '["/pause"]', "--user", "65535:65535", container])
            run([*buildah, "commit", "-q", container, ref])
        finally:
            run([*buildah, "rm", container], check=False)
        tmp = archive.with_suffix(".tmp")
        run([*buildah, "push", "-q", ref, f"oci-archive:{tmp}:{ref}"], timeout=120)
        tmp.replace(archive)
        return ref, archive

    def import_image(self, ref: str, archive: Path) -> None:
        """Import an OCI archive into the node's containerd unless it holds `ref` already."""
        if ref in self.ctr("images", "ls", "-q").stdout.split():
            return
        self.ctr("images", "import", "--all-platforms", str(archive), timeout=600)

    # --- start ---------------------------------------------------------------------------------------

    def start(self, server: str) -> tuple[list[Proc], dict[str, object]]:
        """Start containerd, the kubelet and kube-proxy against the apiserver at `server`; wait for Ready."""
        network.ensure_bridge()
        self._guard_forwarding()
        sandbox, archive = self._pause_image()
        ports: set[int] = set()
        config = self._containerd_config(sandbox)
        self._cni_config()
        kubelet_config, kubelet_healthz = self._kubelet_config(ports)
        proxy_healthz, proxy_metrics = procs.free_port(ports), procs.free_port(ports)
        started: list[Proc] = []
        try:
            containerd = procs.start("containerd", ["/usr/bin/containerd", "--config", str(config)],
                                     self.logs / "containerd.log")
            started.append(containerd)
            procs.wait_until(lambda: self.ctr("version", timeout=5).returncode == 0, 30, "containerd", started)
            # Containers of an earlier run (their tasks were stopped by clean()): the kubelet starts afresh.
            leftovers = self.ctr("containers", "ls", "-q").stdout.split()
            if leftovers:
                self.ctr("containers", "rm", *leftovers, check=False)
            self.import_image(sandbox, archive)
            kubelet = procs.start("kubelet", [
                str(self.bin / "kubelet"), f"--config={kubelet_config}",
                f"--kubeconfig={self._kubeconfig('kubelet', server)}",
                f"--root-dir={self.dir / 'kubelet' / 'root'}", f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
                f"--hostname-override={NAME}", f"--node-ip={network.HOST_IP}",
                "--node-labels=" + ",".join(f"{k}={v}" for k, v in LABELS.items()),
                f"--register-with-taints={TAINT['key']}={TAINT['value']}:{TAINT['effect']}", "--v=1",
            ], self.logs / "kubelet.log")
            started.append(kubelet)
            started.append(procs.start("kube-proxy", [
                str(self.bin / "kube-proxy"), f"--kubeconfig={self._kubeconfig('kube-proxy', server)}",
                f"--hostname-override={NAME}", "--proxy-mode=iptables",
                f"--cluster-cidr={network.CLUSTER_CIDR}", f"--nodeport-addresses={network.HOST_IP}/32",
                f"--healthz-bind-address=127.0.0.1:{proxy_healthz}",
                f"--metrics-bind-address=127.0.0.1:{proxy_metrics}",
                "--conntrack-max-per-core=0", "--iptables-localhost-nodeports=false", "--v=1",
            ], self.logs / "kube-proxy.log"))
            procs.wait_until(lambda: _http_ok(f"http://127.0.0.1:{kubelet_healthz}/healthz"), 60,
                             "the kubelet's /healthz", started)
            procs.wait_until(lambda: _http_ok(f"http://127.0.0.1:{proxy_healthz}/healthz"), 60,
                             "kube-proxy's /healthz", started)
            return started, {"node": NAME, "sandbox_image": sandbox,
                             "kubelet_healthz": kubelet_healthz, "proxy_healthz": proxy_healthz}
        except BaseException:
            procs.stop(started)
            raise

    def _kubeconfig(self, client: str, server: str) -> str:
        from .kube import kubeconfig_for

        path = self.dir / f"{client}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig_for(self.layout, client, server)))
        path.chmod(0o600)
        return str(path)

    def _guard_forwarding(self) -> None:
        """Pod → Service → pod needs IP forwarding; our own chain keeps anything from the bridge on the bridge.
        The host's setting from before the first start is kept in a file and restored when the bridge goes."""
        if run(["iptables", "-L", FORWARD_CHAIN, "-n"], check=False).returncode != 0:
            run(["iptables", "-N", FORWARD_CHAIN])
            run(["iptables", "-A", FORWARD_CHAIN, "-i", network.BRIDGE, "!", "-o", network.BRIDGE, "-j", "DROP"])
        if run(["iptables", "-C", "FORWARD", "-j", FORWARD_CHAIN], check=False).returncode != 0:
            run(["iptables", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN])
        forward = Path("/proc/sys/net/ipv4/ip_forward")
        was = self.dir / "ip_forward.before"
        if not was.exists():
            self.dir.mkdir(parents=True, exist_ok=True)
            was.write_text(forward.read_text().strip())
        forward.write_text("1")

    # --- health ----------------------------------------------------------------------------------

    def healthy(self, state: dict[str, object]) -> bool:
        return all(_http_ok(f"http://127.0.0.1:{state.get(k)}/healthz") for k in ("kubelet_healthz", "proxy_healthz"))

    # --- clean ---------------------------------------------------------------------------------

    def clean(self, recorded: list[Proc], state: dict[str, object]) -> None:
        """Stop the node and remove what it made. Order: kubelet (no new pods), kube-proxy, the containers,
        containerd and its shims, mounts, network namespaces, iptables chains, the bridge."""
        by_name = {p.name: p for p in recorded}
        for name in ("kubelet", "kube-proxy"):
            if name in by_name:
                procs.stop([by_name[name]], timeout=10)
        for pid in procs.stray_pids(str(self.dir) + "/"):
            # Strays of a lost state file: the kubelet first, else it restarts what we stop.
            if _comm(pid) in ("kubelet", "kube-proxy"):
                procs.kill_pids([pid])
        self._remove_containers()
        if "containerd" in by_name:
            procs.stop([by_name["containerd"]], timeout=10)
        procs.kill_pids(procs.stray_pids(str(self.dir) + "/"))  # shims, a containerd of a lost state file
        self._unmount_all()
        for sub in ("containerd/state", "kubelet/root", "cni/ipam", "runc", "pod-logs"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        _remove_container_log_links(self.dir / "pod-logs")
        if (self.bin / "kube-proxy").exists():
            run([str(self.bin / "kube-proxy"), "--cleanup", "--proxy-mode=iptables"], check=False)
        _remove_chains(OWN_CHAINS)

    def release_network(self) -> None:
        """The bridge, our FORWARD guard, and the host's IP forwarding as it was before the first start."""
        network.delete_bridge()
        _remove_chains((FORWARD_CHAIN,))
        was = self.dir / "ip_forward.before"
        if was.exists():
            Path("/proc/sys/net/ipv4/ip_forward").write_text(was.read_text().strip() or "0")
            was.unlink()

    def _remove_containers(self) -> None:
        """Kill every container runc runs under our root (containerd may be gone already)."""
        if not self.runc_root.exists():
            return
        for ns_root in [self.runc_root, *[p for p in self.runc_root.iterdir() if p.is_dir()]]:
            listed = run([RUNC, "--root", str(ns_root), "list", "-q"], check=False)
            for cid in listed.stdout.split() if listed.returncode == 0 else []:
                run([RUNC, "--root", str(ns_root), "delete", "--force", cid], check=False)

    def _unmount_all(self) -> None:
        """Every mount under our folder (pod volumes, container root filesystems, network namespaces),
        deepest first."""
        prefix = str(self.dir) + "/"
        for point in sorted(_mount_points(prefix), key=len, reverse=True):
            run(["umount", "-l", point], check=False)


def _mount_points(prefix: str) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix):
            points.append(point)
    return points


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return int(r.status) == 200
    except Exception:
        return False


def _remove_container_log_links(pod_logs: Path) -> None:
    """The kubelet links /var/log/containers/* to its pod logs: remove the links into our folder."""
    links = Path("/var/log/containers")
    if not links.is_dir():
        return
    for link in links.iterdir():
        if link.is_symlink() and os.readlink(link).startswith(str(pod_logs)):
            link.unlink(missing_ok=True)


def _remove_chains(ours: tuple[str, ...]) -> None:
    """Chains the kubelet or this module made (kube-proxy --cleanup removes its own), and the jumps to them."""
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle"):
            rules = run([tool, "-t", table, "-S"], check=False).stdout.splitlines()
            for rule in rules:
                parts = rule.split()
                if parts[:1] == ["-A"] and parts[1] not in ours and any(
                        parts[i] in ("-j", "-g") and parts[i + 1] in ours for i in range(len(parts) - 1)):
                    run([tool, "-t", table, "-D", *parts[1:]], check=False)
            for chain in ours:
                if any(r == f"-N {chain}" for r in rules):
                    run([tool, "-t", table, "-F", chain], check=False)
                    run([tool, "-t", table, "-X", chain], check=False)


def node_ready(items: list[dict[str, Any]]) -> bool:
    return any(n["metadata"]["name"] == NAME and any(
        c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        for n in items)
