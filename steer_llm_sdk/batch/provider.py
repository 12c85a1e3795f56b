"""Provider batch mode: ``client.batch(items, model=..., mode="provider")``.

The items go to the providers' own batch APIs (half price, answers within 24 hours)
instead of one request each: lines built like online calls (``provider_lines``),
split by each API's limits, submitted, polled every ``poll_interval`` seconds, and
their results recorded in the job's journal and output exactly once, as the same
:class:`~steer_llm_sdk.batch.items.BatchResult` objects as online.

Nothing billed is lost: each submission's intent is committed to the journal before
the submit call and its batch id after (``submissions``); a run of the same job with
the same journal re-attaches to every batch it submitted (one whose id it never
wrote is found by listing the provider's batches), never submits an item twice, and
downloads each batch's results once. ``retry_online=True`` runs the items that
failed with an error worth another try (expired, cancelled, 5xx) online at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import APIStatusError, ConfigurationError, InvalidResponseError, SteerError
from .items import (
    BatchResult,
    BatchSummary,
    Item,
    chunked,
    error_result,
    fingerprint,
    normalize,
    result_state,
    result_tokens,
)
from .journal import DONE, FAILED, RETRY, Journal
from .recorder import Recorder, journal_location
from .submissions import DOWNLOADED, INTENT, SUBMITTED, VOID, Submission, Submissions

if TYPE_CHECKING:
    from .attempt import BatchClient
    from .provider_apis import BatchAPI, BatchStatus, Outcome
    from .provider_lines import Lines

__all__ = ["ProviderBatchJob", "api_classes"]

logger = logging.getLogger("steer_llm_sdk")


class _Group:
    """Lines on their way into one provider batch."""

    __slots__ = ("contexts", "data", "endpoint", "lines", "model", "provider", "size", "tag")

    def __init__(self, tag: str, provider: str, model: str, endpoint: str) -> None:
        self.tag = tag
        self.provider = provider
        self.model = model
        self.endpoint = endpoint
        self.data: list[bytes] = []
        self.lines: list[list[Any]] = []
        self.contexts: dict[str, int] = {}
        self.size = 0

    def add(self, item_id: str, line: bytes, context: str) -> None:
        index = self.contexts.setdefault(context, len(self.contexts))
        self.lines.append([item_id, index])
        self.data.append(line)
        self.size += len(line) + 1


class _Base:
    """What the parts of a provider job share: its state, the APIs, delivering."""

    _params: dict[str, Any]
    _items: Iterable[Any] | AsyncIterable[Any]
    _model: str | None
    _system: str | None
    _poll: float
    _retry_online: bool
    _on_result: Callable[[BatchResult], Any] | None
    _lines: Lines | None
    _apis: dict[str, BatchAPI]
    _http: Any
    _recorder: Recorder | None
    _subs: Submissions | None
    _open: list[Submission]
    _raw: dict[str, Any]
    _retry: list[str]
    _specs: dict[str, Any]
    _queue: asyncio.Queue[BatchResult | None] | None
    _wake: asyncio.Event
    _stopping: bool
    _cancelling: bool
    _aborting: bool
    summary: BatchSummary
    submitted: int
    in_progress: int
    batches: int

    async def _api(self, provider: str, model: str) -> BatchAPI:
        api = self._apis.get(provider)
        if api is None:
            assert self._lines is not None
            cls = api_classes().get(provider)
            if cls is None:
                raise ConfigurationError(
                    f"{provider} has no batch API the SDK speaks (OpenAI, Anthropic and "
                    "Gemini do): use mode='online' for its models"
                )
            wiring = self._lines.wiring
            route = self._lines.route(model, self._params.get("api"))
            key = wiring.api_key(route.provider)
            if not key:
                raise ConfigurationError(
                    f"no API key for {provider}: set {provider.upper()}_API_KEY or pass it to "
                    "SteerLLMClient"
                )
            base_url = await wiring.base_url(route)
            api = self._apis[provider] = cls(self._http, base_url, cls.auth_headers(key))
        return api

    def _commit(self) -> None:
        assert self._recorder is not None
        self._recorder.commit()

    async def _deliver(self, item_id: str, result: BatchResult, cost: float) -> None:
        assert self._recorder is not None
        summary = self.summary
        state = result_state(result)
        if state == DONE:
            summary.succeeded += 1
        elif state == RETRY:
            summary.retryable_failed += 1
            self._retry.append(item_id)
        else:
            summary.failed += 1
        prompt, completion = result_tokens(result)
        summary.prompt_tokens += prompt
        summary.completion_tokens += completion
        summary.requests += result.attempts
        summary.cost_usd += cost
        summary.total_cost_usd += cost
        self._recorder.record(item_id, result, cost)
        if self._on_result is not None:
            outcome = self._on_result(result)
            if inspect.isawaitable(outcome):
                await outcome
        if self._queue is not None:
            await self._queue.put(result)


class _Submitting(_Base):
    """Reading the items and submitting them (intent first), re-attaching."""

    async def _reattach(self) -> None:
        """Every batch of an earlier run: found again (an intent without an id is looked
        for at the provider) and waited for; an intent the provider never saw is void."""
        assert self._subs is not None
        subs = self._subs
        taken = subs.batch_ids()
        for sub in subs.open():
            if sub.state == INTENT:
                api = await self._api(sub.provider, sub.model)
                found = await api.find(sub.tag, sub.created, sub.count, taken)
                if found is None:
                    subs.set(sub, VOID)
                else:
                    subs.set(sub, SUBMITTED, found)
                    taken.add(found)
                subs.commit()
            if sub.state == SUBMITTED:
                self._open.append(sub)
                self.submitted += sub.count
                self.batches += 1

    # -- submitting ----------------------------------------------------------------------
    async def _submit_items(self) -> None:
        assert self._recorder is not None and self._subs is not None and self._lines is not None
        journal, run_id = self._recorder.journal, self._recorder.run_id
        pending = {line[0] for sub in self._open for line in sub.lines}
        summary = self.summary
        seen: set[str] = set()
        groups: dict[tuple[str, str, str], _Group] = {}
        index = 0
        async for raw_chunk in chunked(self._items):
            if self._stopping:
                break
            items = [
                normalize(raw, index + i, self._model, self._system)
                for i, raw in enumerate(raw_chunk)
            ]
            index += len(items)
            summary.read += len(items)
            known = journal.lookup([item.custom_id for item in items])
            for raw, item in zip(raw_chunk, items, strict=True):
                cid = item.custom_id
                state = known.get(cid)
                if state is not None and (state[0] in (DONE, FAILED) or state[1] == run_id):
                    summary.skipped += 1
                    continue
                if cid in seen:
                    summary.duplicates += 1
                    continue
                seen.add(cid)
                if self._retry_online:
                    self._raw[cid] = raw
                if cid in pending:
                    continue  # in a batch submitted by an earlier run
                await self._add(item, groups)
        for group in groups.values():
            if group.lines and not self._stopping:
                await self._submit(group)
        if self._stopping and not self._cancelling:
            summary.stopped = "interrupted"
            summary.remaining = None

    async def _add(self, item: Item, groups: dict[tuple[str, str, str], _Group]) -> None:
        """One item's line into its group (submitting the group when it is full)."""
        assert self._lines is not None and self._subs is not None
        if item.invalid is not None:
            await self._deliver(
                item.custom_id, error_result(item, ConfigurationError(item.invalid)), 0
            )
            return
        try:
            encoded = self._lines.encode(item)
            api = await self._api(encoded.provider, item.model)
        except SteerError as exc:
            await self._deliver(item.custom_id, error_result(item, exc), 0)
            return
        if "output" in item.params and '"__output__"' not in encoded.context:
            self._specs[item.custom_id] = item.params["output"]
        key = (encoded.provider, item.model, encoded.path)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(self._subs.next_tag(), *key)
        line = api.line(f"{group.tag}-{len(group.lines)}", encoded.path, encoded.body)
        if len(group.lines) + 1 > api.max_requests or group.size + len(line) + 64 > api.max_bytes:
            await self._submit(group)
            group = groups[key] = _Group(self._subs.next_tag(), *key)
            line = api.line(f"{group.tag}-0", encoded.path, encoded.body)
        group.add(item.custom_id, line, encoded.context)

    async def _submit(self, group: _Group) -> None:
        """The intent (committed), the submit call, the batch id (committed)."""
        assert self._subs is not None
        subs = self._subs
        contexts = sorted(group.contexts, key=group.contexts.__getitem__)
        sub = Submission(
            group.tag, group.provider, group.model, group.endpoint, INTENT, None,
            time.time(), len(group.lines), group.lines, contexts,
        )  # fmt: skip
        api = await self._api(group.provider, group.model)
        subs.intent(sub)
        try:
            batch_id: str | None = await api.submit(group.data, group.tag, group.endpoint)
        except SteerError as exc:
            status = exc.status_code if isinstance(exc, APIStatusError) else None
            definite = status is not None and 400 <= status < 500 and status != 429
            batch_id = None
            if not definite:  # it may exist: look once before giving the items back
                with contextlib.suppress(SteerError):
                    batch_id = await api.find(sub.tag, sub.created, sub.count, subs.batch_ids())
            if batch_id is None:
                logger.warning("batch submit failed (%s): %s", type(exc).__name__, exc)
                subs.set(sub, VOID)
                for item_id, _ in group.lines:
                    item = Item(item_id, None, group.model, {})
                    await self._deliver(item_id, error_result(item, exc, retryable=not definite), 0)
                self._commit()
                group.data.clear()
                return
        subs.set(sub, SUBMITTED, batch_id)
        self._commit()
        group.data.clear()  # the lines are at the provider: free them
        self._open.append(sub)
        self.submitted += sub.count
        self.batches += 1


class _Collecting(_Base):
    """Polling the submitted batches, cancelling, downloading each once."""

    # -- waiting and downloading ------------------------------------------------------
    async def _wait(self) -> None:
        cancelled: set[str] = set()
        pause = 1.0
        while self._open:
            if self._cancelling:
                self.summary.stopped, self.summary.remaining = "interrupted", None
                await self._cancel_open(cancelled)
                if self._aborting:
                    return
            in_progress = 0
            for sub in list(self._open):
                api = await self._api(sub.provider, sub.model)
                assert sub.batch_id is not None
                try:
                    status = await api.status(sub.batch_id)
                except SteerError as exc:
                    if not _transient(exc):
                        raise
                    logger.warning("polling batch %s: %s (trying again)", sub.batch_id, exc)
                    in_progress += sub.count
                    continue
                if status.ended:
                    await self._download(sub, api, status)
                    self._open.remove(sub)
                else:
                    in_progress += sub.count
            self.in_progress = in_progress
            if self._open:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(self._poll, pause))
                pause *= 2  # 1 s, 2 s, 4 s ... then every poll_interval

    async def _cancel_open(self, cancelled: set[str]) -> None:
        for sub in self._open:
            if sub.batch_id is None or sub.batch_id in cancelled:
                continue
            cancelled.add(sub.batch_id)
            api = await self._api(sub.provider, sub.model)
            try:
                await api.cancel(sub.batch_id)
            except SteerError as exc:
                logger.warning("cancelling batch %s: %s", sub.batch_id, exc)

    async def _download(self, sub: Submission, api: BatchAPI, status: BatchStatus) -> None:
        """A batch's results into the journal and output, once; lines it has no
        answer for fail with a retryable error."""
        assert self._recorder is not None and self._lines is not None and self._subs is not None
        run_id = self._recorder.run_id
        ids = [line[0] for line in sub.lines]
        known = self._recorder.journal.lookup(ids)
        recorded = {i for i, (state, run) in known.items() if state != RETRY or run == run_id}
        got: set[int] = set()
        outcome: Outcome
        async for outcome in api.outcomes(status):
            index = sub.line_index(outcome.line_id)
            if index is None:
                raise InvalidResponseError(
                    f"batch {sub.batch_id} answered a request that is not one of its own "
                    f"({outcome.line_id[:80]!r})"
                )
            if index in got:
                continue
            got.add(index)
            item_id, context = sub.lines[index]
            if item_id in recorded:
                continue
            if outcome.body is not None:
                result, cost = self._lines.decode(
                    item_id,
                    sub.model,
                    outcome.body,
                    sub.contexts[context],
                    self._specs.get(item_id),
                )
            else:
                item = Item(item_id, None, sub.model, {})
                error = outcome.error or SteerError("the batch request failed")
                result, cost = error_result(item, error, retryable=outcome.retryable), 0.0
                result.attempts = 1
            await self._deliver(item_id, result, cost)
        for index, (item_id, _) in enumerate(sub.lines):
            if index not in got and item_id not in recorded:
                error = SteerError(
                    f"batch {sub.batch_id} ended ({status.status}) without an answer to it"
                    + _why(status)
                )
                item = Item(item_id, None, sub.model, {})
                await self._deliver(item_id, error_result(item, error, retryable=True), 0.0)
        self._subs.set(sub, DOWNLOADED)
        self._commit()
        await api.finished(status)


class ProviderBatchJob(_Submitting, _Collecting):
    """A provider batch job. ``await job.run()`` (a :class:`BatchSummary`) or
    ``async for result in job``; ``job.stop()`` stops submitting, ``job.cancel()``
    also cancels the submitted batches (what they finished is still recorded),
    ``job.abort()`` cancels them and returns at once (a later run collects)."""

    def __init__(
        self,
        client: BatchClient,
        items: Iterable[Any] | AsyncIterable[Any],
        model: str | None = None,
        *,
        poll_interval: float = 30.0,
        journal: str | os.PathLike[str] | None = None,
        output_path: str | os.PathLike[str] | None = None,
        on_result: Callable[[BatchResult], Any] | None = None,
        system: str | None = None,
        retry_online: bool = False,
        online_options: dict[str, Any] | None = None,
        **params: Any,
    ) -> None:
        if isinstance(poll_interval, bool) or not isinstance(poll_interval, int | float):
            raise ConfigurationError(f"poll_interval={poll_interval!r} must be seconds > 0")
        if poll_interval <= 0:
            raise ConfigurationError(f"poll_interval={poll_interval!r} must be seconds > 0")
        if not isinstance(retry_online, bool):
            raise ConfigurationError(f"retry_online={retry_online!r} must be True or False")
        if on_result is not None and not callable(on_result):
            raise ConfigurationError("on_result must be a function (sync or async)")
        self._client = client
        self._items = items
        self._model = model
        self._poll = float(poll_interval)
        self._journal_path = None if journal is None else os.fspath(journal)
        self._output_path = None if output_path is None else os.fspath(output_path)
        self._on_result = on_result
        self._system = system
        self._retry_online = retry_online
        self._online_options = online_options or {}
        self._params = params
        self._lines: Lines | None = None
        self._apis: dict[str, BatchAPI] = {}
        self._http: Any = None
        self._recorder: Recorder | None = None
        self._subs: Submissions | None = None
        self._open: list[Submission] = []
        self._raw: dict[str, Any] = {}  # retry_online: each item's input, by id
        self._retry: list[str] = []
        self._specs: dict[str, Any] = {}  # an item's own output= that is not JSON
        self._queue: asyncio.Queue[BatchResult | None] | None = None
        self._wake = asyncio.Event()
        self._stopping = self._cancelling = self._aborting = self._started = False
        self.summary = BatchSummary(journal=self._journal_path)
        self.total: int | None = None
        self.submitted = 0  # requests in provider batches (this run's and re-attached)
        self.in_progress = 0  # requests in batches that have not ended
        self.batches = 0  # provider batches submitted or re-attached

    # -- control -------------------------------------------------------------------
    def stop(self) -> None:
        """Submit no more; wait for the submitted batches and record their results."""
        self._stopping = True

    def cancel(self) -> None:
        """Submit no more and cancel the submitted batches at the provider; what they
        finished is recorded, the rest fails with a retryable error."""
        self._stopping = self._cancelling = True
        self._wake.set()

    def abort(self) -> None:
        """Cancel the submitted batches and return at once (a later run with the same
        journal records what they finished)."""
        self._stopping = self._cancelling = self._aborting = True
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return self.in_progress

    # -- running -------------------------------------------------------------------
    async def run(self) -> BatchSummary:
        await self._run()
        return self.summary

    def __aiter__(self) -> AsyncIterator[BatchResult]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[BatchResult]:
        queue: asyncio.Queue[BatchResult | None] = asyncio.Queue(maxsize=1024)
        self._queue = queue

        async def run_then_close() -> None:
            try:
                await self._run()
            finally:
                with contextlib.suppress(asyncio.CancelledError):
                    await queue.put(None)

        runner = asyncio.create_task(run_then_close())
        try:
            while (result := await queue.get()) is not None:
                yield result
            await runner
        finally:
            if not runner.done():
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await runner

    async def _run(self) -> None:
        if self._started:
            raise ConfigurationError("a batch job runs once: call client.batch(...) again")
        self._started = True
        began = time.perf_counter()
        path, temp_dir = journal_location(self._journal_path)
        try:
            await self._provider_part(path)
            if self._retry_online and self._retry and not self._stopping:
                await self._online_part(path)
        finally:
            if temp_dir is not None:
                temp_dir.cleanup()
            self.summary.elapsed = time.perf_counter() - began

    async def _provider_part(self, path: str) -> None:
        import httpx

        from .provider_apis import TIMEOUT
        from .provider_lines import Lines

        recorder = self._recorder = Recorder(Journal(path), self._output_path)
        journal = recorder.journal
        try:
            spent = recorder.begin(fingerprint(self._model, self._system, self._params))
            self.summary.total_cost_usd = spent
            self._subs = Submissions(journal, recorder.commit)
            self._lines = Lines(_wiring(self._client), self._params)
            async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
                self._http = http
                await self._reattach()
                await self._submit_items()
                await self._wait()
        finally:
            recorder.close()

    # -- retry_online ----------------------------------------------------------------------
    async def _online_part(self, path: str) -> None:
        """The items that failed with a retryable error, run online (same journal)."""
        from .runner import BatchJob

        raws = [self._raw[i] for i in dict.fromkeys(self._retry) if i in self._raw]
        if not raws:
            return
        queue = self._queue
        user = self._on_result

        async def forward(result: BatchResult) -> None:
            if user is not None:
                outcome = user(result)
                if inspect.isawaitable(outcome):
                    await outcome
            if queue is not None:
                await queue.put(result)

        job = BatchJob(
            self._client, raws, self._model, journal=path, output_path=self._output_path,
            system=self._system, on_result=forward, **self._online_options, **self._params,
        )  # fmt: skip
        online = await job.run()
        summary = self.summary
        summary.retryable_failed -= online.succeeded + online.failed + online.retryable_failed
        summary.retryable_failed += online.retryable_failed
        summary.succeeded += online.succeeded
        summary.failed += online.failed
        summary.prompt_tokens += online.prompt_tokens
        summary.completion_tokens += online.completion_tokens
        summary.requests += online.requests
        summary.cost_usd += online.cost_usd
        summary.total_cost_usd = online.total_cost_usd


def api_classes() -> dict[str, type[BatchAPI]]:
    """Provider name -> its batch API (the providers that have one)."""
    from .provider_apis import AnthropicBatches, OpenAIBatches
    from .provider_gemini import GeminiBatches

    return {"openai": OpenAIBatches, "anthropic": AnthropicBatches, "gemini": GeminiBatches}


def _why(status: BatchStatus) -> str:
    """What the provider said of a batch that failed as a whole (OpenAI's ``errors``)."""
    errors = status.raw.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return f": {str(data[0].get('message'))[:300]}"
    return ""


def _transient(exc: SteerError) -> bool:
    from ..transport.http import is_retryable

    return is_retryable(exc)


def _wiring(client: BatchClient) -> Any:
    """A :class:`~steer_llm_sdk.wiring.Wiring` with the client's keys, base URLs,
    providers and prices (``worker_config``)."""
    from ..wiring import Wiring

    config = client.worker_config()
    wiring = Wiring(
        keys={},
        base_urls={},
        api_keys=config.get("api_keys"),
        more_base_urls=config.get("base_urls"),
        providers=config.get("providers"),
        cache_prompt=config.get("cache_prompt"),
    )
    wiring.prices = config.get("prices")
    return wiring
