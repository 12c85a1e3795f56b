"""The loop's fair budget (streaming/fair.py): a turn grants a fixed number of steps,
the streams above it wait in order for later turns, a cancelled waiter gives its place
up, and a quiet loop schedules nothing."""

from __future__ import annotations

import asyncio

from steer_llm_sdk.streaming.fair import Turns, turns


class TurnClock:
    """Counts event-loop turns: a callback that schedules itself for the next turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = 0
        self.loop = loop
        self.running = True
        loop.call_soon(self.tick)

    def tick(self) -> None:
        self.now += 1
        if self.running:
            self.loop.call_soon(self.tick)


async def test_a_turn_grants_its_steps_and_the_rest_wait_in_order() -> None:
    loop = asyncio.get_running_loop()
    budget = Turns(loop, per_turn=3)
    clock = TurnClock(loop)
    passed: list[tuple[int, int]] = []  # (task, turn it went on in)

    async def task(i: int) -> None:
        wait = budget.step()
        if wait is not None:
            await wait
        passed.append((i, clock.now))

    await asyncio.gather(*(task(i) for i in range(10)))
    clock.running = False
    assert [i for i, _ in passed] == list(range(10))  # first come, first served
    per_turn: dict[int, int] = {}
    for _, turn in passed:
        per_turn[turn] = per_turn.get(turn, 0) + 1
    assert max(per_turn.values()) <= 3
    assert len(per_turn) >= 4  # ten steps at three a turn


async def test_a_lone_caller_never_waits() -> None:
    budget = Turns(asyncio.get_running_loop(), per_turn=2)
    for _ in range(50):
        assert budget.step() is None
        await asyncio.sleep(0)  # the next turn: a fresh budget


async def test_a_cancelled_waiter_gives_its_place_up() -> None:
    loop = asyncio.get_running_loop()
    budget = Turns(loop, per_turn=1)
    assert budget.step() is None
    first = budget.step()
    second = budget.step()
    assert first is not None and second is not None
    first.cancel()
    await asyncio.wait_for(second, 1)  # not stuck behind the cancelled one


async def test_an_idle_budget_schedules_nothing() -> None:
    loop = asyncio.get_running_loop()
    budget = Turns(loop, per_turn=4)
    for _ in range(3):
        assert budget.step() is None
    for _ in range(3):
        await asyncio.sleep(0)
    assert budget._refill_due is False  # no callback left running every turn
    assert budget._left == 4


async def test_one_budget_per_loop() -> None:
    assert turns() is turns()
    other = await asyncio.to_thread(lambda: asyncio.run(_budget_id()))
    assert other != id(turns())


async def _budget_id() -> int:
    return id(turns())


async def test_long_turns_grant_fewer_steps_and_short_turns_more_again() -> None:
    """A turn that ran past TURN_SECONDS (steps that each cost 10 ms here) makes the
    next turns grant fewer steps, in proportion; quick turns double the grant back."""
    import time
    from collections import Counter

    from steer_llm_sdk.streaming.fair import TURN_SECONDS

    loop = asyncio.get_running_loop()
    budget = Turns(loop, per_turn=8)
    clock = TurnClock(loop)
    granted: Counter[int] = Counter()

    async def task(cost: float) -> None:
        wait = budget.step()
        if wait is not None:
            await wait
        granted[clock.now] += 1
        time.sleep(cost)  # noqa: ASYNC251 - the step's work, blocking as CPU work is

    await asyncio.gather(*(task(0.01) for _ in range(24)))
    turns_used = sorted(granted)
    assert granted[turns_used[0]] == 8  # the first turn: the full grant (80 ms)
    later = [granted[t] for t in turns_used[1:]]
    assert max(later) <= 2 * max(1, int(8 * TURN_SECONDS / 0.08)), granted
    assert budget._grant < 8
    for _ in range(6):  # quick turns: the grant grows back to per_turn
        await asyncio.gather(*(task(0) for _ in range(8)))
    assert budget._grant == 8
    clock.running = False
