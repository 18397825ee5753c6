"""The host tools the image builds need (Debian packages, installed with apt when missing) and how to run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from hack.localcluster.node import apt_install

RUNC = "/usr/sbin/runc"
# command or file -> the Debian package that brings it
PACKAGES = {"buildah": "buildah", "mmdebstrap": "mmdebstrap", "ctr": "containerd", RUNC: "runc"}


class ImageError(Exception):
    """Building, exporting or loading an image failed; the message says which step and why."""


def _log(msg: str) -> None:
    print(f"[images] {msg}", file=sys.stderr, flush=True)


def cannot_build_reason() -> str | None:
    """Why this machine cannot build images at all (None when it can, packages aside)."""
    if not sys.platform.startswith("linux"):
        return f"building images needs Linux (buildah, mmdebstrap); this is {sys.platform}"
    if os.geteuid() != 0:
        return ("building images needs root here: buildah runs rootful (no subuid/subgid mapping is set up) "
                "and mmdebstrap makes the base image's root filesystem in a chroot; run `make images` as root")
    return None


def missing_packages() -> list[str]:
    return sorted({pkg for what, pkg in PACKAGES.items()
                   if not (Path(what).exists() if what.startswith("/") else shutil.which(what))})


def ensure_tools() -> None:
    """Fail with the reason when this machine cannot build; install missing Debian packages with apt."""
    reason = cannot_build_reason()
    if reason:
        raise ImageError(reason)
    missing = missing_packages()
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise ImageError(f"missing tools and no apt-get to install them: install the packages {' '.join(missing)}")
    _log(f"installing Debian packages: {' '.join(missing)}")
    error = apt_install(missing)
    if error:
        raise ImageError(error)


def run(argv: list[str], *, what: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool; on failure raise ImageError naming `what` with the tail of its output."""
    env = {**os.environ, "BUILDAH_RUNTIME": RUNC}
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ImageError(f"{what}: `{' '.join(argv[:3])} ...` did not finish within {timeout:.0f}s") from e
    if check and res.returncode != 0:
        tail = (res.stderr or res.stdout).strip()[-1500:]
        raise ImageError(f"{what} failed (exit {res.returncode}): `{' '.join(argv)}`\n{tail}")
    return res
