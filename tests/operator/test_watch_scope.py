"""Which namespaces the operator serves, and how kopf watches them: exact names one by one; all namespaces or
any pattern cluster-wide, with the handlers filtering by namespace (plan/scope.py says why)."""

from __future__ import annotations

import pytest
from mlmodel_operator.plan import WatchScope


@pytest.mark.parametrize(
    ("patterns", "clusterwide", "kopf_namespaces", "served", "not_served"),
    [
        ((), True, [], ["default", "team-a"], [None]),
        (("team-a",), False, ["team-a"], ["team-a"], ["team-b", "team-a-x", None]),
        (("team-a", "team-b"), False, ["team-a", "team-b"], ["team-a", "team-b"], ["team-c"]),
        (("team-*",), True, [], ["team-a", "team-"], ["teams", "xteam-a", None]),
        (("ml-?", "prod"), True, [], ["ml-1", "prod"], ["ml-12", "production"]),
        (("ml-[ab]",), True, [], ["ml-a", "ml-b"], ["ml-c"]),
    ],
)
def test_scope(
    patterns: tuple[str, ...], clusterwide: bool, kopf_namespaces: list[str], served: list[str],
    not_served: list[str | None],
) -> None:
    scope = WatchScope.of(patterns)
    assert scope.clusterwide is clusterwide
    assert scope.kopf_namespaces == kopf_namespaces
    assert all(scope.serves(ns) for ns in served)
    assert not any(scope.serves(ns) for ns in not_served if patterns)
