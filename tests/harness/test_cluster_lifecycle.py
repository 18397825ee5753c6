"""`cluster-up` recovers from what a previous run left behind, and `cluster-down` leaves nothing running
or lying around.

Runs the project's own tooling on a second, private `.local` folder so the shared cluster is untouched:
a component killed with SIGKILL is noticed and the cluster restarted; with the state file lost, the processes
still running from that folder are found and stopped before a fresh start; `down` stops every process.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from hack.localcluster import Layout, down, status, up
from hack.localcluster.procs import alive, load, stray_pids
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _pids(layout: Layout) -> set[int]:
    procs, _ = load(layout.cluster_state)
    return {p.pid for p in procs}


def test_up_recovers_and_down_stops_everything(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "local")
    marker = str(layout.cluster) + "/"
    try:
        assert up(("cluster",), layout).cluster
        first = _pids(layout)
        assert len(first) == 5  # etcd, apiserver, controller-manager, scheduler, kwok
        assert up(("cluster",), layout).cluster
        assert _pids(layout) == first, "up on a healthy cluster is a no-op"

        # A component dies: status notices, up replaces the whole set.
        scheduler = next(p for p in load(layout.cluster_state)[0] if p.name == "kube-scheduler")
        os.kill(scheduler.pid, signal.SIGKILL)
        wait_for(lambda: not status(layout).cluster, 10, "status to notice the killed scheduler")  # SIGKILL is async
        assert up(("cluster",), layout).cluster
        second = _pids(layout)
        assert not first & second
        assert not any(alive(p) for p in load(layout.cluster_state)[0] if p.pid in first)

        # The state file is lost while everything runs: the leftovers are found by their folder and stopped.
        layout.cluster_state.unlink()
        assert up(("cluster",), layout).cluster
        third = _pids(layout)
        assert set(stray_pids(marker)) == third
    finally:
        down(("cluster",), layout)
    assert stray_pids(marker) == []
    assert not layout.cluster_state.exists()


def test_objectstore_down_leaves_nothing_behind(tmp_path: Path) -> None:
    """The object store's logs and sockets stay in its folder, except the gRPC sockets weed always puts in
    /tmp: those are named in the state file and removed by `down`, with the process."""
    layout = Layout(tmp_path / "local")
    marker = str(layout.objectstore) + "/"
    try:
        assert up(("objectstore",), layout).objectstore
        _, state = load(layout.objectstore_state)
        sockets = [Path(str(s)) for s in state["sockets"]]  # type: ignore[attr-defined]
        assert sockets
        assert all(s.is_socket() for s in sockets), sockets
        assert (layout.objectstore / "s3.sock").is_socket()
        assert (layout.objectstore / "logs" / "weed.log").stat().st_size > 0
    finally:
        down(("objectstore",), layout)
    assert stray_pids(marker) == []
    assert [s for s in sockets if s.exists()] == []
    assert not layout.objectstore_state.exists()
