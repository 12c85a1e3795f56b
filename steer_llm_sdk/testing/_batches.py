"""The providers' batch APIs, with time compressed: OpenAI's Files (purpose
``batch``: upload, metadata, content) and Batches (create, retrieve, list, cancel,
with ``metadata``), Anthropic's Message Batches (create, retrieve, list, cancel,
results) and Gemini's batch mode (``_gemini_batches.py``: inline requests or an uploaded
JSONL file; the ``batches/{id}`` operation: get, list, cancel; ``displayName``).

A batch is ``in_progress`` until ``delay`` seconds after it was created; the first
look after that answers every line with the emulator's own non-streamed answer for
that request (rules and the reply queue apply, so a test can fail one line), and the
batch ends. ``submitted`` records every batch created (provider, id, custom ids,
metadata, and with ``keep_bodies`` each line's request body): a test proves from it
that nothing was submitted twice. A line whose body contains one of the strings in
``expire`` expires instead of being answered.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from ._files import StoredFile
from ._gemini_batches import GeminiBatchMode, iso
from ._wire import Plan, RecordedRequest, json_plan

__all__ = ["Batches"]

Answer = Callable[[str, dict[str, Any]], tuple[int, Any]]  # (path, body) -> (status, JSON)

_OPENAI_ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings")
_ENDED = ("completed", "failed", "expired", "cancelled")
_MAX_FILE = 200 * 1024 * 1024


def _oa_error(status: int, message: str) -> Plan:
    return json_plan(status, {"error": {"message": message, "type": "invalid_request_error"}})


def _an_error(status: int, message: str) -> Plan:
    return json_plan(
        status, {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    )


def _multipart(request: RecordedRequest) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    ctype = request.headers.get("content-type", "")
    boundary = ""
    for piece in ctype.split(";"):
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    fields: dict[str, tuple[str | None, bytes]] = {}
    if not boundary:
        return fields
    for part in request.body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        name: str | None = None
        filename: str | None = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for item in line.split(";")[1:]:
                    key, _, value = item.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        if name is not None:
            fields[name] = (filename, data.removesuffix(b"\r\n"))
    return fields


def _page(
    items: list[dict[str, Any]], query: dict[str, list[str]], after_key: str
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first; ``limit`` and a cursor (``after`` / ``after_id``)."""
    ordered = sorted(items, key=lambda b: b["_seq"], reverse=True)
    after = (query.get(after_key) or [""])[0]
    if after:
        ids = [b["id"] for b in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(1000, int((query.get("limit") or ["20"])[0])))
    except ValueError:
        limit = 20
    return ordered[:limit], len(ordered) > limit


class _Common:
    """What the providers' sides share: expiring lines, keeping bodies."""

    expire: set[str]
    keep_bodies: bool

    def _expires(self, body: dict[str, Any]) -> bool:
        if not self.expire:
            return False
        text = json.dumps(body)
        return any(marker in text for marker in self.expire)


class _Anthropic(_Common):
    """Anthropic's Message Batches (the state lives in :class:`Batches`)."""

    answer: Answer
    base_url: Callable[[], str]
    delay: float
    anthropic: dict[str, dict[str, Any]]
    submitted: list[dict[str, Any]]
    expire: set[str]
    keep_bodies: bool

    _seq: itertools.count[int]

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _anthropic(
        self, method: str, rest: list[str], request: RecordedRequest, query: dict[str, list[str]]
    ) -> Plan:
        if method == "POST" and not rest:
            return self._anthropic_create(request)
        if method == "GET" and not rest:
            for batch in self.anthropic.values():
                self._anthropic_advance(batch)
            page, more = _page(list(self.anthropic.values()), query, "after_id")
            data = [self._public(b) for b in page]
            return json_plan(
                200,
                {
                    "data": data,
                    "has_more": more,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        found = self.anthropic.get(rest[0]) if rest else None
        if found is None:
            return json_plan(
                404, {"type": "error", "error": {"type": "not_found_error", "message": "no batch"}}
            )
        batch = found
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch["processing_status"] == "in_progress":
                batch["processing_status"] = "canceling"
                batch["cancel_initiated_at"] = iso(time.time())
        self._anthropic_advance(batch)
        if method == "GET" and rest[1:] == ["results"]:
            if batch["processing_status"] != "ended":
                return _an_error(400, "the batch has not ended: it has no results yet")
            return Plan(200, "application/binary", [b"".join(batch["_results"])])
        return json_plan(200, self._public(batch))

    def _anthropic_create(self, request: RecordedRequest) -> Plan:
        try:
            body = request.json
        except ValueError:
            body = None
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _an_error(400, "requests: a non-empty list is required")
        if len(requests) > 100_000:
            return _an_error(400, "a batch holds at most 100,000 requests")
        ids = []
        for i, entry in enumerate(requests):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("custom_id"), str)
                and 1 <= len(entry["custom_id"]) <= 64
                and isinstance(entry.get("params"), dict)
            ):
                return _an_error(400, f"requests.{i}: custom_id (1-64 characters) and params")
            ids.append(entry["custom_id"])
        if len(set(ids)) != len(ids):
            return _an_error(400, "custom_id values must be unique within a batch")
        now = time.time()
        batch: dict[str, Any] = {
            "id": f"msgbatch_{uuid.uuid4().hex[:24]}",
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(ids),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": None,
            "created_at": iso(now),
            "expires_at": iso(now + 86400),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
            "_seq": next(self._seq),
            "_ready": time.monotonic() + self.delay,
            "_requests": requests,
        }
        self.anthropic[batch["id"]] = batch
        record = {"provider": "anthropic", "id": batch["id"], "custom_ids": ids}
        if self.keep_bodies:
            record["bodies"] = [entry["params"] for entry in requests]
        self.submitted.append(record)
        return json_plan(200, self._public(batch))

    def _anthropic_advance(self, batch: dict[str, Any]) -> None:
        status = batch["processing_status"]
        if status == "ended" or (time.monotonic() < batch["_ready"] and status != "canceling"):
            return
        counts = batch["request_counts"]
        results = []
        for entry in batch.pop("_requests"):
            cid = entry["custom_id"]
            result: dict[str, Any]
            if status == "canceling":
                result = {"type": "canceled"}
                counts["canceled"] += 1
            elif self._expires(entry["params"]):
                result = {"type": "expired"}
                counts["expired"] += 1
            elif entry["params"].get("stream"):
                result = {
                    "type": "errored",
                    "error": {
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "message": "stream is not allowed",
                        },
                    },
                }
                counts["errored"] += 1
            else:
                code, answer = self.answer("/v1/messages", entry["params"])
                if code < 400:
                    result = {"type": "succeeded", "message": answer}
                    counts["succeeded"] += 1
                else:
                    result = {"type": "errored", "error": answer}
                    counts["errored"] += 1
            results.append(json.dumps({"custom_id": cid, "result": result}).encode() + b"\n")
        counts["processing"] = 0
        batch["_results"] = results
        batch["processing_status"] = "ended"
        batch["ended_at"] = iso(time.time())
        batch["results_url"] = f"{self.base_url()}/v1/messages/batches/{batch['id']}/results"


class Batches(_Anthropic, GeminiBatchMode):
    """The batch routes of one emulator. ``answer(path, body)`` is the emulator's
    non-streamed answer to one request; ``base_url()`` its URL (for ``results_url``);
    ``files`` the Gemini Files API's files (a batch's input and responses files)."""

    def __init__(
        self,
        answer: Answer,
        base_url: Callable[[], str],
        delay: float = 0.2,
        files: dict[str, StoredFile] | None = None,
    ) -> None:
        self.answer = answer
        self.gemini_files = {} if files is None else files
        self.base_url = base_url
        self.delay = delay
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        self.openai: dict[str, dict[str, Any]] = {}
        self.anthropic: dict[str, dict[str, Any]] = {}
        self.gemini: dict[str, dict[str, Any]] = {}
        self.submitted: list[dict[str, Any]] = []
        self.expire: set[str] = set()
        self.keep_bodies = True
        self._seq = itertools.count()

    @staticmethod
    def matches(path: str) -> bool:
        return path.startswith(
            ("/v1/files", "/v1/batches", "/v1/messages/batches", "/v1beta/batches")
        ) or (
            path.startswith(("/v1beta/models/", "/v1/models/"))
            and path.endswith(":batchGenerateContent")
        )

    def owns(self, request: RecordedRequest) -> bool:
        """Whether this request is the batch APIs': ``/v1/files`` only for an upload
        with purpose ``batch`` or a file these APIs hold (the other Files API requests
        are the Files wire's, ``_files.py``)."""
        path = request.path.split("?")[0]
        if not self.matches(path):
            return False
        if not path.startswith("/v1/files"):
            return True
        parts = path.strip("/").split("/")
        if len(parts) > 2:
            return parts[2] in self.files
        if request.method != "POST" or b'name="purpose"' not in request.body:
            return False
        return _multipart(request).get("purpose", (None, b""))[1] == b"batch"

    def handle(self, request: RecordedRequest) -> Plan:
        path, _, qs = request.path.partition("?")
        query = parse_qs(qs)
        parts = path.strip("/").split("/")  # ["v1", "files", ...]
        method = request.method
        if parts[0] == "v1beta" or "x-goog-api-key" in request.headers:  # Gemini: v1 too
            return self._gemini(method, "/v1beta/" + path.split("/", 2)[2], request, query)
        if parts[1] == "files":
            return self._files(method, parts[2:], request)
        if parts[1] == "batches":
            return self._openai(method, parts[2:], request, query)
        return self._anthropic(method, parts[3:], request, query)

    # -- OpenAI Files ------------------------------------------------------------------
    def _files(self, method: str, rest: list[str], request: RecordedRequest) -> Plan:
        if method == "POST" and not rest:
            fields = _multipart(request)
            purpose = fields.get("purpose", (None, b""))[1].decode()
            filename, data = fields.get("file", (None, b""))
            if purpose != "batch" or "file" not in fields:
                return _oa_error(400, "this emulator takes files with purpose 'batch' only")
            if len(data) > _MAX_FILE:
                return _oa_error(400, "the file is over 200 MB")
            meta = {
                "id": f"file-{uuid.uuid4().hex[:24]}",
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": filename or "upload.jsonl",
                "purpose": "batch",
                "status": "processed",
            }
            self.files[str(meta["id"])] = (meta, data)
            return json_plan(200, meta)
        found = self.files.get(rest[0]) if rest else None
        if found is None:
            return _oa_error(404, "no such file")
        if method == "GET" and rest[1:] == ["content"]:
            return Plan(200, "application/octet-stream", [found[1]])
        if method == "DELETE" and len(rest) == 1:
            del self.files[rest[0]]
            return json_plan(200, {"id": rest[0], "object": "file", "deleted": True})
        return json_plan(200, found[0])

    def _save(self, data: bytes, name: str) -> str:
        meta = {
            "id": f"file-{uuid.uuid4().hex[:24]}",
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": "batch_output",
            "status": "processed",
        }
        self.files[str(meta["id"])] = (meta, data)
        return str(meta["id"])

    # -- OpenAI Batches ------------------------------------------------------------------
    def _openai(
        self, method: str, rest: list[str], request: RecordedRequest, query: dict[str, list[str]]
    ) -> Plan:
        if method == "POST" and not rest:
            return self._openai_create(request)
        if method == "GET" and not rest:
            for batch in self.openai.values():
                self._openai_advance(batch)
            page, more = _page(list(self.openai.values()), query, "after")
            data = [self._public(b) for b in page]
            return json_plan(
                200,
                {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": more,
                },
            )
        found = self.openai.get(rest[0]) if rest else None
        if found is None:
            return _oa_error(404, "no such batch")
        batch = found
        if method == "POST" and rest[1:] == ["cancel"]:
            if batch["status"] in ("validating", "in_progress"):
                batch["status"] = "cancelling"
                batch["cancelling_at"] = int(time.time())
        self._openai_advance(batch)
        return json_plan(200, self._public(batch))

    def _openai_create(self, request: RecordedRequest) -> Plan:
        try:
            body = request.json
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _oa_error(400, "body is not JSON")
        found = self.files.get(str(body.get("input_file_id")))
        endpoint = body.get("endpoint")
        if found is None:
            return _oa_error(400, "input_file_id names no uploaded file")
        if endpoint not in _OPENAI_ENDPOINTS or body.get("completion_window") != "24h":
            return _oa_error(400, "endpoint or completion_window is not valid")
        metadata = body.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or not all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
        ):
            return _oa_error(400, "metadata: at most 16 string values of 512 characters")
        lines = []
        for number, raw in enumerate(found[1].splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
                assert isinstance(line, dict) and isinstance(line.get("custom_id"), str)
                assert line.get("url") == endpoint and line.get("method") == "POST"
                assert isinstance(line.get("body"), dict)
            except (ValueError, AssertionError):
                return _oa_error(400, f"line {number} of the input file is not a valid request")
            lines.append(line)
        ids = [line["custom_id"] for line in lines]
        if len(set(ids)) != len(ids):
            return _oa_error(400, "custom_id values must be unique within a batch")
        if len(lines) > 50_000:
            return _oa_error(400, "a batch holds at most 50,000 requests")
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_{uuid.uuid4().hex[:24]}",
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 86400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": metadata,
            "_seq": next(self._seq),
            "_ready": time.monotonic() + self.delay,
            "_lines": lines,
        }
        self.openai[batch["id"]] = batch
        record = {"provider": "openai", "id": batch["id"], "custom_ids": ids, "metadata": metadata}
        if self.keep_bodies:
            record["bodies"] = [line["body"] for line in lines]
        self.submitted.append(record)
        return json_plan(200, self._public(batch))

    def _openai_advance(self, batch: dict[str, Any]) -> None:
        status = batch["status"]
        if status in _ENDED or (time.monotonic() < batch["_ready"] and status != "cancelling"):
            return
        out: list[bytes] = []
        errors: list[bytes] = []
        expired = False
        cancelled = status == "cancelling"
        for line in batch.pop("_lines"):
            cid = line["custom_id"]
            rid = f"batch_req_{uuid.uuid4().hex[:16]}"
            if cancelled or self._expires(line["body"]):
                expired = expired or not cancelled
                code = "batch_cancelled" if cancelled else "batch_expired"
                error = {"code": code, "message": f"the request was not run ({code})"}
                errors.append(self._line(rid, cid, None, error))
                continue
            if line["body"].get("stream"):
                status_code, answer = 400, {"error": {"message": "stream is not allowed"}}
            else:
                status_code, answer = self.answer(line["url"], line["body"])
            response = {"status_code": status_code, "request_id": rid, "body": answer}
            (out if status_code < 400 else errors).append(self._line(rid, cid, response, None))
        counts = batch["request_counts"]
        counts["completed"] = len(out)
        counts["failed"] = len(errors)
        now = int(time.time())
        if out:
            batch["output_file_id"] = self._save(b"".join(out), f"{batch['id']}_output.jsonl")
        if errors:
            batch["error_file_id"] = self._save(b"".join(errors), f"{batch['id']}_error.jsonl")
        final = "cancelled" if cancelled else "expired" if expired else "completed"
        batch["status"] = final
        batch[f"{final}_at"] = now
        batch["finalizing_at"] = now

    @staticmethod
    def _line(rid: str, cid: str, response: Any, error: Any) -> bytes:
        doc = {"id": rid, "custom_id": cid, "response": response, "error": error}
        return json.dumps(doc).encode() + b"\n"

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}
