"""Which namespaces the operator serves, and how kopf is asked to watch them.

Exact names are watched one by one (a Role in each suffices). Patterns such as `team-*` are not handed to
kopf: kopf resolves them by listing namespaces and then starting a namespace watch with a second listing, and
a namespace created between the two is never seen (the watch's initial listing does not count as an
addition), so its models would never be served. With a pattern the operator watches cluster-wide and each
handler filters by namespace instead: one watch, no window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class WatchScope:
    """The served namespaces: empty for all of them; exact names or fnmatch patterns otherwise."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def of(cls, patterns: Sequence[str]) -> WatchScope:
        return cls(tuple(patterns))

    @property
    def clusterwide(self) -> bool:
        """Whether kopf watches all namespaces (all are served, or a pattern must be matched)."""
        return not self.patterns or any(GLOB_CHARACTERS & set(p) for p in self.patterns)

    @property
    def kopf_namespaces(self) -> list[str]:
        """The namespaces kopf watches one by one (none when it watches cluster-wide)."""
        return [] if self.clusterwide else list(self.patterns)

    def serves(self, namespace: str | None) -> bool:
        if not self.patterns:
            return True
        return namespace is not None and any(fnmatchcase(namespace, p) for p in self.patterns)

    def describe(self) -> str:
        return ", ".join(self.patterns) if self.patterns else "all namespaces"
