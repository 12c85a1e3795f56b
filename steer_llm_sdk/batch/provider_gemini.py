"""Gemini batch mode over HTTP (httpx): inline requests, or an uploaded JSONL file.

A batch whose requests fit the inline limit (:attr:`GeminiBatches.inline_bytes`,
20 MB) goes inline in ``models/{model}:batchGenerateContent``; a larger one is
written as a JSONL file (``{"key": <line id>, "request": {GenerateContentRequest}}``
a line), uploaded through the Files API (the resumable protocol of
:mod:`steer_llm_sdk.uploads`, display name ``<tag>.jsonl``) and named by
``input_config.file_name``. Either way the job's tag is the batch's ``displayName``
and the answer is the ``batches/{id}`` operation, polled until ``done``; its output
is ``inlinedResponses`` or a ``responsesFile``, downloaded from
``/download/v1beta/{file}:download?alt=media`` (capped, streamed a line at a time).

Files the job uploaded are deleted once the batch's results are in the journal
(the input file and the responses file), and an input file whose batch was never
created (the process died between the upload and the create) is deleted when the
next run finds no batch for its tag. Gemini also deletes every file after 48 hours.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ..errors import APIStatusError, InvalidResponseError, SteerError
from ..providers.base import error_for
from .provider_apis import _LIST_PAGE, _LIST_PAGES, BatchAPI, BatchStatus, Outcome

__all__ = ["GeminiBatches"]

logger = logging.getLogger("steer_llm_sdk")

_UPLOAD_TIMEOUT = 1800.0  # seconds for one input file's upload (up to 200 MB)
# google.rpc.Code of a line's error -> the HTTP status it stands for
_HTTP_OF = {3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500, 14: 503, 16: 401}


class GeminiBatches(BatchAPI):
    """Gemini batch mode: inline up to :attr:`inline_bytes`, an uploaded JSONL file
    above (at most :attr:`max_bytes`: the Files API takes 2 GB a file, but a batch's
    lines are held in memory until it is submitted, so a job is split at 200 MB as
    OpenAI's are), 100,000 requests a batch; the job's tag is the batch's
    ``displayName``."""

    provider = "gemini"
    max_requests = 100_000
    max_bytes = 200_000_000 - 4096  # a file (the API takes 2 GB; memory bounds it here)
    inline_bytes = 20_000_000 - 4096  # inline requests: at most 20 MB a create call

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def line(self, line_id: str, path: str, body: dict[str, Any]) -> bytes:
        # The file form; submit() turns it into the inline form when the batch is small.
        return orjson.dumps({"key": line_id, "request": body})

    async def submit(self, lines: list[bytes], tag: str, endpoint: str) -> str:
        model = endpoint.rpartition("/models/")[2].partition(":")[0]
        head = orjson.dumps({"display_name": tag})[:-1]
        size = sum(len(line) for line in lines) + 16 * len(lines) + len(head) + 64
        uploaded: str | None = None
        if size <= self.inline_bytes:
            inline = b",".join(_inline(line) for line in lines)
            data = head + b',"input_config":{"requests":{"requests":[' + inline + b"]}}}"
        else:
            uploaded = await self._upload(b"\n".join([*lines, b""]), tag)  # one copy
            data = head + b',"input_config":{"file_name":' + orjson.dumps(uploaded) + b"}}"
        try:
            op = await self._call(
                "POST",
                f"{self.base_url}/v1beta/models/{model}:batchGenerateContent",
                "creating the batch",
                content=b'{"batch":' + data + b"}",
                headers={"content-type": "application/json"},
                timeout=httpx.Timeout(600.0, connect=15.0),
            )
        except APIStatusError as exc:
            status = exc.status_code or 0
            if uploaded is not None and 400 <= status < 500 and status != 429:
                await self._delete(uploaded)  # refused for certain: the file serves nothing
            raise
        return str(op["name"]).removeprefix("batches/")

    async def _upload(self, data: bytes, tag: str) -> str:
        """The JSONL file uploaded (Gemini's resumable protocol); its ``files/...`` name."""
        from ..catalog import PROVIDERS
        from ..files import File
        from ..uploads import upload_with

        file = File(data=data, media_type="application/jsonl", filename=f"{tag}.jsonl")
        key = self.headers.get("x-goog-api-key")
        uploaded = await upload_with(
            self.http, PROVIDERS["gemini"], self.base_url, key, file, _UPLOAD_TIMEOUT
        )
        uri = uploaded.url or ""
        if "/files/" not in uri:
            raise InvalidResponseError(f"Gemini's Files API named no file: {uri[:120]!r}")
        return "files/" + uri.rpartition("/files/")[2].partition("?")[0]

    async def find(self, tag: str, created: float, count: int, taken: set[str]) -> str | None:
        async for op in self._listed("batches", "operations", "listing batches"):
            if (op.get("metadata") or {}).get("displayName") == tag:
                return str(op["name"]).removeprefix("batches/")
        await self._forget_upload(tag)
        return None

    async def _forget_upload(self, tag: str) -> None:
        """An input file uploaded for ``tag`` whose batch was never created: deleted
        (best effort: Gemini deletes it after 48 hours anyway)."""
        try:
            async for file in self._listed("files", "files", "listing files"):
                if file.get("displayName") == f"{tag}.jsonl" and file.get("name"):
                    await self._delete(str(file["name"]))
        except SteerError as exc:
            logger.warning("looking for an unused batch input file: %s", exc)

    async def _listed(self, what: str, field: str, doing: str) -> AsyncIterator[dict[str, Any]]:
        """The entries of ``/v1beta/{what}`` (``field`` of each page), page after page
        (at most ``_LIST_PAGES`` pages)."""
        token = None
        for _ in range(_LIST_PAGES):
            params: dict[str, Any] = {"pageSize": _LIST_PAGE}
            if token:
                params["pageToken"] = token
            page = await self._call("GET", f"{self.base_url}/v1beta/{what}", doing, params=params)
            for entry in page.get(field) or []:
                yield entry
            token = page.get("nextPageToken")
            if not token:
                return

    async def _delete(self, name: str) -> None:
        try:
            await self._call("DELETE", f"{self.base_url}/v1beta/{name}", "deleting a file")
        except SteerError as exc:
            logger.warning("deleting %s: %s (Gemini deletes it after 48 hours)", name, exc)

    async def status(self, batch_id: str) -> BatchStatus:
        url = f"{self.base_url}/v1beta/batches/{batch_id}"
        op = await self._call("GET", url, "polling the batch")
        meta = op.get("metadata") or {}
        stats = meta.get("batchStats") or {}
        done = int(stats.get("successfulRequestCount") or 0)
        failed = int(stats.get("failedRequestCount") or 0)
        return BatchStatus(bool(op.get("done")), str(meta.get("state")), done, failed, op)

    async def outcomes(self, status: BatchStatus) -> AsyncIterator[Outcome]:
        if status.raw.get("error"):
            return
        output = _output(status.raw)
        responses = output.get("responsesFile")
        if responses:
            name = _file_name(responses)
            url = f"{self.base_url}/download/v1beta/{name}:download?alt=media"
            async for raw in self._lines(url, "downloading the batch results"):
                yield _file_outcome(raw)
            return
        inlined = (output.get("inlinedResponses") or {}).get("inlinedResponses") or []
        for entry in inlined:
            key = str((entry.get("metadata") or {}).get("key") or "")
            yield _outcome(key, entry)

    async def finished(self, status: BatchStatus) -> None:
        """The batch's files deleted (its results are in the journal)."""
        meta = status.raw.get("metadata") or {}
        config = meta.get("inputConfig") or meta.get("input_config") or {}
        names = [config.get("fileName") or config.get("file_name"), _output(status.raw).get(
            "responsesFile"
        )]  # fmt: skip
        for name in names:
            if isinstance(name, str) and name:
                await self._delete(_file_name(name))

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"{self.base_url}/v1beta/batches/{batch_id}:cancel", "cancelling")


def _inline(line: bytes) -> bytes:
    """A file line (``{"key":"ID","request":{...}}``) as an inline request
    (``{"request":{...},"metadata":{"key":"ID"}}``); the ids are ``TAG-N``, plain."""
    end = line.index(b'","request":')
    return b'{"request":' + line[end + 12 : -1] + b',"metadata":{"key":"' + line[8:end] + b'"}}'


def _output(op: dict[str, Any]) -> dict[str, Any]:
    """The operation's output: ``metadata.output`` (as google-genai reads it) or
    ``response``."""
    output = (op.get("metadata") or {}).get("output") or op.get("response") or {}
    return output if isinstance(output, dict) else {}


def _file_name(name: str) -> str:
    """``files/abc`` from a file's name (or a URL ending in it)."""
    name = name.rpartition("/files/")[2] if "://" in name else name.removeprefix("files/")
    if not name or "/" in name or "?" in name or ".." in name:
        raise InvalidResponseError(f"the batch names a file that is not one: {name[:80]!r}")
    return f"files/{name}"


def _outcome(key: str, entry: dict[str, Any]) -> Outcome:
    if isinstance(entry.get("response"), dict):
        return Outcome(key, orjson.dumps(entry["response"]))
    error: dict[str, Any] = entry["error"] if isinstance(entry.get("error"), dict) else {}
    code = int(error.get("code") or 0) if str(error.get("code") or "0").isdigit() else 0
    message = f"the batch request failed: {error.get('message') or error.get('status') or code}"
    http = _HTTP_OF.get(code, code if 400 <= code < 600 else 500)
    return Outcome(key, None, error_for(http, message), http == 429 or http >= 500)


def _file_outcome(raw: bytes) -> Outcome:
    try:
        line = orjson.loads(raw)
        key = line["key"]
        assert isinstance(key, str) and ("response" in line or "error" in line)
    except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise InvalidResponseError(f"a batch result line is not valid: {raw[:120]!r}") from None
    return _outcome(key, line)
