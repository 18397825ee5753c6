"""Free TCP ports on 127.0.0.1 for the processes tests start (operators, runtimes, stub servers)."""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_given: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never the same one twice in this test session: tests start several
    processes at once (threads), and a port handed to one of them may still be free when the next asks."""
    with _lock:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _given:
                _given.add(port)
                return port
