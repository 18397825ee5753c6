"""A client loop through a model's Service: what a user's traffic sees during a rollout or a rollback.

Each request opens a new connection (as `curl` in a shell loop does), so each one goes through kube-proxy's
choice of an endpoint; a request counts as failed on any transport error or any status other than 200.
Used by `make demo` and the end-to-end tests on real pods.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    revisions: Counter[str] = field(default_factory=Counter)  # which model version answered, from the reply
    first_failure: float | None = None  # time.monotonic() of the first failed request
    last_failure: float | None = None

    def summary(self) -> str:
        why = ", ".join(f"{r}: {n}" for r, n in self.reasons.most_common(5))
        return f"{self.ok + self.failed} requests, {self.failed} failed" + (f" ({why})" if why else "")


class ClientLoop:
    """POSTs `body` to `url` back to back (with `pause` between) in a thread until `stop()`."""

    def __init__(self, url: str, body: dict[str, Any], *, pause: float = 0.02, timeout: float = 10.0) -> None:
        self.url = url
        self.body = body
        self.pause = pause
        self.timeout = timeout
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="client-loop", daemon=True)

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Tally:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + 5)
        return self.tally

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = httpx.post(self.url, json=self.body, timeout=self.timeout)
                if r.status_code == 200:
                    self.tally.ok += 1
                    self.tally.revisions[str(r.json().get("model_version", ""))] += 1
                else:
                    self._failed(f"HTTP {r.status_code}: {r.text[:120]}")
            except httpx.HTTPError as exc:
                self._failed(f"{type(exc).__name__}: {str(exc)[:120]}")
            self._stop.wait(self.pause)

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        self.tally.failed += 1
        self.tally.reasons[reason] += 1
        self.tally.first_failure = self.tally.first_failure or now
        self.tally.last_failure = now

    def wait_for_requests(self, n: int, timeout: float) -> None:
        """Until `n` requests have been answered (either way): the loop is really running."""
        deadline = time.monotonic() + timeout
        while self.tally.ok + self.tally.failed < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the client loop sent fewer than {n} requests in {timeout:.0f}s")
            self._stop.wait(0.05)  # poll
