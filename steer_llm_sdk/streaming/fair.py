"""Fair turns: at most a few dozen streams do heavy work in one event-loop turn.

asyncio runs, in one turn, every callback that was ready when the turn began. When a
thousand streams have data at the same moment (a fast server, a burst of calls), each
decodes its read and hands the chunks to its caller in that one turn, and nothing
else on the loop (a web handler, a health check, a timer) runs until all of them are
done: measured, a 1.1 s turn with 2,000 concurrent streams. Here a call takes a
*step* before each heavy piece of work (preparing its request, decoding a network
read); a loop turn grants :data:`STEPS_PER_TURN` of them, and the streams above that
wait, in order, for later turns. A lone stream never waits: the check is a counter.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

if TYPE_CHECKING:  # asyncio itself is imported on first use, not with the package
    import asyncio

__all__ = ["STEPS_PER_TURN", "Turns", "turns"]

# A step is at most one 64 KiB read (its decode and the caller's loop over its chunks)
# or one request's preparation: 0.2-1 ms on a slow core, so a turn stays near 50 ms.
STEPS_PER_TURN = 64


class Turns:
    """The step budget of one event loop."""

    __slots__ = ("_left", "_loop", "_per_turn", "_refill_due", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, per_turn: int = STEPS_PER_TURN) -> None:
        self._loop = loop
        self._per_turn = per_turn
        self._left = per_turn
        self._refill_due = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def step(self) -> asyncio.Future[None] | None:
        """None if the caller may go on now, else a future to await first (resolved
        in a later turn, in the order the waits began)."""
        if self._left > 0 and not self._waiters:
            self._left -= 1
            if not self._refill_due:
                self._refill_due = True
                self._loop.call_soon(self._refill)
            return None
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        if not self._refill_due:
            self._refill_due = True
            self._loop.call_soon(self._refill)
        return waiter

    def _refill(self) -> None:
        """Runs once per turn while steps are taken: a fresh budget, spent first on
        the streams that waited. The woken streams run in the next turn, so the next
        refill is scheduled behind them."""
        self._left = self._per_turn
        waiters = self._waiters
        while waiters and self._left > 0:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled caller gave its place up
                waiter.set_result(None)
                self._left -= 1
        if waiters or self._left < self._per_turn:
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
