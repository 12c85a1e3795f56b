"""Where the local engine's results go: the journal and the JSONL output file,
committed together, so a line is in the file exactly when its item's row is
committed (on resume the file is cut back to the length the journal recorded)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import ConfigurationError
from .items import BatchResult, result_line, result_state, result_tokens
from .journal import RETRY, Journal

__all__ = ["Recorder"]

_COMMIT_EVERY = 0.25  # seconds between journal commits
_COMMIT_ROWS = 1024


def journal_location(path: str | None) -> tuple[str, tempfile.TemporaryDirectory[str] | None]:
    """Where a job's journal goes: ``path``, or a file in a temporary directory (the
    caller cleans it up at the end)."""
    if path is not None:
        return path, None
    temp_dir = tempfile.TemporaryDirectory(prefix="steer-batch-")
    return os.path.join(temp_dir.name, "journal.sqlite"), temp_dir


class Recorder:
    """The journal of a run and its output file (None: no file)."""

    def __init__(self, journal: Journal, output_path: str | None) -> None:
        self.journal = journal
        self.run_id = 0
        self._output_path = output_path
        self._out: Any = None
        self._buffer: list[bytes] = []

    def begin(self, fingerprint: Mapping[str, Any]) -> float:
        """A run of the job starts: the journal must be this job's, the run gets its
        id, the output is opened; returns what the earlier runs spent."""
        journal = self.journal
        journal.check_fingerprint(fingerprint)
        self.run_id = journal.new_run()
        spent = sum(cost for _, cost, _, _ in journal.totals().values())
        self.open_output()
        return float(spent)

    def open_output(self) -> None:
        """Open the output where the journal's last commit left it (or write it again
        from the journal when it is gone)."""
        path = self._output_path
        if path is None:
            return
        offset = int(self.journal.get_meta("output_offset") or 0)
        if os.path.exists(path):
            size = os.path.getsize(path)
            if size and not offset and self.run_id == 1:
                raise ConfigurationError(
                    f"the output {path!r} already exists and this journal has no results "
                    "in it: remove it or choose another output_path"
                )
            if size < offset:
                raise ConfigurationError(
                    f"the output {path!r} is shorter ({size} bytes) than its journal says "
                    f"({offset} bytes): it was changed outside the job; move it away and run "
                    "again to rewrite it from the journal"
                )
            out: Any = open(path, "r+b")
            out.truncate(offset)  # lines written after the last commit: their items rerun
            out.seek(offset)
        elif offset:
            out = open(path, "wb")
            for result in self.journal.results():
                out.write(orjson.dumps(result) + b"\n")
            out.flush()
            self.journal.set_meta("output_offset", str(out.tell()))
            self.journal.commit()
        else:
            out = open(path, "wb")
        self._out = out

    def record(self, item_id: str, result: BatchResult, cost: float) -> None:
        """A result into the journal (and the output buffer unless worth a retry)."""
        state = result_state(result)
        prompt, completion = result_tokens(result)
        line = result_line(result)
        journal = self.journal
        journal.record(item_id, state, self.run_id, result.attempts, cost, prompt, completion, line)
        if self._out is not None and state != RETRY:
            self._buffer.append(line + b"\n")
        if journal.pending >= _COMMIT_ROWS:
            self.commit()

    def commit(self) -> None:
        out = self._out
        if out is not None and self._buffer:
            out.write(b"".join(self._buffer))
            self._buffer.clear()
            out.flush()  # in the OS's hands: survives the process being killed
            self.journal.set_meta("output_offset", str(out.tell()))
        self.journal.commit()

    async def commit_periodically(self) -> None:
        while True:
            await asyncio.sleep(_COMMIT_EVERY)
            if self.journal.pending:
                self.commit()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.journal.close()
            if self._out is not None:
                self._out.close()
