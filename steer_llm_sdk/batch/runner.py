"""The local engine: ``client.batch(items, model=..., **params)``.

Reads the items as a stream (memory does not grow with their number), skips items
the journal has already finished and duplicates, and runs the rest concurrently
under per-provider rate limits, adaptive concurrency and a budget. Each result is
recorded in the journal as it completes (committed every fraction of a second), so
the same job run again with the same journal resumes where it stopped.

An item's requests and retries: :mod:`steer_llm_sdk.batch.attempt` (shared with the
Ray engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from ..errors import ConfigurationError
from .attempt import BatchClient, Calls, GateWindows, Plan, run_item
from .items import (
    BatchResult,
    BatchSummary,
    InvalidItem,
    Item,
    check_options,
    chunked,
    content_id,
    fingerprint,
    normalize,
    result_state,
    result_tokens,
)
from .journal import DONE, FAILED, RETRY, Journal
from .limits import Budget, ProviderGate, gate_of
from .recorder import Recorder, journal_location

__all__ = ["BatchJob", "BatchResult", "BatchSummary", "InvalidItem", "content_id"]


class BatchJob:
    """A batch job. ``async for result in job`` yields results as they finish (in any
    order); ``await job.run()`` runs it to the end and returns a :class:`BatchSummary`.
    A job runs once; build a new one (same journal) to resume."""

    def __init__(
        self,
        client: BatchClient,
        items: Iterable[Any] | AsyncIterable[Any],
        model: str | None = None,
        *,
        concurrency: int = 32,
        requests_per_minute: float | Mapping[str, float] | None = None,
        tokens_per_minute: float | Mapping[str, float] | None = None,
        budget_usd: float | None = None,
        max_attempts: int = 5,
        journal: str | os.PathLike[str] | None = None,
        on_result: Callable[[BatchResult], Any] | None = None,
        output_path: str | os.PathLike[str] | None = None,
        system: str | None = None,
        **params: Any,
    ) -> None:
        check_options(concurrency, max_attempts, requests_per_minute, tokens_per_minute, budget_usd)
        if on_result is not None and not callable(on_result):
            raise ConfigurationError("on_result must be a function (sync or async)")
        self._items = items
        self._model = model
        self._concurrency = concurrency
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._budget_limit = None if budget_usd is None else float(budget_usd)
        self._max_attempts = max_attempts
        self._journal_path = None if journal is None else os.fspath(journal)
        self._on_result = on_result
        self._output_path = None if output_path is None else os.fspath(output_path)
        self._system = system
        options = params.pop("streaming_options", None)
        self._params = params
        self._calls = Calls(client, params, options, budget=budget_usd is not None)
        self._gates: dict[str, ProviderGate] = {}
        self._budget: Budget | None = None
        self._recorder: Recorder | None = None
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[BatchResult | None] | None = None
        self._stopping = False
        self._started = False
        self.summary = BatchSummary(journal=self._journal_path)
        self.total: int | None = None  # set by the caller when known (progress bars)

    # -- control ---------------------------------------------------------------------
    def stop(self) -> None:
        """Stop starting new items; those in flight finish and are recorded."""
        self._stopping = True

    def abort(self) -> None:
        """Stop at once: cancel the requests in flight (their items stay unfinished in
        the journal, so a later run does them)."""
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def gates(self) -> dict[str, ProviderGate]:
        return self._gates

    # -- running -------------------------------------------------------------------
    async def run(self) -> BatchSummary:
        """Run the job to the end; return the summary."""
        await self._run()
        return self.summary

    def __aiter__(self) -> AsyncIterator[BatchResult]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BatchResult]:
        queue: asyncio.Queue[BatchResult | None] = asyncio.Queue(maxsize=2 * self._concurrency)
        self._queue = queue

        async def run_then_close() -> None:
            try:
                await self._run()
            finally:
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.put(None)

        runner = asyncio.create_task(run_then_close())
        try:
            while True:
                result = await queue.get()
                if result is None:
                    break
                yield result
            await runner  # raises what the run raised
        finally:
            if not runner.done():
                self.abort()
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner

    async def _run(self) -> None:
        if self._started:
            raise ConfigurationError("a batch job runs once: call client.batch(...) again")
        self._started = True
        began = time.perf_counter()
        path, temp_dir = journal_location(self._journal_path)
        recorder = self._recorder = Recorder(Journal(path), self._output_path)
        flusher: asyncio.Task[None] | None = None
        try:
            self._calls.check_job_price(self._model)
            spent = recorder.begin(fingerprint(self._model, self._system, self._params))
            self.summary.total_cost_usd = spent
            if self._budget_limit is not None:
                self._budget = Budget(self._budget_limit, spent)
            flusher = asyncio.create_task(recorder.commit_periodically())
            try:
                await self._dispatch(recorder)
            finally:
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            try:
                recorder.close()
            finally:
                if temp_dir is not None:
                    temp_dir.cleanup()
            self.summary.elapsed = time.perf_counter() - began
            self.summary.rate_limited = sum(g.rate_limited for g in self._gates.values())
            self.summary.lowest_concurrency = min(
                (g.lowest_limit for g in self._gates.values()), default=self._concurrency
            )

    def _gate(self, provider: str) -> ProviderGate:
        return gate_of(self._gates, provider, self._concurrency, self._rpm, self._tpm)

    # -- input -----------------------------------------------------------------------
    # -- dispatch ----------------------------------------------------------------------
    async def _dispatch(self, recorder: Recorder) -> None:
        journal, run_id = recorder.journal, recorder.run_id
        summary = self.summary
        index = 0
        budget_stopped = False
        async for raw_chunk in chunked(self._items):
            items = []
            for raw in raw_chunk:
                items.append(normalize(raw, index, self._model, self._system))
                index += 1
            summary.read += len(items)
            known = journal.lookup([item.custom_id for item in items])
            seen_here: set[str] = set()
            for item in items:
                cid = item.custom_id
                state = known.get(cid)
                if state is not None and (state[0] in (DONE, FAILED) or state[1] == run_id):
                    if state[1] == run_id:
                        summary.duplicates += 1
                    else:
                        summary.skipped += 1
                    continue
                if cid in self._in_flight or cid in seen_here:
                    summary.duplicates += 1
                    continue
                seen_here.add(cid)
                if budget_stopped:
                    assert summary.remaining is not None
                    summary.remaining += 1
                    continue
                if self._stopping:
                    break
                if not await self._start(item):  # budget
                    budget_stopped = True
                    summary.stopped = "budget"
                    assert summary.remaining is not None
                    summary.remaining += 1
            if self._stopping and not budget_stopped:
                summary.stopped = "interrupted"
                summary.remaining = None
                return

    async def _start(self, item: Item) -> bool:
        """Start one item: True when started (or failed at once), False on a budget stop."""
        plan = self._calls.plan(item)
        if isinstance(plan, BatchResult):
            await self._deliver(item, plan, 0)
            return True
        gate = self._gate(plan.provider)
        await gate.slot()
        if self._budget is not None and not await self._budget.reserve(plan.worst):
            gate.release()
            return False
        self._in_flight.add(item.custom_id)
        task = asyncio.create_task(self._work(item, plan, gate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _work(self, item: Item, plan: Plan, gate: ProviderGate) -> None:
        cost = 0.0
        try:
            result, cost = await run_item(
                self._calls, item, plan, gate, GateWindows(gate), self._max_attempts
            )
        finally:
            if self._budget is not None:
                self._budget.settle(plan.worst, cost)
        self._in_flight.discard(item.custom_id)
        try:
            # The slot stays taken until the result is handed over: a slow reader of
            # `async for` holds back new requests instead of piling up results.
            await self._deliver(item, result, cost)
        finally:
            gate.release()

    # -- results -----------------------------------------------------------------------
    async def _deliver(self, item: Item, result: BatchResult, cost: float) -> None:
        self._count(result, cost)
        assert self._recorder is not None
        self._recorder.record(item.custom_id, result, cost)
        if self._on_result is not None:
            outcome = self._on_result(result)
            if inspect.isawaitable(outcome):
                await outcome
        if self._queue is not None:
            await self._queue.put(result)

    def _count(self, result: BatchResult, cost: float) -> None:
        summary = self.summary
        state = result_state(result)
        if state == DONE:
            summary.succeeded += 1
        elif state == RETRY:
            summary.retryable_failed += 1
        else:
            summary.failed += 1
        prompt, completion = result_tokens(result)
        summary.prompt_tokens += prompt
        summary.completion_tokens += completion
        summary.requests += result.attempts
        summary.cost_usd += cost
        summary.total_cost_usd += cost
