"""`make demo`: the whole flow on a fresh machine, printed as it goes, cleaned up on exit.

local cluster + object store → a small ONNX model → `mlmodel pack` / `mlmodel push` → the CRD → the operator →
an MLModel on the GPU pool → Ready → the runtime started locally with the command and environment of the rendered
pod template → a real prediction over the V2 API → a broken revision → the automatic rollback.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from hack.localcluster import Layout, down, status, up
from hack.localcluster.layout import REPO, read_env_file

NAMESPACE = "demo"
MODEL = "fraud-detector"
BIN = Path(sys.executable).parent
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def step(text: str) -> None:
    print(f"\n{BOLD}==> {text}{RESET}", flush=True)


def show(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, echo it and its output."""
    printable = " ".join(a if " " not in a else repr(a) for a in argv)
    print(f"{DIM}$ {printable.replace(str(REPO) + '/', '')}{RESET}", flush=True)
    res = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    out = (res.stdout + res.stderr).rstrip()
    if out:
        print(out, flush=True)
    if res.returncode != 0:
        raise SystemExit(f"demo: the command above failed ({res.returncode})")
    return res


def wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except SystemExit:
            raise
        except Exception:  # not there yet
            pass
        time.sleep(0.5)  # poll
    raise SystemExit(f"demo: timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


class Demo:
    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.layout = Layout.default()
        self.work = self.layout.root / "demo"
        self.kubectl = [str(self.layout.bin / "kubectl"), "--kubeconfig", str(self.layout.kubeconfig)]

    def k(self, *args: str, stdin: str | None = None, quiet: bool = False) -> subprocess.CompletedProcess[str]:
        if quiet:
            return subprocess.run([*self.kubectl, *args], input=stdin, capture_output=True, text=True, check=True)
        return show([*self.kubectl, *args], input=stdin)

    def model(self) -> dict[str, Any]:
        return dict(json.loads(self.k("get", "mlmodel", MODEL, "-n", NAMESPACE, "-o", "json", quiet=True).stdout))

    @contextmanager
    def process(self, name: str, argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
        log = self.work / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            print(f"{DIM}started {name} (pid {proc.pid}, log {os.path.relpath(log, REPO)}){RESET}")
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def run(self) -> None:
        step("1. The local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes) and S3 store")
        if not (before := status(self.layout)).cluster or not before.objectstore:
            self.stack.callback(down, layout=self.layout)
            self.stack.callback(step, "Stopping what the demo started")
        up(layout=self.layout)
        self.work.mkdir(parents=True, exist_ok=True)
        self.k("get", "nodes", "-L", "pool,nvidia.com/gpu.product")
        s3 = read_env_file(self.layout.objectstore_env)
        env = {**os.environ, **s3}

        step("2. A small ONNX model, packed (metadata.json + deployment_manifest.json) and pushed to the store")
        pkg = self.work / "fraud-v1"
        make_onnx_model(pkg / "model.onnx", seed=1)
        show([str(BIN / "mlmodel"), "pack", str(pkg), "--name", MODEL, "--version", "1"], env=env)
        pushed = show([str(BIN / "mlmodel"), "push", str(pkg), f"s3://models/{MODEL}/1/", "--force"], env=env)
        resource = yaml.safe_load(pushed.stdout)

        step("3. The CRD, a namespace and the credentials Secret the MLModel names")
        crd = REPO / "crds" / "serving.mlmodel.io_mlmodels.yaml"
        self.k("apply", "--server-side", "--force-conflicts", "-f", str(crd))
        self.k("wait", "--for=condition=Established", "crd/mlmodels.serving.mlmodel.io", "--timeout=60s")
        self.k("apply", "-f", "-", stdin=self.k("create", "namespace", NAMESPACE, "--dry-run=client", "-o", "yaml",
                                                quiet=True).stdout)
        self.stack.callback(lambda: self.k("delete", "namespace", NAMESPACE, "--wait=false", quiet=True))
        secret = self.k("create", "secret", "generic", "models-s3", "-n", NAMESPACE,
                        f"--from-literal=AWS_ACCESS_KEY_ID={s3['AWS_ACCESS_KEY_ID']}",
                        f"--from-literal=AWS_SECRET_ACCESS_KEY={s3['AWS_SECRET_ACCESS_KEY']}",
                        "--dry-run=client", "-o", "yaml", quiet=True).stdout
        self.k("apply", "-n", NAMESPACE, "-f", "-", stdin=secret)

        step("4. The operator, running against the local cluster")
        config = yaml.safe_load(self.layout.operator_config.read_text())
        self.metrics_port = free_port()
        config |= {"metricsPort": self.metrics_port, "healthPort": free_port(), "resync": {"intervalSeconds": 5}}
        (self.work / "operator.yaml").write_text(yaml.safe_dump(config))
        op_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # it reads models' Secrets only
        op_env["KUBECONFIG"] = str(self.layout.kubeconfig)
        argv = [sys.executable, "-m", "mlmodel_operator", "--config", str(self.work / "operator.yaml")]
        self.stack.enter_context(self.process("operator", argv, op_env))
        print(f"{DIM}$ python -m mlmodel_operator --config .local/demo/operator.yaml{RESET}")

        step("5. An MLModel (the YAML `mlmodel push` printed) on the GPU pool, one GPU per replica")
        resource["metadata"]["namespace"] = NAMESPACE
        resource["spec"] |= {"replicas": 2, "nodePool": "gpu-a100", "resources": {"gpu": 1}}
        manifest = yaml.safe_dump(resource, sort_keys=False)
        print(manifest)
        self.k("apply", "-f", "-", stdin=manifest)
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=Ready", "--timeout=120s")
        self.k("get", "mlm", "-n", NAMESPACE)
        self.k("get", "pods", "-n", NAMESPACE, "-o", "wide")

        step("6. The runtime, started locally with the rendered pod template's command and environment")
        self.serve_locally()

        step("7. A broken revision: a new package whose pods crash-loop → automatic rollback")
        pkg2 = self.work / "fraud-v2"
        make_onnx_model(pkg2 / "model.onnx", seed=2)
        show([str(BIN / "mlmodel"), "pack", str(pkg2), "--name", MODEL, "--version", "2"], env=env)
        uri2 = yaml.safe_load(show([str(BIN / "mlmodel"), "push", str(pkg2), f"s3://models/{MODEL}/2/", "--force"],
                                   env=env).stdout)["spec"]["source"]["uri"]
        patch = {"spec": {"source": {"uri": uri2}, "podMetadata": {"labels": {"mlmodel.io/simulate": "crashloop"}}}}
        self.k("patch", "mlmodel", MODEL, "-n", NAMESPACE, "--type=merge", "-p", json.dumps(patch))
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=RolledBack", "--timeout=180s")
        self.k("wait", "-n", NAMESPACE, f"mlmodel/{MODEL}", "--for=condition=Reconciling=False", "--timeout=120s")
        self.k("get", "mlm", "-n", NAMESPACE)
        show([str(BIN / "mlmodel"), "history", MODEL, "-n", NAMESPACE, "--kubeconfig", str(self.layout.kubeconfig)])
        self.k("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={MODEL}",
               "--sort-by=.lastTimestamp")
        step("Operator metrics")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(("mlmodel_operator_rollbacks_total", "mlmodel_operator_model_serving_revision",
                                    "mlmodel_operator_rollouts_total")):
                    print(line)
        step(f"Done: revision {self.model()['status'].get('revision')} serves; the failed one is in the history.")

    def serve_locally(self) -> None:
        deployment = json.loads(self.k("get", "deployment", MODEL, "-n", NAMESPACE, "-o", "json", quiet=True).stdout)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif ref := var.get("valueFrom", {}).get("secretKeyRef"):
                got = self.k("get", "secret", ref["name"], "-n", NAMESPACE, "-o", "json", quiet=True)
                data = json.loads(got.stdout)
                env[var["name"]] = base64.b64decode(data["data"][ref["key"]]).decode()
        # Only what a laptop needs differently from a pod: where to listen, where to download, and the CPU
        # (the pod on the GPU pool asks for cuda; this machine has no GPU).
        port, metrics = free_port(), free_port()
        local = {"MLMODEL_HOST": "127.0.0.1", "MLMODEL_PORT": str(port), "MLMODEL_METRICS_PORT": str(metrics),
                 "MLMODEL_MODEL_DIR": str(self.work / "models"), "MLMODEL_DEVICE": "cpu"}
        shown = {k: ("***" if "SECRET" in k or "ACCESS_KEY" in k else v) for k, v in {**env, **local}.items()}
        print(f"{DIM}command: python -m mlmodel_runtime {' '.join(container['args'])}{RESET}")
        print(f"{DIM}env from the pod template (+ local overrides): {json.dumps(shown, indent=1)}{RESET}")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLMODEL_"))}
        with self.process("runtime", [sys.executable, "-m", "mlmodel_runtime", *container["args"]],
                          {**base, **env, **local}):
            url = f"http://127.0.0.1:{port}"
            name = env["MLMODEL_MODEL_NAME"]
            wait(lambda: urllib.request.urlopen(f"{url}/v2/models/{name}/ready", timeout=2).status == 200,
                 120, "the runtime to be ready")
            with urllib.request.urlopen(f"{url}/v2/models/{name}", timeout=5) as r:
                print("model metadata:", r.read().decode())
            body = {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                "data": [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]]}]}
            print(f"{DIM}$ curl -X POST {url}/v2/models/{name}/infer -d '{json.dumps(body)}'{RESET}")
            req = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as r:
                answer = json.loads(r.read())
            print(json.dumps(answer, indent=1))
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5) as r:
                print("\n".join(line for line in r.read().decode().splitlines()
                                if line.startswith("mlmodel_runtime_requests_total")))


def main() -> int:
    with ExitStack() as stack:
        Demo(stack).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
