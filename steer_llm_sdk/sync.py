"""SteerLLM: the synchronous face of :class:`SteerLLMClient`, for scripts, notebooks and
web views.

    from steer_llm_sdk import SteerLLM

    with SteerLLM() as llm:
        for chunk in llm.stream("Tell me a story", model="gpt-4o-mini"):
            print(chunk, end="", flush=True)
        print(llm.stream_with_usage("Hi", model="gpt-4o-mini").usage)

Shape: each SteerLLM owns one event loop in a daemon thread (started on first use)
and one SteerLLMClient whose connection pools live on that loop. A blocking call
submits its coroutine to the loop and waits; a sync stream runs a small pump task
that puts each item into a ``queue.SimpleQueue`` the moment the async stream yields
it, so chunks reach the caller as they arrive. Since the caller's thread only ever
waits on a queue or a future, it works from any thread, several at once, and inside
a thread whose own event loop is running (Jupyter).

Any method of the async client is available here too: one that returns an async
iterator becomes a plain iterator, one that returns an awaitable becomes a blocking
call (so ``stream_events()``, ``run_tools()`` and ``batch()`` work as soon as the
async client has them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from queue import SimpleQueue
from typing import Any

from .client import SteerLLMClient
from .errors import ClientClosedError
from .files import File
from .results import StreamingResponse

__all__ = ["SteerLLM"]

logger = logging.getLogger("steer_llm_sdk")

# How long close() waits for running calls to stop and the pools to close, and how
# long an abandoned stream waits for its task to wind down. Both are bounded so that
# neither Ctrl-C nor interpreter exit can hang on them.
_CLOSE_TIMEOUT = 5.0
_CANCEL_TIMEOUT = 5.0


class _End:
    """The last item a pump's queue receives: the end of the stream, or its error."""

    __slots__ = ("cancelled", "error")

    def __init__(self, error: BaseException | None, cancelled: bool = False) -> None:
        self.error = error
        self.cancelled = cancelled


class _Job:
    """One call running on the loop, cancellable from any thread, even before it
    starts (``cancel`` runs on the loop thread)."""

    __slots__ = ("cancelled", "future", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.cancelled = False
        self.future: concurrent.futures.Future[Any] | None = None

    def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None:
            self.task.cancel()


class _Loop:
    """The daemon thread and its event loop; it holds no reference to the SteerLLM,
    so an unreferenced SteerLLM is collected (and its finalizer closes this)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.jobs: set[_Job] = set()
        self.thread = threading.Thread(target=self._run, name="steer-llm-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, awaitable: Awaitable[Any]) -> _Job:
        job = _Job()
        job.future = asyncio.run_coroutine_threadsafe(self._guard(job, awaitable), self.loop)
        return job

    async def _guard(self, job: _Job, awaitable: Awaitable[Any]) -> Any:
        if job.cancelled:  # cancelled before it started
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()
            raise asyncio.CancelledError
        job.task = asyncio.current_task()
        self.jobs.add(job)
        try:
            return await awaitable
        finally:
            self.jobs.discard(job)

    def cancel(self, job: _Job, timeout: float) -> None:
        """Cancel a job from another thread and wait (bounded) until it has stopped,
        so that its HTTP response is closed when this returns."""
        try:
            self.loop.call_soon_threadsafe(job.cancel)
        except RuntimeError:  # the loop is closed: nothing runs any more
            return
        assert job.future is not None
        concurrent.futures.wait([job.future], timeout=timeout)


class _State:
    """What a SteerLLM's finalizer needs: the client, the loop (once started), a lock."""

    def __init__(self, client: SteerLLMClient) -> None:
        self.client = client
        self.runner: _Loop | None = None
        self.closed = False
        self.lock = threading.Lock()

    def runner_for_call(self) -> _Loop:
        runner = self.runner
        if runner is None or self.closed:
            with self.lock:
                if self.closed:
                    raise ClientClosedError("this SteerLLM is closed: create a new one")
                if self.runner is None:
                    self.runner = _Loop()
                runner = self.runner
        if threading.get_ident() == runner.thread.ident:
            raise RuntimeError(
                "a SteerLLM method was called on its own event loop thread (from a "
                "callback?); it would wait for itself forever: use the async "
                "SteerLLMClient (llm.client) there"
            )
        return runner

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
            runner = self.runner
        if runner is None:
            return
        loop = runner.loop
        if threading.get_ident() == runner.thread.ident:
            # Collected on the loop thread itself: we cannot wait here.
            loop.create_task(self._shutdown(runner)).add_done_callback(lambda _: loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(runner), loop).result(_CLOSE_TIMEOUT)
        except Exception as exc:  # a close must not raise over a pending error
            logger.warning("closing SteerLLM: %s: %s", type(exc).__name__, exc)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass
        runner.thread.join(_CLOSE_TIMEOUT)
        if not runner.thread.is_alive():
            loop.close()

    async def _shutdown(self, runner: _Loop) -> None:
        jobs = list(runner.jobs)
        for job in jobs:
            job.cancel()
        tasks = [job.task for job in jobs if job.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT)
        await self.client.aclose()
        await runner.loop.shutdown_asyncgens()


async def _pump(iterator: AsyncIterator[Any], put: Callable[[Any], None]) -> None:
    """Put each item of an async iterator into the caller's queue as it arrives."""
    try:
        async for item in iterator:
            put(item)
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()  # an async generator that ended or raised: a no-op


class SteerLLM:
    """A synchronous client: the same constructor arguments as :class:`SteerLLMClient`.

    ``stream()`` is a plain iterator of text chunks, yielded as they arrive;
    ``stream_with_usage()`` and ``generate()`` block and return a
    :class:`StreamingResponse`. Errors are the same typed errors. Breaking out of a
    ``for`` loop, closing the iterator, or Ctrl-C closes the HTTP response at once.
    Use ``with SteerLLM() as llm:`` or call :meth:`close` (an unclosed one is closed
    when collected or at interpreter exit). Callbacks in ``StreamingOptions`` run on
    the client's background thread.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._setup(SteerLLMClient(**kwargs))

    @classmethod
    def from_client(cls, client: SteerLLMClient) -> SteerLLM:
        """Wrap an async client you configured (it should not be in use elsewhere:
        its pools for this object live on this object's loop thread)."""
        self = cls.__new__(cls)
        self._setup(client)
        return self

    def _setup(self, client: SteerLLMClient) -> None:
        self._client = client
        self._state = _State(client)
        self._finalizer = weakref.finalize(self, self._state.close)

    @property
    def client(self) -> SteerLLMClient:
        """The async client underneath (its pools live on this object's loop thread)."""
        return self._client

    def __repr__(self) -> str:  # never shows a key
        return f"SteerLLM({self._client!r})"

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> SteerLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop running calls, close the connection pools and the loop thread."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._state.closed

    # -- calls ---------------------------------------------------------------
    def stream(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> Generator[str, None, None]:
        """Text chunks as they arrive: ``for chunk in llm.stream("Hi", model=...)``.

        The arguments are those of :meth:`SteerLLMClient.stream`.
        """
        if self.closed:
            raise ClientClosedError("this SteerLLM is closed: create a new one")
        return self._iterate(self._client.stream(messages, model, **params))

    def stream_with_usage(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> StreamingResponse:
        """Stream the answer and return it whole: text, usage, cost, JSON, timings."""
        result: StreamingResponse = self._call(
            self._client.stream_with_usage(messages, model, **params)
        )
        return result

    def generate(self, messages: Any = None, model: Any = None, **params: Any) -> StreamingResponse:
        """One request without streaming; the same response as stream_with_usage()."""
        result: StreamingResponse = self._call(self._client.generate(messages, model, **params))
        return result

    def upload_file(self, file: File, *, provider: str, timeout: float = 600.0) -> File:
        """:meth:`SteerLLMClient.upload_file`, synchronously."""
        result: File = self._call(
            self._client.upload_file(file, provider=provider, timeout=timeout)
        )
        return result

    def __getattr__(self, name: str) -> Callable[..., Any]:
        """Any other public method of the async client, made synchronous (for example
        ``stream_events`` and ``run_tools``); absent there, absent here."""
        if name.startswith("_") or name in ("aclose",):
            raise AttributeError(name)
        target = getattr(self._client, name)
        if not callable(target):
            raise AttributeError(name)

        @functools.wraps(target)
        def sync(*args: Any, **kwargs: Any) -> Any:
            return self._resolve(target(*args, **kwargs))

        return sync

    def __dir__(self) -> list[str]:
        extra = [n for n in dir(self._client) if not n.startswith("_") and n != "aclose"]
        return sorted({*super().__dir__(), *extra})

    # -- the two bridges ---------------------------------------------------------
    def _resolve(self, result: Any) -> Any:
        """An awaitable → its result; an async iterator → a plain iterator."""
        if inspect.isawaitable(result):
            return self._call(result)
        if hasattr(result, "__aiter__"):
            return self._iterate(result.__aiter__())
        return result

    def _call(self, awaitable: Awaitable[Any]) -> Any:
        """Run a coroutine on the loop thread and wait for its result."""
        try:
            runner = self._state.runner_for_call()
        except RuntimeError:
            close = getattr(awaitable, "close", None)
            if close is not None:
                close()  # never started: no "never awaited" warning
            raise
        job = runner.submit(awaitable)
        future = job.future
        assert future is not None
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise RuntimeError("the SteerLLM was closed while this call was running") from None
        except BaseException:
            if not future.done():  # Ctrl-C (or another signal) while waiting
                runner.cancel(job, _CANCEL_TIMEOUT)
            raise

    def _iterate(self, iterator: AsyncIterator[Any]) -> Generator[Any, None, None]:
        """A plain iterator over an async one: its items in order, as they arrive."""
        runner = self._state.runner_for_call()
        queue: SimpleQueue[Any] = SimpleQueue()
        return self._drain(runner, iterator, queue)

    @staticmethod
    def _drain(
        runner: _Loop, iterator: AsyncIterator[Any], queue: SimpleQueue[Any]
    ) -> Generator[Any, None, None]:
        get = queue.get
        put = queue.put
        job = runner.submit(_pump(iterator, put))
        future = job.future
        assert future is not None

        def finished(done: concurrent.futures.Future[Any]) -> None:
            if done.cancelled():
                put(_End(None, cancelled=True))
            else:
                put(_End(done.exception()))

        # Runs on the loop thread right after the pump ends, so it comes after every item.
        future.add_done_callback(finished)
        try:
            while True:
                item = get()
                if item.__class__ is _End:
                    if item.error is not None:
                        raise item.error
                    if item.cancelled:
                        raise RuntimeError("the SteerLLM was closed while this stream was running")
                    return
                yield item
        finally:
            if not future.done():  # the caller stopped early: break, close(), Ctrl-C
                runner.cancel(job, _CANCEL_TIMEOUT)
