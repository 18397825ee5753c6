"""Import the built images into the real node's containerd (namespace k8s.io), where the kubelet finds them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hack.localcluster.layout import Layout

from .tools import ImageError, _log, run

NAMESPACE = "k8s.io"
LOADED = ("runtime", "operator")  # the base is only built upon, never run on the node


class NodeNotRunning(ImageError):
    """The node's containerd does not answer on its socket."""


def _ctr(socket: Path) -> list[str]:
    return ["ctr", "--address", str(socket), "-n", NAMESPACE]


def node_images(socket: Path) -> set[str] | None:
    """The refs the node's containerd holds, or None when it does not answer."""
    if not socket.exists():
        return None
    res = run([*_ctr(socket), "images", "ls", "-q"], what="listing the node's images", check=False, timeout=30)
    return set(res.stdout.split()) if res.returncode == 0 else None


def load(layout: Layout, images: dict[str, Any], names: Sequence[str] = LOADED) -> list[str]:
    """Import each image the node lacks from its archive; returns the refs imported. NodeNotRunning when
    the node's containerd is not running."""
    socket = layout.containerd_socket
    present = node_images(socket)
    if present is None:
        raise NodeNotRunning(f"the real node's containerd is not running (nothing answers on {socket}); "
                             "start the local cluster's real node first")
    imported = []
    for name in names:
        ref, archive = images[name], images["archives"][name]
        if ref in present:
            continue
        _log(f"importing {ref} into the node's containerd")
        run([*_ctr(socket), "images", "import", "--all-platforms", archive], what=f"importing {archive}")
        if ref not in (node_images(socket) or set()):
            raise ImageError(f"imported {archive} into the node's containerd, but it does not list {ref}")
        imported.append(ref)
    return imported
