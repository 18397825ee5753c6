"""Tests that need the local cluster's real node (or root and buildah for images) skip where this machine
cannot run it, with the reason; under MLMODEL_REQUIRE_REAL_NODE=1 (set by .ci/run) that is a failure."""

from __future__ import annotations

import os

import pytest

REQUIRE = "MLMODEL_REQUIRE_REAL_NODE"


def require_real_node_or_skip(reason: str) -> None:
    if os.environ.get(REQUIRE, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE}=1 and this test cannot run: {reason}")
    pytest.skip(reason)
