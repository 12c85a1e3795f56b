"""The job journal: SQLite (standard library ``sqlite3``, WAL mode).

One row per item that reached an end (``done``, ``failed`` for good, or failed with
an error worth retrying on the next run), with its result as JSON. Items in flight
have no row: a process killed with SIGKILL loses at most those (and results not yet
committed: commits happen every fraction of a second), and a run of the same job with
the same journal skips every item with a ``done`` or ``failed`` row.

The journal also keeps the job's fingerprint (model, parameters, output schema) and,
when the job writes a JSONL file, the length of that file at the last commit: on
resume the file is cut back to it, so a line is in the file exactly when its item's
row is committed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from ..errors import ConfigurationError

__all__ = ["DONE", "FAILED", "RETRY", "Journal", "describe_changes"]

DONE, FAILED, RETRY = 1, 2, 3  # item states; RETRY: failed, worth another run
_LOOKUP_CHUNK = 500


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human lines naming each top-level (and params.*) difference."""
    changes: list[str] = []
    for key in sorted({*old, *new}):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for sub in sorted({*a, *b}):
                if a.get(sub) != b.get(sub):
                    changes.append(f"{key}.{sub}: {_short(a.get(sub))} -> {_short(b.get(sub))}")
        else:
            changes.append(f"{key}: {_short(a)} -> {_short(b)}")
    return changes


def _short(value: Any) -> str:
    text = "(unset)" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Journal:
    """A job's SQLite journal. Not thread-safe: one event loop uses it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, state INTEGER NOT NULL, "
                "run INTEGER NOT NULL, attempts INTEGER NOT NULL, cost REAL, "
                "prompt_tokens INTEGER, completion_tokens INTEGER, result BLOB) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(
                f"cannot use {self.path!r} as a batch journal: {exc} "
                "(give a new path, or the journal of this same job)"
            ) from None
        self._in_tx = False
        self.pending = 0  # rows written since the last commit
        # Rows recorded but not yet handed to SQLite: written in one executemany
        # before anything reads or commits (uncommitted either way until COMMIT).
        self._rows: list[tuple[Any, ...]] = []

    # -- meta --------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        self._write_rows()
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._begin()
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def check_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        """Store the fingerprint of a new journal; refuse a journal of another job."""
        stored = self.get_meta("fingerprint")
        encoded = orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS).decode()
        if stored is None:
            self.set_meta("fingerprint", encoded)
            self.commit()
            return
        if stored == encoded:
            return
        old = orjson.loads(stored)
        changes = describe_changes(old, orjson.loads(encoded)) or ["(details differ)"]
        raise ConfigurationError(
            f"the journal {self.path!r} belongs to a different job, so it cannot be resumed "
            f"with these settings; what changed: {'; '.join(changes)}. Run with the same "
            "settings to resume, or use a new journal (or output) path to start a new job"
        )

    def new_run(self) -> int:
        run = int(self.get_meta("runs") or 0) + 1
        self.set_meta("runs", str(run))
        self.commit()
        return run

    # -- items ---------------------------------------------------------------------
    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """``{id: (state, run)}`` for the ids that have a row."""
        self._write_rows()
        found: dict[str, tuple[int, int]] = {}
        execute = self._db.execute
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            part = ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            for row in execute(f"SELECT id, state, run FROM items WHERE id IN ({marks})", part):
                found[row[0]] = (row[1], row[2])
        return found

    def lookup_results(self, ids: Sequence[str], *, run: int) -> dict[str, bytes]:
        """``{id: result}`` for the ids that need no new request: finished (done, or
        failed for good) or recorded by ``run`` (this run, before a retry)."""
        self._write_rows()
        found: dict[str, bytes] = {}
        execute = self._db.execute
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            part = ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            query = (
                f"SELECT id, result FROM items WHERE id IN ({marks}) AND (state != ? OR run = ?)"
            )
            for item_id, result in execute(query, (*part, RETRY, run)):
                found[item_id] = bytes(result)
        return found

    def record(
        self,
        item_id: str,
        state: int,
        run: int,
        attempts: int,
        cost: float | None,
        prompt_tokens: int,
        completion_tokens: int,
        result: bytes,
    ) -> None:
        self._rows.append(
            (item_id, state, run, attempts, cost, prompt_tokens, completion_tokens, result)
        )
        self.pending += 1

    def record_many(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of ``(id, state, run, attempts, cost, prompt, completion, result)``."""
        self._write_rows()
        self._begin()
        self._db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.pending += len(rows)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        """A write in the current transaction (committed by :meth:`commit`)."""
        self._write_rows()
        self._begin()
        return self._db.execute(sql, args)

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """A read's rows."""
        self._write_rows()
        return self._db.execute(sql, args).fetchall()

    def _write_rows(self) -> None:
        if self._rows:
            self._begin()
            self._db.executemany(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self._rows
            )
            self._rows.clear()

    def _begin(self) -> None:
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True

    def commit(self) -> None:
        self._write_rows()
        if self._in_tx:
            self._db.execute("COMMIT")
            self._in_tx = False
        self.pending = 0

    def totals(self) -> dict[int, tuple[int, float, int, int]]:
        """``{state: (count, cost, prompt_tokens, completion_tokens)}`` over all runs."""
        self._write_rows()
        rows = self._db.execute(
            "SELECT state, count(*), total(cost), total(prompt_tokens), "
            "total(completion_tokens) FROM items GROUP BY state"
        ).fetchall()
        return {row[0]: (row[1], float(row[2]), int(row[3]), int(row[4])) for row in rows}

    def results(self, *, states: Sequence[int] = (DONE, FAILED)) -> Iterator[dict[str, Any]]:
        """Every recorded result (as written to JSONL), in id order."""
        self._write_rows()
        marks = ",".join("?" * len(states))
        cursor = self._db.execute(
            f"SELECT result FROM items WHERE state IN ({marks}) ORDER BY id", tuple(states)
        )
        for (blob,) in cursor:
            yield orjson.loads(blob)

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self._db.close()
