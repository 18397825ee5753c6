"""Helpers for the operator's integration tests: the operator process, MLModel manifests, status reads,
packages in the object store (valid and broken on purpose)."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.kube import Kubectl, condition
from tests.support.packages import build_package, corrupt_file, make_onnx_mlp, mlp_signature, upload_dir, upload_file
from tests.support.waiting import wait_for


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log_file: Path
    metrics_port: int
    health_port: int

    def healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)

    def metric(self, name: str, /, **labels: str) -> float:
        """Sum of the operator's samples named `name` whose labels include `labels`."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mlmodel(name: str, uri: str, secret: str | None = "models-s3", **spec: Any) -> str:
    source: dict[str, Any] = {"uri": uri}
    if secret:
        source["credentialsSecret"] = secret
    body = {
        "apiVersion": "serving.mlmodel.io/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": name},
        "spec": {"source": source, **spec},
    }
    return yaml.safe_dump(body)


def get_model(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = kubectl.json("get", "mlmodel", name, "-n", namespace)
    return result


def wait_condition(
    kubectl: Kubectl, namespace: str, name: str, type_: str, status: str = "True",
    reason: str | None = None, timeout: float = 60,
) -> dict[str, Any]:
    """Wait until the MLModel has observed its latest generation and the condition matches."""

    def matches() -> dict[str, Any] | None:
        obj = get_model(kubectl, namespace, name)
        if obj.get("status", {}).get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        cond = condition(obj, type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return obj
        return None

    def describe() -> str:
        obj = get_model(kubectl, namespace, name)
        return json.dumps(obj.get("status", {}), indent=1)

    try:
        return wait_for(matches, timeout, f"{namespace}/{name} {type_}={status} {reason or ''}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nstatus: {describe()}") from None


class Packages:
    """Packages written under a temporary folder and uploaded to one bucket."""

    def __init__(self, s3: Any, bucket: str, folder: Path) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.folder = folder

    def _dir(self, key: str) -> Path:
        return self.folder / key.replace("/", "_")

    def onnx(self, key: str, seed: int = 0) -> str:
        """A valid ONNX package under s3://bucket/key/."""
        directory = self._dir(key)
        model = make_onnx_mlp(self.folder / f"{key.replace('/', '_')}.onnx", seed=seed)
        build_package(directory, model, name="mlp", version=str(seed), format="onnx")
        return upload_dir(self.s3, self.bucket, key, directory)

    def digest_mismatch(self, key: str) -> str:
        """model.onnx changed after the manifest was written."""
        directory = self._dir(key)
        build_package(directory, make_onnx_mlp(self.folder / "dm.onnx"), name="mlp", version="1", format="onnx")
        corrupt_file(directory, "model.onnx")
        return upload_dir(self.s3, self.bucket, key, directory)

    def without_manifest(self, key: str) -> str:
        directory = self._dir(key)
        build_package(directory, make_onnx_mlp(self.folder / "nm.onnx"), name="mlp", version="1", format="onnx")
        (directory / "deployment_manifest.json").unlink()
        return upload_dir(self.s3, self.bucket, key, directory)

    def joblib(self, key: str) -> str:
        """A pickle-based package (the operator's config does not allow pickle)."""
        directory = self._dir(key)
        fake = self.folder / "model.joblib"
        fake.write_bytes(b"not really a pickle")
        signature = mlp_signature()
        build_package(directory, fake, name="mlp", version="1", format="joblib",
                      inputs=signature["inputs"], outputs=signature["outputs"])
        return upload_dir(self.s3, self.bucket, key, directory)

    def zip_with_parent_entry(self, key: str) -> str:
        """A .zip whose entry climbs out of the extraction folder (`../evil.txt`)."""
        directory = self._dir(key + "-src")
        build_package(directory, make_onnx_mlp(self.folder / "zs.onnx"), name="mlp", version="1", format="onnx")
        archive = self.folder / "unsafe.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            for path in sorted(directory.iterdir()):
                zf.write(path, path.name)
            zf.writestr("../evil.txt", "escaped")
        return upload_file(self.s3, self.bucket, key, archive)


def drop_own_namespaces(kubectl: Kubectl, namespaces: list[str], running: list[OperatorProcess]) -> None:
    """Tear down namespaces served by a test's own operators: the last one, if alive, releases kopf's finalizer
    of their MLModels; then every operator stops; a finalizer left behind (no operator alive) is removed by hand."""
    if running and running[-1].proc.poll() is None:
        for namespace in namespaces:
            kubectl.run("delete", "mlmodels", "--all", "-n", namespace, "--timeout=60s", check=False)
    for proc in running:
        proc.stop()
    for namespace in namespaces:
        for name in kubectl.run("get", "mlmodels", "-n", namespace, "-o", "name", check=False).stdout.split():
            kubectl.run("patch", name, "-n", namespace, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                        check=False)
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def create_store_secret(kubectl: Kubectl, namespace: str, s3_env: dict[str, str], name: str = "models-s3") -> str:
    """A Secret with the object store's access key pair in `namespace` (what spec.source.credentialsSecret names)."""
    kubectl.run("create", "secret", "generic", name, "-n", namespace,
                f"--from-literal=AWS_ACCESS_KEY_ID={s3_env['AWS_ACCESS_KEY_ID']}",
                f"--from-literal=AWS_SECRET_ACCESS_KEY={s3_env['AWS_SECRET_ACCESS_KEY']}")
    return name
