"""What ``client.stream()`` and ``client.stream_events()`` return.

An async iterator whose ``__aiter__`` hands back the pipeline's own generator, so an
``async for`` runs it directly (no layer per chunk), and an async context manager
that closes the stream, and so its HTTP response, when the block ends:

    async with client.stream("Hi", model="gpt-4o-mini") as stream:
        async for chunk in stream:
            if done(chunk):
                break  # the connection is closed here, even though `stream` is held

Breaking out of ``async for client.stream(...)`` without keeping a reference also
closes it (the generator is collected at once); a caller that keeps the object and
breaks must ``await stream.aclose()`` or use ``async with``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import Any, Generic, TypeVar

__all__ = ["AsyncStream"]

T = TypeVar("T")


class AsyncStream(Generic[T]):
    __slots__ = ("_generator",)

    def __init__(self, generator: AsyncGenerator[T, None]) -> None:
        self._generator = generator

    def __aiter__(self) -> AsyncGenerator[T, None]:
        return self._generator

    def __anext__(self) -> Awaitable[T]:
        return self._generator.__anext__()

    def asend(self, value: None) -> Awaitable[T]:
        return self._generator.asend(value)

    def athrow(self, *args: Any) -> Awaitable[T]:
        return self._generator.athrow(*args)

    def aclose(self) -> Awaitable[None]:
        """Stop the stream and close its HTTP response (safe to call twice)."""
        return self._generator.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._generator.aclose()

    def __repr__(self) -> str:
        return f"<AsyncStream {getattr(self._generator, '__qualname__', 'stream')}>"
