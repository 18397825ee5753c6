"""The images start commands that exist: each Dockerfile's ENTRYPOINT + CMD runs `--help` from this checkout,
and the runtime Deployment the operator renders relies on the runtime image's entrypoint with a real subcommand.
hadolint (`make lint`) checks the Dockerfiles themselves; this machine cannot build the images."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _exec_form(dockerfile: Path, instruction: str) -> list[str]:
    """The last ENTRYPOINT or CMD of the final stage, which must use the exec (JSON) form."""
    final_stage = re.split(r"^FROM ", dockerfile.read_text(), flags=re.M)[-1]
    lines = [ln for ln in final_stage.splitlines() if ln.startswith(instruction + " ")]
    assert lines, f"{dockerfile.name} has no {instruction}"
    value = json.loads(lines[-1][len(instruction) + 1:])
    assert isinstance(value, list), f"{dockerfile.name}: {instruction} must use the exec form"
    return [str(v) for v in value]


def _run_from_venv(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # `python` in the image is the venv's interpreter, as it is here.
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO)


@pytest.mark.parametrize(
    ("dockerfile", "expect_in_help"),
    [("Dockerfile.operator", "--config"), ("Dockerfile.runtime", "--package")],
)
def test_entrypoint_and_cmd_name_real_commands(dockerfile: str, expect_in_help: str) -> None:
    path = REPO / dockerfile
    entrypoint, cmd = _exec_form(path, "ENTRYPOINT"), _exec_form(path, "CMD")
    assert entrypoint[:2] == ["python", "-m"], "the images run a module of this project"
    # CMD's flags are replaced by the help flag, its subcommand (if any) kept.
    subcommand = [c for c in cmd if not c.startswith("-") and "/" not in c]
    res = _run_from_venv([*entrypoint, *subcommand, "--help"])
    assert res.returncode == 0, res.stderr
    assert expect_in_help in res.stdout


GOLDEN_DEPLOYMENTS = sorted((REPO / "tests" / "golden").glob("deployment-*.yaml"))


@pytest.mark.parametrize("golden", GOLDEN_DEPLOYMENTS, ids=lambda p: p.stem)
def test_rendered_runtime_container_runs_in_the_runtime_image(golden: Path) -> None:
    """The operator's rendered pod (pinned by its golden files) starts the runtime image's entrypoint with a
    subcommand that exists, and sets only MLMODEL_* settings that the runtime knows."""
    import yaml
    from mlmodel_runtime.settings import ServeSettings

    container = yaml.safe_load(golden.read_text())["spec"]["template"]["spec"]["containers"][0]
    assert "command" not in container, "the runtime image's ENTRYPOINT is used as it is"
    res = _run_from_venv([*_exec_form(REPO / "Dockerfile.runtime", "ENTRYPOINT"), *container["args"], "--help"])
    assert res.returncode == 0, res.stderr

    known = {f"MLMODEL_{name.upper()}" for name in ServeSettings.model_fields}
    set_by_operator = {e["name"] for e in container["env"] if e["name"].startswith("MLMODEL_")}
    assert set_by_operator, "the operator configures the runtime through MLMODEL_* variables"
    assert set_by_operator <= known, f"unknown to the runtime: {sorted(set_by_operator - known)}"


def test_cli_console_script_exists() -> None:
    mlmodel = Path(sys.executable).parent / "mlmodel"
    res = subprocess.run([str(mlmodel), "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for command in ("pack", "verify", "push"):
        assert command in res.stdout
