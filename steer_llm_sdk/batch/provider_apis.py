"""The providers' batch APIs over HTTP (httpx): OpenAI (Files upload of a JSONL file,
``/v1/batches``: create, retrieve, list, cancel, the output and error files),
Anthropic (Message Batches: create, retrieve, list, cancel, the ``results_url`` JSONL);
Gemini's batch mode is :mod:`~steer_llm_sdk.batch.provider_gemini`, on the same
:class:`BatchAPI`.

Each API takes lines the job built (a request body per item, encoded by the same
codec as an online call) and answers in one vocabulary: :class:`BatchStatus` and
:class:`Outcome` rows. Every HTTP failure is a typed error from
:mod:`steer_llm_sdk.errors` (the key is never in it: keys go in headers and are
registered secrets); every download is streamed with a cap per line and in total.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson

from ..errors import InvalidResponseError, SteerError
from ..providers.base import error_for, parse_retry_after
from ..transport.http import map_httpx_error

__all__ = [
    "TIMEOUT",
    "AnthropicBatches",
    "BatchAPI",
    "BatchStatus",
    "OpenAIBatches",
    "Outcome",
]

MAX_LINE = 64 * 1024 * 1024  # bytes of one result line
MAX_DOWNLOAD = 4 * 1024 * 1024 * 1024  # bytes of one results file
TIMEOUT = httpx.Timeout(120.0, connect=15.0)
_LIST_PAGE = 100
_LIST_PAGES = 50  # pages looked through when re-attaching (5,000 batches)


@dataclass(slots=True)
class BatchStatus:
    """Where a provider's batch is: ``ended`` (no more change), its raw status,
    and how many of its requests are done and failed so far."""

    ended: bool
    status: str
    done: int = 0
    failed: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """One request's outcome: its line id, and the answer's body (a 2xx) or an
    error (``retryable``: expired, cancelled, 429/5xx: worth another run)."""

    line_id: str
    body: bytes | None
    error: SteerError | None = None
    retryable: bool = False


def _error(status: int, body: bytes, headers: Any, what: str) -> SteerError:
    message = f"{what}: HTTP {status}"
    try:
        obj = orjson.loads(body)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and err.get("message"):
            message = f"{what}: {err['message']}"
    except orjson.JSONDecodeError:
        pass
    return error_for(status, message, retry_after=parse_retry_after(headers))


class BatchAPI:
    """What the job asks of a provider's batch API (each subclass one provider)."""

    provider = ""
    max_requests = 0
    max_bytes = 0
    tag_in_listing = True  # whether listing shows the job's tag (else: time + count)

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    def __init__(self, http: httpx.AsyncClient, base_url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.headers = headers

    async def _call(self, method: str, url: str, what: str, **kw: Any) -> Any:
        try:
            response = await self.http.request(
                method, url, headers={**self.headers, **kw.pop("headers", {})}, **kw
            )
            body = await response.aread()
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, provider=self.provider) from None
        if response.status_code >= 400:
            raise _error(response.status_code, body[:4096], response.headers, what)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise InvalidResponseError(f"{what}: the answer is not JSON: {body[:120]!r}") from None

    async def _lines(self, url: str, what: str) -> AsyncIterator[bytes]:
        """A JSONL download, a line at a time, capped."""
        total = 0
        try:
            async with self.http.stream("GET", url, headers=self.headers) as response:
                if response.status_code >= 400:
                    body = await response.aread()
                    raise _error(response.status_code, body[:4096], response.headers, what)
                buffer = b""
                async for block in response.aiter_bytes():
                    total += len(block)
                    if total > MAX_DOWNLOAD:
                        raise InvalidResponseError(f"{what}: over {MAX_DOWNLOAD} bytes")
                    buffer += block
                    *lines, buffer = buffer.split(b"\n")
                    if len(buffer) > MAX_LINE:
                        raise InvalidResponseError(f"{what}: a line over {MAX_LINE} bytes")
                    for line in lines:
                        if line.strip():
                            yield line
                if buffer.strip():
                    yield buffer
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, provider=self.provider) from None

    # -- what each provider implements ----------------------------------------------
    def line(self, line_id: str, path: str, body: dict[str, Any]) -> bytes:
        raise NotImplementedError

    async def submit(self, lines: list[bytes], tag: str, endpoint: str) -> str:
        raise NotImplementedError

    async def find(self, tag: str, created: float, count: int, taken: set[str]) -> str | None:
        """The id of the batch this job submitted with ``tag`` (at ``created``, of
        ``count`` requests) whose id it never recorded; None when there is none."""
        raise NotImplementedError

    async def status(self, batch_id: str) -> BatchStatus:
        raise NotImplementedError

    def outcomes(self, status: BatchStatus) -> AsyncIterator[Outcome]:
        raise NotImplementedError

    async def cancel(self, batch_id: str) -> None:
        raise NotImplementedError

    async def finished(self, status: BatchStatus) -> None:
        """Called once the ended batch's results are in the journal (to delete files
        the provider keeps for it); nothing by default."""


class OpenAIBatches(BatchAPI):
    """OpenAI: one model per file; 50,000 requests and 200 MB a file."""

    provider = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024 - 1024

    def line(self, line_id: str, path: str, body: dict[str, Any]) -> bytes:
        url = "/v1" + path
        return orjson.dumps({"custom_id": line_id, "method": "POST", "url": url, "body": body})

    async def submit(self, lines: list[bytes], tag: str, endpoint: str) -> str:
        data = b"\n".join(lines) + b"\n"
        files = {"file": (f"{tag}.jsonl", data, "application/jsonl")}
        uploaded = await self._call(
            "POST",
            f"{self.base_url}/files",
            "uploading the batch file",
            files=files,
            data={"purpose": "batch"},
            timeout=httpx.Timeout(600.0, connect=15.0),
        )
        doc = {
            "input_file_id": uploaded.get("id"),
            "endpoint": "/v1" + endpoint,
            "completion_window": "24h",
            "metadata": {"steer_job": tag},
        }
        batch = await self._call("POST", f"{self.base_url}/batches", "creating the batch", json=doc)
        return str(batch["id"])

    async def find(self, tag: str, created: float, count: int, taken: set[str]) -> str | None:
        after = None
        for _ in range(_LIST_PAGES):
            params: dict[str, Any] = {"limit": _LIST_PAGE}
            if after:
                params["after"] = after
            page = await self._call(
                "GET", f"{self.base_url}/batches", "listing batches", params=params
            )
            data = page.get("data") or []
            for batch in data:
                if (batch.get("metadata") or {}).get("steer_job") == tag:
                    return str(batch["id"])
            if not page.get("has_more") or not data:
                return None
            if (data[-1].get("created_at") or 0) < created - 3600:
                return None  # newest first: past the intent (an hour of clock skew)
            after = data[-1]["id"]
        return None

    async def status(self, batch_id: str) -> BatchStatus:
        batch = await self._call("GET", f"{self.base_url}/batches/{batch_id}", "polling the batch")
        state = str(batch.get("status"))
        counts = batch.get("request_counts") or {}
        return BatchStatus(
            state in ("completed", "failed", "expired", "cancelled"),
            state,
            int(counts.get("completed") or 0),
            int(counts.get("failed") or 0),
            batch,
        )

    async def outcomes(self, status: BatchStatus) -> AsyncIterator[Outcome]:
        for key in ("output_file_id", "error_file_id"):
            file_id = status.raw.get(key)
            if not file_id:
                continue
            url = f"{self.base_url}/files/{file_id}/content"
            async for raw in self._lines(url, "downloading the batch results"):
                yield _openai_outcome(raw)

    async def cancel(self, batch_id: str) -> None:
        await self._call("POST", f"{self.base_url}/batches/{batch_id}/cancel", "cancelling")


def _openai_outcome(raw: bytes) -> Outcome:
    try:
        line = orjson.loads(raw)
        line_id = str(line["custom_id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise InvalidResponseError(f"a batch result line is not valid: {raw[:120]!r}") from None
    response = line.get("response") or {}
    status = int(response.get("status_code") or 0)
    if line.get("error") is None and 200 <= status < 300:
        return Outcome(line_id, orjson.dumps(response.get("body")))
    error = line.get("error") or {}
    if status:
        body = orjson.dumps(response.get("body"))
        exc = _error(status, body, None, "the batch request failed")
        return Outcome(line_id, None, exc, status == 429 or status >= 500)
    code = str(error.get("code") or "failed")
    message = str(error.get("message") or code)
    return Outcome(line_id, None, SteerError(f"{code}: {message}"), code != "invalid_request")


class AnthropicBatches(BatchAPI):
    """Anthropic Message Batches: 100,000 requests or 256 MB a batch. A batch carries
    no metadata: the job finds one by its creation time and request count, and its
    line ids (the job's prefix) prove it when the results come."""

    provider = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024 - 1024
    tag_in_listing = False

    @staticmethod
    def auth_headers(key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}

    def line(self, line_id: str, path: str, body: dict[str, Any]) -> bytes:
        body.pop("stream", None)
        return orjson.dumps({"custom_id": line_id, "params": body})

    async def submit(self, lines: list[bytes], tag: str, endpoint: str) -> str:
        data = b'{"requests":[' + b",".join(lines) + b"]}"
        batch = await self._call(
            "POST",
            f"{self.base_url}/v1/messages/batches",
            "creating the message batch",
            content=data,
            headers={"content-type": "application/json"},
            timeout=httpx.Timeout(600.0, connect=15.0),
        )
        return str(batch["id"])

    async def find(self, tag: str, created: float, count: int, taken: set[str]) -> str | None:
        best: tuple[float, str] | None = None
        after = None
        for _ in range(_LIST_PAGES):
            params: dict[str, Any] = {"limit": _LIST_PAGE}
            if after:
                params["after_id"] = after
            page = await self._call(
                "GET", f"{self.base_url}/v1/messages/batches", "listing batches", params=params
            )
            data = page.get("data") or []
            oldest = time.time()
            for batch in data:
                at = _seconds(batch.get("created_at"))
                oldest = min(oldest, at)
                counts = batch.get("request_counts") or {}
                total = sum(int(v or 0) for v in counts.values())
                if batch["id"] in taken or total != count or not created - 300 <= at:
                    continue
                gap = abs(at - created)
                if best is None or gap < best[0]:
                    best = (gap, str(batch["id"]))
            if not page.get("has_more") or not data or oldest < created - 300:
                break
            after = data[-1]["id"]
        return None if best is None else best[1]

    async def status(self, batch_id: str) -> BatchStatus:
        url = f"{self.base_url}/v1/messages/batches/{batch_id}"
        batch = await self._call("GET", url, "polling the message batch")
        counts = batch.get("request_counts") or {}
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        state = str(batch.get("processing_status"))
        return BatchStatus(
            state == "ended", state, int(counts.get("succeeded") or 0), failed, batch
        )

    async def outcomes(self, status: BatchStatus) -> AsyncIterator[Outcome]:
        url = status.raw.get("results_url")
        if not url:
            raise InvalidResponseError("the ended message batch has no results_url")
        if httpx.URL(str(url)).netloc != httpx.URL(self.base_url).netloc:
            # the key goes with the download: only to the API's own host
            raise InvalidResponseError(
                "the message batch's results_url is on another host than the API "
                f"({httpx.URL(str(url)).host!r}): not sending the key there"
            )
        async for raw in self._lines(str(url), "downloading the batch results"):
            yield _anthropic_outcome(raw)

    async def cancel(self, batch_id: str) -> None:
        url = f"{self.base_url}/v1/messages/batches/{batch_id}/cancel"
        await self._call("POST", url, "cancelling")


def _anthropic_outcome(raw: bytes) -> Outcome:
    try:
        line = orjson.loads(raw)
        line_id = str(line["custom_id"])
        result = line["result"]
        kind = result["type"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise InvalidResponseError(f"a batch result line is not valid: {raw[:120]!r}") from None
    if kind == "succeeded":
        return Outcome(line_id, orjson.dumps(result.get("message")))
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or result.get("error") or {}
        error_type = str(error.get("type") or "api_error")
        message = f"the batch request failed: {error.get('message') or error_type}"
        retryable = error_type in ("api_error", "overloaded_error", "rate_limit_error")
        return Outcome(line_id, None, error_for(400 if not retryable else 500, message), retryable)
    return Outcome(line_id, None, SteerError(f"the batch request was {kind}"), True)


def _seconds(value: Any) -> float:
    """An RFC 3339 time as epoch seconds (0 when it is not one)."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
