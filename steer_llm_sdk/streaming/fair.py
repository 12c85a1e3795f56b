"""Fair turns: at most a few dozen streams do heavy work in one event-loop turn.

asyncio runs, in one turn, every callback that was ready when the turn began. When a
thousand streams have data at the same moment (a fast server, a burst of calls), each
decodes its read and hands the chunks to its caller in that one turn, and nothing
else on the loop (a web handler, a health check, a timer) runs until all of them are
done: measured, a 1.1 s turn with 2,000 concurrent streams. Here a call takes a
*step* before each heavy piece of work (preparing its request, decoding a network
read, and in the transport: opening a connection, handling a response head); a loop
turn grants :data:`STEPS_PER_TURN` of them at most, fewer while turns run longer
than :data:`TURN_SECONDS` (a step that decodes a 64 KiB read and hands its chunks to
the caller can cost over a millisecond), and the streams above that wait, in order,
for later turns. A lone stream never waits: the check is a counter.
"""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

if TYPE_CHECKING:  # asyncio itself is imported on first use, not with the package
    import asyncio

__all__ = ["STEPS_PER_TURN", "TURN_SECONDS", "Turns", "turns"]

# A step is at most one 64 KiB read (its decode and the caller's loop over its chunks)
# or one request's preparation: 0.02-2 ms on a slow core.
STEPS_PER_TURN = 64
# How long a turn that takes steps may run: when one ran longer, the next grants
# fewer steps (in proportion), then more again as turns get short (doubling).
TURN_SECONDS = 0.02


class Turns:
    """The step budget of one event loop."""

    __slots__ = ("_grant", "_last", "_left", "_loop", "_per_turn", "_refill_due", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, per_turn: int = STEPS_PER_TURN) -> None:
        self._loop = loop
        self._per_turn = per_turn
        self._grant = per_turn  # steps a turn grants now: per_turn, less after long turns
        self._left = per_turn
        self._last = 0.0  # when the last refill ran (the turns between refills are timed)
        self._refill_due = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def step(self) -> asyncio.Future[None] | None:
        """None if the caller may go on now, else a future to await first (resolved
        in a later turn, in the order the waits began)."""
        if self._left > 0 and not self._waiters:
            self._left -= 1
            if not self._refill_due:
                self._schedule()
            return None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        if not self._refill_due:
            self._schedule()
        return waiter

    def _schedule(self) -> None:
        """Steps are taken again after a quiet time: a refill at the end of this turn."""
        self._refill_due = True
        self._last = perf_counter()
        self._loop.call_soon(self._refill)

    def _refill(self) -> None:
        """Runs once per turn while steps are taken: a fresh budget, spent first on
        the streams that waited. The woken streams run in the next turn, so the next
        refill is scheduled behind them. The time since the last refill is the turn
        that just ran (never an idle wait: this callback keeps the loop busy): when it
        was longer than TURN_SECONDS, the next turns grant fewer steps."""
        now = perf_counter()
        took = now - self._last
        self._last = now
        grant = self._grant
        if took > TURN_SECONDS:
            grant = max(1, int(grant * TURN_SECONDS / took))
        elif grant < self._per_turn:
            grant = min(self._per_turn, 2 * grant)
        self._grant = grant
        self._left = grant
        waiters = self._waiters
        while waiters and self._left > 0:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled caller gave its place up
                waiter.set_result(None)
                self._left -= 1
        if waiters or self._left < grant:
            self._loop.call_soon(self._refill)
        else:
            self._refill_due = False


_by_loop: WeakKeyDictionary[Any, Turns] = WeakKeyDictionary()


def turns() -> Turns:
    """The running loop's budget (one per loop: a client may serve several loops)."""
    from asyncio import get_running_loop

    loop = get_running_loop()
    try:
        budget = _by_loop.get(loop)
        if budget is None:
            budget = _by_loop[loop] = Turns(loop)
    except TypeError:  # a loop class without weak references: a budget per call
        budget = Turns(loop)
    return budget
