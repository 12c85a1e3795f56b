"""Rate limits, adaptive concurrency and the budget of a batch job.

Per provider, a :class:`ProviderGate` holds:

- a requests and a tokens limiter (:class:`WindowLimiter`): the limit per minute is
  enforced over sliding windows of one second (``limit / 60`` per second; longer when
  the limit is below one unit per second), which also holds over every longer window,
  a minute included. Providers quantise their per-minute limits the same way (OpenAI:
  "60,000 requests/minute may be enforced as 1,000 requests/second"), so a job never
  bursts a minute's worth in its first second. A request is charged its estimated
  tokens when it starts and settled with its real usage when it ends;
- a pause: a 429 or 529 stops every new request to the provider for its Retry-After;
- an adaptive concurrency limit: halved by a 429/529 (at most once per pause), then
  raised by one each time that many requests succeed in a row, up to the job's
  ``concurrency``.

:class:`Budget` holds the spent cost and the worst case of the requests in flight.
Everything here runs on one event loop, so no locks.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

__all__ = ["HEADROOM", "Budget", "ProviderGate", "WindowLimiter", "gate_of"]

_MAX_PAUSE = 60.0  # seconds: StreamingOptions.max_retry_after's default

# The runner aims this fraction of each limit: a request is charged when it leaves,
# the provider counts it when it arrives, and network (or event loop) jitter between
# the two can put a few more into one of the provider's windows than were sent in it.
HEADROOM = 0.97


class WindowLimiter:
    """At most ``HEADROOM * per_minute * window / 60`` units in any sliding window of
    ``window`` seconds (one second, or the time one unit takes when the limit is lower)."""

    __slots__ = ("allowance", "entries", "total", "window")

    def __init__(self, per_minute: float) -> None:
        if not per_minute > 0:
            raise ValueError("a limit per minute must be > 0")
        per_minute = per_minute * HEADROOM
        self.window = max(1.0, 60.0 / per_minute)
        self.allowance = per_minute * self.window / 60.0
        self.entries: deque[list[float]] = deque()  # [time, amount]
        self.total = 0.0

    def _prune(self, now: float) -> None:
        entries = self.entries
        edge = now - self.window
        while entries and entries[0][0] <= edge:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no drift from float sums

    def wait_time(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (0.0: now). An amount larger than the whole
        allowance goes alone, once the window is empty."""
        self._prune(now)
        if self.total + amount <= self.allowance or not self.entries:
            return 0.0
        need = self.total + amount - self.allowance
        freed = 0.0
        for when, size in self.entries:
            freed += size
            if freed >= need - 1e-9:
                return max(0.0, when + self.window - now)
        return max(0.0, self.entries[-1][0] + self.window - now)

    def charge(self, amount: float, now: float) -> list[float]:
        entry = [now, float(amount)]
        self.entries.append(entry)
        self.total += amount
        return entry

    def settle(self, entry: list[float], actual: float, now: float) -> None:
        """Replace a charge by the real amount: inside the window, adjust it; after
        it, charge any excess now (an overestimate that has left the window is gone)."""
        self._prune(now)
        if entry[0] > now - self.window:
            self.total += actual - entry[1]
            entry[1] = float(actual)
        elif actual > entry[1]:
            self.charge(actual - entry[1], now)
            entry[1] = float(actual)


class Ticket:
    """What one attempt was charged, to settle when it ends."""

    __slots__ = ("request", "tokens")

    def __init__(self, request: list[float] | None, tokens: list[float] | None) -> None:
        self.request = request
        self.tokens = tokens


class ProviderGate:
    """Concurrency slots, rate limits and pauses for one provider."""

    def __init__(
        self,
        name: str,
        *,
        concurrency: int,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.name = name
        self.max_concurrency = concurrency
        self.limit = concurrency
        self.in_use = 0
        self.requests = WindowLimiter(requests_per_minute) if requests_per_minute else None
        self.tokens = WindowLimiter(tokens_per_minute) if tokens_per_minute else None
        self.paused_until = 0.0
        self._clock = clock
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._streak = 0
        self.rate_limited = 0  # 429/529 answers seen
        self.lowest_limit = concurrency

    # -- slots -------------------------------------------------------------------
    async def slot(self, *, priority: bool = False) -> None:
        """Wait for a concurrency slot (retries go to the front of the queue)."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if priority:
            self._waiters.appendleft(future)
        else:
            self._waiters.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            else:
                future.cancel()
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_use < self.limit:
            future = self._waiters.popleft()
            if future.cancelled():
                continue
            self.in_use += 1
            future.set_result(None)

    # -- rate ----------------------------------------------------------------------
    async def rate(self, tokens: float) -> Ticket:
        """Wait until the request and its estimated tokens fit, then charge them."""
        while True:
            now = self._clock()
            wait = self.paused_until - now
            if self.requests is not None:
                wait = max(wait, self.requests.wait_time(1, now))
            if self.tokens is not None:
                wait = max(wait, self.tokens.wait_time(tokens, now))
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        return Ticket(
            self.requests.charge(1, now) if self.requests is not None else None,
            self.tokens.charge(tokens, now) if self.tokens is not None else None,
        )

    def settle(self, ticket: Ticket, tokens: float) -> None:
        if ticket.tokens is not None and self.tokens is not None:
            self.tokens.settle(ticket.tokens, tokens, self._clock())

    # -- feedback ----------------------------------------------------------------------
    def on_rate_limited(self, retry_after: float) -> None:
        """A 429/529: pause the provider and halve concurrency (once per pause). A
        RateLimitError carries the server's own Retry-After, which may be hours or a
        date in 2099: the pause is at most the default max_retry_after (60 s)."""
        retry_after = min(retry_after, _MAX_PAUSE)
        self.rate_limited += 1
        now = self._clock()
        already_paused = self.paused_until > now
        self.paused_until = max(self.paused_until, now + retry_after)
        if not already_paused:
            self.limit = max(1, self.limit // 2)
            self.lowest_limit = min(self.lowest_limit, self.limit)
        self._streak = 0

    def on_success(self) -> None:
        if self.limit >= self.max_concurrency:
            return
        self._streak += 1
        if self._streak >= self.limit:
            self._streak = 0
            self.limit += 1
            self._wake()


def gate_of(
    gates: dict[str, ProviderGate],
    provider: str,
    concurrency: int,
    requests_per_minute: float | Mapping[str, float] | None,
    tokens_per_minute: float | Mapping[str, float] | None,
) -> ProviderGate:
    """``provider``'s gate in ``gates``, made on first use. Each limit is one number
    for every provider or a mapping of provider names to numbers."""
    gate = gates.get(provider)
    if gate is None:
        rpm, tpm = requests_per_minute, tokens_per_minute
        gate = gates[provider] = ProviderGate(
            provider,
            concurrency=concurrency,
            requests_per_minute=rpm.get(provider) if isinstance(rpm, Mapping) else rpm,
            tokens_per_minute=tpm.get(provider) if isinstance(tpm, Mapping) else tpm,
        )
    return gate


class Budget:
    """Spent cost plus the worst case of the requests in flight stays under ``limit``."""

    def __init__(self, limit: float, spent: float = 0.0) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0
        self.in_flight = 0
        self._changed = asyncio.Event()

    def fits(self, worst: float) -> bool:
        return self.spent + self.reserved + worst <= self.limit

    async def reserve(self, worst: float) -> bool:
        """Reserve ``worst``; wait while in-flight requests may free room. False when
        it cannot fit even with nothing in flight: the budget is spent."""
        while True:
            if self.fits(worst):
                self.reserved += worst
                self.in_flight += 1
                return True
            if self.in_flight == 0:
                return False
            self._changed.clear()
            await self._changed.wait()

    def settle(self, worst: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - worst)
        self.in_flight -= 1
        self.spent += actual
        self._changed.set()
