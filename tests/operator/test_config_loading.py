"""Operator configuration: the file `make cluster-up` writes loads; the environment overrides it;
inconsistent files (duplicate or several default pools, pickle formats without allowPickle, formats
without an image, bad YAML) are refused with a message that says what is wrong, and the operator does
not start with one (exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlmodel_operator.config import ConfigError, load_config

from tests.operator.factories import LOCAL_CONFIG


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_local_cluster_config_loads(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, LOCAL_CONFIG))
    gpu = config.pool(None)
    assert gpu is not None
    assert gpu.name == "gpu-a100"
    assert gpu.gpu_resource_name == "nvidia.com/gpu"
    assert gpu.tolerations[0].to_k8s() == {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    cpu = config.pool("cpu")
    assert cpu is not None
    assert cpu.gpu_resource_name is None
    assert config.pool("tpu") is None
    assert config.effective_formats == {"onnx", "torchscript", "torch-export"}
    assert config.object_store.endpoint == "http://127.0.0.1:8333"
    assert config.watch.namespaces == []
    assert config.default_resources.requests == {"cpu": "500m", "memory": "1Gi"}


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLMODEL_OPERATOR_RESYNC__INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("MLMODEL_OPERATOR_CLUSTER_DOMAIN", "example.internal")
    config = load_config(_write(tmp_path, LOCAL_CONFIG))
    assert config.resync.interval_seconds == 2.5
    assert config.cluster_domain == "example.internal"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodePools": [{"name": "a"}, {"name": "a"}]}, "duplicate names ['a']"),
        ({"nodePools": [{"name": "a", "default": True}, {"name": "b", "default": True}]}, "at most one default"),
        ({"allowedFormats": ["onnx", "joblib"], "runtimeImages": {"onnx": "i", "joblib": "j"}}, "allowPickle"),
        ({"runtimeImages": {"onnx": "i"}}, "no image for allowed formats ['torch-export', 'torchscript']"),
        ({"nodePools": [{"name": "Bad_Name"}]}, "nodePools.0.name"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_inconsistent_config_is_refused(tmp_path: Path, change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, {**LOCAL_CONFIG, **change}))
    assert message in str(info.value)


def test_pickle_formats_need_allow_pickle(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            {**LOCAL_CONFIG, "allowPickle": True, "allowedFormats": ["onnx", "joblib"],
             "runtimeImages": {"onnx": "i", "joblib": "j"}},
        )
    )
    assert config.effective_formats == {"onnx", "joblib"}


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodePools: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listed)


def test_operator_refuses_to_start_with_a_bad_config(tmp_path: Path) -> None:
    bad = _write(tmp_path, {**LOCAL_CONFIG, "nodePools": [{"name": "a", "default": True},
                                                          {"name": "b", "default": True}]})
    result = subprocess.run([sys.executable, "-m", "mlmodel_operator", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "at most one default pool" in result.stderr
