"""What a batch job reads and writes, for both engines: its options check and
fingerprint, items (normalised from a prompt, a message list or a dict), and results.

Pure data and functions: no client, no I/O, no Ray.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..content import from_file
from ..errors import ConfigurationError
from ..files import File
from ..media import file_tokens
from .journal import DONE, FAILED, RETRY

__all__ = [
    "BatchResult",
    "BatchSummary",
    "InvalidItem",
    "Item",
    "check_options",
    "content_id",
    "error_result",
    "fingerprint",
    "jsonable",
    "normalize",
    "prompt_tokens",
    "result_line",
    "result_state",
    "result_tokens",
]

_ITEM_KEYS = ("custom_id", "messages", "prompt")


# -- the job ---------------------------------------------------------------------------
def check_options(concurrency: Any, max_attempts: Any, rpm: Any, tpm: Any, budget_usd: Any) -> None:
    """The options both engines take, checked the same way: a clear error naming it."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency={concurrency!r} must be a whole number >= 1")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigurationError(f"max_attempts={max_attempts!r} must be a whole number >= 1")
    for name, value in (("requests_per_minute", rpm), ("tokens_per_minute", tpm)):
        values = value.values() if isinstance(value, Mapping) else [value]
        for v in values:
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
                raise ConfigurationError(f"{name}={value!r} must be a number > 0")
    if budget_usd is not None and (
        isinstance(budget_usd, bool) or not isinstance(budget_usd, int | float) or budget_usd < 0
    ):
        raise ConfigurationError(f"budget_usd={budget_usd!r} must be a number >= 0")


def fingerprint(model: str | None, system: str | None, params: Mapping[str, Any]) -> Any:
    """What makes a job this job (a journal refuses another's): model, system prompt,
    parameters and output schema."""
    rest = {k: v for k, v in params.items() if k != "output"}
    doc = {"model": model, "system": system, "params": rest, "output": params.get("output")}
    return orjson.loads(_dumps(doc))


# -- items -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InvalidItem:
    """An input that could not be read as an item (e.g. a line that is not JSON): it
    becomes a failed result with this id and reason, without stopping the job."""

    custom_id: str
    reason: str


@dataclass(slots=True)
class Item:
    """One item, normalised: its id, messages, model and own parameters."""

    custom_id: str
    messages: Any
    model: str
    params: dict[str, Any]
    invalid: str | None = None  # why the item cannot run


def jsonable(value: Any) -> Any:
    """orjson's ``default=``: a pydantic model class as its schema, a
    :class:`~steer_llm_sdk.files.File` as its description and the hash of its bytes
    (two items with different files are different items), else its repr."""
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"pydantic": value.__name__, "schema": value.model_json_schema()}
    if isinstance(value, File):
        doc = value.to_dict()
        if value.data is not None:
            doc["sha256"] = hashlib.sha256(value.data).hexdigest()
        return {"file": doc}
    return repr(value)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=jsonable)


def content_id(content: Any) -> str:
    """The id of an item without a custom_id: a hash of its content."""
    return "sha256:" + hashlib.sha256(_dumps(content)).hexdigest()[:32]


def normalize(raw: Any, index: int, model: str | None, system: str | None) -> Item:
    """An input (prompt string, message list, dict or :class:`InvalidItem`) as an
    :class:`Item`; one that cannot run carries the reason in ``invalid``."""
    params: dict[str, Any] = {}
    custom_id: str | None = None
    invalid = None
    messages: Any = None
    if isinstance(raw, str):
        messages = raw
    elif isinstance(raw, InvalidItem):
        return Item(raw.custom_id, None, model or "", params, raw.reason)
    elif isinstance(raw, list | tuple):
        messages = list(raw)
        if messages and isinstance(messages[0], str | File):  # a prompt of text and files
            messages = [{"role": "user", "content": messages}]
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
        custom_id = content_id(raw) if invalid is None else f"invalid:{index}"
    if model is None and invalid is None:
        invalid = "no model: pass model= to batch() or give the item a 'model'"
    if system and invalid is None:
        if isinstance(messages, str):
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": messages},
            ]
        elif isinstance(messages, list):
            messages = [{"role": "system", "content": system}, *messages]
    return Item(str(custom_id), messages, model or "", params, invalid)


def prompt_tokens(messages: Any) -> int:
    """A cheap estimate, never below the emulator's (and, on English text, close to the
    providers') count: 1 token per 4 ASCII characters, 1 per other character, plus 4
    per message and 3 to prime the reply (steer_llm_sdk.streaming.estimate)."""
    from ..streaming.estimate import count_tokens

    extra = 0
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
                    elif isinstance(part, File):  # by the provider's rule (media.py)
                        extra += file_tokens(from_file(part), "openai-chat")
                    elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                        texts.append(part["text"])
        count = len(messages or ())
    tokens, _ = count_tokens("\n".join(texts), "", "character")
    return tokens + extra + 4 * count + 3


# -- results ---------------------------------------------------------------------------
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


def result_line(result: BatchResult) -> bytes:
    """A result's JSON line in the journal and the output file."""
    return orjson.dumps(result.to_dict(), default=jsonable)


def result_state(result: BatchResult) -> int:
    """Its journal state: DONE, FAILED (for good) or RETRY (worth another run)."""
    error = result.error
    if error is None:
        return DONE
    return RETRY if error.get("retryable") else FAILED


def result_tokens(result: BatchResult) -> tuple[int, int]:
    """``(prompt_tokens, completion_tokens)`` of its usage."""
    usage = result.usage or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def error_result(item: Item, exc: BaseException, *, retryable: bool = False) -> BatchResult:
    """A failed item's result, naming the error's type, message and status."""
    return BatchResult(
        custom_id=item.custom_id,
        model=item.model or None,
        error={
            "type": type(exc).__name__,
            "message": str(exc),
            "status_code": getattr(exc, "status_code", None),
            "retryable": retryable,
        },
    )


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


CHUNK = 512  # items read (and looked up in the journal) at a time


async def chunked(items: Any) -> AsyncIterator[list[Any]]:
    """A job's input (an iterable or an async iterable) in lists of ``CHUNK``; after a
    chunk of a plain iterable the loop gets a turn."""
    chunk: list[Any] = []
    if isinstance(items, AsyncIterable):
        async for raw in items:
            chunk.append(raw)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    else:
        for raw in items:
            chunk.append(raw)
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
                await asyncio.sleep(0)
    if chunk:
        yield chunk
