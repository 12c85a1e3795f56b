"""An exact response cache: the same request twice is answered once.

``SteerLLMClient(response_cache=ResponseCache("cache.db", ttl=3600))`` keeps every
complete answer under a hash of everything that shapes it (provider, model,
messages and their files, parameters, tools, the output schema) and replays a hit
as a stream: the same chunks, the same typed parts, with ``response.cached`` True,
``cost_usd`` 0.0 and the original usage under ``cached_usage``. Errors and
interrupted answers are never stored; ``cache=False`` on a call bypasses it.

Stores: SQLite (the standard library's; one file, several processes may share it)
by default, Redis (``RedisResponseCache``, the ``redis`` extra) for several hosts.
No semantic cache: it would answer different questions alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import fields, is_dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from .errors import ConfigurationError

if TYPE_CHECKING:
    import sqlite3

__all__ = ["CacheStore", "RedisResponseCache", "ResponseCache", "request_key"]

_VERSION = 1  # bump when the key's or the entry's shape changes


class CacheStore(Protocol):
    """What the pipeline needs of a response cache."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


def _seconds(ttl: float | timedelta | None) -> float | None:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0:
        raise ConfigurationError(f"ttl must be positive seconds or a timedelta, not {ttl!r}")
    return seconds


class ResponseCache:
    """Answers kept in a SQLite file (``":memory:"`` for this process only).

    ``ttl`` (seconds or a ``timedelta``; None: kept until :meth:`clear`) bounds an
    entry's age; ``max_entries`` the table (the oldest go first). Reads and writes
    are a few tens of microseconds on a local disk and run on the event loop.
    """

    def __init__(
        self,
        path: str = "steer-llm-cache.db",
        *,
        ttl: float | timedelta | None = None,
        max_entries: int | None = 100_000,
    ) -> None:
        self.path = str(path)
        self.ttl = _seconds(ttl)
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    def __repr__(self) -> str:
        return f"ResponseCache({self.path!r}, ttl={self.ttl})"

    def _conn(self) -> sqlite3.Connection:
        db = self._db
        if db is None:
            import sqlite3  # here: `import steer_llm_sdk` does not load it

            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            if self.path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, "
                "created REAL NOT NULL, expires REAL, value BLOB NOT NULL)"
            )
            self._db = db
        return db

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            db = self._conn()
            row = db.execute(
                "SELECT value, expires FROM responses WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            value, expires = row
            if expires is not None and expires <= time.time():
                db.execute("DELETE FROM responses WHERE key = ?", (key,))
                return None
            return bytes(value)

    async def put(self, key: str, value: bytes) -> None:
        now = time.time()
        expires = now + self.ttl if self.ttl is not None else None
        with self._lock:
            db = self._conn()
            db.execute(
                "INSERT OR REPLACE INTO responses (key, created, expires, value) "
                "VALUES (?, ?, ?, ?)",
                (key, now, expires, value),
            )
            self._writes += 1
            if self.max_entries is not None and self._writes % 100 == 1:
                self._trim(db, now)

    def _trim(self, db: sqlite3.Connection, now: float) -> None:
        db.execute("DELETE FROM responses WHERE expires IS NOT NULL AND expires <= ?", (now,))
        (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
        excess = count - (self.max_entries or count)
        if excess > 0:
            db.execute(
                "DELETE FROM responses WHERE key IN "
                "(SELECT key FROM responses ORDER BY created LIMIT ?)",
                (excess,),
            )

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._conn().execute("DELETE FROM responses")

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn().execute("SELECT COUNT(*) FROM responses").fetchone()
            return int(count)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class RedisResponseCache:
    """Answers kept in Redis (the ``redis`` extra), for several processes or hosts;
    every key carries the TTL (``ttl`` None: no expiry)."""

    def __init__(
        self, url: str = "redis://127.0.0.1:6379/0", *, ttl: float | timedelta | None = None
    ) -> None:
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise ConfigurationError(
                "RedisResponseCache needs the redis package: pip install 'steer-llm-sdk[redis]'"
            ) from None
        self.ttl = _seconds(ttl)
        self.prefix = "steer-llm:response:"
        self._redis = aioredis.Redis.from_url(url)

    def __repr__(self) -> str:
        return f"RedisResponseCache(ttl={self.ttl})"  # never the URL: it may hold a password

    async def get(self, key: str) -> bytes | None:
        value: Any = await self._redis.get(self.prefix + key)
        return bytes(value) if value is not None else None

    async def put(self, key: str, value: bytes) -> None:
        ttl = self.ttl
        await self._redis.set(self.prefix + key, value, px=int(ttl * 1000) if ttl else None)

    async def aclose(self) -> None:
        await self._redis.aclose()


# -- the key ---------------------------------------------------------------------------
class Uncacheable(Exception):
    """A request holds something the key cannot describe (a callable parameter ...)."""


def _canonical(value: Any) -> Any:
    import hashlib

    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"sha256": hashlib.sha256(value).hexdigest(), "size": len(value)}
    if is_dataclass(value) and not isinstance(value, type):
        out = {"__type__": type(value).__name__}
        for f in fields(value):
            item = getattr(value, f.name)
            if f.name == "b64" and isinstance(item, str):  # long base64 text: its hash
                item = {"sha256": hashlib.sha256(item.encode()).hexdigest()}
            out[f.name] = item
        return out
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise Uncacheable(type(value).__name__)


def request_key(kind: str, provider: str, request: Any) -> str | None:
    """The hash of what shapes an answer: the stream kind (``"text"`` or ``"events"``),
    the provider and the request (model, messages with their files' bytes hashed,
    parameters, tools, tool choice, output schema); None when the request holds
    something the key cannot describe (then the call is not cached)."""
    described = {
        "v": _VERSION,
        "kind": kind,
        "provider": provider,
        "model": request.model,
        "messages": request.messages,
        "params": request.params,
        "extra_body": request.extra_body,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "output_schema": request.output_schema,
        "output_name": request.output_name,
    }
    try:
        blob = orjson.dumps(
            described,
            default=_canonical,
            option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS,
        )
    except (TypeError, Uncacheable):
        return None
    import hashlib

    return hashlib.sha256(blob).hexdigest()


# -- the entries -------------------------------------------------------------------------
RESPONSE_FIELDS = (
    "text",
    "usage",
    "model",
    "provider",
    "finish_reason",
    "response_model",
    "request_id",
    "reasoning_text",
    "refusal",
    "raw_finish_reason",
    "logprobs",
    "provider_data",
    "warnings",
    "transcript",
)


def dump_entry(response: Any, chunks: list[str], parts: list[Any] | None) -> bytes | None:
    """A complete answer as bytes to store (None if it holds what JSON cannot)."""
    entry: dict[str, Any] = {name: getattr(response, name) for name in RESPONSE_FIELDS}
    entry["tool_calls"] = [_tool_call(call) for call in response.tool_calls]
    entry["files"] = [_file(file) for file in getattr(response, "files", ())]
    entry["chunks"] = chunks
    if parts is not None:
        entry["parts"] = [_part(part) for part in parts]
    try:
        return orjson.dumps(entry)
    except TypeError:
        return None


def _tool_call(call: Any) -> dict[str, Any]:
    return {f.name: getattr(call, f.name) for f in fields(call) if f.init}


def _file(file: Any) -> dict[str, Any]:
    import base64

    data = file.data
    return {
        "data": base64.b64encode(data).decode("ascii") if data is not None else None,
        "url": file.url,
        "file_id": file.file_id,
        "media_type": file.media_type,
        "filename": file.filename,
    }


def rebuild_file(data: dict[str, Any]) -> Any:
    """A stored file of an answer, as a :class:`~steer_llm_sdk.File` again."""
    import base64

    from .files import File

    raw = data.get("data")
    return File(
        data=base64.b64decode(raw) if raw is not None else None,
        url=data.get("url"),
        file_id=data.get("file_id"),
        media_type=data.get("media_type"),
        filename=data.get("filename"),
    )


def _part(part: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": part.type}
    for f in fields(part):
        value = getattr(part, f.name)
        if f.name == "call":
            value = _tool_call(value)
        elif f.name == "file":
            value = _file(value)
        elif isinstance(value, bytes):
            import base64

            value = {"b64": base64.b64encode(value).decode("ascii")}
        out[f.name] = value
    return out


def load_entry(blob: bytes) -> dict[str, Any]:
    return dict(orjson.loads(blob))


def rebuild_parts(entry: dict[str, Any]) -> list[Any]:
    """The stored typed parts, as the part classes again (a part type this version
    does not know is skipped: an entry written by a newer version)."""
    from . import results

    classes = {
        cls.type: cls
        for cls in (
            results.FileOutput,
            results.AudioDelta,
            results.TextDelta,
            results.ReasoningDelta,
            results.ToolCallStart,
            results.ToolCallDelta,
            results.ToolCallEnd,
            results.PartialOutput,
        )
    }
    out = []
    for data in entry.get("parts") or ():
        cls = classes.get(data.pop("type", None))
        if cls is None:
            continue
        if "call" in data:
            data["call"] = results.ToolCall(**data["call"])
        if "file" in data:
            data["file"] = rebuild_file(data["file"])
        if isinstance(data.get("data"), dict):
            import base64

            data["data"] = base64.b64decode(data["data"]["b64"])
        out.append(cls(**data))
    return out
