"""`python -m mlmodel_runtime fetch` (the init container) and the server's own start-up against the
real object store: a verified install exits 0; every broken package exits with the contract's code
(corrupted or truncated file, package digest, missing package, bad credentials, unreachable store,
unsafe archive, refused pickle format, bad settings), says why in one JSON line with the reason,
and leaves nothing in the model directory that a later start could take for complete."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Serve, mlp_package
from tests.runtime.process import log_lines, run_fetch
from tests.support.packages import corrupt_file, truncate_file, upload_dir, upload_file
from tests.support.ports import free_port

pytestmark = pytest.mark.objectstore


def failure(result: Any) -> dict[str, Any]:
    """The error line of a failed run (there is exactly one)."""
    errors = [r for r in log_lines(result.stdout + result.stderr) if r["level"] == "error"]
    assert len(errors) == 1, result.stdout + result.stderr
    return errors[0]


def installed(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def test_a_good_package_is_installed_and_marked_complete(
    tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str
) -> None:
    uri = upload_dir(s3, bucket, "good", mlp_package(tmp_path, "onnx"))
    model_dir = tmp_path / "models"
    result = run_fetch(uri, model_dir, s3_env)
    assert result.returncode == 0, result.stderr
    names = installed(model_dir)
    assert len(names) == 2, names
    assert names[0].startswith("sha256-")
    assert names[1] == names[0] + ".complete"
    records = log_lines(result.stderr)
    verified = next(r for r in records if r["message"] == "package verified")
    assert verified["digest"] == "sha256:" + names[0].removeprefix("sha256-")
    assert (model_dir / names[0] / "model.onnx").is_file()


@pytest.mark.parametrize(
    ("damage", "code", "reason", "message"),
    [
        (lambda d: corrupt_file(d, "model.onnx"), 13, "DigestMismatch", "model.onnx: sha256 expected"),
        (lambda d: truncate_file(d, "model.onnx"), 13, "SizeMismatch", "model.onnx: size expected"),
    ],
    ids=["corrupted", "truncated"],
)
def test_a_damaged_file_fails_with_its_exit_code_and_leaves_nothing(
    damage: Any, code: int, reason: str, message: str, tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str
) -> None:
    package = mlp_package(tmp_path, "onnx")
    damage(package)
    model_dir = tmp_path / "models"
    result = run_fetch(upload_dir(s3, bucket, "bad", package), model_dir, s3_env)
    assert result.returncode == code
    line = failure(result)
    assert line["reason"] == reason
    assert line["exit_code"] == code
    assert message in line["message"]
    assert installed(model_dir) == []


def test_package_level_failures_have_their_exit_codes(
    tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str
) -> None:
    uri = upload_dir(s3, bucket, "pkg", mlp_package(tmp_path, "onnx"))
    cases: list[tuple[str, dict[str, str], tuple[str, ...], int, str]] = [
        (f"s3://{bucket}/missing/", s3_env, (), 10, "PackageNotFound"),
        (uri, {**s3_env, "AWS_SECRET_ACCESS_KEY": "wrong"}, (), 11, "AccessDenied"),
        (uri, {**s3_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}, (), 16, "StoreUnavailable"),
        (uri, s3_env, ("--package-digest", "sha256:" + "0" * 64), 13, "PackageDigestMismatch"),
        (uri, s3_env, ("--format", "joblib"), 15, "FormatNotAllowed"),
        (uri, s3_env, ("--format", "tensorflow"), 15, "FormatUnsupported"),
        ("ftp://example/pkg", s3_env, (), 2, "InvalidSettings"),
        (uri, s3_env, ("--package-digest", "md5:abc"), 2, "InvalidSettings"),
    ]
    for package, env, args, code, reason in cases:
        model_dir = tmp_path / f"models-{reason}"
        result = run_fetch(package, model_dir, env, *args)
        assert (result.returncode, failure(result)["reason"]) == (code, reason), result.stderr
        assert installed(model_dir) == []
    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    leaked = run_fetch(uri, tmp_path / "m", {**s3_env, "AWS_SECRET_ACCESS_KEY": "wrong"})
    assert secret not in leaked.stderr
    assert "wrong" not in leaked.stderr


def test_an_unsafe_archive_is_refused(tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str) -> None:
    package = mlp_package(tmp_path, "onnx")
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(package.iterdir()):
            z.write(path, path.name)
        z.writestr("../escape.txt", "outside")
    model_dir = tmp_path / "models"
    result = run_fetch(upload_file(s3, bucket, "evil.zip", archive), model_dir, s3_env)
    assert result.returncode == 14
    line = failure(result)
    assert line["reason"] == "UnsafeArchive"
    assert "../escape.txt" in line["message"]
    assert installed(model_dir) == []
    assert not (tmp_path / "escape.txt").exists()


def test_the_server_exits_with_the_fetch_code_and_never_reports_started(
    tmp_path: Path, s3: Any, s3_env: dict[str, str], bucket: str, serve: Serve
) -> None:
    package = mlp_package(tmp_path, "onnx")
    corrupt_file(package, "model.onnx")
    server = serve(upload_dir(s3, bucket, "bad", package), env=s3_env, wait=False)
    assert server.wait(120) == 13
    records = server.log_records()
    reasons = [r.get("reason") for r in records if r["level"] == "error"]
    assert reasons == ["DigestMismatch"]
    assert not any(r["message"] == "model ready" for r in records)
