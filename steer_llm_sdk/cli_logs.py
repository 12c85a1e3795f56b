"""The CLI's log: every prompt and answer, with usage, cost and timings, in SQLite.

Where: ``$STEER_LLM_DATA_DIR`` if set, else the platform's user data directory:
``$XDG_DATA_HOME/steer-llm`` (else ``~/.local/share/steer-llm``) on Linux,
``~/Library/Application Support/steer-llm`` on macOS, ``%APPDATA%\\steer-llm`` on
Windows (:func:`steer_llm_sdk.catalog.data_dir`). The database is ``logs.db``; a file
``logs-off`` beside it turns logging off; ``default_model.txt`` beside it holds the
default model saved with ``steer-llm models default NAME``.
Only the standard library's ``sqlite3`` is used; imported by the CLI only.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalog import data_dir

__all__ = ["LogStore", "data_dir"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    datetime_utc TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    system TEXT,
    prompt TEXT NOT NULL,
    response TEXT NOT NULL,
    options TEXT NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    total_tokens INTEGER,
    usage TEXT,
    cost_usd REAL,
    finish_reason TEXT,
    time_to_first_token REAL,
    duration REAL,
    tokens_per_second REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS responses_conversation ON responses (conversation_id, id);
"""

_COLUMNS = (
    "id",
    "conversation_id",
    "datetime_utc",
    "model",
    "provider",
    "system",
    "prompt",
    "response",
    "options",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "usage",
    "cost_usd",
    "finish_reason",
    "time_to_first_token",
    "duration",
    "tokens_per_second",
    "error",
)


def new_conversation_id() -> str:
    return uuid.uuid4().hex[:16]


class LogStore:
    """The log database. Each method opens and closes its own connection: the CLI
    writes once per answer, and a held connection would outlive a Ctrl-C."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or data_dir()
        self.path = self.directory / "logs.db"
        self._off_marker = self.directory / "logs-off"

    # -- on / off ------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return not self._off_marker.exists()

    def set_enabled(self, on: bool) -> None:
        if on:
            self._off_marker.unlink(missing_ok=True)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._off_marker.write_text("steer-llm logging is off: `steer-llm logs on`\n")

    # -- writing -------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=5)
        db.row_factory = sqlite3.Row
        db.executescript(_SCHEMA)
        return db

    def add(self, **fields: Any) -> int:
        """Log one exchange; returns its id."""
        row = {name: fields.get(name) for name in _COLUMNS if name != "id"}
        row["datetime_utc"] = row["datetime_utc"] or datetime.now(UTC).isoformat(timespec="seconds")
        for name in ("options", "usage"):
            if not isinstance(row[name], str) and row[name] is not None:
                row[name] = json.dumps(row[name], ensure_ascii=False)
        row["options"] = row["options"] or "{}"
        names = ", ".join(row)
        marks = ", ".join(f":{name}" for name in row)
        with closing(self._connect()) as db, db:
            cursor = db.execute(f"INSERT INTO responses ({names}) VALUES ({marks})", row)
            return int(cursor.lastrowid or 0)

    # -- reading -------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as db:
            rows = [dict(r) for r in db.execute(sql, args)]
        for row in rows:
            for name in ("options", "usage"):
                if row.get(name):
                    try:
                        row[name] = json.loads(row[name])
                    except ValueError:
                        pass
        return rows

    def recent(
        self,
        *,
        count: int = 3,
        query: str | None = None,
        model: str | None = None,
        conversation: str | None = None,
    ) -> list[dict[str, Any]]:
        """The last ``count`` exchanges (oldest first), optionally those whose prompt,
        system prompt or answer contains ``query`` (case-insensitive)."""
        where: list[str] = []
        args: list[Any] = []
        if query:
            like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            where.append(
                "(prompt LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\' "
                "OR system LIKE ? ESCAPE '\\')"
            )
            args += [like, like, like]
        if model:
            where.append("model = ?")
            args.append(model)
        if conversation:
            where.append("conversation_id = ?")
            args.append(conversation)
        sql = "SELECT * FROM responses"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if count > 0:
            sql += " LIMIT ?"
            args.append(count)
        return list(reversed(self._rows(sql, tuple(args))))

    def get(self, log_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM responses WHERE id = ?", (log_id,))
        return rows[0] if rows else None

    def last_conversation(self) -> tuple[str, str] | None:
        """(conversation id, model) of the newest logged exchange."""
        rows = self._rows(
            "SELECT conversation_id, model FROM responses ORDER BY id DESC LIMIT 1", ()
        )
        return (rows[0]["conversation_id"], rows[0]["model"]) if rows else None

    def conversation_messages(self, conversation_id: str) -> Iterator[dict[str, str]]:
        """The messages of a logged conversation, for continuing it: its first system
        prompt, then each prompt and answer in order (failed exchanges left out)."""
        rows = self._rows(
            "SELECT system, prompt, response FROM responses "
            "WHERE conversation_id = ? AND error IS NULL ORDER BY id",
            (conversation_id,),
        )
        if rows and rows[0]["system"]:
            yield {"role": "system", "content": rows[0]["system"]}
        for row in rows:
            yield {"role": "user", "content": row["prompt"]}
            yield {"role": "assistant", "content": row["response"]}
