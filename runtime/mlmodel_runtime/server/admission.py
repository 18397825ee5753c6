"""Admission by bytes: a budget for the request bytes being read, decoded and served at once.

Every infer request reserves its bytes (the declared Content-Length before the body is read, more
as a chunked or compressed body grows, then its tensors and its response) and gives them back when
it is answered. While the budget is spent a request waits, first come first served, at most
`max_wait_s`; then it gets 503 with Retry-After, before its body is read. A request larger than
the whole budget is admitted alone, so no valid request is refused for its size only.

All of it runs on the event loop's thread (no locks).
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

from mlmodel_runtime.server.errors import Overloaded

DEFAULT_SHARE = 4
"""Without a configured budget: a quarter of the container's memory limit."""

DEFAULT_BUDGET = 512 * 1024 * 1024
"""Without a configured budget or a known memory limit."""

# cgroup v2, then v1; v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages)
_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
_NO_LIMIT = 1 << 60


def memory_limit(paths: tuple[str, ...] = _CGROUP_LIMITS) -> int | None:
    """The container's memory limit in bytes (cgroup v2 or v1), None when there is none or no cgroup."""
    for path in paths:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            value = int(text)
            return value if value < _NO_LIMIT else None
        return None  # "max": no limit
    return None


def default_budget(limit: int | None) -> int:
    """The budget when none is configured: a share of the memory limit when it is known."""
    return limit // DEFAULT_SHARE if limit else DEFAULT_BUDGET


class ByteBudget:
    """Bytes that the requests in flight may hold, handed out first come first served."""

    def __init__(self, capacity: int, max_wait_s: float) -> None:
        self.capacity = capacity
        self.max_wait_s = max_wait_s
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    def reservation(self) -> Reservation:
        return Reservation(self)

    def try_take(self, size: int) -> bool:
        """Take `size` bytes (capped at the capacity) if there is room now and nobody waits."""
        size = min(size, self.capacity)
        if self._waiters or self.used + size > self.capacity:
            return False
        self.used += size
        return True

    async def take(self, size: int) -> None:
        """Take `size` bytes (capped at the capacity), waiting at most max_wait_s; else Overloaded."""
        if self.try_take(size):
            return
        size = min(size, self.capacity)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.max_wait_s)
        except TimeoutError:
            if future.done():  # granted in the same instant: keep it
                return
            self._waiters.remove(entry)
            self._wake()
            raise Overloaded(
                f"the server holds {self.used} bytes of requests (budget {self.capacity}) "
                f"and could not admit {size} more within {self.max_wait_s:g} s; retry shortly"
            ) from None
        except BaseException:
            if future.done():
                self.give(size)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def force(self, size: int) -> None:
        """Take bytes that are in memory already (a decoded request, a response): never waits."""
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, future = self._waiters[0]
            if future.done():  # cancelled: forget it
                self._waiters.popleft()
                continue
            if self.used + size > self.capacity:
                return
            self._waiters.popleft()
            self.used += size
            future.set_result(None)


class Reservation:
    """What one request holds of the budget; `close()` gives it all back."""

    __slots__ = ("_budget", "held")

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.held = 0

    def try_grow_to(self, size: int) -> bool:
        """Hold at least `size` bytes if the budget has room now and nobody waits (no await: the hot path)."""
        more = min(size, self._budget.capacity) - self.held
        if more <= 0:
            return True
        if not self._budget.try_take(more):
            return False
        self.held += more
        return True

    async def grow_to(self, size: int) -> None:
        """Hold at least `size` bytes, waiting for the difference."""
        more = min(size, self._budget.capacity) - self.held
        if more > 0:
            await self._budget.take(more)
            self.held += more

    def resize(self, size: int) -> None:
        """Hold exactly `size` bytes, at once (what is already in memory is not refused)."""
        budget = self._budget
        if size > self.held:
            budget.force(size - self.held)
        elif size < self.held:
            budget.give(self.held - size)
        self.held = size

    def close(self) -> None:
        if self.held:
            self._budget.give(self.held)
            self.held = 0
