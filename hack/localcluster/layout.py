"""Where the local cluster keeps its files (all under the git-ignored `.local/`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def default(cls) -> Layout:
        return cls(Path(os.environ.get("MLMODEL_LOCAL_DIR", REPO / ".local")).resolve())

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def pki(self) -> Path:
        return self.cluster / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.cluster / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.cluster / "audit.log"

    @property
    def cluster_state(self) -> Path:
        return self.cluster / "state.json"

    @property
    def objectstore(self) -> Path:
        return self.root / "objectstore"

    @property
    def objectstore_env(self) -> Path:
        return self.objectstore / "env"

    @property
    def objectstore_state(self) -> Path:
        return self.objectstore / "state.json"

    @property
    def node(self) -> Path:
        """The real node: containerd's root/state/socket, kubelet's root, CNI config, logs."""
        return self.root / "node"

    @property
    def containerd_socket(self) -> Path:
        return self.node / "containerd" / "containerd.sock"

    @property
    def node_state(self) -> Path:
        return self.node / "state.json"

    @property
    def images(self) -> Path:
        """`make images`: images.json (the refs of the images built here) and build logs."""
        return self.root / "images"

    @property
    def operator_config(self) -> Path:
        return self.root / "operator" / "config.yaml"

    @property
    def lock(self) -> Path:
        return self.root / "lock"


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines, as written for the object store."""
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out
