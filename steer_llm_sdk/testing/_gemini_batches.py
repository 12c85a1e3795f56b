"""Gemini's batch mode in the emulator (the state lives in ``_batches.Batches``):
``models/{model}:batchGenerateContent`` with inline requests
(``input_config.requests.requests``) or an uploaded JSONL file
(``input_config.file_name``: a ``files/...`` of the Files API, a
``{"key", "request"}`` object a line), and the ``batches/{id}`` operation (get,
list, cancel). Exactly one source is taken; a missing file, a line that is not
JSON or has no ``request`` object is a 400, as the real API answers. Each request is
answered as an online ``generateContent`` would be (the emulator's own validation and
rules). A file batch's answers are a ``responsesFile`` (``{"key", "response"}`` or
``{"key", "error"}`` with a ``google.rpc.Status`` a line), served by the Files API's
``:download?alt=media`` (``_files.py``).
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from ._files import StoredFile
from ._wire import Plan, RecordedRequest, json_plan

__all__ = ["GeminiBatchMode", "iso"]

_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_INLINE_MAX = 20 * 1024 * 1024
# google.rpc.Code by the status name of an error body
_GRPC = {
    "CANCELLED": 1,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "UNAUTHENTICATED": 16,
}


def iso(seconds: float) -> str:
    """An RFC 3339 time with microseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
        f".{int(seconds % 1 * 1e6):06d}Z"
    )


def _error(status: int, code: str, message: str) -> Plan:
    return json_plan(status, {"error": {"code": status, "message": message, "status": code}})


def _public(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if not k.startswith("_")}


def _status(body: Any) -> dict[str, Any]:
    """An error answer as a ``google.rpc.Status`` (gRPC code, message, status)."""
    error = body.get("error", body) if isinstance(body, dict) else {}
    name = str(error.get("status") or "UNKNOWN")
    return {"code": _GRPC.get(name, 2), "message": str(error.get("message") or name)}


class GeminiBatchMode:
    """Gemini's batch routes; ``Batches`` supplies the shared state below."""

    answer: Callable[[str, dict[str, Any]], tuple[int, Any]]
    delay: float
    gemini: dict[str, dict[str, Any]]
    gemini_files: dict[str, StoredFile]
    submitted: list[dict[str, Any]]
    keep_bodies: bool
    _seq: itertools.count[int]

    def _expires(self, body: dict[str, Any]) -> bool:
        raise NotImplementedError

    def _gemini(self, method: str, path: str, request: RecordedRequest, query: Any) -> Plan:
        if method == "POST" and path.endswith(":batchGenerateContent"):
            model = path.removeprefix("/v1beta/models/").removesuffix(":batchGenerateContent")
            return self._gemini_create(model, request)
        rest = path.removeprefix("/v1beta/batches").strip("/")
        if method == "GET" and not rest:
            for op in self.gemini.values():
                self._gemini_advance(op)
            ordered = sorted(self.gemini.values(), key=lambda b: b["_seq"], reverse=True)
            start = int((query.get("pageToken") or ["0"])[0] or 0)
            size = max(1, min(1000, int((query.get("pageSize") or ["50"])[0])))
            page = ordered[start : start + size]
            doc: dict[str, Any] = {"operations": [_public(op) for op in page]}
            if start + size < len(ordered):
                doc["nextPageToken"] = str(start + size)
            return json_plan(200, doc)
        name, _, verb = rest.partition(":")
        found = self.gemini.get(f"batches/{name}")
        if found is None:
            return _error(404, "NOT_FOUND", "no such batch")
        op = found
        if method == "POST" and verb == "cancel":
            if not op["done"]:
                op["_cancel"] = True
            self._gemini_advance(op)
            return json_plan(200, {})
        self._gemini_advance(op)
        return json_plan(200, _public(op))

    def _gemini_source(self, config: Any) -> tuple[list[dict[str, Any]], str | None] | Plan:
        """The requests of a batch (and its input file's name), or the 400 for them."""
        if not isinstance(config, dict):
            return _error(400, "INVALID_ARGUMENT", "batch.input_config is required")
        inline = config.get("requests")
        file_name = config.get("file_name", config.get("fileName"))
        if (inline is None) == (file_name is None):
            return _error(
                400,
                "INVALID_ARGUMENT",
                "batch.input_config takes exactly one of requests and file_name",
            )
        if inline is not None:
            entries = inline.get("requests") if isinstance(inline, dict) else None
            if (
                not isinstance(entries, list)
                or not entries
                or not all(
                    isinstance(e, dict) and isinstance(e.get("request"), dict) for e in entries
                )
            ):
                return _error(400, "INVALID_ARGUMENT", "batch.input_config.requests.requests")
            return entries, None
        stored = self.gemini_files.get(str(file_name))
        if stored is None or stored.api != "gemini" or stored.purpose == "batch_output":
            return _error(
                400, "INVALID_ARGUMENT", f"input file {file_name!r} does not exist or is not yours"
            )
        entries = []
        for number, raw in enumerate(stored.data.split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                return _error(400, "INVALID_ARGUMENT", f"input file line {number} is not JSON")
            if not (isinstance(line, dict) and isinstance(line.get("request"), dict)):
                return _error(
                    400, "INVALID_ARGUMENT", f"input file line {number} has no request object"
                )
            if "key" in line and not isinstance(line["key"], str):
                return _error(400, "INVALID_ARGUMENT", f"input file line {number}: key")
            entries.append(line)
        if not entries:
            return _error(400, "INVALID_ARGUMENT", "the input file holds no requests")
        return entries, str(file_name)

    def _gemini_create(self, model: str, request: RecordedRequest) -> Plan:
        try:
            batch = request.json["batch"]
            config = batch.get("input_config", batch.get("inputConfig"))  # proto JSON: both
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "INVALID_ARGUMENT", "batch is required")
        if len(request.body) > _INLINE_MAX:
            return _error(400, "INVALID_ARGUMENT", "inline requests are over 20 MB")
        source = self._gemini_source(config)
        if isinstance(source, Plan):
            return source
        entries, file_name = source
        name = f"batches/{uuid.uuid4().hex[:20]}"
        display = str(batch.get("display_name") or batch.get("displayName") or "")
        meta: dict[str, Any] = {
            "@type": _TYPE + "GenerateContentBatch",
            "model": f"models/{model}",
            "displayName": display,
            "createTime": iso(time.time()),
            "state": "BATCH_STATE_RUNNING",
            "batchStats": {
                "requestCount": str(len(entries)),
                "pendingRequestCount": str(len(entries)),
            },
            "name": name,
        }
        if file_name is not None:
            meta["inputConfig"] = {"fileName": file_name}
        op: dict[str, Any] = {
            "name": name,
            "metadata": meta,
            "done": False,
            "_seq": next(self._seq),
            "_ready": time.monotonic() + self.delay,
            "_model": model,
            "_entries": entries,
            "_file": file_name is not None,
        }
        self.gemini[name] = op
        if file_name is None:
            keys = [str((e.get("metadata") or {}).get("key", "")) for e in entries]
        else:
            keys = [str(e.get("key", "")) for e in entries]
        record: dict[str, Any] = {"provider": "gemini", "id": name, "custom_ids": keys}
        record["metadata"] = {"displayName": display}
        record["input"] = "file" if file_name else "inline"
        if self.keep_bodies:
            record["bodies"] = [e["request"] for e in entries]
        self.submitted.append(record)
        return json_plan(200, _public(op))

    def _gemini_advance(self, op: dict[str, Any]) -> None:
        cancel = op.get("_cancel", False)
        if op["done"] or (time.monotonic() < op["_ready"] and not cancel):
            return
        out = []
        ok = 0
        for entry in op.pop("_entries"):
            if cancel or self._expires(entry["request"]):
                answer: dict[str, Any] = {"error": {"code": 4, "message": "not run"}}
            else:
                path = f"/v1beta/models/{op['_model']}:generateContent"
                status, body = self.answer(path, entry["request"])
                answer = {"response": body} if status < 400 else {"error": _status(body)}
            ok += "response" in answer
            if op["_file"]:
                out.append({"key": entry["key"], **answer} if "key" in entry else answer)
            else:
                if entry.get("metadata") is not None:
                    answer["metadata"] = entry["metadata"]
                out.append(answer)
        meta = op["metadata"]
        meta["state"] = "BATCH_STATE_CANCELLED" if cancel else "BATCH_STATE_SUCCEEDED"
        meta["endTime"] = meta["updateTime"] = iso(time.time())
        meta["batchStats"] = {
            "requestCount": str(len(out)),
            "successfulRequestCount": str(ok),
            "failedRequestCount": str(len(out) - ok),
        }
        op["done"] = True
        output: dict[str, Any]
        if op["_file"]:
            data = b"".join(json.dumps(line).encode() + b"\n" for line in out)
            name = "files/batch-" + op["name"].removeprefix("batches/")
            self.gemini_files[name] = StoredFile(
                "gemini", name, "application/jsonl", None, data, "batch_output"
            )
            output = {"responsesFile": name}
        else:
            output = {"inlinedResponses": {"inlinedResponses": out}}
        meta["output"] = output  # where google-genai reads it
        op["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
