"""Passes for one model never overlap; a coalescing request that finds one already queued is dropped (the
queued pass will read fresher state), a blocking one always runs; different models run in parallel."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from mlmodel_operator.reconcile import KeyedSerializer

from tests.support.waiting import wait_for


def test_one_pass_at_a_time_and_queued_requests_coalesce() -> None:
    serializer = KeyedSerializer()
    release = threading.Event()
    running = threading.Event()
    active: list[int] = []
    overlaps: list[int] = []
    calls: list[str] = []

    def work(tag: str) -> str:
        active.append(1)
        if len(active) > 1:
            overlaps.append(len(active))
        calls.append(tag)
        if tag == "first":
            running.set()
            release.wait(10)
        active.pop()
        return tag

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(serializer.run, "ns/m", lambda: work("first"), coalesce=False)
        assert running.wait(10)
        queued = pool.submit(serializer.run, "ns/m", lambda: work("queued"), coalesce=True)
        wait_for(lambda: serializer._slots["ns/m"].queued == 1, 10, "the second request to queue")
        dropped = serializer.run("ns/m", lambda: work("dropped"), coalesce=True)
        blocking = pool.submit(serializer.run, "ns/m", lambda: work("blocking"), coalesce=False)
        other = serializer.run("ns/other", lambda: "other", coalesce=True)
        release.set()
        assert first.result(10) == "first"
        assert queued.result(10) == "queued"
        assert blocking.result(10) == "blocking"
    assert dropped is None
    assert other == "other"
    assert overlaps == []
    assert sorted(calls) == ["blocking", "first", "queued"]
    assert serializer._slots == {}
