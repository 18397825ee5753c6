"""A Prometheus (Debian's `prometheus` package) that scrapes the runtime pods on the real node.

Debian builds Prometheus without Kubernetes service discovery, so the targets come from a file (file_sd) that
podtargets.py keeps up to date from a watch on the real node's pods through the apiserver: pods come and go
under an autoscaler, and the file follows within a second. Only the real node's pods are listed (kwok's pods
have made-up addresses nothing answers on), those that ask to be scraped (`prometheus.io/scrape`, `/port`,
`/path`, as the operator's pod template sets), labelled `namespace` and `pod`. The watcher is tied to the
running apiserver, so both are started again when the cluster was; Prometheus' data is kept between starts.
"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import procs
from .layout import REPO, Layout
from .node import NAME as NODE_NAME
from .node import apt_install
from .procs import ClusterError, Proc

SCRAPE_INTERVAL = "5s"  # an autoscaler reacts to what was scraped: short, for the local cluster's tests
JOB = "mlmodel-runtime"
BINARY = "/usr/bin/prometheus"


def folder(layout: Layout) -> Path:
    return layout.root / "prometheus"


def state_file(layout: Layout) -> Path:
    return folder(layout) / "state.json"


def config(targets_file: Path) -> dict[str, Any]:
    """Prometheus' configuration: the runtime pods that podtargets.py lists in `targets_file`."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{
            "job_name": JOB,
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "30s"}],
        }],
    }


class Prometheus:
    def __init__(self, layout: Layout, host: str) -> None:
        self.layout = layout
        self.host = host
        self.dir = folder(layout)

    @staticmethod
    def ensure_installed() -> None:
        if Path(BINARY).exists():
            return
        print("[localcluster] installing Debian's prometheus package", flush=True)
        error = apt_install(["prometheus"])
        if error:
            raise ClusterError(error)

    def start(self, server: str) -> tuple[list[Proc], dict[str, object]]:
        self.ensure_installed()
        self.dir.mkdir(parents=True, exist_ok=True)
        targets = self.dir / "targets.json"
        targets.unlink(missing_ok=True)
        conf = self.dir / "prometheus.yml"
        conf.write_text("# Written by hack/localcluster/prometheus.py\n" + yaml.safe_dump(config(targets)))
        port = procs.free_port(set())
        url = f"http://{self.host}:{port}"
        started = [procs.start("podtargets", [
            sys.executable, "-m", "hack.localcluster.podtargets", str(self.layout.kubeconfig), NODE_NAME,
            str(targets),
        ], self.dir / "podtargets.log", {"PYTHONPATH": str(REPO)})]
        try:
            procs.wait_until(targets.exists, 30, "the first list of pods (podtargets)", started)
            started.append(procs.start("prometheus", [
                BINARY, f"--config.file={conf}", f"--storage.tsdb.path={self.dir / 'data'}",
                "--storage.tsdb.retention.time=6h", f"--web.listen-address={self.host}:{port}",
                "--web.enable-lifecycle", "--log.level=warn",
            ], self.dir / "prometheus.log"))
            procs.wait_until(lambda: healthy(url), 60, "prometheus /-/ready", started)
        except BaseException:
            procs.stop(started)
            raise
        return started, {"url": url, "server": server}

    def clean(self, recorded: list[Proc]) -> None:
        procs.stop_folder(recorded, self.dir)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=3) as r:
            return int(r.status) == 200
    except OSError:
        return False


def running(layout: Layout, server: str) -> bool:
    """Prometheus runs, answers, and discovers through the apiserver at `server` (the cluster now running)."""
    recorded, state = procs.load(state_file(layout))
    return (bool(recorded) and all(procs.alive(p) for p in recorded) and state.get("server") == server
            and healthy(str(state.get("url", ""))))


def url(layout: Layout) -> str | None:
    """Where the running Prometheus answers (its HTTP API), or None."""
    recorded, state = procs.load(state_file(layout))
    return str(state["url"]) if recorded and "url" in state else None
