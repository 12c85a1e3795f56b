"""Batch jobs on a Ray cluster: ``client.batch(..., engine="ray")`` and
``steer-llm batch --engine ray`` (:mod:`steer_llm_sdk.batch.cli`). Needs
``pip install 'steer-llm-sdk[ray]'``; nothing of Ray is imported until a job with
``engine="ray"`` runs.

How it runs:

- the input becomes a Ray Dataset (a JSONL or Parquet path, with a column per field:
  ``custom_id``, ``prompt`` or ``messages``, per-item parameters; or a list of items);
- ``map_batches`` runs :class:`SteerUDF`, an actor class holding one
  :class:`~steer_llm_sdk.SteerLLMClient` per actor, which runs the rows of each batch
  concurrently on its own event loop;
- one named actor, :class:`Coordinator`, holds what must be shared: the per-provider
  rate limits (so every worker together stays under the provider's limits: Ray's own
  HTTP processor limits each worker separately), the 429 pauses, the budget, and the
  job's SQLite journal (on the driver's node);
- resume is by ``custom_id`` through that journal, not Ray Data's checkpointing: the
  journal already gives the local engine exactly-once output, a fingerprint check and
  a budget that counts earlier runs, and it is written as each item completes, so a
  worker killed mid-batch loses only its requests in flight (Ray retries the batch and
  the finished rows come back from the journal without a request);
- the output (JSONL, or Parquet when the path ends in ``.parquet``) is written from the
  journal when the job ends: one row per item, duplicates in the input included once.
  (Duplicates that run at the same moment on two workers may each cost a request; the
  local engine never does that.)
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import ConfigurationError
from .attempt import BatchClient, Calls, run_item
from .items import (
    BatchResult,
    BatchSummary,
    Item,
    check_options,
    fingerprint,
    jsonable,
    normalize,
    result_line,
    result_state,
    result_tokens,
)
from .journal import DONE, FAILED, RETRY, Journal
from .limits import Budget, ProviderGate, gate_of

__all__ = ["Coordinator", "RayBatchJob", "Rows", "SteerUDF", "export"]

_NAMESPACE = "steer-llm-sdk"
_BUDGET_WAIT = 300.0  # seconds a request may wait for budget freed by requests in flight


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigurationError(
            "engine='ray' needs Ray Data: pip install 'steer-llm-sdk[ray]'"
        ) from None
    return ray


class Coordinator:
    """The shared state of one job (a named Ray actor): limits, budget, journal."""

    def __init__(
        self,
        journal_path: str,
        run_id: int,
        requests_per_minute: Any,
        tokens_per_minute: Any,
        budget_usd: float | None,
    ) -> None:
        self.journal = Journal(journal_path)
        self.run_id = run_id
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        spent = sum(cost for _, cost, _, _ in self.journal.totals().values())
        self.budget = Budget(budget_usd, spent) if budget_usd is not None else None
        self.spent_before = spent
        self.gates: dict[str, ProviderGate] = {}
        self.tickets: dict[int, Any] = {}
        self.next_ticket = 0
        self.counts = {"succeeded": 0, "failed": 0, "retryable_failed": 0, "requests": 0}
        self.tokens = [0, 0]
        self.cost = 0.0
        self.limited_count = 0
        self.budget_stopped = False
        self.pids: set[int] = set()
        self.last_commit = time.monotonic()

    def _gate(self, provider: str) -> ProviderGate:
        return gate_of(self.gates, provider, 1, self.rpm, self.tpm)

    async def register(self, pid: int) -> None:
        self.pids.add(pid)

    async def worker_pids(self) -> list[int]:
        return sorted(self.pids)

    async def lookup(self, ids: list[str]) -> dict[str, bytes]:
        """Results already recorded (earlier runs, or this run before a retry)."""
        return self.journal.lookup_results(ids, run=self.run_id)

    async def reserve(self, worst: float) -> bool:
        if self.budget is None:
            return True
        if self.budget_stopped:
            return False
        try:
            # A worker that died with requests in flight never returns their worst
            # case: waiting for it would hang, so a long wait ends the job (a budget
            # that stops early, never one that overruns).
            fits = await asyncio.wait_for(self.budget.reserve(worst), _BUDGET_WAIT)
        except TimeoutError:
            fits = False
        if not fits:
            self.budget_stopped = True
        return fits

    async def acquire(self, provider: str, tokens: float) -> int:
        ticket = await self._gate(provider).rate(tokens)
        self.next_ticket += 1
        self.tickets[self.next_ticket] = (provider, ticket)
        return self.next_ticket

    async def settle(self, ticket_id: int, tokens: float) -> None:
        provider, ticket = self.tickets.pop(ticket_id)
        self._gate(provider).settle(ticket, tokens)

    async def rate_limited(self, provider: str, retry_after: float) -> None:
        self.limited_count += 1
        self._gate(provider).on_rate_limited(retry_after)

    async def complete(
        self,
        item_id: str,
        state: int,
        attempts: int,
        cost: float,
        prompt: int,
        completion: int,
        result: bytes,
        worst: float | None,
    ) -> None:
        """Record an item's result; ``worst``: what it reserved from the budget (None:
        it failed before reserving any)."""
        if self.budget is not None and worst is not None:
            self.budget.settle(worst, cost)
        existing = self.journal.lookup([item_id]).get(item_id)
        self.counts["requests"] += attempts
        self.cost += cost
        if existing is not None and existing[0] in (DONE, FAILED):
            return  # a duplicate that ran at the same time elsewhere: first one wins
        key = {DONE: "succeeded", FAILED: "failed", RETRY: "retryable_failed"}[state]
        self.counts[key] += 1
        self.tokens[0] += prompt
        self.tokens[1] += completion
        self.journal.record(item_id, state, self.run_id, attempts, cost, prompt, completion, result)
        if time.monotonic() - self.last_commit > 0.2 or self.journal.pending >= 512:
            self.journal.commit()
            self.last_commit = time.monotonic()

    async def summary(self) -> dict[str, Any]:
        self.journal.commit()
        return {
            **self.counts,
            "prompt_tokens": self.tokens[0],
            "completion_tokens": self.tokens[1],
            "cost_usd": self.cost,
            "total_cost_usd": self.spent_before + self.cost,
            "rate_limited": self.limited_count,
            "budget_stopped": self.budget_stopped,
        }

    async def close(self) -> None:
        self.journal.close()


class SharedWindows:
    """An attempt's rate windows on a Ray worker: the coordinator's, shared by every
    worker, so the cluster together keeps to the provider's limits and pauses."""

    __slots__ = ("coordinator", "provider")

    def __init__(self, coordinator: Any, provider: str) -> None:
        self.coordinator = coordinator
        self.provider = provider

    async def charge(self, tokens: float) -> Any:
        return await self.coordinator.acquire.remote(self.provider, tokens)

    async def settle(self, ticket: Any, tokens: float) -> None:
        await self.coordinator.settle.remote(ticket, tokens)

    async def paused(self, seconds: float) -> None:
        await self.coordinator.rate_limited.remote(self.provider, seconds)


class Rows:
    """A worker's rows: each normalised and run like the local engine's items (same
    plan, same attempt loop), with the coordinator's journal, windows and budget."""

    def __init__(
        self,
        coordinator: Any,
        client: BatchClient,
        model: str | None,
        system: str | None,
        params: dict[str, Any],
        options: Any,
        *,
        budget: bool,
        concurrency: int,
        max_attempts: int,
    ) -> None:
        self.coordinator = coordinator
        self.model = model
        self.system = system
        self.calls = Calls(client, params, options, budget=budget)
        self.gates: dict[str, ProviderGate] = {}  # this worker's slots, per provider
        self.concurrency = concurrency
        self.max_attempts = max_attempts

    async def run(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items = [normalize(_row_item(row), 0, self.model, self.system) for row in rows]
        known = await self.coordinator.lookup.remote([item.custom_id for item in items])
        return list(await asyncio.gather(*(self._row(item, known) for item in items)))

    async def _row(self, item: Item, known: dict[str, bytes]) -> dict[str, Any]:
        if item.custom_id in known:
            return {"custom_id": item.custom_id, "status": "done_before"}
        plan = self.calls.plan(item)
        if isinstance(plan, BatchResult):
            return await self._record(plan, 0.0, None)
        gate = self.gates.get(plan.provider)
        if gate is None:
            gate = self.gates[plan.provider] = ProviderGate(
                plan.provider, concurrency=self.concurrency
            )
        await gate.slot()
        try:
            reserved = await self.coordinator.reserve.remote(plan.worst)
        except BaseException:
            gate.release()
            raise
        if not reserved:
            gate.release()
            return {"custom_id": item.custom_id, "status": "not_started"}
        windows = SharedWindows(self.coordinator, plan.provider)
        result, cost = await run_item(self.calls, item, plan, gate, windows, self.max_attempts)
        try:
            return await self._record(result, cost, plan.worst)
        finally:
            gate.release()

    async def _record(
        self, result: BatchResult, cost: float, worst: float | None
    ) -> dict[str, Any]:
        prompt, completion = result_tokens(result)
        await self.coordinator.complete.remote(
            result.custom_id,
            result_state(result),
            result.attempts,
            cost,
            prompt,
            completion,
            result_line(result),
            worst,
        )
        return {"custom_id": result.custom_id, "status": "failed" if result.error else "ok"}


class SteerUDF:
    """The ``map_batches`` actor class: one client per actor (``client_class`` built
    from ``client_config``); a batch's rows run concurrently on its own event loop."""

    def __init__(
        self,
        coordinator: str,
        client_class: Callable[..., BatchClient],
        client_config: dict[str, Any],
        **rows: Any,
    ) -> None:
        import ray

        handle = ray.get_actor(coordinator, namespace=_NAMESPACE)
        self.loop = asyncio.new_event_loop()
        self.rows = Rows(handle, client_class(**client_config), **rows)
        ray.get(handle.register.remote(os.getpid()))

    def __call__(self, batch: Any) -> Any:
        import pyarrow

        out = self.loop.run_until_complete(self.rows.run(batch.to_pylist()))
        return pyarrow.Table.from_pylist(out, schema=_OUT_SCHEMA())


def _OUT_SCHEMA() -> Any:
    import pyarrow

    return pyarrow.schema([("custom_id", pyarrow.string()), ("status", pyarrow.string())])


def _row_item(row: dict[str, Any]) -> Any:
    """A Dataset row back to an item: ``item`` (JSON of a list input) or the columns."""
    if set(row) == {"item"} and isinstance(row["item"], str):
        return orjson.loads(row["item"])
    item = {k: v for k, v in row.items() if v is not None}
    messages = item.get("messages")
    if isinstance(messages, list):  # struct columns give every key to every message
        item["messages"] = [
            {k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m
            for m in messages
        ]
    return item


class RayBatchJob:
    """A batch job on a Ray cluster. ``await job.run()`` returns the summary; the
    results are in ``output_path`` (JSONL, or Parquet for ``*.parquet``)."""

    def __init__(
        self,
        client: BatchClient,
        items: Any,
        model: str | None = None,
        *,
        output_path: str | os.PathLike[str] | None = None,
        ray_address: str | None = None,
        num_actors: int = 2,
        batch_size: int = 64,
        num_blocks: int | None = None,
        concurrency: int = 32,
        requests_per_minute: Any = None,
        tokens_per_minute: Any = None,
        budget_usd: float | None = None,
        max_attempts: int = 5,
        journal: str | os.PathLike[str] | None = None,
        system: str | None = None,
        **params: Any,
    ) -> None:
        if output_path is None:
            raise ConfigurationError(
                "engine='ray' writes its results to a file: give output_path='results.jsonl' "
                "(or '.parquet')"
            )
        if "on_result" in params:
            raise ConfigurationError("engine='ray' does not call on_result: read output_path")
        check_options(concurrency, max_attempts, requests_per_minute, tokens_per_minute, budget_usd)
        self.output_path = os.fspath(output_path)
        self.journal_path = os.fspath(journal) if journal else self.output_path + ".journal"
        options = params.pop("streaming_options", None)
        self._calls = Calls(client, params, options, budget=budget_usd is not None)
        self._client = client
        self._items = items
        self._model = model
        self._system = system
        self._options = options
        self._params = params
        self._address = ray_address
        self._num_actors = num_actors
        self._batch_size = batch_size
        self._num_blocks = num_blocks
        self._concurrency = concurrency
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._budget = budget_usd
        self._max_attempts = max_attempts
        self.coordinator_name = ""
        self.worker_pids: list[int] = []  # the actor processes seen (restarts included)
        self.summary = BatchSummary(journal=self.journal_path)

    async def run(self) -> BatchSummary:
        return await asyncio.to_thread(self._run)

    def __aiter__(self) -> Any:
        raise ConfigurationError(
            "engine='ray' writes results to output_path; use `await job.run()` and read it"
        )

    def _dataset(self, ray: Any) -> Any:
        items = self._items
        # Enough blocks for every actor to get work (a small file is one block else).
        blocks = self._num_blocks or 4 * self._num_actors
        if isinstance(items, str | os.PathLike):
            path = os.fspath(items)
            if path.endswith(".parquet") or os.path.isdir(path):
                ds = ray.data.read_parquet(path, override_num_blocks=blocks)
            else:
                ds = ray.data.read_json(path, lines=True, override_num_blocks=blocks)
            # A small single file reads as one block, which only one actor would get:
            # split it (repartition holds the input in the object store, so only when
            # it is small, or when asked with num_blocks=).
            small = os.path.isfile(path) and os.path.getsize(path) < 64 * 1024 * 1024
            if self._num_blocks or small:
                ds = ds.repartition(blocks)
            return ds
        if hasattr(items, "map_batches"):
            return items  # already a Dataset
        return ray.data.from_items(
            [{"item": orjson.dumps(x, default=jsonable).decode()} for x in items],
            override_num_blocks=blocks,
        )

    def _run(self) -> BatchSummary:
        ray = _ray()
        began = time.perf_counter()
        if not ray.is_initialized():
            ray.init(address=self._address, namespace=_NAMESPACE, log_to_driver=False)
        self._calls.check_job_price(self._model)
        journal = Journal(self.journal_path)
        try:
            journal.check_fingerprint(fingerprint(self._model, self._system, self._params))
            run_id = journal.new_run()
        finally:
            journal.close()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.coordinator_name = f"steer-batch-{os.getpid()}-{run_id}-{int(time.time())}"
        coordinator = (
            ray.remote(Coordinator)
            .options(
                name=self.coordinator_name,
                namespace=_NAMESPACE,
                max_concurrency=100_000,
                num_cpus=0,
                # On the driver's node: the journal is a file there.
                scheduling_strategy=NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), soft=False
                ),
            )
            .remote(
                os.path.abspath(self.journal_path),
                run_id,
                self._rpm,
                self._tpm,
                self._budget,
            )
        )
        try:
            ds = self._dataset(ray).map_batches(
                SteerUDF,
                fn_constructor_kwargs={
                    "coordinator": self.coordinator_name,
                    "client_class": type(self._client),
                    "client_config": self._client.worker_config(),
                    "model": self._model,
                    "system": self._system,
                    "params": self._params,
                    "options": self._options,
                    "budget": self._budget is not None,
                    "concurrency": self._concurrency,
                    "max_attempts": self._max_attempts,
                },
                concurrency=self._num_actors,
                batch_size=self._batch_size,
                batch_format="pyarrow",
                num_cpus=0.5,
            )
            statuses: dict[str, int] = {}
            for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for status in batch.column("status").to_pylist():
                    statuses[status] = statuses.get(status, 0) + 1
            figures = ray.get(coordinator.summary.remote())
            self.worker_pids = ray.get(coordinator.worker_pids.remote())
        finally:
            ray.get(coordinator.close.remote())
            ray.kill(coordinator)
        s = self.summary
        s.read = sum(statuses.values())
        s.succeeded = figures["succeeded"]
        s.failed = figures["failed"]
        s.retryable_failed = figures["retryable_failed"]
        s.skipped = statuses.get("done_before", 0)
        s.duplicates = max(0, s.read - s.skipped - s.succeeded - s.failed - s.retryable_failed)
        s.duplicates -= statuses.get("not_started", 0)
        s.remaining = statuses.get("not_started", 0)
        s.stopped = "budget" if figures["budget_stopped"] else None
        s.prompt_tokens = figures["prompt_tokens"]
        s.completion_tokens = figures["completion_tokens"]
        s.cost_usd = figures["cost_usd"]
        s.total_cost_usd = figures["total_cost_usd"]
        s.requests = figures["requests"]
        s.rate_limited = figures["rate_limited"]
        s.duplicates = max(0, s.duplicates)
        export(self.journal_path, self.output_path)
        s.elapsed = time.perf_counter() - began
        return s


def export(journal_path: str, output_path: str) -> int:
    """Write every finished result in the journal to JSONL or Parquet; returns rows."""
    journal = Journal(journal_path)
    rows = 0
    try:
        if output_path.endswith(".parquet"):
            import pyarrow
            import pyarrow.parquet as pq

            schema = pyarrow.schema(
                [
                    ("custom_id", pyarrow.string()),
                    ("text", pyarrow.string()),
                    ("output", pyarrow.string()),
                    ("usage", pyarrow.string()),
                    ("cost_usd", pyarrow.float64()),
                    ("finish_reason", pyarrow.string()),
                    ("attempts", pyarrow.int64()),
                    ("model", pyarrow.string()),
                    ("error", pyarrow.string()),
                ]
            )
            as_json = ("output", "usage", "error")
            with pq.ParquetWriter(output_path, schema) as writer:
                chunk: list[dict[str, Any]] = []
                for result in journal.results():
                    for key in as_json:
                        value = result.get(key)
                        result[key] = None if value is None else orjson.dumps(value).decode()
                    chunk.append(result)
                    if len(chunk) >= 10_000:
                        writer.write_table(pyarrow.Table.from_pylist(chunk, schema=schema))
                        rows += len(chunk)
                        chunk = []
                if chunk:
                    writer.write_table(pyarrow.Table.from_pylist(chunk, schema=schema))
                    rows += len(chunk)
        else:
            with open(output_path, "wb") as f:
                for result in journal.results():
                    f.write(orjson.dumps(result) + b"\n")
                    rows += 1
    finally:
        journal.close()
    return rows
