"""The response cache in the pipeline: :class:`CachedRun` answers a call from the
cache when it can, else runs it and stores the complete answer.

:func:`start_run` is how the client starts every call: a plain :class:`StreamRun`
when the client has no cache or the call said ``cache=False`` (nothing here runs
then), else a :class:`CachedRun`. A hit replays the stored chunks or typed parts
and builds the response (``cached=True``, ``cost_usd`` 0.0, zero usage, the original
usage under ``cached_usage``); ``on_start``, ``on_delta`` and ``on_complete`` run as
for a live answer, ``on_usage`` does not (nothing was used) and observers see no
call. What is stored: a call that ended without an error, after the caller took its
last part; an error, an interruption or a caller that stopped early stores nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

from ..errors import SteerError
from ..results import Finish, StreamingResponse, ToolCall
from .callbacks import Deltas, invoke
from .pipeline import Call, StreamRun

__all__ = ["CachedRun", "start_run"]

logger = logging.getLogger("steer_llm_sdk")


def start_run(call: Call) -> StreamRun:
    """The run of one call: cached when the client has a response cache."""
    return StreamRun(call) if call.cache is None else CachedRun(call)


class CachedRun(StreamRun):
    """A call through the response cache."""

    def _key(self, kind: str) -> str | None:
        from ..cache import request_key

        call = self.call
        key = request_key(kind, call.provider.name, call.request)
        if key is None:
            logger.debug("response cache: the request cannot be keyed; not cached")
        return key

    async def _lookup(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        from ..cache import load_entry

        try:
            blob = await self.call.cache.get(key)
            return load_entry(blob) if blob is not None else None
        except Exception as exc:  # a broken cache never breaks a call
            logger.warning(
                "response cache: read failed (%s); calling the model", type(exc).__name__
            )
            return None

    async def _store(self, key: str | None, parts: list[Any] | None) -> None:
        if key is None:
            return
        from ..cache import dump_entry

        blob = dump_entry(self.response(), list(self.delivered), parts)
        if blob is None:
            return
        try:
            await self.call.cache.put(key, blob)
        except Exception as exc:
            logger.warning("response cache: write failed (%s)", type(exc).__name__)

    # -- the loops -----------------------------------------------------------------
    async def chunks(self) -> AsyncGenerator[str, None]:
        key = self._key("text")
        entry = await self._lookup(key)
        if entry is not None:
            async for text in self._replay(entry, entry["chunks"]):
                yield text
            return
        async for text in super().chunks():
            yield text
        await self._store(key, None)

    async def events(self) -> AsyncGenerator[Any, None]:
        key = self._key("events")
        entry = await self._lookup(key)
        if entry is not None:
            from ..cache import rebuild_parts

            async for part in self._replay(entry, rebuild_parts(entry)):
                yield part
            response = self.response()
            yield Finish(
                response.finish_reason or "other",
                response.raw_finish_reason,
                response.usage,
                response,
            )
            return
        parts: list[Any] = []
        async for part in super().events():
            if type(part) is not Finish:
                parts.append(part)
            yield part
        await self._store(key, parts)

    async def generate(self) -> StreamingResponse:
        key = self._key("text")
        entry = await self._lookup(key)
        if entry is not None:
            async for _ in self._replay(entry, entry["chunks"]):
                pass
            return self.response()
        response = await super().generate()
        await self._store(key, None)
        return response

    # -- a hit -------------------------------------------------------------------------
    async def _replay(self, entry: dict[str, Any], items: list[Any]) -> AsyncGenerator[Any, None]:
        opts = self.call.options
        if opts.on_start is not None:
            await invoke(self._bound(opts.on_start, "on_start"))
        deltas = Deltas(self._bound(opts.on_delta, "on_delta"), opts.delta_batch_size)
        sink = deltas.sink
        for item in items:
            text: str | None = item if type(item) is str else None
            if text is None and item.type == "text-delta":
                text = item.text
            if text is not None:
                self.delivered.append(text)
                if self.first_token_at is None:
                    self.first_token_at = time.perf_counter()
                if sink is not None:
                    try:
                        await sink(text)
                    except SteerError as exc:
                        raise self._callback_error(exc) from None
            yield item
        await deltas.flush()
        self.finished_at = time.perf_counter()
        self._response = self._cached_response(entry)
        if opts.on_complete is not None:
            await invoke(self._bound(opts.on_complete, "on_complete"), "".join(self.delivered))

    def _cached_response(self, entry: dict[str, Any]) -> StreamingResponse:
        from ..cache import RESPONSE_FIELDS

        fields: dict[str, Any] = {name: entry.get(name) for name in RESPONSE_FIELDS}
        original = fields.pop("usage") or {}
        fields["warnings"] = list(fields.get("warnings") or ())
        from ..cache import rebuild_file

        fields["files"] = [rebuild_file(f) for f in entry.get("files") or ()]
        started = self.started_at
        first = self.first_token_at
        response = StreamingResponse(
            usage={"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            cost_usd=0.0,
            tool_calls=[ToolCall(**call) for call in entry.get("tool_calls") or ()],
            time_to_first_token=first - started if first is not None else None,
            duration=(self.finished_at or time.perf_counter()) - started,
            attempts=0,
            cached=True,
            cached_usage=original,
            **fields,
        )
        spec = self.call.output
        if spec is not None:
            self._response = response
            response.output = self.output()
        return response
