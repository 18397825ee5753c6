"""One decision for tests that need what only some machines have (root, buildah, the real node's containerd):
skip them with the reason, or fail them where `MLMODEL_REQUIRE_REAL_NODE=1` says they must run."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "MLMODEL_REQUIRE_REAL_NODE"


def real_node_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def require_real_node_or_skip(reason: str) -> NoReturn:
    """Skip the calling test because of `reason`; fail it instead under MLMODEL_REQUIRE_REAL_NODE=1."""
    if real_node_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: this test must run here)", pytrace=False)
    pytest.skip(reason)
