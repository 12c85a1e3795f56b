"""Where resumable answers keep their parts: SQLite (the standard library's, the
default) or Redis (the ``redis`` extra, for several server processes). Every entry
expires after ``ttl`` seconds.

A stream is a numbered list of SSE chunks (seq 1, 2, ...), a ``done`` flag and the
time a client last listened; a chat points to its active stream."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigurationError

__all__ = ["RedisStore", "SQLiteStore", "StreamStore"]

DEFAULT_TTL = 3600.0


class StreamStore(Protocol):
    """What a store does (every method a coroutine)."""

    async def start(self, chat_id: str, stream_id: str) -> None: ...
    async def append(self, stream_id: str, seq: int, data: bytes) -> None: ...
    async def read(self, stream_id: str, after: int) -> list[tuple[int, bytes]]: ...
    async def finish(self, stream_id: str) -> None: ...
    async def active(self, chat_id: str) -> str | None: ...
    async def done(self, stream_id: str) -> bool | None: ...
    async def touch(self, stream_id: str) -> None: ...
    async def listened(self, stream_id: str) -> float: ...


_SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS parts (
    stream_id TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (stream_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY, chat_id TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    listened REAL NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY, stream_id TEXT NOT NULL, expires REAL NOT NULL);
"""


class SQLiteStore:
    """A SQLite file (WAL): processes on one machine share it. Default path: a file in
    the temporary directory, per user."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, ttl: float = DEFAULT_TTL):
        if path is None:
            uid = os.getuid() if hasattr(os, "getuid") else 0
            path = Path(tempfile.gettempdir()) / f"steer-llm-streams-{uid}.db"
        self.path = str(path)
        self.ttl = ttl
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            db.executescript(_SCHEMA)
            db.execute("PRAGMA synchronous=NORMAL")
            now = time.time()
            for table in ("parts", "streams", "chats"):
                db.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def start(self, chat_id: str, stream_id: str) -> None:
        now = time.time()
        db = self._conn()
        db.execute(
            "INSERT OR REPLACE INTO streams VALUES (?, ?, 0, ?, ?)",
            (stream_id, chat_id, now, now + self.ttl),
        )
        db.execute(
            "INSERT OR REPLACE INTO chats VALUES (?, ?, ?)", (chat_id, stream_id, now + self.ttl)
        )

    async def append(self, stream_id: str, seq: int, data: bytes) -> None:
        self._conn().execute(
            "INSERT OR REPLACE INTO parts VALUES (?, ?, ?, ?)",
            (stream_id, seq, data, time.time() + self.ttl),
        )

    async def read(self, stream_id: str, after: int) -> list[tuple[int, bytes]]:
        rows = self._conn().execute(
            "SELECT seq, data FROM parts WHERE stream_id = ? AND seq > ? AND expires >= ? "
            "ORDER BY seq",
            (stream_id, after, time.time()),
        )
        return [(int(s), bytes(d)) for s, d in rows]

    async def finish(self, stream_id: str) -> None:
        db = self._conn()
        db.execute("UPDATE streams SET done = 1 WHERE stream_id = ?", (stream_id,))
        db.execute("DELETE FROM chats WHERE stream_id = ?", (stream_id,))

    async def active(self, chat_id: str) -> str | None:
        row = (
            self._conn()
            .execute(
                "SELECT c.stream_id FROM chats c JOIN streams s USING (stream_id) "
                "WHERE c.chat_id = ? AND s.done = 0 AND c.expires >= ?",
                (chat_id, time.time()),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    async def done(self, stream_id: str) -> bool | None:
        row = (
            self._conn()
            .execute(
                "SELECT done FROM streams WHERE stream_id = ? AND expires >= ?",
                (stream_id, time.time()),
            )
            .fetchone()
        )
        return None if row is None else bool(row[0])

    async def touch(self, stream_id: str) -> None:
        self._conn().execute(
            "UPDATE streams SET listened = ? WHERE stream_id = ?", (time.time(), stream_id)
        )

    async def listened(self, stream_id: str) -> float:
        row = (
            self._conn()
            .execute("SELECT listened FROM streams WHERE stream_id = ?", (stream_id,))
            .fetchone()
        )
        return 0.0 if row is None else float(row[0])


class RedisStore:
    """Redis (``pip install 'steer-llm-sdk[redis]'``): ``RedisStore("redis://host:6379/0")``.
    Keys under ``prefix``; each one expires after ``ttl`` seconds."""

    def __init__(self, url: str, *, ttl: float = DEFAULT_TTL, prefix: str = "steer:web:"):
        try:
            import redis.asyncio as aioredis
        except ImportError:
            raise ConfigurationError(
                "RedisStore needs the redis package: pip install 'steer-llm-sdk[redis]'"
            ) from None
        self._r: Any = aioredis.from_url(url)
        self.ttl = int(max(1, ttl))
        self.prefix = prefix

    def _k(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    async def aclose(self) -> None:
        await self._r.aclose()

    async def start(self, chat_id: str, stream_id: str) -> None:
        meta = self._k("meta", stream_id)
        pipe = self._r.pipeline()
        pipe.hset(meta, mapping={"chat": chat_id, "done": 0, "listened": time.time()})
        pipe.expire(meta, self.ttl)
        pipe.set(self._k("chat", chat_id), stream_id, ex=self.ttl)
        await pipe.execute()

    async def append(self, stream_id: str, seq: int, data: bytes) -> None:
        key = self._k("parts", stream_id)
        pipe = self._r.pipeline()
        pipe.rpush(key, data)
        pipe.expire(key, self.ttl)
        await pipe.execute()

    async def read(self, stream_id: str, after: int) -> list[tuple[int, bytes]]:
        items = await self._r.lrange(self._k("parts", stream_id), after, -1)
        return [(after + i + 1, bytes(d)) for i, d in enumerate(items)]

    async def finish(self, stream_id: str) -> None:
        meta = self._k("meta", stream_id)
        chat = await self._r.hget(meta, "chat")
        pipe = self._r.pipeline()
        pipe.hset(meta, "done", 1)
        pipe.expire(meta, self.ttl)
        await pipe.execute()
        if chat is not None:
            key = self._k("chat", chat.decode())
            if (await self._r.get(key)) == stream_id.encode():
                await self._r.delete(key)

    async def active(self, chat_id: str) -> str | None:
        sid = await self._r.get(self._k("chat", chat_id))
        if sid is None:
            return None
        sid_text = sid.decode()
        return sid_text if await self.done(sid_text) is False else None

    async def done(self, stream_id: str) -> bool | None:
        value = await self._r.hget(self._k("meta", stream_id), "done")
        return None if value is None else value == b"1"

    async def touch(self, stream_id: str) -> None:
        await self._r.hset(self._k("meta", stream_id), "listened", time.time())

    async def listened(self, stream_id: str) -> float:
        value = await self._r.hget(self._k("meta", stream_id), "listened")
        return 0.0 if value is None else float(value)
