"""Kubeconfigs that authenticate as a ServiceAccount: the same API server as the admin's, its token only."""

from __future__ import annotations

from pathlib import Path

import yaml


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    """Write (to `path`) a kubeconfig for `admin`'s cluster that authenticates with `token` only."""
    cluster = yaml.safe_load(admin.read_text())["clusters"][0]
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": cluster["name"], "user": "token"}}],
        "current-context": "token",
    }))
    return path
