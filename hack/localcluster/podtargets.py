"""Prometheus' scrape targets for the local cluster: the pods on the real node that ask to be scraped.

Debian's prometheus package is built without Kubernetes service discovery (its client libraries are not in
Debian: `field kubernetes_sd_configs not found`), so this process stands in for it: it lists and watches the
real node's pods through the apiserver and rewrites a file_sd file (atomically) whenever the set changes;
Prometheus picks the file up on change. Pods that are Running, have an IP and the annotation
`prometheus.io/scrape: "true"` (with `prometheus.io/port` and `/path`, as the operator's pod template sets) are
targets, labelled with `namespace` and `pod`.

    python -m hack.localcluster.podtargets KUBECONFIG NODE OUT.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """file_sd groups, one per scrapable pod, sorted (the same pods give the same file)."""
    out = []
    for pod in pods:
        meta, status = pod.get("metadata", {}), pod.get("status", {})
        ann = meta.get("annotations") or {}
        ip, port = status.get("podIP"), ann.get("prometheus.io/port")
        if ann.get("prometheus.io/scrape") != "true" or status.get("phase") != "Running" or not ip or not port:
            continue
        if meta.get("deletionTimestamp"):
            continue
        out.append({"targets": [f"{ip}:{port}"], "labels": {
            "namespace": meta["namespace"], "pod": meta["name"],
            "__metrics_path__": ann.get("prometheus.io/path", "/metrics")}})
    return sorted(out, key=lambda g: (g["labels"]["namespace"], g["labels"]["pod"]))


def write(out: Path, groups: list[dict[str, Any]]) -> None:
    text = json.dumps(groups, indent=1)
    if out.exists() and out.read_text() == text:
        return
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)


def main(argv: list[str]) -> int:
    from kubernetes import client, config, watch

    kubeconfig, node, out = argv[0], argv[1], Path(argv[2])
    config.load_kube_config(kubeconfig)  # type: ignore[no-untyped-call]
    api = client.CoreV1Api()
    selector = f"spec.nodeName={node}"
    while True:
        try:
            listed = api.api_client.sanitize_for_serialization(api.list_pod_for_all_namespaces(field_selector=selector))
            pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in listed.get("items", [])}
            write(out, targets(list(pods.values())))
            watcher = watch.Watch()  # type: ignore[no-untyped-call]
            stream = watcher.stream(  # type: ignore[no-untyped-call]
                api.list_pod_for_all_namespaces, field_selector=selector,
                resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=120, _request_timeout=150)
            for event in stream:
                pod = api.api_client.sanitize_for_serialization(event["object"])
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
                if event["type"] == "DELETED":
                    pods.pop(key, None)
                else:
                    pods[key] = pod
                write(out, targets(list(pods.values())))
        except Exception as exc:  # the apiserver restarted, the watch expired: list again
            print(f"podtargets: {type(exc).__name__}: {exc}; listing again", file=sys.stderr, flush=True)
            time.sleep(1)  # back off before listing again


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
