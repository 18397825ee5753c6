"""The local cluster's addresses, and the bridge that the real node's pods and the host share.

Every address stays out of the private ranges (10/8, 172.16/12, 192.168/16), in RFC 2544's benchmarking space,
and nothing is routed off the machine: pods reach the host (kube-apiserver, the object store) on the bridge's
gateway address; the host reaches pods and Services through the bridge and kube-proxy's rules.
"""

from __future__ import annotations

import ipaddress
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .procs import ClusterError

BRIDGE = "mlmodel0"
HOST_IP = "198.18.0.1"  # the bridge's gateway: where the host's services listen when a real node runs
LOOPBACK = "127.0.0.1"  # where they listen without one
CLUSTER_CIDR = "198.18.0.0/16"  # every pod of the cluster (kube-proxy's --cluster-cidr)
REAL_POD_CIDR = "198.18.0.0/17"  # pods on the real node (the bridge's subnet)
KWOK_POD_CIDR = "198.18.128.0/17"  # addresses kwok makes up for its simulated pods
KWOK_NODE_IP = "198.18.128.1"
SERVICE_CIDR = "198.19.0.0/16"
KUBERNETES_SERVICE_IP = "198.19.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service

_PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
for _cidr in (CLUSTER_CIDR, REAL_POD_CIDR, KWOK_POD_CIDR, SERVICE_CIDR):
    assert not any(ipaddress.ip_network(_cidr).overlaps(p) for p in _PRIVATE), _cidr


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {res.stderr.strip()}")
    return res


def bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def ensure_bridge() -> None:
    """The bridge with the gateway address, up. The CNI bridge plugin attaches pods to it (isGateway)."""
    if not bridge_exists():
        ip("link", "add", BRIDGE, "type", "bridge")
    prefix = REAL_POD_CIDR.split("/")[1]
    if f"{HOST_IP}/{prefix}" not in ip("-o", "addr", "show", "dev", BRIDGE).stdout:
        ip("addr", "add", f"{HOST_IP}/{prefix}", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    # Pod → Service → pod on the same bridge needs bridged packets to pass iptables (kube-proxy's DNAT).
    sysctl = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if sysctl.exists() and sysctl.read_text().strip() != "1":
        sysctl.write_text("1")


def delete_bridge() -> None:
    if bridge_exists():
        ip("link", "del", BRIDGE, check=False)


# The bridge, its address and the node's name are the machine's, so one local cluster at a time has the real
# node: the one whose folder this file names (on tmpfs: a reboot forgets it with the bridge).
OWNER_FILE = Path("/run/mlmodel-operator/real-node.owner")


def owner() -> str | None:
    try:
        return OWNER_FILE.read_text().strip() or None
    except OSError:
        return None


def claim(root: Path) -> None:
    OWNER_FILE.parent.mkdir(parents=True, exist_ok=True)
    OWNER_FILE.write_text(str(root))


def release(root: Path) -> None:
    if owner() == str(root):
        OWNER_FILE.unlink(missing_ok=True)


def real_node_unsupported(root: Path, owner_alive: Callable[[Path], bool]) -> str | None:
    """Why the local cluster in `root` cannot have the real node, or None when it can (before any package is
    installed). `owner_alive(folder)`: whether the cluster in that folder still runs."""
    if platform.system() != "Linux":
        return f"a real node needs Linux (this is {platform.system()})"
    if os.geteuid() != 0:
        return "a real node needs root (containerd, network namespaces, iptables, mounts); run as root"
    if os.environ.get("MLMODEL_REAL_NODE", "").lower() in ("0", "false", "no", "off"):
        return "MLMODEL_REAL_NODE=0 turns the real node off"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    other = owner()
    if other and other != str(root) and owner_alive(Path(other)):
        return f"the local cluster in {other} has this machine's real node"
    return None
