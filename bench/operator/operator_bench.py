"""Operator benchmark on the local cluster and object store (run by hand; prints figures, asserts nothing).

    .venv/bin/python bench/operator/operator_bench.py [--latency-models 50] [--burst-models 200]

1. apply -> Deployment created: MLModels applied one at a time; the time from the create call until a
   watch on Deployments sees the model's Deployment (p50, p95).
2. N MLModels applied at once -> all Ready (a watch on MLModels sees Ready=True for every one), next to a
   baseline in the same run: the same N Deployments and Services (rendered by the operator's own render
   functions) created directly with the Kubernetes client until every Deployment is available. Ratio.
3. The operator's peak RSS (VmHWM) once the N models are Ready.

It starts its own operator process (the local cluster's config, metrics and health on free ports) and
removes its namespaces and bucket at the end. Needs `make cluster-up`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # hack.localcluster and tests.support, when run as a script

from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402
from mlmodel_operator.config import load_config  # noqa: E402
from mlmodel_operator.render import RenderInput, render_deployment, render_service  # noqa: E402
from mlmodel_operator.spec import GROUP, PLURAL, VERSION, MLModel, PackageStatus  # noqa: E402

from hack.localcluster.layout import Layout, read_env_file  # noqa: E402
from tests.support.packages import build_package, make_onnx_mlp, upload_dir  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

# Small requests, so that hundreds of replicas fit on the simulated nodes.
REQUESTS = {"cpu": "10m", "memory": "16Mi"}
POOLS = ("cpu", "gpu-a100")  # alternate: room for 110 pods per node


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class Seen:
    """A background watch that records when each object first met a condition."""

    def __init__(self, list_fn: Callable[..., Any], namespace: str, test: Callable[[dict[str, Any]], bool]) -> None:
        self.times: dict[str, float] = {}
        self._cond = threading.Condition()
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        self._stopped = False
        self._thread = threading.Thread(target=self._run, args=(list_fn, namespace, test), daemon=True)
        self._thread.start()

    def _run(self, list_fn: Callable[..., Any], namespace: str, test: Callable[[dict[str, Any]], bool]) -> None:
        try:
            for event in self._watch.stream(  # type: ignore[no-untyped-call]
                list_fn, namespace=namespace, _preload_content=False
            ):
                obj = event["raw_object"]
                name = obj["metadata"]["name"]
                now = time.perf_counter()
                if name not in self.times and test(obj):
                    with self._cond:
                        self.times[name] = now
                        self._cond.notify_all()
        except Exception as exc:  # the stream ends this way when stop() closes it
            if not self._stopped:
                log(f"watch on {namespace} ended: {exc!r}")

    def wait(self, names: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not names <= self.times.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = sorted(names - self.times.keys())
                    raise TimeoutError(f"{len(missing)} never got there, e.g. {missing[:5]}")
                self._cond.wait(left)

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()  # type: ignore[no-untyped-call]


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _available(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    want = obj["spec"].get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) == want
        and status.get("replicas", 0) == want
    )


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.layout = Layout.default()
        self.kubeconfig = str(self.layout.kubeconfig)
        config.load_kube_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]
        self.api = client.ApiClient()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.store = read_env_file(self.layout.objectstore_env)
        self.tag = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.operator: subprocess.Popen[bytes] | None = None

    # -- setup -----------------------------------------------------------------------------

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        res = subprocess.run([str(self.layout.bin / "kubectl"), "--kubeconfig", self.kubeconfig, *args],
                             input=stdin, capture_output=True, text=True, check=True)
        return res.stdout

    def upload_package(self, folder: Path) -> tuple[str, str]:
        s3 = boto3.client("s3", endpoint_url=self.store["AWS_ENDPOINT_URL"],
                          aws_access_key_id=self.store["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=self.store["AWS_SECRET_ACCESS_KEY"],
                          region_name=self.store["AWS_REGION"])
        bucket = f"bench-{self.tag}"
        s3.create_bucket(Bucket=bucket)
        package = build_package(folder / "pkg", make_onnx_mlp(folder / "m.onnx"), name="mlp", version="1",
                                format="onnx")
        return bucket, upload_dir(s3, bucket, "mlp/1", package)

    def remove_bucket(self, bucket: str) -> None:
        s3 = boto3.resource("s3", endpoint_url=self.store["AWS_ENDPOINT_URL"],
                            aws_access_key_id=self.store["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.store["AWS_SECRET_ACCESS_KEY"],
                            region_name=self.store["AWS_REGION"])
        b = s3.Bucket(bucket)
        b.objects.all().delete()
        b.delete()

    def namespace(self, stem: str) -> str:
        name = f"bench-{stem}-{self.tag}"
        namespace: Any = {"metadata": {"name": name}}  # the client accepts plain dicts
        self.core.create_namespace(namespace)
        self.namespaces.append(name)
        secret: Any = {
            "metadata": {"name": "models-s3"},
            "stringData": {"AWS_ACCESS_KEY_ID": self.store["AWS_ACCESS_KEY_ID"],
                           "AWS_SECRET_ACCESS_KEY": self.store["AWS_SECRET_ACCESS_KEY"]},
        }
        self.core.create_namespaced_secret(name, secret)
        return name

    def delete_namespace(self, name: str, timeout: float = 300) -> None:
        """Delete the models first (the operator releases them), then the namespace; wait until it is gone."""
        self.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, name, PLURAL)
        self.core.delete_namespace(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.core.read_namespace(name)
            except ApiException as exc:
                if exc.status == 404:
                    self.namespaces.remove(name)
                    return
                raise
            time.sleep(1)  # poll
        log(f"namespace {name} still terminating after {timeout:.0f}s")

    @contextmanager
    def operator_process(self, folder: Path, overrides: dict[str, Any] | None = None) -> Iterator[tuple[int, int]]:
        """The operator with the local cluster's configuration (plus `overrides`), its namespaces removed after."""
        cfg = yaml.safe_load(self.layout.operator_config.read_text())
        metrics_port, health_port = free_port(), free_port()
        cfg.update({"metricsPort": metrics_port, "healthPort": health_port, **(overrides or {})})
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "operator.yaml"
        path.write_text(yaml.safe_dump(cfg))
        load_config(path)  # fail here, not in the subprocess, on a bad file
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["KUBECONFIG"] = self.kubeconfig
        logfile = open(folder / "operator.log", "wb")  # noqa: SIM115 - closed below
        self.operator = subprocess.Popen([sys.executable, "-m", "mlmodel_operator", "--config", str(path)],
                                         cwd=REPO, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline or self.operator.poll() is not None:
                        raise RuntimeError(f"the operator did not start; see {folder / 'operator.log'}") from None
                    time.sleep(0.2)  # poll
            yield self.operator.pid, metrics_port
        finally:
            for ns in list(self.namespaces):
                self.delete_namespace(ns)
            self.operator.terminate()
            self.operator.wait(30)
            logfile.close()

    # -- objects ---------------------------------------------------------------------------

    def mlmodel(self, name: str, uri: str, index: int) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "MLModel",
            "metadata": {"name": name},
            "spec": {
                "source": {"uri": uri, "credentialsSecret": "models-s3"},
                "nodePool": POOLS[index % len(POOLS)],
                "resources": {"requests": REQUESTS},
            },
        }

    def create_model(self, namespace: str, body: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

    def baseline_objects(self, namespace: str, name: str, uri: str, index: int, digest: str) -> list[Any]:
        """What the operator would apply for this model, without owner references (no MLModel here)."""
        cfg = load_config(self.layout.operator_config)
        body = self.mlmodel(name, uri, index)
        body["metadata"].update({"namespace": namespace, "uid": "none", "generation": 1})
        model = MLModel.model_validate(body)
        pool = cfg.pool(model.spec.node_pool)
        assert pool is not None
        inp = RenderInput(model, cfg, PackageStatus(uri=uri, digest=digest, size=1, format="onnx"), pool, 1)
        objects = [render_deployment(inp), render_service(inp)]
        for obj in objects:
            obj["metadata"].pop("ownerReferences")
        return objects

    # -- phases ----------------------------------------------------------------------------

    def latency(self, uri: str) -> list[float]:
        ns = self.namespace("latency")
        seen = Seen(self.apps.list_namespaced_deployment, ns, lambda obj: True)
        try:
            out = []
            for i in range(self.args.latency_models):
                name = f"lat-{i}"
                start = time.perf_counter()
                self.create_model(ns, self.mlmodel(name, uri, i))
                seen.wait({name}, 30)
                out.append(seen.times[name] - start)
            return out
        finally:
            seen.stop()
            self.delete_namespace(ns)

    def burst(self, uri: str) -> tuple[float, float]:
        ns = self.namespace("burst")
        names = {f"m-{i}" for i in range(self.args.burst_models)}
        seen = Seen(lambda **kw: self.custom.list_namespaced_custom_object(GROUP, VERSION, plural=PLURAL, **kw),
                    ns, _ready)
        try:
            start = time.perf_counter()
            with ThreadPoolExecutor(self.args.concurrency) as pool:
                list(pool.map(lambda i: self.create_model(ns, self.mlmodel(f"m-{i}", uri, i)),
                              range(self.args.burst_models)))
            applied = time.perf_counter() - start
            seen.wait(names, self.args.timeout)
            return applied, max(seen.times.values()) - start
        finally:
            seen.stop()

    def baseline(self, uri: str, digest: str) -> tuple[float, float]:
        ns = self.namespace("baseline")
        names = {f"m-{i}" for i in range(self.args.burst_models)}
        seen = Seen(self.apps.list_namespaced_deployment, ns, _available)

        def create(i: int) -> None:
            deployment, service = self.baseline_objects(ns, f"m-{i}", uri, i, digest)
            self.apps.create_namespaced_deployment(ns, deployment)
            self.core.create_namespaced_service(ns, service)

        try:
            start = time.perf_counter()
            with ThreadPoolExecutor(self.args.concurrency) as pool:
                list(pool.map(create, range(self.args.burst_models)))
            applied = time.perf_counter() - start
            seen.wait(names, self.args.timeout)
            return applied, max(seen.times.values()) - start
        finally:
            seen.stop()
            self.delete_namespace(ns)


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-models", type=int, default=50)
    parser.add_argument("--burst-models", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16, help="client threads creating objects")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    bench = Bench(args)
    bench.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / f"{GROUP}_{PLURAL}.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bucket, uri = bench.upload_package(folder)
        digest = "sha256:" + "0" * 64  # the baseline's pods verify nothing: kwok runs no containers
        try:
            log(f"baseline: {args.burst_models} Deployments + Services created directly")
            base_applied, base_total = bench.baseline(uri, digest)
            with bench.operator_process(folder) as (pid, _metrics_port):
                log(f"latency: {args.latency_models} MLModels, one at a time")
                latencies = bench.latency(uri)
                log(f"burst: {args.burst_models} MLModels at once")
                burst_applied, burst_total = bench.burst(uri)
                memory = rss_kib(pid)
        finally:
            bench.remove_bucket(bucket)

    print(f"apply -> Deployment created ({len(latencies)} models, one at a time): "
          f"p50 {statistics.median(latencies) * 1000:.0f} ms, p95 {percentile(latencies, 95) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")
    print(f"{args.burst_models} MLModels applied at once -> all Ready: {burst_total:.1f} s "
          f"(creates returned after {burst_applied:.1f} s)")
    print(f"baseline, {args.burst_models} Deployments + Services created directly -> all available: "
          f"{base_total:.1f} s (creates returned after {base_applied:.1f} s)")
    print(f"ratio operator / baseline: {burst_total / base_total:.2f}x")
    print(f"operator memory at {args.burst_models} models: peak RSS {memory['VmHWM'] / 1024:.0f} MiB "
          f"(current {memory['VmRSS'] / 1024:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
