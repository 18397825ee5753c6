"""KEDA on the local cluster: its operator and its metrics API server as host processes, its CRDs, and the
`v1beta1.external.metrics.k8s.io` APIService that lets the HPA controller read KEDA's metrics.

Both binaries are built from the Go module proxy and cached (`hack/build/build-binaries.sh keda`). They talk to
the apiserver with the admin kubeconfig (as the control plane's own tools here do). The operator's gRPC
metrics service and the metrics API server share one certificate from a CA of KEDA's own (in `.local/keda/certs`,
the files KEDA reads: ca.crt, tls.crt, tls.key); the APIService trusts that CA. The metrics API server listens on
the bridge's gateway and the APIService's Service has an EndpointSlice pointing there: the apiserver dials it
directly (`--enable-aggregator-routing`). The apiserver needs the aggregation layer's flags: a control plane
started before it had them gets a new apiserver (kube.ControlPlane.ensure_aggregation).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from . import pki, procs
from .layout import REPO, Layout
from .procs import ClusterError, Proc

NAMESPACE = "keda"
SERVICE = "keda-metrics-apiserver"
API_SERVICE = "v1beta1.external.metrics.k8s.io"
BUILD_SCRIPT = REPO / "hack" / "build" / "build-binaries.sh"


def folder(layout: Layout) -> Path:
    return layout.root / "keda"


def state_file(layout: Layout) -> Path:
    return folder(layout) / "state.json"


def binaries() -> Path:
    """Build KEDA once (a cold build takes tens of minutes) and return the cached folder."""
    try:
        res = subprocess.run([str(BUILD_SCRIPT), "keda"], check=True, stdout=subprocess.PIPE, text=True)
    except subprocess.CalledProcessError as e:
        raise ClusterError(f"building KEDA failed (exit {e.returncode}); see the messages above") from e
    out = Path(res.stdout.strip().splitlines()[-1])
    missing = [b for b in ("keda", "keda-adapter", "crds/keda.sh_scaledobjects.yaml") if not (out / b).exists()]
    if missing:
        raise ClusterError(f"missing after the KEDA build in {out}: {', '.join(missing)}")
    return out


def install_crds(kubectl: Any, bins: Path | None = None) -> None:
    """KEDA's CRDs (ScaledObject, ScaledJob, TriggerAuthentication, ClusterTriggerAuthentication and the eventing
    ones, CloudEventSource and ClusterCloudEventSource, whose informers the operator waits for), applied."""
    for crd in sorted(((bins or binaries()) / "crds").glob("*.yaml")):
        kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=mlmodel-localcluster", "-f", str(crd))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/scaledobjects.keda.sh")


def _certs(layout: Layout, host: str) -> Path:
    """KEDA's CA and the one certificate both its processes serve and dial with."""
    certs = folder(layout) / "certs"
    if not (certs / "tls.crt").exists():
        dns = ["localhost", SERVICE, f"{SERVICE}.{NAMESPACE}", f"{SERVICE}.{NAMESPACE}.svc"]
        ips = sorted({"127.0.0.1", host})
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        pki.issue_ca_and_leaf(certs, "ca", "tls", x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SERVICE)]),
                              sans, client=True, server=True)
    return certs


def registration(host: str, port: int, ca_bundle: str) -> list[dict[str, Any]]:
    """The namespace, the selector-less Service with its EndpointSlice at `host:port`, and the APIService."""
    labels = {"app.kubernetes.io/part-of": "keda-operator", "app.kubernetes.io/managed-by": "mlmodel-localcluster"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": labels},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{SERVICE}-host", "namespace": NAMESPACE,
                      "labels": {**labels, "kubernetes.io/service-name": SERVICE,
                                 "endpointslice.kubernetes.io/managed-by": "mlmodel-localcluster"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": API_SERVICE, "labels": labels},
         "spec": {"service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
                  "group": "external.metrics.k8s.io", "version": "v1beta1", "caBundle": ca_bundle,
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]


class Keda:
    def __init__(self, layout: Layout, kubectl: Any, host: str) -> None:
        """`kubectl`: a function running kubectl against the local cluster (ControlPlane.kubectl)."""
        self.layout = layout
        self.kubectl = kubectl
        self.host = host
        self.dir = folder(layout)

    def start(self) -> tuple[list[Proc], dict[str, object]]:
        bins = binaries()
        install_crds(self.kubectl, bins)
        certs = _certs(self.layout, self.host)
        ports: set[int] = set()
        grpc, op_metrics, op_health, api, adapter_metrics = (procs.free_port(ports) for _ in range(5))
        kubeconfig = str(self.layout.kubeconfig)
        env = {"KUBECONFIG": kubeconfig, "WATCH_NAMESPACE": "", "POD_NAMESPACE": NAMESPACE,
               "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE}
        logs = self.dir / "logs"
        ca_dir = self.dir / "custom-ca"  # CAs the scalers trust beyond the system's (none)
        ca_dir.mkdir(parents=True, exist_ok=True)
        started: list[Proc] = []
        try:
            started.append(procs.start("keda-operator", [
                str(bins / "keda"), "--leader-elect=false", "--enable-cert-rotation=false",
                f"--cert-dir={certs}", f"--ca-dir={ca_dir}",
                f"--metrics-service-bind-address=127.0.0.1:{grpc}",
                f"--metrics-bind-address=127.0.0.1:{op_metrics}",
                f"--health-probe-bind-address=127.0.0.1:{op_health}",
                "--zap-log-level=info", "--zap-encoder=console",
            ], logs / "keda-operator.log", env))
            started.append(procs.start("keda-metrics-apiserver", [
                str(bins / "keda-adapter"), f"--bind-address={self.host}", f"--secure-port={api}",
                f"--cert-dir={certs}", f"--tls-cert-file={certs / 'tls.crt'}",
                f"--tls-private-key-file={certs / 'tls.key'}",
                f"--lister-kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--metrics-service-address=127.0.0.1:{grpc}", "--metrics-service-grpc-authority=localhost",
                f"--port={adapter_metrics}", "--zap-log-level=info", "--zap-encoder=console",
            ], logs / "keda-metrics-apiserver.log", env))
            procs.wait_until(lambda: _http_ok(f"http://127.0.0.1:{op_health}/readyz"), 90,
                             "keda-operator /readyz", started)
            ca_bundle = _b64((certs / "ca.crt").read_bytes())
            self.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=mlmodel-localcluster",
                         "-f", "-", stdin=yaml.safe_dump_all(registration(self.host, api, ca_bundle)))
            procs.wait_until(self.api_available, 90, f"APIService {API_SERVICE} Available", started)
            return started, {"health": f"http://127.0.0.1:{op_health}/readyz", "apiserverPort": api}
        except BaseException:
            procs.stop(started)
            raise

    def api_available(self) -> bool:
        svc = json.loads(self.kubectl("get", "apiservice", API_SERVICE, "-o", "json"))
        return any(c["type"] == "Available" and c["status"] == "True"
                   for c in svc.get("status", {}).get("conditions", []))

    def clean(self, recorded: list[Proc]) -> None:
        procs.stop_folder(recorded, self.dir)


def unregister(kubectl: Any) -> None:
    """The APIService goes with the metrics server (else every discovery lists an unavailable group)."""
    kubectl("delete", "apiservice", API_SERVICE, "--ignore-not-found", "--wait=false")


def running(layout: Layout, kubectl: Any) -> bool:
    recorded, state = procs.load(state_file(layout))
    if not recorded or not all(procs.alive(p) for p in recorded):
        return False
    try:
        return _http_ok(str(state.get("health", ""))) and Keda(layout, kubectl, "").api_available()
    except Exception:
        return False


def _http_ok(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return int(r.status) == 200
    except (OSError, ValueError):
        return False


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()
