"""The local cluster's audit log (hack/cluster/audit-policy.yaml): every write to MLModels, Deployments and
Services, one JSON line each, written before the API server answers. Unlike the API server's request
counters it names the namespace, the object and the client, so a test can say exactly what was written
where, and by whom."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AuditWrite:
    user: str
    agent: str  # the client's User-Agent, up to its first "/": "kopf", "kubectl", ...
    verb: str
    resource: str  # "mlmodels/status", "deployments", ...
    namespace: str
    name: str
    code: int

    def __str__(self) -> str:
        return f"{self.user} ({self.agent}) {self.verb} {self.resource} {self.namespace}/{self.name} -> {self.code}"


@dataclass(frozen=True)
class AuditLog:
    path: Path

    def mark(self) -> int:
        """A position in the log: `writes(since=mark)` sees only what came after it."""
        return self.path.stat().st_size if self.path.exists() else 0

    def writes(self, *, since: int, namespace: str) -> list[AuditWrite]:
        """The completed writes in `namespace` logged after `since` (the log rotates at 200 MB; a window
        of a few minutes never spans a rotation in these tests)."""
        with self.path.open("rb") as log:
            log.seek(since)
            lines = log.read().splitlines()
        return [w for w in map(_write, lines) if w is not None and w.namespace == namespace]


def _write(line: bytes) -> AuditWrite | None:
    event: dict[str, Any] = json.loads(line)
    if event.get("stage") != "ResponseComplete":
        return None
    ref = event.get("objectRef", {})
    resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return AuditWrite(
        user=event.get("user", {}).get("username", ""), agent=event.get("userAgent", "").split("/")[0],
        verb=event.get("verb", ""), resource=resource,
        namespace=ref.get("namespace", ""), name=ref.get("name", ""),
        code=int(event.get("responseStatus", {}).get("code", 0)),
    )
