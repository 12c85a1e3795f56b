"""The providers' Files APIs in the emulator: OpenAI's ``POST /v1/files``
(multipart, a ``purpose``), Anthropic's ``POST /v1/files`` (multipart; told from
OpenAI's by its ``anthropic-version`` header; the ``anthropic-beta:
files-api-2025-04-14`` header it began with is taken, not required), and Gemini's
resumable upload (``POST /upload/v1beta/files`` start, then the upload URL with
``upload`` / ``upload, finalize`` and offsets) with ``GET /v1beta/files/{name}`` (a
video is ``PROCESSING`` when uploaded and ``ACTIVE`` once asked for, as videos are
processed before use). Each rejects what the real one rejects, in its error shape.
Uploaded files are kept in :attr:`Files.stored` (``emu.files``). Scripted replies
never apply here.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ._anthropic import error_plan as anthropic_error
from ._gemini import error_plan as gemini_error
from ._openai import error_plan as openai_error
from ._wire import Plan, RecordedRequest, Reply, Settings, Wire, json_plan

__all__ = ["Files", "StoredFile", "parse_multipart"]

_OPENAI_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_OPENAI_MAX = 512 * 2**20
_ANTHROPIC_MAX = 500 * 2**20
_GEMINI_MAX = 2 * 2**30


@dataclass(slots=True)
class StoredFile:
    """A file the emulator holds: which API took it, its id, type, name and bytes."""

    api: str  # "openai", "anthropic", "gemini"
    id: str  # file-..., file_..., files/...
    media_type: str
    filename: str | None
    data: bytes
    purpose: str | None = None
    polls: int = 0  # Gemini: times its state was asked for


@dataclass(slots=True)
class _Session:
    """A Gemini resumable upload in progress."""

    size: int
    media_type: str
    display_name: str | None
    data: bytearray


_Fields = dict[str, tuple[dict[str, str], bytes]]


def parse_multipart(content_type: str, body: bytes) -> _Fields | str:
    """A multipart/form-data body → ``{name: (part headers + filename, bytes)}``, or
    what is wrong with it."""
    kind, _, params = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        return f"Content-Type must be multipart/form-data, not {kind.strip()!r}"
    boundary = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return "the multipart body has no boundary"
    delimiter = b"--" + boundary.encode()
    if not body.startswith(delimiter):
        return "the multipart body does not start with its boundary"
    fields: _Fields = {}
    closed = False
    for section in body.split(delimiter)[1:]:
        if section.startswith(b"--"):
            closed = True
            break
        if not (section.startswith(b"\r\n") and section.endswith(b"\r\n")):
            return "a multipart part is not framed by CRLF"
        head, sep, data = section[2:-2].partition(b"\r\n\r\n")
        if not sep:
            return "a multipart part has no header block"
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        for item in disposition.split(";")[1:]:
            key, _, value = item.strip().partition("=")
            headers[key.lower()] = value.strip('"')
        if "name" not in headers:
            return "a multipart part has no name in its Content-Disposition"
        fields[headers["name"]] = (headers, data)
    if not closed:
        return "the multipart body is not closed by its final boundary"
    return fields


class _GeminiFiles:
    """Gemini's Files API: the resumable upload, get, list, delete, download."""

    stored: dict[str, StoredFile]
    _sessions: dict[str, _Session]

    # ---------------------------------------------------------------------
    def _gemini_key(self, request: RecordedRequest) -> Plan | None:
        if request.headers.get("x-goog-api-key") or "key=" in request.path:
            return None
        return gemini_error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
            {},
        )

    def _gemini_upload(self, request: RecordedRequest, query: dict[str, list[str]]) -> Plan:
        headers = request.headers
        command = [c.strip() for c in headers.get("x-goog-upload-command", "").split(",")]
        upload_id = (query.get("upload_id") or [""])[0]
        if not upload_id:  # the start needs the key; the upload URL is its own credential
            refused = self._gemini_key(request)
            if refused is not None:
                return refused
            return self._gemini_start(request, command)
        session = self._sessions.get(upload_id)
        if session is None:
            return gemini_error(404, "NOT_FOUND", f"No upload session {upload_id!r}.", {})
        if "upload" not in command:
            return gemini_error(
                400, "INVALID_ARGUMENT", "X-Goog-Upload-Command must be upload.", {}
            )
        offset = headers.get("x-goog-upload-offset", "")
        if offset != str(len(session.data)):
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"X-Goog-Upload-Offset {offset!r} is not the bytes received so far "
                f"({len(session.data)}).",
                {},
            )
        session.data += request.body
        if len(session.data) > session.size:
            return gemini_error(400, "INVALID_ARGUMENT", "More bytes than were announced.", {})
        if "finalize" not in command:
            return Plan(200, "text/plain", [b""], extra_headers={"x-goog-upload-status": "active"})
        del self._sessions[upload_id]
        if len(session.data) != session.size:
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                f"The upload holds {len(session.data)} bytes; {session.size} were announced.",
                {},
            )
        name = "files/" + secrets.token_hex(6)
        stored = StoredFile(
            "gemini", name, session.media_type, session.display_name, bytes(session.data)
        )
        self.stored[name] = stored
        host = headers.get("host", "127.0.0.1")
        return json_plan(
            200,
            {"file": _gemini_object(stored, host)},
            {"x-goog-upload-status": "final"},
        )

    def _gemini_start(self, request: RecordedRequest, command: list[str]) -> Plan:
        headers = request.headers
        if headers.get("x-goog-upload-protocol") != "resumable" or command != ["start"]:
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "Start an upload with X-Goog-Upload-Protocol: resumable and "
                "X-Goog-Upload-Command: start.",
                {},
            )
        try:
            meta = json.loads(request.body) if request.body else {}
        except ValueError:
            return gemini_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", {})
        file = meta.get("file") if isinstance(meta, dict) else None
        file = file if isinstance(file, dict) else {}
        size_text = headers.get("x-goog-upload-header-content-length", "")
        if not size_text.isdigit() or int(size_text) <= 0:
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "X-Goog-Upload-Header-Content-Length must give the file's size in bytes.",
                {},
            )
        if int(size_text) > _GEMINI_MAX:
            return gemini_error(400, "INVALID_ARGUMENT", "Files are limited to 2 GB.", {})
        media = headers.get("x-goog-upload-header-content-type") or file.get("mimeType")
        if not media or "/" not in media:
            return gemini_error(
                400,
                "INVALID_ARGUMENT",
                "The file's MIME type is missing (X-Goog-Upload-Header-Content-Type).",
                {},
            )
        upload_id = secrets.token_hex(12)
        self._sessions[upload_id] = _Session(
            int(size_text), media, file.get("displayName") or file.get("display_name"), bytearray()
        )
        host = headers.get("host", "127.0.0.1")
        url = f"http://{host}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable"
        return Plan(
            200,
            "text/plain",
            [b""],
            extra_headers={
                "x-goog-upload-url": url,
                "x-goog-upload-status": "active",
                "x-goog-upload-chunk-granularity": "8388608",
            },
        )

    def _gemini_get(self, request: RecordedRequest, path: str, query: str) -> Plan:
        """``GET /v1beta/files`` (list), ``GET`` / ``DELETE /v1beta/files/{id}``, and
        ``GET [/download]/v1beta/files/{id}:download?alt=media`` (a generated file's
        bytes: a batch's responses file; an uploaded file cannot be downloaded)."""
        refused = self._gemini_key(request)
        if refused is not None:
            return refused
        host = request.headers.get("host", "127.0.0.1")
        if path == "/v1beta/files":
            return self._gemini_list(parse_qs(query), host)
        name, _, verb = path.removeprefix("/download").removeprefix("/v1beta/").partition(":")
        stored = self.stored.get(name)
        if stored is None or stored.api != "gemini" or verb not in ("", "download"):
            return gemini_error(
                404, "NOT_FOUND", f"File {name} does not exist or you do not have access.", {}
            )
        if request.method == "DELETE" and not verb:
            del self.stored[name]
            return json_plan(200, {})
        if request.method != "GET":
            return gemini_error(405, "INVALID_ARGUMENT", "Method not allowed.", {})
        if verb == "download":
            if parse_qs(query).get("alt") != ["media"]:
                return gemini_error(400, "INVALID_ARGUMENT", "A download takes alt=media.", {})
            if stored.purpose != "batch_output":
                return gemini_error(
                    400, "INVALID_ARGUMENT", "Only generated files can be downloaded.", {}
                )
            return Plan(200, stored.media_type, [stored.data])
        stored.polls += 1
        return json_plan(200, _gemini_object(stored, host))

    def _gemini_list(self, query: dict[str, list[str]], host: str) -> Plan:
        files = [f for f in self.stored.values() if f.api == "gemini"]
        try:
            start = int((query.get("pageToken") or ["0"])[0] or 0)
            size = max(1, min(100, int((query.get("pageSize") or ["10"])[0])))
        except ValueError:
            return gemini_error(400, "INVALID_ARGUMENT", "pageSize / pageToken", {})
        doc: dict[str, Any] = {
            "files": [_gemini_object(f, host) for f in files[start : start + size]]
        }
        if start + size < len(files):
            doc["nextPageToken"] = str(start + size)
        return json_plan(200, doc)


class Files(_GeminiFiles, Wire):
    """The three Files APIs, with their files in :attr:`stored`."""

    scripted = False

    def __init__(self) -> None:
        self.stored: dict[str, StoredFile] = {}
        self._sessions: dict[str, _Session] = {}

    def matches(self, method: str, path: str) -> bool:
        return (
            path == "/v1/files"
            or path.startswith(
                (
                    "/v1/files/",
                    "/upload/v1beta/files",
                    "/upload/v1/files",
                    "/v1beta/files/",
                    "/download/v1beta/files/",
                    "/download/v1/files/",
                )
            )
            or (path == "/v1beta/files" and method == "GET")
        )

    def cacheable(self, request: RecordedRequest) -> bool:
        return False

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return openai_error(status, error_type, message, headers)

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        path, _, query = request.path.partition("?")
        headers = request.headers
        if "x-goog-api-key" in headers or path.startswith(("/upload/v1/", "/download/v1/")):
            path = path.replace("/v1/", "/v1beta/", 1)  # Gemini: v1 too (google-genai 3's)
        if path.startswith("/upload/v1beta/files"):
            return self._gemini_upload(request, parse_qs(query))
        if path.startswith(("/v1beta/files", "/download/v1beta/files/")):
            return self._gemini_get(request, path, query)
        if "anthropic-version" in headers or "x-api-key" in headers:
            return self._anthropic(request, path)
        return self._openai(request, path)

    # -- OpenAI ----------------------------------------------------------------------
    def _openai(self, request: RecordedRequest, path: str) -> Plan:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return openai_error(
                401,
                "invalid_request_error",
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                {},
            )
        if request.method == "GET" and path.startswith("/v1/files/"):
            stored = self.stored.get(path.removeprefix("/v1/files/"))
            if stored is None or stored.api != "openai":
                return openai_error(
                    404, "invalid_request_error", f"No such File object: {path}", {}
                )
            return json_plan(200, _openai_object(stored))
        if request.method != "POST" or path != "/v1/files":
            return openai_error(404, "invalid_request_error", f"no route {path}", {})
        fields = parse_multipart(request.headers.get("content-type", ""), request.body)
        if isinstance(fields, str):
            return openai_error(400, "invalid_request_error", fields, {})
        purpose = fields.get("purpose")
        if purpose is None:
            return openai_error(
                400, "invalid_request_error", "'purpose' is a required property", {}
            )
        purpose_text = purpose[1].decode("utf-8", "replace")
        if purpose_text not in _OPENAI_PURPOSES:
            return openai_error(
                400,
                "invalid_request_error",
                f"Invalid value for 'purpose': {purpose_text!r}. Supported values are: "
                + ", ".join(repr(p) for p in _OPENAI_PURPOSES),
                {},
            )
        file = fields.get("file")
        if file is None or "filename" not in file[0]:
            return openai_error(400, "invalid_request_error", "'file' is a required property", {})
        part, data = file
        if not data:
            return openai_error(400, "invalid_request_error", "The file is empty.", {})
        if len(data) > _OPENAI_MAX:
            return openai_error(413, "invalid_request_error", "File is larger than 512 MB.", {})
        stored = StoredFile(
            "openai",
            "file-" + secrets.token_hex(12),
            part.get("content-type") or "application/octet-stream",
            part["filename"],
            data,
            purpose_text,
        )
        self.stored[stored.id] = stored
        return json_plan(200, _openai_object(stored))

    # -- Anthropic ------------------------------------------------------------------
    def _anthropic(self, request: RecordedRequest, path: str) -> Plan:
        headers = request.headers
        bearer = headers.get("authorization", "").startswith("Bearer ")
        if not headers.get("x-api-key") and not bearer:
            return anthropic_error(401, "authentication_error", "x-api-key header is required", {})
        if not headers.get("anthropic-version"):
            return anthropic_error(
                400, "invalid_request_error", "anthropic-version: header is required", {}
            )
        # The Files API began as a beta (anthropic-beta: files-api-2025-04-14); the API
        # takes requests with that header and, as the current official SDK sends
        # them, without it.
        if request.method != "POST" or path != "/v1/files":
            return anthropic_error(404, "not_found_error", f"Not found: {path}", {})
        fields = parse_multipart(headers.get("content-type", ""), request.body)
        if isinstance(fields, str):
            return anthropic_error(400, "invalid_request_error", fields, {})
        file = fields.get("file")
        if file is None or "filename" not in file[0]:
            return anthropic_error(400, "invalid_request_error", "file: Field required", {})
        part, data = file
        if not data:
            return anthropic_error(400, "invalid_request_error", "file: the file is empty", {})
        if len(data) > _ANTHROPIC_MAX:
            return anthropic_error(
                413, "request_too_large", "File exceeds the maximum size of 500 MB", {}
            )
        stored = StoredFile(
            "anthropic",
            "file_011" + secrets.token_hex(10),
            part.get("content-type") or "application/octet-stream",
            part["filename"],
            data,
        )
        self.stored[stored.id] = stored
        return json_plan(
            200,
            {
                "id": stored.id,
                "type": "file",
                "filename": stored.filename,
                "mime_type": stored.media_type,
                "size_bytes": len(data),
                "created_at": "2026-12-07T00:00:00Z",
                "downloadable": False,
            },
        )


def _openai_object(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": len(stored.data),
        "created_at": 1_765_000_000,
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _gemini_object(stored: StoredFile, host: str) -> dict[str, Any]:
    # A video is processed before use: PROCESSING until it has been asked for once.
    processing = stored.media_type.startswith("video/") and stored.polls < 1
    import base64
    import hashlib

    out: dict[str, Any] = {
        "name": stored.id,
        "mimeType": stored.media_type,
        "sizeBytes": str(len(stored.data)),
        "createTime": "2026-12-07T00:00:00.000000Z",
        "updateTime": "2026-12-07T00:00:00.000000Z",
        "expirationTime": "2026-12-09T00:00:00.000000Z",
        "sha256Hash": base64.b64encode(hashlib.sha256(stored.data).digest()).decode(),
        "uri": f"http://{host}/v1beta/{stored.id}",
        "state": "PROCESSING" if processing else "ACTIVE",
        "source": "GENERATED" if stored.purpose == "batch_output" else "UPLOADED",
    }
    if stored.purpose == "batch_output":
        out["downloadUri"] = f"http://{host}/download/v1beta/{stored.id}:download?alt=media"
    if stored.filename:
        out["displayName"] = stored.filename
    return out
