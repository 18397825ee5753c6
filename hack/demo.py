"""`make demo`: the whole flow on the local cluster's real node, printed as it goes, cleaned up on exit.

local cluster with the real node → the images built here (`python -m hack.images build --load`) → the operator
by `helm install` (2 pods, leader election) → a small ONNX model, `mlmodel pack` / `mlmodel push` → an MLModel on
the real node's pool → runtime pods download, verify and load it (the startup probe holds until then) → a
prediction with `curl` through the Service's ClusterIP → a client loop through the Service → a revision whose
model onnxruntime cannot load → the runtime exits with its contract exit code → CrashLoopBackOff → the automatic
rollback, with the client loop's failed requests counted → a second model on the GPU pool (kwok's simulated
nodes). Nothing runs beside the cluster in place of a pod.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from hack import deploy
from hack.localcluster import REAL_POOL, Layout, down, status, up
from hack.localcluster.layout import REPO, read_env_file
from hack.traffic import ClientLoop, Tally

NAMESPACE = "demo"  # the model on the real node
GPU_NAMESPACE = "demo-gpu"  # the model on kwok's simulated GPU nodes
MODEL = "fraud-detector"
# The operator's release and namespace: the demo's own, so it never touches another install on a shared cluster.
# (Not `mlmodel-operator`: the chart's metrics Service `mlmodel-operator-metrics` gives its pods the service link
# MLMODEL_OPERATOR_METRICS_PORT=tcp://..., which the operator reads as its metricsPort setting and exits.)
RELEASE, SYSTEM = "demo", "demo-system"
REVISION_LABEL = "serving.mlmodel.io/revision"
BIN = Path(sys.executable).parent
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
# Detect the crash loop after 2 restarts (kubelet's back-off: 10 s, then 20 s) instead of 3 (a further 40 s).
OPERATOR_CONFIG: dict[str, Any] = {"failureDetection": {"crashLoopRestarts": 2, "checkIntervalSeconds": 2}}
INFER_BODY: dict[str, Any] = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                          "data": [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]]}]}
T = TypeVar("T")


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def note(text: str) -> None:
    print(f"{DIM}{text}{RESET}", flush=True)


def echo(argv: list[str]) -> None:
    printable = " ".join(a if " " not in a and "{" not in a else f"'{a}'" for a in argv)
    note(f"$ {printable.replace(str(REPO) + '/', '')}")


def show(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, echo it and its output."""
    echo(argv)
    res = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    out = (res.stdout + res.stderr).rstrip()
    if out:
        print(out, flush=True)
    if res.returncode != 0:
        raise SystemExit(f"demo: the command above failed ({res.returncode})")
    return res


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 1.0) -> T:
    """Poll `check` until it returns a value (not None/False) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)  # poll interval of a wait with a deadline


def make_onnx_model(path: Path, seed: int) -> None:
    """A small MLP (4 inputs → 8 → 2 scores) with the onnx helper API: no download, no framework."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1, b1 = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    w2, b2 = rng.standard_normal((8, 2)).astype(np.float32), rng.standard_normal(2).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["hr"]),
         helper.make_node("Gemm", ["hr", "w2", "b2"], ["scores"])],
        "fraud_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def make_unloadable_onnx_model(path: Path) -> None:
    """The same model with its last layer replaced by an operator that exists in no opset: the file is a valid
    protobuf with the same inputs and outputs (so `mlmodel pack`, the package checks and the operator accept it),
    but onnxruntime refuses the graph ("No Op registered for FraudScoreV2")."""
    import onnx
    from onnx import helper

    make_onnx_model(path, seed=2)
    model = onnx.load(str(path))
    last = model.graph.node[-1]
    model.graph.node.remove(last)
    model.graph.node.append(helper.make_node("FraudScoreV2", ["hr"], ["scores"], name="score"))
    onnx.save(model, str(path))


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Demo:
    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.layout = Layout.default()
        self.work = self.layout.root / "demo"
        self.kubectl = [str(self.layout.bin / "kubectl"), "--kubeconfig", str(self.layout.kubeconfig)]
        self.release, self.system = RELEASE, SYSTEM
        self.installed = False
        self.stops_cluster = False  # the demo started the cluster: stopping it removes everything in it
        self.s3: dict[str, str] = {}
        self.url = ""
        self.pushed_v1: dict[str, Any] = {}
        self.tally: Tally | None = None

    def k(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return show([*self.kubectl, *args], input=stdin)

    def get(self, *args: str) -> Any:
        """`kubectl get ... -o json`, quietly."""
        res = subprocess.run([*self.kubectl, "get", *args, "-o", "json"], capture_output=True, text=True,
                             check=True)
        return json.loads(res.stdout)

    def mlmodel(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return show([str(BIN / "mlmodel"), *args], env=env)

    def run(self) -> None:
        started = time.monotonic()
        self.cluster()
        self.images()
        self.operator()
        self.serve()
        self.broken_revision()
        self.gpu_pool()
        failed = self.tally.failed if self.tally else -1
        step(f"Done in {time.monotonic() - started:.0f}s: failed requests during the broken rollout and the "
             f"rollback: {failed}")
        if failed:
            raise SystemExit(f"demo: {failed} requests failed through the Service ({self.tally.summary()})"
                             if self.tally else "demo: the client loop did not run")

    # 1. ---------------------------------------------------------------------------------------------------
    def cluster(self) -> None:
        step("1. The local cluster: control plane, kwok's simulated GPU nodes, the real node real-0, S3 store")
        before = status(self.layout)
        if before.node_unavailable:
            raise SystemExit(f"demo: this machine cannot run the real node the demo needs: {before.node_unavailable}")
        if not before.cluster or not before.objectstore:
            self.stack.callback(down, layout=self.layout)
            self.stack.callback(step, "Stopping the cluster the demo started (what ran in it goes with it)")
            self.stops_cluster = True
        t = time.monotonic()
        now = up(layout=self.layout)
        if not now.node:
            raise SystemExit(f"demo: the real node is not running: {now.node_unavailable or 'see make cluster-status'}")
        note(f"cluster up in {time.monotonic() - t:.0f}s")
        self.k("get", "nodes", "-o", "wide", "-L", "pool")
        self.work.mkdir(parents=True, exist_ok=True)
        self.s3 = read_env_file(self.layout.objectstore_env)

    # 2. ---------------------------------------------------------------------------------------------------
    def images(self) -> None:
        step("2. The runtime and operator images, built from Dockerfile.runtime / Dockerfile.operator with buildah "
             "and loaded into real-0's containerd (cached by content)")
        argv = [sys.executable, "-m", "hack.images", "build", "--load"]
        echo(argv)
        t = time.monotonic()
        if subprocess.run(argv, cwd=REPO).returncode != 0:
            raise SystemExit("demo: the image build failed (see above)")
        note(f"images ready in {time.monotonic() - t:.0f}s")
        print(json.dumps(deploy.image_refs(self.layout), indent=1))

    # 3. ---------------------------------------------------------------------------------------------------
    def namespaces(self) -> None:
        """The models' namespaces (the chart gives the operator Roles there) and their credentials Secret."""
        self.stack.callback(self.cleanup)
        for ns in (NAMESPACE, GPU_NAMESPACE):
            manifest = subprocess.run([*self.kubectl, "create", "namespace", ns, "--dry-run=client", "-o", "yaml"],
                                      capture_output=True, text=True, check=True).stdout
            self.k("apply", "-f", "-", stdin=manifest)
            secret = subprocess.run(
                [*self.kubectl, "create", "secret", "generic", "models-s3", "-n", ns,
                 f"--from-literal=AWS_ACCESS_KEY_ID={self.s3['AWS_ACCESS_KEY_ID']}",
                 f"--from-literal=AWS_SECRET_ACCESS_KEY={self.s3['AWS_SECRET_ACCESS_KEY']}",
                 "--dry-run=client", "-o", "yaml"], capture_output=True, text=True, check=True).stdout
            self.k("apply", "-n", ns, "-f", "-", stdin=secret)

    def cleanup(self) -> None:
        """The models first, while the operator still runs to remove its finalizers; the namespaces; the operator.
        Nothing to do one by one when the cluster the demo started is stopped next."""
        if self.stops_cluster:
            return
        step(f"Cleaning up: namespaces {NAMESPACE}, {GPU_NAMESPACE}" + (f", helm release {self.release}, namespace "
                                                                       f"{self.system}" if self.installed else ""))
        t = time.monotonic()
        for ns in (NAMESPACE, GPU_NAMESPACE):
            self.delete_namespace(ns)
        note(f"models and their namespaces deleted in {time.monotonic() - t:.0f}s")
        if self.installed:
            t = time.monotonic()
            deploy.uninstall(self.layout, release=self.release, namespace=self.system)
            subprocess.run([*self.kubectl, "delete", "namespace", self.system, "--ignore-not-found",
                            "--timeout=120s"], capture_output=True, text=True)
            note(f"operator uninstalled in {time.monotonic() - t:.0f}s")

    def delete_namespace(self, ns: str) -> None:
        cmd = [*self.kubectl, "delete", "mlmodels", "--all", "-n", ns, "--timeout=60s"]
        if subprocess.run(cmd, capture_output=True, text=True).returncode != 0:  # the operator is gone
            for name in subprocess.run([*self.kubectl, "get", "mlmodels", "-n", ns, "-o", "name"],
                                       capture_output=True, text=True).stdout.split():
                subprocess.run([*self.kubectl, "patch", name, "-n", ns, "--type=merge",
                                "-p", '{"metadata":{"finalizers":null}}'], capture_output=True, text=True)
        subprocess.run([*self.kubectl, "delete", "namespace", ns, "--ignore-not-found", "--timeout=120s"],
                       capture_output=True, text=True)

    # 4. ---------------------------------------------------------------------------------------------------
    def operator(self) -> None:
        step(f"3. The operator as users install it: helm install {self.release} charts/mlmodel-operator -n "
             f"{self.system} (2 replicas, leader election, its image built here, on real-0)")
        values = deploy.values(self.layout, namespaces=[NAMESPACE, GPU_NAMESPACE], config=OPERATOR_CONFIG)
        self.namespaces()
        shown = {k: v for k, v in values.items() if k != "config"}
        keys = ("leaderElection", "watch", "failureDetection", "objectStore")
        shown["config"] = {k: values["config"][k] for k in keys}
        note("helm values (the node pools and runtime images of config are in the file):")
        print(yaml.safe_dump(shown, sort_keys=False).rstrip())
        self.installed = True  # from here on, cleanup uninstalls (a half-done install included)
        echo([*deploy.helm_argv(self.layout), "upgrade", "--install", self.release, "charts/mlmodel-operator",
              "-n", self.system, "--create-namespace", "-f", f".local/deploy/{self.release}-values.yaml", "--wait"])
        t = time.monotonic()
        res = deploy.install(self.layout, values, release=self.release, namespace=self.system, timeout="300s")
        print(res.stdout.rstrip())
        note(f"operator pods Ready in {time.monotonic() - t:.0f}s")
        self.k("get", "pods", "-n", self.system, "-o", "wide")

        def holder() -> str | None:
            leases = self.get("leases", "-n", self.system)["items"]
            return next((str(h) for lease in leases if (h := lease["spec"].get("holderIdentity"))), None)

        leader = wait_for(holder, 60, "an operator pod to hold the leader-election Lease")
        self.k("get", "leases", "-n", self.system, "-o",
               "custom-columns=LEASE:.metadata.name,HOLDER:.spec.holderIdentity,RENEWED:.spec.renewTime")
        print(f"leader: {leader}; the other replica waits for the Lease")

    # 5. ---------------------------------------------------------------------------------------------------
    def push(self, folder: str, version: str, make: Callable[[Path], None]) -> dict[str, Any]:
        pkg = self.work / folder
        make(pkg / "model.onnx")
        env = {**os.environ, **self.s3}
        self.mlmodel("pack", str(pkg), "--name", MODEL, "--version", version, env=env)
        pushed = self.mlmodel("push", str(pkg), f"s3://models/{MODEL}/{version}/", "--force", env=env)
        return dict(yaml.safe_load(pushed.stdout))

    def serve(self) -> None:
        step("4. A small ONNX model, packed (metadata.json + deployment_manifest.json) and pushed to the store")
        resource = self.push("fraud-v1", "1", lambda p: make_onnx_model(p, seed=1))
        self.pushed_v1 = copy.deepcopy(resource)

        step(f"5. An MLModel on the real node's pool `{REAL_POOL}`, 2 replicas, small requests")
        resource["metadata"]["namespace"] = NAMESPACE
        resource["spec"] |= {"replicas": 2, "nodePool": REAL_POOL,
                             "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}
        manifest = yaml.safe_dump(resource, sort_keys=False)
        print(manifest.rstrip())
        t = time.monotonic()
        self.k("apply", "-f", "-", stdin=manifest)
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=Ready", "--timeout=300s")
        note(f"Ready in {time.monotonic() - t:.0f}s (pods scheduled, package downloaded and verified, model loaded)")
        self.k("get", "mlm", "-n", NAMESPACE)
        self.k("get", "pods", "-n", NAMESPACE, "-o", "wide", "-L", REVISION_LABEL)
        self.startup_evidence()

        step("6. A prediction with curl through the Service's ClusterIP (kube-proxy picks a pod on real-0)")
        service = self.get("service", MODEL, "-n", NAMESPACE)
        port = next(p["port"] for p in service["spec"]["ports"] if p.get("name") == "http")
        self.url = f"http://{service['spec']['clusterIP']}:{port}/v2/models/{MODEL}/infer"
        self.k("get", "service", MODEL, "-n", NAMESPACE, "-o", "wide")
        # Ready pods are in the EndpointSlice at once; kube-proxy writes its iptables rules a moment later (until
        # then the ClusterIP refuses connections). A client that arrives first sees that: wait for it.
        ready_url = self.url.removesuffix("/infer") + "/ready"
        t = time.monotonic()
        wait_for(lambda: answers(ready_url), 60, f"kube-proxy to route {ready_url}", every=0.2)
        note(f"the ClusterIP answers (waited {time.monotonic() - t:.1f}s)")
        show(["curl", "-sS", "--fail-with-body", "-H", "Content-Type: application/json", "-d",
              json.dumps(INFER_BODY, separators=(",", ":")), self.url])
        print()

    def startup_evidence(self) -> None:
        """One runtime pod's timeline: container started → startup probe 503 until the model is loaded → Ready."""
        pod = self.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={MODEL}")["items"][0]
        name = pod["metadata"]["name"]
        probe = pod["spec"]["containers"][0]["startupProbe"]
        print(f"\n{name}: startupProbe GET {probe['httpGet']['path']} every {probe['periodSeconds']}s, "
              f"failureThreshold {probe['failureThreshold']} (budget from the package size)")
        state = pod["status"]["containerStatuses"][0]
        print(f"  container started   {state['state'].get('running', {}).get('startedAt')}")
        logs = subprocess.run([*self.kubectl, "logs", name, "-n", NAMESPACE], capture_output=True, text=True).stdout
        for line in logs.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") in ("fetching package", "package verified", "model ready"):
                print(f"  runtime log         {entry.get('time')} {entry['message']}")
        for cond in pod["status"]["conditions"]:
            print(f"  condition {cond['type']:<17} {cond['status']:<5} {cond.get('lastTransitionTime')}")
        events = self.get("events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={name}")["items"]
        for ev in events:
            print(f"  event {ev['reason']:<10} x{ev.get('count', 1)} {ev['message'][:150]}")
        if not any(ev["reason"] == "Unhealthy" for ev in events):
            note("  (the model loaded before the startup probe's first failing answer: no Unhealthy event)")

    # 7. ---------------------------------------------------------------------------------------------------
    def broken_revision(self) -> None:
        step("7. A client loop through the ClusterIP for the whole broken rollout and the rollback")
        loop = self.stack.enter_context(ClientLoop(self.url, INFER_BODY))
        self.tally = loop.tally
        loop.wait_for_requests(20, 30)
        print(f"client loop running: {loop.tally.summary()}")

        step("8. Revision 2: a package that passes every check but whose model onnxruntime cannot load")
        uri = self.push("fraud-v2-broken", "2", make_unloadable_onnx_model)["spec"]["source"]["uri"]
        self.k("patch", "mlmodel", MODEL, "-n", NAMESPACE, "--type=merge",
               "-p", json.dumps({"spec": {"source": {"uri": uri}}}))

        def crashed() -> dict[str, Any] | None:
            for pod in self.get("pods", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={MODEL}")["items"]:
                for cs in pod.get("status", {}).get("containerStatuses", []):
                    waiting = cs.get("state", {}).get("waiting", {}).get("reason")
                    if cs.get("lastState", {}).get("terminated") and waiting == "CrashLoopBackOff":
                        return dict(pod)
            return None

        pod = wait_for(crashed, 180, "a runtime pod of revision 2 in CrashLoopBackOff")
        name = pod["metadata"]["name"]
        cs = pod["status"]["containerStatuses"][0]
        term = cs["lastState"]["terminated"]
        print(f"{name}: revision {pod['metadata']['labels'].get(REVISION_LABEL)}, restarts {cs['restartCount']}, "
              f"state {cs['state']['waiting']['reason']}")
        print(f"  lastState.terminated: exitCode {term['exitCode']} ({term.get('reason')}), "
              f"ran {term.get('startedAt')} → {term.get('finishedAt')}")
        note("  exit code 1 is the contract's 'the model cannot be loaded' (docs/contracts.md)")
        self.k("get", "pods", "-n", NAMESPACE, "-o", "wide", "-L", REVISION_LABEL)
        logs = subprocess.run([*self.kubectl, "logs", name, "-n", NAMESPACE, "--previous"],
                              capture_output=True, text=True).stdout
        note(f"$ kubectl logs {name} -n {NAMESPACE} --previous   # its errors and last line")
        lines = logs.splitlines()
        for line in [line for line in lines if '"level":"error"' in line] + lines[-1:]:
            print(line[:600])

        step("9. The operator sees the crash loop and rolls back to revision 1 by itself")
        t = time.monotonic()
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=RolledBack", "--timeout=300s")
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=Reconciling=False", "--timeout=180s")
        note(f"rolled back {time.monotonic() - t:.0f}s after the first crash was seen")
        tally = loop.stop()
        print(f"client loop through the Service: {tally.summary()}")
        print(f"answers by model version: {dict(tally.revisions)}")
        print(f"FAILED REQUESTS: {tally.failed}")
        self.k("get", "mlm", "-n", NAMESPACE)
        self.k("get", "pods", "-n", NAMESPACE, "-o", "wide", "-L", REVISION_LABEL)
        self.mlmodel("history", MODEL, "-n", NAMESPACE, "--kubeconfig", str(self.layout.kubeconfig))
        self.k("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={MODEL}",
               "--sort-by=.lastTimestamp")

    # 10. --------------------------------------------------------------------------------------------------
    def gpu_pool(self) -> None:
        step("10. GPU placement: a second MLModel on the gpu-a100 pool with one GPU per replica "
             "(kwok's simulated nodes: placement and readiness are simulated, no container runs there)")
        resource = copy.deepcopy(self.pushed_v1)  # the package of revision 1
        resource["metadata"]["namespace"] = GPU_NAMESPACE
        resource["spec"] |= {"replicas": 2, "nodePool": "gpu-a100", "resources": {"gpu": 1}}
        self.k("apply", "-f", "-", stdin=yaml.safe_dump(resource, sort_keys=False))
        self.k("wait", "-n", GPU_NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=Ready", "--timeout=180s")
        self.k("get", "mlm", "-n", GPU_NAMESPACE)
        self.k("get", "pods", "-n", GPU_NAMESPACE, "-o",
               "custom-columns=POD:.metadata.name,NODE:.spec.nodeName,GPU:.spec.containers[0].resources.limits."
               "nvidia\\.com/gpu,TOLERATES:.spec.tolerations[0].key,READY:.status.conditions[?(@.type=='Ready')]"
               ".status")
        nodes = {p["spec"].get("nodeName") for p in self.get("pods", "-n", GPU_NAMESPACE)["items"]}
        print(f"placed on {sorted(n for n in nodes if n)} (kwok-simulated A100 nodes)")


def main() -> int:
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            Demo(stack).run()
    finally:
        print(f"\n{BOLD}make demo: {time.monotonic() - started:.0f}s in total (cleanup included){RESET}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
