"""Every value one field of one object takes, as the API server streams it (`kubectl get -w`), not as a poll
samples it: a value that lasts a few milliseconds is seen all the same."""

from __future__ import annotations

import subprocess
import threading
import time
from types import TracebackType

from tests.support.kube import Kubectl, kubectl_binary


class FieldWatch:
    """`kubectl get RESOURCE NAME -w -o jsonpath=FIELD` in the background, as a context manager.

    `seen` holds (monotonic time, value) per event, None where the field is absent; `values()` the
    sequence with repeats collapsed (a status write repeats spec.replicas unchanged)."""

    def __init__(self, kubectl: Kubectl, namespace: str, resource: str, name: str, field: str) -> None:
        self._args = [kubectl_binary(), "--kubeconfig", str(kubectl.kubeconfig), "get", resource, name,
                      "-n", namespace, "-w", "-o", f"jsonpath={{{field}}}{{\"\\n\"}}"]
        self.seen: list[tuple[float, str | None]] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> FieldWatch:
        self._proc = subprocess.Popen(self._args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            value = line.strip()
            self.seen.append((time.monotonic(), value or None))

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    def values(self, *, skip_absent: bool = False) -> list[str | None]:
        """The values in the order seen, consecutive repeats collapsed; `skip_absent` drops the absent ones first."""
        out: list[str | None] = []
        for _, value in list(self.seen):
            if (value is None and skip_absent) or (out and out[-1] == value):
                continue
            out.append(value)
        return out
