"""The byte budget of the requests in flight (pure code on an event loop): immediate admission
while there is room, first come first served waiting, 503 with Retry-After after the wait, a
request larger than the budget admitted alone, waiters that give up leaving no trace, and the
default budget from the container's memory limit (cgroup v2 and v1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mlmodel_runtime.server.admission import DEFAULT_BUDGET, ByteBudget, default_budget, memory_limit
from mlmodel_runtime.server.errors import Overloaded, status_for


async def test_requests_within_the_budget_are_admitted_at_once() -> None:
    budget = ByteBudget(100, max_wait_s=0)
    first, second = budget.reservation(), budget.reservation()
    await first.grow_to(60)
    await second.grow_to(40)
    assert budget.used == 100
    first.close()
    second.close()
    assert budget.used == 0


async def test_beyond_the_budget_requests_wait_in_order_then_get_503() -> None:
    budget = ByteBudget(100, max_wait_s=5)
    holder = budget.reservation()
    await holder.grow_to(90)
    order: list[str] = []

    async def admit(name: str, size: int) -> None:
        reservation = budget.reservation()
        await reservation.grow_to(size)
        order.append(name)

    big = asyncio.create_task(admit("big", 50))
    await asyncio.sleep(0)  # let it queue first
    small = asyncio.create_task(admit("small", 5))
    await asyncio.sleep(0)
    assert order == []  # the small one fits, but waits behind the big one: no starvation
    holder.close()
    await asyncio.wait_for(asyncio.gather(big, small), 5)
    assert order == ["big", "small"]
    assert budget.used == 55

    impatient = ByteBudget(10, max_wait_s=0.01)
    await impatient.reservation().grow_to(10)
    with pytest.raises(Overloaded, match="could not admit 1 more") as refused:
        await impatient.reservation().grow_to(1)
    assert status_for(refused.value) == 503
    assert refused.value.headers == {"Retry-After": "1"}
    assert impatient.used == 10


async def test_a_request_larger_than_the_budget_is_admitted_alone() -> None:
    budget = ByteBudget(100, max_wait_s=5)
    other = budget.reservation()
    await other.grow_to(1)
    huge = budget.reservation()
    waiting = asyncio.create_task(huge.grow_to(10**9))
    await asyncio.sleep(0)
    assert not waiting.done()
    other.close()
    await asyncio.wait_for(waiting, 5)
    assert budget.used == 100
    huge.resize(300)  # decoded tensors already in memory are counted, never refused
    assert budget.used == 300
    huge.close()
    assert budget.used == 0


async def test_a_waiter_that_gives_up_leaves_no_trace() -> None:
    budget = ByteBudget(10, max_wait_s=5)
    holder = budget.reservation()
    await holder.grow_to(10)
    gone = asyncio.create_task(budget.reservation().grow_to(5))
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    holder.close()
    assert budget.used == 0
    await budget.reservation().grow_to(10)
    assert budget.used == 10


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "536870912\n"}, 536870912),
        ({"memory.max": "max\n"}, None),
        ({"memory.limit_in_bytes": "1073741824\n"}, 1073741824),
        ({"memory.limit_in_bytes": "9223372036854771712\n"}, None),  # v1 without a limit
        ({}, None),
    ],
)
def test_the_memory_limit_comes_from_cgroup_v2_or_v1(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    paths = (str(tmp_path / "memory.max"), str(tmp_path / "memory.limit_in_bytes"))
    assert memory_limit(paths) == expected


def test_the_default_budget_is_a_quarter_of_the_limit_or_a_fixed_size() -> None:
    assert default_budget(2 << 30) == 512 << 20
    assert default_budget(None) == DEFAULT_BUDGET
