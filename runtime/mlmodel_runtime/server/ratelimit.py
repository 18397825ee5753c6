"""Per-client rate limits: a token bucket for each client identity, in bounded memory.

Each client (the token's subject with authentication, else the source address) has a bucket of
`burst` tokens that refills at `rate` tokens a second; an inference request takes one token, or
is refused with the seconds until one is there (429 with Retry-After over REST, RESOURCE_EXHAUSTED
over gRPC). The buckets live in one LRU map of at most `max_clients` entries: a client unseen for
longest is forgotten first, and comes back with a full bucket (the lenient way: memory never grows
with the number of distinct clients, and an attacker with many addresses gains nothing that a
per-client limit could have stopped anyway).

One process serves both protocols on one event loop, so one limiter is shared by REST and gRPC; it
runs on the loop's thread only (no locks). Replicas each count on their own: the model's limit is
per replica, as the queue bound is.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from mlmodel_runtime.server.errors import RateLimited


class RateLimiter:
    """Token buckets by client, at most `max_clients` of them."""

    def __init__(
        self, rate: float, burst: int, max_clients: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # client -> [tokens, last refill]

    def __len__(self) -> int:
        return len(self._buckets)

    def wait_s(self, client: str) -> float:
        """Take a token for `client`: 0.0 when it had one, else the seconds until it will have one."""
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(client)
        if bucket is None:
            if len(buckets) >= self.max_clients:
                buckets.popitem(last=False)
            buckets[client] = [self.burst - 1.0, now]
            return 0.0
        buckets.move_to_end(client)
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def admit(self, client: str) -> None:
        """Take a token for `client` or raise RateLimited (with Retry-After in whole seconds, at least 1)."""
        wait = self.wait_s(client)
        if wait > 0.0:
            raise RateLimited(
                f"rate limit exceeded: {self.rate:g} requests/s with a burst of {self.burst} per client; "
                f"retry in {wait:.2f} s",
                retry_after_s=wait,
            )
