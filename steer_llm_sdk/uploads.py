"""The providers' Files APIs: ``client.upload_file()``, and the step before a call's
first attempt that uploads the inline files of a request too large to send inline.

- OpenAI: ``POST {base}/files``, multipart (``purpose`` ``vision`` for an image,
  ``user_data`` for anything else) → ``File(file_id="file-...")``.
- Anthropic: ``POST {base}/v1/files``, multipart, with the beta header
  ``anthropic-beta: files-api-2025-04-14`` → ``File(file_id="file_...")``.
- Gemini: the resumable protocol (``POST {base}/upload/v1beta/files`` with
  ``X-Goog-Upload-Command: start`` → an upload URL → ``upload, finalize`` with the
  bytes), then ``GET {base}/v1beta/files/{name}`` until the file is ``ACTIVE``. The
  result is ``File(url=<the file's uri>)``: the uri is what ``fileData.fileUri``
  takes, and a URL is how a Gemini request carries a file.

Requests and replies are small JSON (read up to 1 MB); the upload is bounded by the
provider's size cap and by ``timeout`` (the whole upload, polling included). An error
status is the provider's typed error (the codec's ``parse_error``); the key is never
in an error. Protocol-specific shapes live here, keyed by protocol: the client only
delegates.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from .content import FilePart
from .errors import (
    APIStatusError,
    ConfigurationError,
    InvalidResponseError,
    SteerError,
    TotalTimeoutError,
)
from .files import File

logger = logging.getLogger("steer_llm_sdk")

__all__ = [
    "FILES_APIS",
    "INLINE_LIMITS",
    "ProviderHTTP",
    "oversize",
    "upload_file",
    "upload_oversize",
    "upload_with",
]

_MB = 2**20
# The most inline (base64) file data a request may carry, by protocol, as documented
# (December 2026): OpenAI 50 MB of file inputs per request; Anthropic 32 MB per
# request; Gemini 100 MB inline (raised from 20 MB in 2026; PDFs 50 MB). Over it, the
# request's largest files are uploaded first, where the provider has a Files API.
INLINE_LIMITS: dict[str, int] = {
    "openai-chat": 50 * _MB,
    "openai-responses": 50 * _MB,
    "anthropic-messages": 32 * _MB,
    "gemini": 100 * _MB,
}
# The providers (by name) whose Files API the SDK uploads to.
FILES_APIS = frozenset({"openai", "openai-responses", "anthropic", "gemini"})
# The largest file each Files API takes.
_MAX_FILE = {
    "openai-chat": 512 * _MB,
    "openai-responses": 512 * _MB,
    "anthropic-messages": 500 * _MB,
    "gemini": 2048 * _MB,
}
_MAX_REPLY = _MB  # a Files API's JSON reply
_ANTHROPIC_BETA = "files-api-2025-04-14"
_AUTO_TIMEOUT = 600.0  # an automatic upload's bound when the call has no total_timeout


class ProviderHTTP:
    """Small JSON requests to a provider's side APIs (Files APIs here; Gemini's
    cachedContents in provider_caches.py): its base URL, key and error parser, one
    deadline for them all. ``what`` and ``api`` name them in errors."""

    def __init__(
        self,
        spec: Any,
        base_url: str,
        key: str | None,
        transport: Any,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        *,
        what: str = "the upload",
        api: str = "Files API",
        signer: Any = None,
    ) -> None:
        from .providers import codec_class

        self.spec = spec
        self.protocol = spec.protocol
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.client = client if client is not None else transport.client_for(self.base_url)
        self.parse_error = codec_class(spec.protocol).parse_error  # type: ignore[attr-defined]
        self.timeout = timeout
        self.deadline = asyncio.get_running_loop().time() + timeout
        self.what = what
        self.api = api
        self.signer = signer  # a cloud's per-request credentials (auth/), instead of a key

    def auth(self) -> dict[str, str]:
        if not self.key:
            return {}
        if self.protocol == "anthropic-messages":
            return {"x-api-key": self.key, "anthropic-version": "2023-06-01"}
        if self.protocol == "gemini":
            return {"x-goog-api-key": self.key}
        return {"authorization": f"Bearer {self.key}"}

    async def send(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        keyed: bool = True,
    ) -> tuple[httpx.Headers, bytes]:
        """One request to the provider: its headers and (capped) body, or a typed
        error. ``keyed=False``: without the key (Gemini's upload URL is its own
        credential)."""
        url = self.base_url + "/" + path.lstrip("/")
        failure: SteerError | None = None
        remaining = self.deadline - asyncio.get_running_loop().time()
        context = {"provider": self.spec.name}
        if remaining <= 0:
            raise TotalTimeoutError(f"{self.what} took longer than {self.timeout:g} s", **context)
        headers = {**self.auth(), **headers} if keyed else headers
        if keyed and self.signer is not None:
            headers.update(await self.signer.sign(method, url, headers, body))
        request = self.client.build_request(
            method,
            url,
            headers=headers,
            content=body,
            timeout=httpx.Timeout(min(remaining, 60.0), write=remaining, pool=remaining),
        )
        try:
            async with asyncio.timeout(remaining):
                response = await self.client.send(request, stream=True)
                try:
                    data = await _read(response, _MAX_REPLY, self.api)
                finally:
                    await response.aclose()
        except httpx.HTTPError as exc:
            from .transport.http import map_httpx_error

            failure = map_httpx_error(exc, **context)  # not chained: no library exception
        except TimeoutError:
            failure = TotalTimeoutError(
                f"{self.what} took longer than {self.timeout:g} s", **context
            )
        if failure is not None:
            raise failure
        status = response.status_code
        if status >= 400:
            error = self.parse_error(status, response.headers, data)
            error.url = url.split("?")[0]
            error.provider = error.provider or self.spec.name
            raise error
        if status >= 300:
            raise APIStatusError(
                f"the {self.api} answered {status}, a redirect: the SDK does not follow "
                "redirects (a key is never sent to another address)",
                status_code=status,
                **context,
            )
        return response.headers, data

    async def json(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> dict[str, Any]:
        _, data = await self.send(method, path, headers, body)
        return _object(data, self.spec.name, self.api)


async def _read(response: httpx.Response, cap: int, api: str = "Files API") -> bytes:
    pieces: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes():
        size += len(piece)
        if size > cap:
            raise InvalidResponseError(f"the {api}'s reply is larger than {cap} bytes")
        pieces.append(piece)
    return b"".join(pieces)


def _object(data: bytes, provider: str, api: str = "Files API") -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if type(obj) is not dict:
        raise InvalidResponseError(
            f"{provider}'s {api} answered with something other than a JSON object: {data[:120]!r}"
        )
    return obj


def _string(obj: Mapping[str, Any], key: str, provider: str) -> str:
    value = obj.get(key)
    if type(value) is not str or not value:
        raise InvalidResponseError(f"{provider}'s Files API sent no {key!r}: {obj!r:.200}")
    return value


def _multipart(fields: dict[str, str], file: File) -> tuple[str, bytes]:
    """A multipart/form-data body: the fields, then the file (one copy of its bytes)."""
    boundary = "steer-" + secrets.token_hex(16)
    name = _filename(file)
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {file.media_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", b"".join((head, file.data or b"", tail))


def _filename(file: File) -> str:
    """The file's name, safe in a header (quotes and line breaks replaced)."""
    import mimetypes

    name = file.filename
    if not name:
        extension = mimetypes.guess_extension(file.media_type or "") or ".bin"
        name = "file" + extension
    return "".join("_" if c in '"\\\r\n' or ord(c) < 32 else c for c in name)


# -- the three Files APIs ---------------------------------------------------------------
async def _openai(up: ProviderHTTP, file: File) -> File:
    purpose = "vision" if (file.media_type or "").startswith("image/") else "user_data"
    content_type, body = _multipart({"purpose": purpose}, file)
    obj = await up.json("POST", "/files", {"content-type": content_type}, body)
    return File(
        file_id=_string(obj, "id", up.spec.name),
        media_type=file.media_type,
        filename=obj.get("filename") or file.filename,
    )


async def _anthropic(up: ProviderHTTP, file: File) -> File:
    content_type, body = _multipart({}, file)
    headers = {"content-type": content_type, "anthropic-beta": _ANTHROPIC_BETA}
    obj = await up.json("POST", "/v1/files", headers, body)
    media = obj.get("mime_type")
    return File(
        file_id=_string(obj, "id", up.spec.name),
        media_type=media if isinstance(media, str) and "/" in media else file.media_type,
        filename=obj.get("filename") or file.filename,
    )


async def _gemini(up: ProviderHTTP, file: File) -> File:
    data = file.data or b""
    meta: dict[str, Any] = {"file": {"displayName": file.filename} if file.filename else {}}
    start = {
        "content-type": "application/json",
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": str(len(data)),
        "x-goog-upload-header-content-type": file.media_type or "application/octet-stream",
    }
    headers, _ = await up.send("POST", "/upload/v1beta/files", start, orjson.dumps(meta))
    upload_url = headers.get("x-goog-upload-url")
    if not upload_url:
        raise InvalidResponseError("Gemini's Files API sent no upload URL (x-goog-upload-url)")
    # Sent to the base URL's own address, whatever host the URL names (as google-genai
    # does), and without the key: the URL is the upload's own credential.
    path = "/" + upload_url.split("://", 1)[-1].partition("/")[2]
    finish = {"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"}
    headers, body = await up.send("POST", path, finish, data, keyed=False)
    if headers.get("x-goog-upload-status", "final") != "final":
        raise InvalidResponseError(
            f"Gemini's Files API did not finalize the upload (status "
            f"{headers.get('x-goog-upload-status')!r})"
        )
    meta = _object(body, up.spec.name).get("file") or {}
    if type(meta) is not dict:
        raise InvalidResponseError(
            f"Gemini's Files API sent a file that is not an object: {meta!r:.80}"
        )
    name = _string(meta, "name", up.spec.name)
    wait = 0.25
    while meta.get("state") == "PROCESSING":
        await asyncio.sleep(wait)
        wait = min(wait * 2, 2.0)
        meta = await up.json("GET", f"/v1beta/{name}", {})
    if meta.get("state") not in (None, "ACTIVE"):
        error: dict[str, Any] = meta["error"] if isinstance(meta.get("error"), dict) else {}
        raise InvalidResponseError(
            f"Gemini could not process the uploaded file {name} (state {meta.get('state')!r}"
            + (f": {error.get('message')}" if error.get("message") else "")
            + ")"
        )
    media = meta.get("mimeType")
    return File(
        url=_string(meta, "uri", up.spec.name),
        media_type=media if isinstance(media, str) and "/" in media else file.media_type,
        filename=file.filename,
    )


_UPLOADERS = {
    "openai-chat": _openai,
    "openai-responses": _openai,
    "anthropic-messages": _anthropic,
    "gemini": _gemini,
}


def _check(file: Any, spec: Any) -> None:
    if not isinstance(file, File):
        raise ConfigurationError(
            f"upload_file takes a File (File('report.pdf'), File(data=...)), not "
            f"{type(file).__name__}"
        )
    if file.data is None:
        raise ConfigurationError(
            f"upload_file uploads a file's bytes: {file!r} has none (give a path or data=)"
        )
    if spec.protocol not in _UPLOADERS or spec.auth is not None:
        raise ConfigurationError(
            f"provider {spec.name!r} ({spec.protocol} protocol) has no Files API the SDK "
            f"uploads to; these do: {', '.join(sorted(FILES_APIS - {'openai-responses'}))}"
        )
    cap = _MAX_FILE[spec.protocol]
    if len(file.data) > cap:
        raise ConfigurationError(
            f"{file!r} is larger than {spec.name}'s Files API takes ({cap // _MB} MB)"
        )


async def upload_file(
    wiring: Any,
    transport: Any,
    file: File,
    provider: str,
    *,
    timeout: float = 600.0,  # noqa: ASYNC109 - the whole upload's bound, polling included
) -> File:
    """``client.upload_file()``: ``file`` uploaded to ``provider``'s Files API; the
    returned :class:`File` names it there (a file id, or Gemini's file uri)."""
    from .catalog import PROVIDERS, configured_base_url
    from .providers import codec_class

    if not isinstance(provider, str) or not provider:
        raise ConfigurationError("upload_file needs provider=, e.g. provider='openai'")
    spec = wiring.providers.get(provider.lower()) or PROVIDERS.get(provider.lower())
    if spec is None:
        raise ConfigurationError(
            f"upload_file: no provider {provider!r}; these have a Files API: "
            f"{', '.join(sorted(FILES_APIS - {'openai-responses'}))}"
        )
    if spec.name not in FILES_APIS and spec.name not in wiring.providers:
        raise ConfigurationError(
            f"provider {spec.name!r} has no Files API the SDK uploads to; these do: "
            f"{', '.join(sorted(FILES_APIS - {'openai-responses'}))} (and a provider of "
            "your own on one of their protocols)"
        )
    _check(file, spec)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ConfigurationError(f"upload_file: timeout must be a positive number, not {timeout!r}")
    base_url = codec_class(spec.protocol).normalize_base_url(
        configured_base_url(spec, wiring.base_urls)
    )
    up = ProviderHTTP(spec, base_url, wiring.api_key(spec), transport, float(timeout))
    return await _UPLOADERS[spec.protocol](up, file)


async def upload_with(
    client: httpx.AsyncClient,
    spec: Any,
    base_url: str,
    key: str | None,
    file: File,
    timeout: float,  # noqa: ASYNC109 - the whole upload's bound
) -> File:
    """``file`` uploaded with ``client`` to the Files API of ``spec``'s protocol at
    ``base_url`` (a provider batch job's input file)."""
    _check(file, spec)
    up = ProviderHTTP(spec, base_url, key, None, timeout, client)
    return await _UPLOADERS[spec.protocol](up, file)


# -- the pre-send step ------------------------------------------------------------------
def _inline(part: Any) -> int:
    """The base64 size of an inline file part (0 for anything else)."""
    if type(part) is not FilePart:
        return 0
    if part.b64 is not None:
        return len(part.b64)
    if part.data is not None:
        return (len(part.data) + 2) // 3 * 4
    return 0


def _inline_total(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        if type(content) is list:
            for part in content:
                total += _inline(part)
    return total


def oversize(call: Any) -> bool:
    """Whether a call's inline files pass its protocol's inline limit (cheap: a
    text-only request costs a look at each message's content type)."""
    limit = INLINE_LIMITS.get(call.provider.protocol)
    return limit is not None and _inline_total(call.request.messages) > limit


def _uploadable(part: FilePart, protocol: str, codec: Any) -> bool:
    """Whether a part, uploaded, can go in the request by reference."""
    media = part.media_type
    if protocol == "gemini":
        return bool(codec.accepts_urls)
    if not codec.accepts_file_ids:
        return False
    if protocol.startswith("openai"):
        return not media.startswith(("image/", "audio/"))  # file inputs: documents
    return media.startswith("image/") or media in ("application/pdf", "text/plain")


async def upload_oversize(call: Any, warnings: list[str]) -> None:
    """Before the first attempt of a call whose inline files pass the inline limit
    (:func:`oversize`): upload the largest until the rest fit, where the provider has
    a Files API, and put each in the request by reference (once per call, whatever the
    retries); each upload is said in ``warnings``."""
    from .providers import codec_class

    spec = call.provider
    protocol = spec.protocol
    limit = INLINE_LIMITS[protocol]
    messages = call.request.messages
    total = _inline_total(messages)
    codec = codec_class(protocol)
    where: list[tuple[int, int, FilePart]] = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if type(content) is list:
            where += [(i, j, p) for j, p in enumerate(content) if _inline(p)]
    can = spec.name in FILES_APIS and spec.auth is None and protocol in _UPLOADERS
    timeout = call.options.total_timeout or _AUTO_TIMEOUT  # the call's own bound
    up = ProviderHTTP(spec, call.base_url, call.api_key, call.transport, timeout) if can else None
    done: dict[int, FilePart] = {}  # the same bytes in several messages: uploaded once
    for i, j, part in sorted(where, key=lambda w: -_inline(w[2])):
        if total <= limit:
            break
        if up is None or not _uploadable(part, protocol, codec):
            continue
        key = id(part.data if part.data is not None else part.b64)
        new = done.get(key)
        if new is None:
            size = _inline(part)
            file = File(data=part.content(), media_type=part.media_type, filename=part.filename)
            uploaded = await _UPLOADERS[protocol](up, file)
            new = done[key] = FilePart(
                part.media_type,
                url=uploaded.url,
                file_id=uploaded.file_id,
                filename=part.filename,
                detail=part.detail,
                cache_control=part.cache_control,
            )
            name = uploaded.file_id or uploaded.url
            warnings.append(
                warning := f"messages[{i}].content[{j}] ({part.media_type}, {size // 1024} KB as "
                f"base64) was uploaded to {spec.name}'s Files API as {name}: the request's "
                f"inline files passed its {limit // _MB} MB limit"
            )
            logger.warning("%s", warning)
        total -= _inline(part)
        content = list(messages[i]["content"])
        content[j] = new
        messages[i] = {**messages[i], "content": content}
    if total > limit:
        warnings.append(
            f"the request's inline files ({total // _MB} MB as base64) pass {spec.name}'s "
            f"documented {limit // _MB} MB limit and could not be uploaded (no Files API "
            "the SDK uses takes them): the provider may refuse the request"
        )
