"""The `mlmodel` console script, run as a real process against the real object store: pack ->
push -> verify round trip in text mode (push prints an MLModel that serves the pushed prefix)
and with `--output json` (parseable, one digest throughout); an archive pushed as one object;
the contract's exit codes and reasons for a corrupted package, refused credentials, an
unreachable store, a missing package, a bad URI and pickle; push refusing an invalid package
before uploading anything and refusing to overwrite another package unless --force."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.packages import corrupt_file, make_onnx_mlp, upload_dir
from tests.support.ports import free_port

pytestmark = pytest.mark.objectstore

MLMODEL = str(Path(sys.executable).parent / "mlmodel")


@pytest.fixture
def env(s3_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **s3_env, "NO_COLOR": "1"}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    make_onnx_mlp(tmp_path / "fraud" / "model.onnx")
    (tmp_path / "fraud" / "README.md").write_text("# fraud\n")
    return tmp_path / "fraud"


def mlmodel(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLMODEL, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return result


def keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_pack_push_verify_round_trip(env: dict[str, str], s3: Any, bucket: str, model_dir: Path) -> None:
    packed = ok(mlmodel(env, "pack", str(model_dir), "--name", "fraud", "--version", "7"))
    assert "packed" in packed.stdout
    assert "warning: optional file requirements.txt is missing" in packed.stderr

    pushed = ok(mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/7/", "--credentials-secret", "s3-creds"))
    resource = yaml.safe_load(pushed.stdout)
    assert resource == {
        "apiVersion": "serving.mlmodel.io/v1alpha1",
        "kind": "MLModel",
        "metadata": {"name": "fraud"},
        "spec": {
            "source": {
                "uri": f"s3://{bucket}/fraud/7/",
                "endpoint": env["AWS_ENDPOINT_URL"],
                "credentialsSecret": "s3-creds",
            },
            "format": "onnx",
        },
    }
    assert keys(s3, bucket) == [
        f"fraud/7/{name}" for name in ("README.md", "deployment_manifest.json", "metadata.json", "model.onnx")
    ]
    verified = ok(mlmodel(env, "verify", resource["spec"]["source"]["uri"]))
    assert verified.stdout.startswith(f"valid s3://{bucket}/fraud/7/: fraud version 7, onnx")


def test_json_output_parses_and_agrees(env: dict[str, str], bucket: str, model_dir: Path) -> None:
    packed = json.loads(ok(mlmodel(env, "pack", str(model_dir), "-o", "json")).stdout)
    pushed = json.loads(ok(mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/1", "-o", "json")).stdout)
    verified = json.loads(ok(mlmodel(env, "verify", f"s3://{bucket}/fraud/1/", "--output", "json")).stdout)
    local = json.loads(ok(mlmodel(env, "verify", str(model_dir), "-o", "json")).stdout)
    assert all(body["ok"] for body in (packed, pushed, verified, local))
    assert packed["digest"] == pushed["digest"] == verified["digest"] == local["digest"]
    assert pushed["mlmodel"]["spec"]["source"]["uri"] == f"s3://{bucket}/fraud/1/"
    assert pushed["bytes"] == sum(p.stat().st_size for p in model_dir.iterdir())
    assert verified["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
    assert verified["warnings"] == packed["warnings"]


def test_an_archive_is_pushed_as_one_object(env: dict[str, str], s3: Any, bucket: str, model_dir: Path) -> None:
    archive = json.loads(ok(mlmodel(env, "pack", str(model_dir), "--archive", "tar.gz", "-o", "json")).stdout)
    pushed = json.loads(ok(mlmodel(env, "push", archive["archive"], f"s3://{bucket}/archives/", "-o", "json")).stdout)
    assert keys(s3, bucket) == ["archives/fraud.tar.gz"]
    assert pushed["mlmodel"]["spec"]["source"]["uri"] == f"s3://{bucket}/archives/fraud.tar.gz"
    verified = json.loads(ok(mlmodel(env, "verify", f"s3://{bucket}/archives/fraud.tar.gz", "-o", "json")).stdout)
    assert verified["digest"] == archive["digest"]


@pytest.mark.parametrize(
    ("case", "code", "reason"),
    [
        ("corrupted", 13, "DigestMismatch"),
        ("wrong-secret", 11, "AccessDenied"),
        ("unreachable", 16, "StoreUnavailable"),
        ("missing", 10, "PackageNotFound"),
        ("bad-uri", 2, "UsageError"),
    ],
)
def test_verify_failures_exit_with_the_contract_codes(
    env: dict[str, str], s3: Any, bucket: str, model_dir: Path, case: str, code: int, reason: str
) -> None:
    ok(mlmodel(env, "pack", str(model_dir)))
    if case == "corrupted":
        corrupt_file(model_dir, "model.onnx")
    uri = upload_dir(s3, bucket, "fraud/1", model_dir)
    args = ["verify", uri]
    if case == "wrong-secret":
        env = {**env, "AWS_SECRET_ACCESS_KEY": "wrong-secret-9d2e"}
    elif case == "unreachable":
        args += ["--endpoint", f"http://127.0.0.1:{free_port()}"]
    elif case == "missing":
        args[1] = f"s3://{bucket}/nothing/"
    elif case == "bad-uri":
        args[1] = "ftp://somewhere/model"

    result = mlmodel(env, *args, "-o", "json")

    assert result.returncode == code, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert (body["ok"], body["reason"], body["exitCode"]) == (False, reason, code)
    assert "wrong-secret-9d2e" not in result.stdout + result.stderr
    text = mlmodel(env, *args)
    assert text.returncode == code
    assert f"error {reason}: " in text.stderr


def test_pickle_is_refused_unless_allowed(env: dict[str, str], tmp_path: Path) -> None:
    directory = tmp_path / "pkl"
    directory.mkdir()
    (directory / "model.joblib").write_bytes(b"pretend pickle")
    signature = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
        "outputs": [{"name": "y", "datatype": "INT64", "shape": [-1]}],
    }
    (directory / "metadata.json").write_text(json.dumps(signature))
    ok(mlmodel(env, "pack", str(directory)))
    refused = mlmodel(env, "verify", str(directory))
    assert refused.returncode == 15
    assert "FormatNotAllowed" in refused.stderr
    ok(mlmodel(env, "verify", str(directory), "--allow-pickle"))


def test_push_refuses_an_invalid_package_before_uploading(
    env: dict[str, str], s3: Any, bucket: str, model_dir: Path
) -> None:
    ok(mlmodel(env, "pack", str(model_dir)))
    corrupt_file(model_dir, "README.md")
    result = mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/1/")
    assert result.returncode == 13
    assert "DigestMismatch" in result.stderr
    assert keys(s3, bucket) == []


def test_push_does_not_overwrite_another_package_unless_forced(
    env: dict[str, str], s3: Any, bucket: str, model_dir: Path
) -> None:
    ok(mlmodel(env, "pack", str(model_dir), "--version", "1"))
    ok(mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/"))
    ok(mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/"))  # the same package again is fine
    s3.put_object(Bucket=bucket, Key="fraud/leftover.txt", Body=b"x")
    (model_dir / "README.md").unlink()
    (model_dir / "metadata.json").unlink()
    ok(mlmodel(env, "pack", str(model_dir), "--version", "2"))
    before = keys(s3, bucket)

    refused = mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/")
    assert refused.returncode == 2
    assert "already holds other files or another package" in refused.stderr
    assert keys(s3, bucket) == before

    ok(mlmodel(env, "push", str(model_dir), f"s3://{bucket}/fraud/", "--force"))
    assert keys(s3, bucket) == ["fraud/deployment_manifest.json", "fraud/metadata.json", "fraud/model.onnx"]
    verified = json.loads(ok(mlmodel(env, "verify", f"s3://{bucket}/fraud/", "-o", "json")).stdout)
    assert verified["version"] == "2"
