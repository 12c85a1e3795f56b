"""The batch job runner: ``client.batch(items, model=..., **params)``.

Reads the items as a stream (memory does not grow with their number), skips items
the journal has already finished and duplicates, and runs the rest concurrently
under per-provider rate limits, adaptive concurrency and a budget. Each result is
recorded in the journal as it completes (committed every fraction of a second), so
the same job run again with the same journal resumes where it stopped.

Retries belong to the runner, not to the client: each call runs with the client's
own retries off, because a 429 must pause every request to the provider (the shared
buckets), not only the one that got it, and lower the concurrency. The runner
retries 429/529 up to 20 times per item (they mean "later", not "never") and other
retryable failures (5xx, connection errors, timeouts, a stream cut short) up to
``max_attempts`` HTTP requests per item, with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import os
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import (
    ConfigurationError,
    OverloadedError,
    RateLimitError,
    SteerError,
    StreamInterruptedError,
)
from ..transport.http import backoff_delay, is_retryable
from .journal import DONE, FAILED, RETRY, Journal
from .limits import Budget, ProviderGate

if TYPE_CHECKING:
    from ..client import SteerLLMClient
    from .ray_engine import RayBatchJob

__all__ = ["BatchJob", "BatchResult", "BatchSummary", "InvalidItem", "content_id", "make_job"]

_CHUNK = 512  # items read and looked up in the journal at a time
_COMMIT_EVERY = 0.25  # seconds between journal commits
_COMMIT_ROWS = 1024
_RATE_LIMIT_RETRIES = 20
_ITEM_KEYS = ("custom_id", "messages", "prompt")
_DEFAULT_COMPLETION_ESTIMATE = 256  # tokens, when max_tokens is not set


def make_job(
    client: SteerLLMClient, items: Any, model: str | None, **options: Any
) -> BatchJob | RayBatchJob:
    """``client.batch(...)``: the local engine, or Ray with ``engine="ray"``."""
    engine = options.pop("engine", "local")
    if engine == "ray":
        from .ray_engine import RayBatchJob

        return RayBatchJob(client, items, model, **options)
    if engine != "local":
        raise ConfigurationError(f"engine={engine!r} is not known: use 'local' or 'ray'")
    for name in ("ray_address", "num_actors", "batch_size", "num_blocks"):
        if name in options:
            raise ConfigurationError(f"{name}= is an option of engine='ray'")
    return BatchJob(client, items, model, **options)


@dataclass(slots=True)
class BatchResult:
    """The outcome of one item."""

    custom_id: str
    text: str | None = None
    output: Any = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost_usd: float | None = None
    finish_reason: str | None = None
    attempts: int = 0
    model: str | None = None
    error: dict[str, Any] | None = None  # {"type", "message", "status_code", "retryable"}

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        output = self.output
        if output is not None and hasattr(output, "model_dump"):
            output = output.model_dump(mode="json")
        return {
            "custom_id": self.custom_id,
            "text": self.text,
            "output": output,
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "finish_reason": self.finish_reason,
            "attempts": self.attempts,
            "model": self.model,
            "error": self.error,
        }


@dataclass(slots=True)
class BatchSummary:
    """What a run did. Counts are for this run; ``total_cost_usd`` adds earlier runs."""

    read: int = 0  # items read from the input
    succeeded: int = 0
    failed: int = 0  # failed for good (e.g. 400): not retried by a later run
    retryable_failed: int = 0  # gave up in this run; a later run retries them
    skipped: int = 0  # finished by an earlier run (from the journal)
    duplicates: int = 0  # same custom_id (or content) as an earlier item: run once
    remaining: int | None = 0  # not started (budget stop); None when interrupted
    stopped: str | None = None  # None (ran to the end), "budget" or "interrupted"
    cost_usd: float = 0.0
    total_cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0  # HTTP requests made
    rate_limited: int = 0  # 429/529 answers
    lowest_concurrency: int = 0
    elapsed: float = 0.0
    journal: str | None = None

    def __str__(self) -> str:
        parts = [
            f"{self.succeeded} succeeded",
            f"{self.failed} failed",
        ]
        if self.retryable_failed:
            parts.append(f"{self.retryable_failed} failed with retryable errors (run again)")
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates")
        if self.stopped == "budget":
            parts.append(f"stopped by the budget with {self.remaining} items left")
        elif self.stopped == "interrupted":
            parts.append("interrupted (run again to resume)")
        rate = self.succeeded / self.elapsed if self.elapsed > 0 else 0.0
        parts.append(
            f"{self.prompt_tokens + self.completion_tokens} tokens, ${self.cost_usd:.4f} "
            f"(all runs ${self.total_cost_usd:.4f}), {self.elapsed:.1f}s, {rate:.1f} items/s"
        )
        if self.rate_limited:
            parts.append(f"{self.rate_limited} rate-limited answers")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class InvalidItem:
    """An input that could not be read as an item (e.g. a line that is not JSON): it
    becomes a failed result with this id and reason, without stopping the job."""

    custom_id: str
    reason: str


@dataclass(slots=True)
class _Item:
    custom_id: str
    messages: Any
    model: str
    params: dict[str, Any]
    invalid: str | None = None  # why the item cannot run


class _Price:
    __slots__ = ("input", "output")

    def __init__(self, input_per_token: float, output_per_token: float) -> None:
        self.input = input_per_token
        self.output = output_per_token


def _jsonable(value: Any) -> Any:
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"pydantic": value.__name__, "schema": value.model_json_schema()}
    return repr(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=_jsonable)


def content_id(content: Any) -> str:
    """The id of an item without a custom_id: a hash of its content."""
    return "sha256:" + hashlib.sha256(_dumps(content)).hexdigest()[:32]


def _prompt_tokens(messages: Any) -> int:
    """A cheap estimate, never below the emulator's (and, on English text, close to the
    providers') count: 1 token per 4 ASCII characters, 1 per other character, plus 4
    per message and 3 to prime the reply (steer_llm_sdk.streaming.estimate)."""
    from ..streaming.estimate import count_tokens

    if isinstance(messages, str):
        texts, count = [messages], 1
    else:
        texts = []
        for message in messages or ():
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, str):
                        texts.append(part)
                    elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
        count = len(messages or ())
    tokens, _ = count_tokens("\n".join(texts), "", "character")
    return tokens + 4 * count + 3


class BatchJob:
    """A batch job. ``async for result in job`` yields results as they finish (in any
    order); ``await job.run()`` runs it to the end and returns a :class:`BatchSummary`.
    A job runs once; build a new one (same journal) to resume."""

    def __init__(
        self,
        client: SteerLLMClient,
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
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency={concurrency!r} must be a whole number >= 1")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts={max_attempts!r} must be a whole number >= 1")
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            values = value.values() if isinstance(value, Mapping) else [value]
            for v in values:
                if v is not None and (
                    isinstance(v, bool) or not isinstance(v, int | float) or v <= 0
                ):
                    raise ConfigurationError(f"{name}={value!r} must be a number > 0")
        if budget_usd is not None and (
            isinstance(budget_usd, bool)
            or not isinstance(budget_usd, int | float)
            or budget_usd < 0
        ):
            raise ConfigurationError(f"budget_usd={budget_usd!r} must be a number >= 0")
        if on_result is not None and not callable(on_result):
            raise ConfigurationError("on_result must be a function (sync or async)")
        self._client = client
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
        self._options = params.pop("streaming_options", None)
        self._params = params
        self._gates: dict[str, ProviderGate] = {}
        self._routes: dict[str, tuple[str, str]] = {}  # model -> (provider, provider model)
        self._prices: dict[str, _Price | None] = {}
        self._budget: Budget | None = None
        self._journal: Journal | None = None
        self._run_id = 0
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[BatchResult | None] | None = None
        self._stopping = False
        self._started = False
        self._out: Any = None
        self._out_buffer: list[bytes] = []
        self._last_commit = 0.0
        from ..models.response import StreamingResponse

        # The client validates output= itself where its responses carry `.output`.
        self._supports_output = "output" in getattr(StreamingResponse, "__dataclass_fields__", {})
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
        temp_dir = None
        if self._journal_path is None:
            temp_dir = tempfile.TemporaryDirectory(prefix="steer-batch-")
            journal = Journal(os.path.join(temp_dir.name, "journal.sqlite"))
        else:
            journal = Journal(self._journal_path)
        self._journal = journal
        flusher: asyncio.Task[None] | None = None
        try:
            self._check_job_prices()
            journal.check_fingerprint(self._fingerprint())
            self._run_id = journal.new_run()
            totals = journal.totals()
            spent = sum(cost for _, cost, _, _ in totals.values())
            self.summary.total_cost_usd = spent
            if self._budget_limit is not None:
                self._budget = Budget(self._budget_limit, spent)
            self._open_output()
            flusher = asyncio.create_task(self._flush_periodically())
            try:
                await self._dispatch()
            finally:
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            if flusher is not None:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
            try:
                self._commit()
            finally:
                journal.close()
                if self._out is not None:
                    self._out.close()
                if temp_dir is not None:
                    temp_dir.cleanup()
            self.summary.elapsed = time.perf_counter() - began
            self.summary.rate_limited = sum(g.rate_limited for g in self._gates.values())
            self.summary.lowest_concurrency = min(
                (g.lowest_limit for g in self._gates.values()), default=self._concurrency
            )

    # -- setup -------------------------------------------------------------------------
    def _fingerprint(self) -> dict[str, Any]:
        params = {k: v for k, v in self._params.items() if k != "output"}
        return orjson.loads(
            _dumps(
                {
                    "model": self._model,
                    "system": self._system,
                    "params": params,
                    "output": self._params.get("output"),
                }
            )
        )

    def _route(self, model: str) -> tuple[str, str]:
        route = self._routes.get(model)
        if route is None:
            from ..catalog import resolve_model

            resolved = resolve_model(model, self._client._providers)
            route = (resolved.provider.name, resolved.model)
            self._routes[model] = route
        return route

    def _price(self, model: str) -> _Price | None:
        if model in self._prices:
            return self._prices[model]
        from ..pricing import compute_cost

        provider, name = self._route(model)
        overrides = self._client._prices
        per_input = compute_cost(provider, name, {"prompt_tokens": 1_000_000}, overrides)
        per_output = compute_cost(provider, name, {"completion_tokens": 1_000_000}, overrides)
        price = (
            None
            if per_input is None or per_output is None
            else _Price(per_input / 1e6, per_output / 1e6)
        )
        self._prices[model] = price
        return price

    def _no_price_error(self, model: str) -> ConfigurationError:
        provider, name = self._route(model)
        return ConfigurationError(
            f"budget_usd is set but no price is known for {provider}/{name}, so the budget "
            "cannot be enforced: set one with SteerLLMClient(prices={"
            f"{name!r}: PriceOverride(input_per_mtok=..., output_per_mtok=...)}}) or "
            f"steer_llm_sdk.pricing.set_price({name!r}, input_per_mtok=..., "
            "output_per_mtok=...), or drop budget_usd"
        )

    def _check_job_prices(self) -> None:
        if self._budget_limit is None or self._model is None:
            return
        if self._price(self._model) is None:
            raise self._no_price_error(self._model)

    def _gate(self, provider: str) -> ProviderGate:
        gate = self._gates.get(provider)
        if gate is None:
            rpm = self._rpm.get(provider) if isinstance(self._rpm, Mapping) else self._rpm
            tpm = self._tpm.get(provider) if isinstance(self._tpm, Mapping) else self._tpm
            gate = ProviderGate(
                provider,
                concurrency=self._concurrency,
                requests_per_minute=rpm,
                tokens_per_minute=tpm,
            )
            self._gates[provider] = gate
        return gate

    # -- output file -----------------------------------------------------------------
    def _open_output(self) -> None:
        if self._output_path is None:
            return
        assert self._journal is not None
        offset = int(self._journal.get_meta("output_offset") or 0)
        path = self._output_path
        if os.path.exists(path):
            size = os.path.getsize(path)
            if size and not offset and self._run_id == 1:
                raise ConfigurationError(
                    f"the output {path!r} already exists and this journal has no results "
                    "in it: remove it or choose another output_path"
                )
            if size < offset:
                raise ConfigurationError(
                    f"the output {path!r} is shorter ({size} bytes) than its journal says "
                    f"({offset} bytes): it was changed outside the job; move it away and run "
                    "again to rewrite it from the journal"
                )
            out: Any = open(path, "r+b")
            out.truncate(offset)  # lines written after the last commit: their items rerun
            out.seek(offset)
        else:
            if offset:
                self._rewrite_output()
                return
            out = open(path, "wb")
        self._out = out

    def _rewrite_output(self) -> None:
        """The output file is gone but the journal has results: write them again."""
        assert self._journal is not None and self._output_path is not None
        out: Any = open(self._output_path, "wb")
        for result in self._journal.results():
            out.write(orjson.dumps(result) + b"\n")
        out.flush()
        self._out = out
        self._journal.set_meta("output_offset", str(out.tell()))
        self._journal.commit()

    def _commit(self) -> None:
        journal = self._journal
        if journal is None:
            return
        out = self._out
        if out is not None and self._out_buffer:
            out.write(b"".join(self._out_buffer))
            self._out_buffer.clear()
            out.flush()  # in the OS's hands: survives the process being killed
            journal.set_meta("output_offset", str(out.tell()))
        journal.commit()
        self._last_commit = time.monotonic()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_COMMIT_EVERY)
            if self._journal is not None and self._journal.pending:
                self._commit()

    # -- input -----------------------------------------------------------------------
    def _normalize(self, raw: Any, index: int) -> _Item:
        model = self._model
        params: dict[str, Any] = {}
        custom_id: str | None = None
        invalid = None
        messages: Any = None
        if isinstance(raw, str):
            messages = raw
        elif isinstance(raw, InvalidItem):
            return _Item(raw.custom_id, None, model or "", params, raw.reason)
        elif isinstance(raw, list | tuple):
            messages = list(raw)
        elif isinstance(raw, Mapping):
            custom_id = raw.get("custom_id")
            if custom_id is not None and not isinstance(custom_id, str | int):
                invalid = f"custom_id must be a string, not {type(custom_id).__name__}"
                custom_id = None
            if "messages" in raw:
                messages = raw["messages"]
            elif "prompt" in raw:
                messages = raw["prompt"]
            else:
                invalid = "the item has neither 'messages' nor 'prompt'"
            for key, value in raw.items():
                if key not in _ITEM_KEYS:
                    params[key] = value
            model = params.pop("model", None) or model
        else:
            invalid = (
                f"an item must be a prompt string, a list of messages or a dict, "
                f"not {type(raw).__name__}"
            )
        if custom_id is None:
            content = raw if invalid is None else repr(raw)[:2000]
            custom_id = content_id(content) if invalid is None else f"invalid:{index}"
        if model is None and invalid is None:
            invalid = "no model: pass model= to batch() or give the item a 'model'"
        if self._system and invalid is None:
            if isinstance(messages, str):
                messages = [
                    {"role": "system", "content": self._system},
                    {"role": "user", "content": messages},
                ]
            elif isinstance(messages, list):
                messages = [{"role": "system", "content": self._system}, *messages]
        return _Item(str(custom_id), messages, model or "", params, invalid)

    async def _chunks(self) -> AsyncIterator[list[Any]]:
        items = self._items
        chunk: list[Any] = []
        if isinstance(items, AsyncIterable):
            async for raw in items:
                chunk.append(raw)
                if len(chunk) >= _CHUNK:
                    yield chunk
                    chunk = []
        else:
            for raw in items:
                chunk.append(raw)
                if len(chunk) >= _CHUNK:
                    yield chunk
                    chunk = []
                    await asyncio.sleep(0)
        if chunk:
            yield chunk

    # -- dispatch ----------------------------------------------------------------------
    async def _dispatch(self) -> None:
        journal = self._journal
        assert journal is not None
        summary = self.summary
        index = 0
        budget_stopped = False
        async for raw_chunk in self._chunks():
            items = []
            for raw in raw_chunk:
                items.append(self._normalize(raw, index))
                index += 1
            summary.read += len(items)
            known = journal.lookup([item.custom_id for item in items])
            seen_here: set[str] = set()
            for item in items:
                cid = item.custom_id
                state = known.get(cid)
                if state is not None and (state[0] in (DONE, FAILED) or state[1] == self._run_id):
                    if state[1] == self._run_id:
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
                if item.invalid is not None:
                    error = ConfigurationError(item.invalid)
                    await self._deliver(item, _error_result(item, error), 0)
                    continue
                started = await self._start(item)
                if started is None:  # budget
                    budget_stopped = True
                    summary.stopped = "budget"
                    assert summary.remaining is not None
                    summary.remaining += 1
            if self._stopping and not budget_stopped:
                summary.stopped = "interrupted"
                summary.remaining = None
                return

    async def _start(self, item: _Item) -> bool | None:
        """Start one item: True when started (or failed at once), None on a budget stop."""
        try:
            provider, _ = self._route(item.model)
        except SteerError as exc:
            await self._deliver(item, _error_result(item, exc), 0)
            return True
        gate = self._gate(provider)
        worst = 0.0
        max_tokens = item.params.get("max_tokens", self._params.get("max_tokens"))
        estimate = _prompt_tokens(item.messages)
        completion = max_tokens if isinstance(max_tokens, int) else _DEFAULT_COMPLETION_ESTIMATE
        if self._budget is not None:
            price = self._price(item.model)
            if price is None:
                error = self._no_price_error(item.model)
                await self._deliver(item, _error_result(item, error), 0)
                return True
            if not isinstance(max_tokens, int):
                error = ConfigurationError(
                    "budget_usd needs max_tokens (for the job or the item) to bound the "
                    "worst case of each request"
                )
                await self._deliver(item, _error_result(item, error), 0)
                return True
            worst = estimate * price.input + max_tokens * price.output
        await gate.slot()
        if self._budget is not None:
            if not await self._budget.reserve(worst):
                gate.release()
                return None
        self._in_flight.add(item.custom_id)
        task = asyncio.create_task(self._work(item, gate, estimate + completion, worst))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _call_params(self, item: _Item) -> tuple[dict[str, Any], Any]:
        params = {**self._params, **item.params}
        output = params.pop("output", None)
        options = params.pop("streaming_options", None) or self._options
        if options is None:
            options = self._client._default_options
        params["streaming_options"] = options.replace(
            retry_on_connection_error=False,
            max_reconnect_attempts=0,
            preserve_partial_response=True,  # a broken attempt's usage counts in the budget
        )
        if output is not None:
            if self._supports_output:
                params["output"] = output
            elif "response_format" not in params:
                params["response_format"] = _schema_format(output)
        return params, output

    async def _work(self, item: _Item, gate: ProviderGate, tokens: int, worst: float) -> None:
        attempts = 0
        rate_limited = 0
        failures = 0
        cost = 0.0
        result: BatchResult | None = None
        holding = True
        try:
            params, output = self._call_params(item)
            while True:
                if not holding:
                    await gate.slot(priority=True)
                    holding = True
                ticket = await gate.rate(tokens)
                attempts += 1
                try:
                    response = await self._client.stream_with_usage(
                        item.messages, item.model, **params
                    )
                except (RateLimitError, OverloadedError) as exc:
                    gate.settle(ticket, 0)
                    retry_after = getattr(exc, "retry_after", None)
                    rate_limited += 1
                    gate.on_rate_limited(
                        retry_after
                        if retry_after is not None
                        else backoff_delay(rate_limited, 1.0, None)
                    )
                    if rate_limited > _RATE_LIMIT_RETRIES:
                        result = _error_result(item, exc, retryable=True)
                        break
                    gate.release()
                    holding = False
                    continue
                except SteerError as exc:
                    gate.settle(ticket, 0)
                    partial = getattr(exc, "partial_usage", None)
                    if partial:
                        cost += self._cost_of(item, partial)
                    retryable = _retryable(exc)
                    failures += 1
                    if not retryable or failures >= self._max_attempts:
                        result = _error_result(item, exc, retryable=retryable)
                        break
                    gate.release()
                    holding = False
                    await asyncio.sleep(backoff_delay(failures, 0.5, None))
                    continue
                usage = response.usage
                gate.settle(ticket, usage.get("total_tokens") or 0)
                gate.on_success()
                cost += response.cost_usd or 0.0
                result = BatchResult(
                    custom_id=item.custom_id,
                    text=response.text,
                    usage=usage,
                    cost_usd=response.cost_usd,
                    finish_reason=response.finish_reason,
                    model=item.model,
                )
                if output is not None:
                    try:
                        result.output = _read_output(response, output, self._supports_output)
                    except Exception as exc:
                        result.error = _error_dict(exc, retryable=False)
                break
            result.attempts = attempts
        except Exception as exc:  # a bug or a bad parameter must fail the item, not the job
            result = _error_result(item, exc)
            result.attempts = attempts
        except BaseException:  # cancelled (abort): the item stays unfinished
            if holding:
                gate.release()
                holding = False
            raise
        finally:
            if self._budget is not None:
                self._budget.settle(worst, cost)
        self._in_flight.discard(item.custom_id)
        try:
            # The slot stays taken until the result is handed over: a slow reader of
            # `async for` holds back new requests instead of piling up results.
            await self._deliver(item, result, cost)
        finally:
            if holding:
                gate.release()

    def _cost_of(self, item: _Item, usage: Mapping[str, Any]) -> float:
        price = self._price(item.model) if self._budget is not None else None
        if price is None:
            return 0.0
        return (
            int(usage.get("prompt_tokens") or 0) * price.input
            + int(usage.get("completion_tokens") or 0) * price.output
        )

    # -- results -----------------------------------------------------------------------
    def _finish(self, item: _Item, result: BatchResult, cost: float) -> None:
        """Record a result (journal, output file, counters); no waiting."""
        summary = self.summary
        error = result.error
        if error is None:
            state = DONE
            summary.succeeded += 1
        elif error.get("retryable"):
            state = RETRY
            summary.retryable_failed += 1
        else:
            state = FAILED
            summary.failed += 1
        usage = result.usage or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        summary.prompt_tokens += prompt
        summary.completion_tokens += completion
        summary.requests += result.attempts
        summary.cost_usd += cost
        summary.total_cost_usd += cost
        line = orjson.dumps(result.to_dict(), default=_jsonable)
        assert self._journal is not None
        self._journal.record(
            item.custom_id, state, self._run_id, result.attempts, cost, prompt, completion, line
        )
        if self._out is not None and state != RETRY:
            self._out_buffer.append(line + b"\n")
        if self._journal.pending >= _COMMIT_ROWS:
            self._commit()

    async def _deliver(self, item: _Item, result: BatchResult, cost: float) -> None:
        self._finish(item, result, cost)
        if self._on_result is not None:
            outcome = self._on_result(result)
            if inspect.isawaitable(outcome):
                await outcome
        if self._queue is not None:
            await self._queue.put(result)


def _is_number(value: Any, *, minimum: float, strict: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return False
    return value > minimum if strict else value >= minimum


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, StreamInterruptedError):
        return exc.cause is None or is_retryable(exc.cause)
    return is_retryable(exc)


def _error_dict(exc: BaseException, *, retryable: bool) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "status_code": getattr(exc, "status_code", None),
        "retryable": retryable,
    }


def _error_result(item: _Item, exc: BaseException, *, retryable: bool = False) -> BatchResult:
    return BatchResult(
        custom_id=item.custom_id,
        model=item.model or None,
        error=_error_dict(exc, retryable=retryable),
    )


def _schema_format(output: Any) -> dict[str, Any]:
    """``output=`` (a pydantic model class or a JSON schema dict) as a response_format."""
    if isinstance(output, type) and hasattr(output, "model_json_schema"):
        return {
            "type": "json_schema",
            "json_schema": {"name": output.__name__, "schema": output.model_json_schema()},
        }
    if isinstance(output, Mapping):
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(output)}}
    raise ConfigurationError(
        f"output= must be a pydantic model class or a JSON schema dict, not {type(output).__name__}"
    )


def _read_output(response: Any, output: Any, supported: bool) -> Any:
    if supported and hasattr(response, "output"):
        return response.output
    value = response.get_json()
    if isinstance(output, type) and hasattr(output, "model_validate"):
        return output.model_validate(value)
    return value
