"""`make images`: the runtime (VARIANT=onnx) and operator images built here with buildah, on a Debian base made
with mmdebstrap, cached by content, exported as OCI archives and loaded into the real node's containerd.

Other code reads what was built from `Layout.images / "images.json"` through `read_refs` (docs/images.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hack.localcluster.layout import Layout

MANIFEST = "images.json"
NAMES = ("runtime", "operator", "base")


class ImagesNotBuilt(FileNotFoundError):
    """No images.json yet: `make images` has not run (or never finished)."""


def manifest_path(layout: Layout) -> Path:
    return layout.images / MANIFEST


def read_manifest(layout: Layout) -> dict[str, Any]:
    """images.json as written by the last successful `make images`."""
    path = manifest_path(layout)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ImagesNotBuilt(f"no {path}: run `make images` first") from None


def read_refs(layout: Layout) -> dict[str, str]:
    """{"runtime": ..., "operator": ..., "base": ...}: the refs of the images built here, e.g.
    `localhost/mlmodel/runtime:onnx-0123456789ab` (in buildah's storage and, after --load, in the node's)."""
    data = read_manifest(layout)
    return {name: str(data[name]) for name in NAMES}
