"""The provider batches a job submitted, in its journal (table ``submissions``).

A row is written, and committed, *before* the submit call (the intent: the job's tag,
the time, the request count and the item behind each line), and the provider's
batch id is written after it. A process killed between the two leaves an intent
without an id: the next run finds that batch at the provider (by its tag, or for
Anthropic by time and count) or, when there is none, voids the intent and submits
the items again. Once a batch's results are in the journal its row is ``DOWNLOADED``.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .journal import Journal

__all__ = ["DOWNLOADED", "INTENT", "SUBMITTED", "VOID", "Submission", "Submissions"]

INTENT, SUBMITTED, DOWNLOADED, VOID = 0, 1, 2, 3


@dataclass(slots=True)
class Submission:
    """One provider batch of the job (``lines``: ``[item id, context index]`` per line)."""

    tag: str
    provider: str
    model: str
    endpoint: str
    state: int
    batch_id: str | None
    created: float
    count: int
    lines: list[list[Any]]
    contexts: list[str]

    def line_index(self, line_id: str) -> int | None:
        """The line's position from its id (``TAG-N``), None when not this batch's."""
        prefix, _, number = line_id.rpartition("-")
        if prefix != self.tag or not number.isdigit():
            return None
        index = int(number)
        return index if index < len(self.lines) else None


class Submissions:
    """The ``submissions`` table of a job's journal."""

    def __init__(self, journal: Journal, commit: Callable[[], None] | None = None) -> None:
        self.journal = journal
        # The commit that also writes the output file's pending lines (the recorder's):
        # the journal is never committed ahead of the file.
        self.commit = commit or journal.commit
        journal.execute(
            "CREATE TABLE IF NOT EXISTS submissions (tag TEXT PRIMARY KEY, provider TEXT, "
            "model TEXT, endpoint TEXT, state INTEGER, batch_id TEXT, created REAL, "
            "count INTEGER, lines BLOB, contexts BLOB)"
        )
        journal.commit()

    def job_id(self) -> str:
        """The job's unique id (made once, kept in the journal): every tag starts with it."""
        value = self.journal.get_meta("provider_job")
        if value is None:
            import secrets

            value = secrets.token_hex(6)
            self.journal.set_meta("provider_job", value)
            self.commit()
        return value

    def next_tag(self) -> str:
        number = int(self.journal.get_meta("provider_seq") or 0) + 1
        self.journal.set_meta("provider_seq", str(number))
        return f"steer-{self.job_id()}-{number}"

    def intent(self, sub: Submission) -> None:
        """Write the intent and commit it: nothing is submitted before this returns."""
        self.journal.execute(
            "INSERT OR REPLACE INTO submissions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                sub.tag,
                sub.provider,
                sub.model,
                sub.endpoint,
                INTENT,
                None,
                sub.created,
                sub.count,
                orjson.dumps(sub.lines),
                orjson.dumps(sub.contexts),
            ),
        )
        self.commit()

    def set(self, sub: Submission, state: int, batch_id: str | None = None) -> None:
        """A new state (and batch id), in the current transaction."""
        sub.state = state
        if batch_id is not None:
            sub.batch_id = batch_id
        self.journal.execute(
            "UPDATE submissions SET state = ?, batch_id = ? WHERE tag = ?",
            (state, sub.batch_id, sub.tag),
        )

    def open(self) -> list[Submission]:
        """Every submission not yet downloaded or voided, oldest first."""
        rows = self.journal.query(
            "SELECT * FROM submissions WHERE state IN (?, ?) ORDER BY created", (INTENT, SUBMITTED)
        )
        return [
            Submission(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                r[6],
                r[7],
                orjson.loads(r[8]),
                orjson.loads(r[9]),
            )
            for r in rows
        ]

    def batch_ids(self) -> builtins.set[str]:
        rows = self.journal.query("SELECT batch_id FROM submissions WHERE batch_id IS NOT NULL")
        return {str(r[0]) for r in rows}

    def counts(self) -> dict[int, int]:
        """``{state: requests}`` over the job's submissions."""
        rows = self.journal.query("SELECT state, total(count) FROM submissions GROUP BY state")
        return {int(r[0]): int(r[1]) for r in rows}
