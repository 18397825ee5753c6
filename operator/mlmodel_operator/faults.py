"""Fault injection for the crash-safety tests: `MLMODEL_OPERATOR_FAULT=POINT[:N]` makes the process exit
at once with status 137 (what SIGKILL gives: no cleanup, no status write, no lease release) the N-th time
(default: the first) it reaches POINT. Unset, every point is a no-op.

Points: `validating` (hashing a package's files), `warning-posted` (a Warning event posted, the status that
records its transition not yet written), `failure-recorded` (a failed revision written to status, the rollback
not yet applied), `applied` (a Deployment applied, the status not yet written), `rolled-back` (the rollback
applied, the status not yet written).

The fake-API tests pass their own `exit`, which raises instead of ending the test process.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn

log = logging.getLogger(__name__)

ENV = "MLMODEL_OPERATOR_FAULT"
POINTS = frozenset({"validating", "warning-posted", "failure-recorded", "applied", "rolled-back"})
EXIT_STATUS = 137


class FaultInjector:
    """Counts how often each point is reached and ends the process at the configured one."""

    def __init__(self, spec: str | None = None, exit: Callable[[], NoReturn] | None = None) -> None:
        self.point: str | None = None
        self._exit = exit or _exit_process
        self.nth = 1
        self._seen = 0
        self._keys: set[str] = set()
        self._lock = threading.Lock()
        if spec:
            point, _, nth = spec.partition(":")
            if point not in POINTS or (nth and not (nth.isdigit() and int(nth) >= 1)):
                raise ValueError(f"{ENV}={spec!r}: expected POINT[:N] with POINT one of {', '.join(sorted(POINTS))}")
            self.point, self.nth = point, int(nth or 1)

    @classmethod
    def from_env(cls) -> FaultInjector:
        return cls(os.environ.get(ENV))

    def reached(self, point: str, key: str | None = None) -> None:
        """`key`: count this point once per key (`validating` counts packages, not validation attempts: a
        package validated again after a temporary store error is the same package)."""
        if point != self.point:
            return
        with self._lock:
            if key is not None:
                if key in self._keys:
                    return
                self._keys.add(key)
            self._seen += 1
            hit = self._seen == self.nth
        if hit:
            log.critical("fault injection: exiting at %s (%d)", point, self.nth)
            self._exit()


def _exit_process() -> NoReturn:
    """As SIGKILL leaves it: no cleanup, no status write, no lease release."""
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_STATUS)
