"""The static checks of `make lint` hold in the test run too: ruff, mypy (strict), the import-linter layer
contracts (operator layers; the package format light; the operator never importing the model server) and
hadolint on both Dockerfiles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "argv",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "lint-imports")],
        [str(BIN / "hadolint"), "Dockerfile.operator", "Dockerfile.runtime"],
    ],
    ids=["ruff", "mypy", "import-linter", "hadolint"],
)
def test_static_check_passes(argv: list[str]) -> None:
    res = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{Path(argv[0]).name} failed:\n{res.stdout}\n{res.stderr}"
