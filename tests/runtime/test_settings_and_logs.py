"""Settings come from MLMODEL_* and flags override them; bad settings exit 2 with a JSON line naming
the variable; every log line is one JSON object with the model name and revision (extra fields,
exceptions and Python warnings included)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
from mlmodel_runtime.__main__ import _parser, _settings
from mlmodel_runtime.logs import JsonFormatter
from mlmodel_runtime.settings import FetchSettings, ServeSettings
from pydantic import ValidationError

from tests.runtime.process import log_lines, runtime_env


def test_settings_read_the_environment_and_flags_override_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMODEL_PACKAGE", "s3://models/a/")
    monkeypatch.setenv("MLMODEL_MODEL_NAME", "from-env")
    monkeypatch.setenv("MLMODEL_PORT", "9000")
    monkeypatch.setenv("MLMODEL_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MLMODEL_LOG_LEVEL", "DEBUG")
    settings = _settings(_parser().parse_args(["serve", "--model-name", "from-flag", "--host", "127.0.0.1"]))
    assert isinstance(settings, ServeSettings)
    assert (settings.package, settings.model_name, settings.host, settings.port) == (
        "s3://models/a/",
        "from-flag",
        "127.0.0.1",
        9000,
    )
    assert settings.batching
    assert settings.log_level == "debug"
    assert settings.max_queue_size == 256
    assert settings.metrics_port == 8082
    fetch = _settings(_parser().parse_args(["fetch", "--model-dir", "/tmp/m"]))
    assert type(fetch) is FetchSettings
    assert fetch.model_dir == "/tmp/m"


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"MLMODEL_MODEL_NAME": "m"}, "package"),
        ({"MLMODEL_PACKAGE": "/p"}, "model_name"),
        ({"MLMODEL_PACKAGE": "/p", "MLMODEL_MODEL_NAME": "m", "MLMODEL_DEVICE": "tpu"}, "device"),
        ({"MLMODEL_PACKAGE": "/p", "MLMODEL_MODEL_NAME": "m", "MLMODEL_MAX_QUEUE_SIZE": "0"}, "max_queue_size"),
        ({"MLMODEL_PACKAGE": "/p", "MLMODEL_MODEL_NAME": "m", "MLMODEL_PACKAGE_DIGEST": "abc"}, "package_digest"),
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as info:
        ServeSettings()
    assert [e["loc"][0] for e in info.value.errors()] == [problem]


def test_the_cli_exits_2_on_bad_settings_with_a_json_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlmodel_runtime", "serve", "--package", "/nowhere", "--port", "99999"],
        env=runtime_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    (line,) = log_lines(result.stderr)
    assert line["level"] == "error"
    assert line["reason"] == "InvalidSettings"
    assert "MLMODEL_MODEL_NAME: Field required" in line["message"]
    assert "MLMODEL_PORT: Input should be less than or equal to 65535" in line["message"]


def test_log_lines_are_json_with_model_revision_extras_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("fraud", "7"))
    logger = logging.getLogger("test.runtime.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("downloading %s", "model.onnx", extra={"bytes": 42})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "message", "model", "revision", "bytes")} == {
        "level": "warning",
        "logger": "test.runtime.logs",
        "message": "downloading model.onnx",
        "model": "fraud",
        "revision": "7",
        "bytes": 42,
    }
    assert first["time"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]


def test_download_progress_is_logged_with_bytes_and_rate(caplog: pytest.LogCaptureFixture) -> None:
    from mlmodel_runtime.fetch import ProgressLog

    progress = ProgressLog("s3://b/p/", every_s=0.0)
    with caplog.at_level(logging.INFO, logger="mlmodel_runtime.fetch"):
        progress(1 << 20)
        progress(3 << 20)
    assert progress.bytes == 4 << 20
    records = [r for r in caplog.records if r.getMessage() == "downloading"]
    assert [r.__dict__["bytes"] for r in records] == [1 << 20, 4 << 20]
    assert all(r.__dict__["uri"] == "s3://b/p/" and r.__dict__["mib_per_s"] > 0 for r in records)
