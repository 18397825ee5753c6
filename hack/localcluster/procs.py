"""Processes of the local cluster: free ports, start with a log file, stop by pid, wait with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


class ClusterError(RuntimeError):
    """Something the user has to act on; the message says what."""


@dataclass
class Proc:
    name: str
    pid: int
    argv: list[str]
    log: str


def free_port(avoid: set[int], *, with_grpc_offset: bool = False) -> int:
    """A port free on 127.0.0.1 now (and port+10000 too, for SeaweedFS's implicit gRPC ports)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port in avoid or (with_grpc_offset and (port + 10000 > 65535 or not port_free(port + 10000))):
            continue
        avoid.add(port)
        return port
    raise ClusterError("no free port found on 127.0.0.1")


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    """Spawn a daemon with its output in `log`, in a session of its own (Ctrl-C in the terminal does not
    reach it; cluster-down does). posix_spawn, not Popen: the process outlives this Python process."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # A fresh log per start, so its tail in an error message is about this attempt.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            {**os.environ, **(env or {})},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, fd, 1),
                (os.POSIX_SPAWN_DUP2, fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(fd)
    return Proc(name=name, pid=pid, argv=argv, log=str(log))


def alive(proc: Proc) -> bool:
    """True when the pid is running and is still the program we started (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":  # a zombie is not alive
        _reap(proc.pid)
        return False
    if cmdline == [b""]:
        # Just spawned: the new program's arguments are not mapped yet (posix_spawn returns mid-exec).
        return True
    return bool(cmdline) and cmdline[0].decode(errors="replace") == proc.argv[0]


def _reap(pid: int) -> None:
    """Collect the exit status of a child of ours (no-op for processes another Python started)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(procs: list[Proc], timeout: float = 15.0) -> None:
    """SIGTERM every live process, wait for all with a deadline, then SIGKILL what is left."""
    live = [p for p in procs if alive(p)]
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        live = [p for p in live if alive(p)]
        if live:
            time.sleep(0.1)  # poll
    for p in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        _reap(p.pid)
    deadline = time.monotonic() + 5
    while live and time.monotonic() < deadline:  # SIGKILL is not instant either
        live = [p for p in live if alive(p)]
        if live:
            time.sleep(0.05)  # poll


def stop_folder(recorded: list[Proc], folder: Path, timeout: float = 10.0) -> None:
    """Stop `recorded`, then whatever else still runs from `folder` (left behind by a lost state file)."""
    stop(recorded, timeout=timeout)
    strays = stray_pids(str(folder) + "/")
    if strays:
        kill_pids(strays)


def remove_files(paths: object) -> None:
    """Remove files a stopped process left behind (a list of paths from its state; anything else is ignored)."""
    for path in paths if isinstance(paths, list) else []:
        Path(str(path)).unlink(missing_ok=True)


def stray_pids(marker: str) -> list[int]:
    """Processes whose command line mentions `marker` (our state folder): left behind by a lost state file."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        _reap(pid)


def wait_until(check: Callable[[], bool], timeout: float, what: str, procs: list[Proc]) -> None:
    """Poll `check` until true; fail early, with the log's tail, when one of `procs` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if not alive(p):
                raise ClusterError(f"{p.name} exited while waiting for {what}; last log lines:\n{tail(p.log)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.25)  # poll
    logs = "\n".join(f"--- {p.name} ({p.log}):\n{tail(p.log)}" for p in procs)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def save(path: Path, procs: list[Proc], extra: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"procs": [asdict(p) for p in procs], **extra}, indent=2))
    tmp.replace(path)


def load(path: Path) -> tuple[list[Proc], dict[str, object]]:
    if not path.exists():
        return [], {}
    data = json.loads(path.read_text())
    procs = [Proc(**p) for p in data.pop("procs", [])]
    return procs, data


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """One cluster-up/down at a time on this checkout (several test sessions may race)."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
