"""The caller's callbacks, adapted once per call: sync or async, bounded by
``total_timeout``, ``on_delta`` batched by ``delta_batch_size``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import TotalTimeoutError
from .attempts import loop_time

__all__ = ["Deltas", "bound", "invoke", "is_async"]


def is_async(fn: Callable[..., Any] | None) -> bool:
    """An ``async def`` function (checked by its code flags: no inspect import)."""
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & 0x80)  # CO_COROUTINE


async def invoke(fn: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async callback (or one that returns an awaitable)."""
    result = fn(*args)
    if hasattr(result, "__await__"):
        await result


def bound(fn: Any, name: str, deadline: float | None, context: dict[str, Any]) -> Any:
    """With total_timeout, an async callback is bounded by the time left (a sync one
    cannot be interrupted: it runs to its end)."""
    if fn is None or deadline is None:
        return fn

    async def bounded(*args: Any) -> None:
        result = fn(*args)
        if hasattr(result, "__await__"):
            import asyncio

            timeout = asyncio.timeout(max(deadline - loop_time(), 0.0))
            try:
                async with timeout:
                    await result
            except TimeoutError:
                if timeout.expired():
                    raise TotalTimeoutError(
                        f"total_timeout passed while the {name} callback was running",
                        **context,
                    ) from None
                raise

    return bounded


class Deltas:
    """``on_delta`` for one call: ``sink`` is what each text chunk is awaited with
    (the callback itself when it is async and unbatched: nothing in between), or
    None without a callback; ``flush()`` at the end sends a last partial batch."""

    __slots__ = ("fn", "pending", "sink", "size")

    def __init__(self, fn: Any, size: int) -> None:
        self.fn = fn
        self.size = size
        self.pending: list[str] = []
        self.sink: Callable[[str], Any] | None
        if fn is None:
            self.sink = None
        elif size == 1:
            self.sink = fn if is_async(fn) else self._one
        else:
            self.sink = self._batched

    async def _one(self, text: str) -> None:
        result = self.fn(text)
        if hasattr(result, "__await__"):
            await result

    async def _batched(self, text: str) -> None:
        pending = self.pending
        pending.append(text)
        if len(pending) >= self.size:
            joined = "".join(pending)
            pending.clear()
            await invoke(self.fn, joined)

    async def flush(self) -> None:
        if self.pending:
            joined = "".join(self.pending)
            self.pending.clear()
            await invoke(self.fn, joined)
