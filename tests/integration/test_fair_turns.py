"""The pipeline takes its steps from the loop's fair budget (streaming/fair.py): many
concurrent streams over real sockets prepare their requests and decode their reads a
few per loop turn, and every one of them still gets its whole text."""

from __future__ import annotations

import asyncio
from collections import Counter

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.streaming import fair

STREAMS = 40
PER_TURN = 4


async def test_concurrent_streams_take_a_few_steps_per_loop_turn(
    client: SteerLLMClient, model: str
) -> None:
    loop = asyncio.get_running_loop()
    granted: Counter[int] = Counter()  # loop turn -> steps granted in it
    turn = [0]

    def tick() -> None:
        turn[0] += 1
        if not done:
            loop.call_soon(tick)

    class Recorded(fair.Turns):
        __slots__ = ()

        def step(self) -> asyncio.Future[None] | None:
            wait = super().step()
            if wait is None:
                granted[turn[0]] += 1
            else:
                wait.add_done_callback(lambda _: granted.update([turn[0]]))
            return wait

    budget = Recorded(loop, per_turn=PER_TURN)
    previous = fair._by_loop.get(loop)
    fair._by_loop[loop] = budget
    done = False
    loop.call_soon(tick)
    try:

        async def text() -> str:
            return "".join([chunk async for chunk in client.stream("Hi", model)])

        expected = await text()
        granted.clear()
        texts = await asyncio.gather(*(text() for _ in range(STREAMS)))
    finally:
        done = True
        if previous is None:
            del fair._by_loop[loop]
        else:
            fair._by_loop[loop] = previous
    assert expected and texts == [expected] * STREAMS
    steps = sum(granted.values())
    assert steps >= 2 * STREAMS  # each stream: its request, then at least one read
    # A few per turn (the budget's turn and this clock's differ by a callback's place
    # in the turn, hence the slack), never all forty at once.
    assert max(granted.values()) <= 2 * PER_TURN, granted
    assert len(granted) >= steps // (2 * PER_TURN)
