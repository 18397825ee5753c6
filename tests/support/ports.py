"""Free TCP ports for the processes tests start (operators, runtimes, stub servers)."""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_lock = threading.Lock()
_given: set[int] = set()


def _below_ephemeral() -> range:
    """Ports no outgoing connection takes as its source port (the kernel picks those from its ephemeral range) and
    below Kubernetes' NodePort range (30000-32767): a port handed out from the ephemeral range could be taken by
    any client's connection between the check and the process binding it (seen: an operator's health port)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(20000, min(30000, low))


_PORTS = _below_ephemeral()


def free_port() -> int:
    """A port nothing listens on now, never the same one twice in this test session: tests start several
    processes at once (threads), and a port handed to one of them may still be free when the next asks."""
    with _lock:
        while True:
            port = random.choice(_PORTS)
            if port in _given:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("0.0.0.0", port))  # all addresses: the processes listen on 0.0.0.0 or 127.0.0.1
                except OSError:
                    continue
            _given.add(port)
            return port
