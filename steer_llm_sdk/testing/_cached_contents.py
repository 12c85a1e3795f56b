"""Gemini's explicit context caches, as the API keeps them: ``/v1beta/cachedContents``
(create, get, list, patch the TTL, delete) and what ``generateContent`` does with a
request that names one (``cachedContent``).

The same on Vertex AI under ``/v1/projects/{p}/locations/{l}/cachedContents`` (a
bearer token; names and models as full resource names).

A cache holds a model's ``contents``, ``systemInstruction``, ``tools`` and
``toolConfig``; it lives ``ttl`` (default 1 hour) and is gone after. A request naming
it may not set ``systemInstruction``, ``tools`` or ``toolConfig`` itself, must use the
cache's model, and is answered as if the cache's contents came before its own, with
``cachedContentTokenCount`` the cache's tokens. A cache below the model's minimum is
refused; one that expired or was deleted is a 403 "CachedContent not found".
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from ._gemini import error_plan, prompt_tokens
from ._wire import Plan, RecordedRequest, Reply, Settings, Wire, json_plan

__all__ = ["CachedContents", "Stored"]

_FIELDS = {"model", "contents", "systemInstruction", "tools", "toolConfig", "ttl",
           "expireTime", "displayName"}  # fmt: skip
_MINIMUMS = (("2.5-flash", 2048), ("2.0-flash", 4096))
_DEFAULT_MINIMUM = 4096
_TTL = re.compile(r"^(\d+(?:\.\d{1,9})?)s$")
_NOT_FOUND = "CachedContent not found (or permission denied)"
_VERTEX = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/cachedContents(?:/[^/]+)?$")
IN_REQUEST = (
    "CachedContent can not be used with GenerateContent request setting "
    "system_instruction, tools or tool_config.\n\nProposed fix: move those values to "
    "CachedContent from GenerateContent request."
)


def _min_tokens(model: str) -> int:
    name = model.lower()
    return next((m for fragment, m in _MINIMUMS if fragment in name), _DEFAULT_MINIMUM)


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Stored:
    __slots__ = ("created", "display_name", "expires", "fields", "model", "name", "tokens")

    def __init__(
        self, parent: str, model: str, fields: dict[str, Any], expires: float, display: str
    ) -> None:
        self.name = parent + "cachedContents/" + secrets.token_hex(8)
        self.model = model
        self.fields = fields  # contents, systemInstruction, tools, toolConfig
        self.created = time.time()
        self.expires = expires
        self.display_name = display
        self.tokens = prompt_tokens(fields)

    def resource(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "model": self.model,
            "createTime": _time(self.created),
            "updateTime": _time(self.created),
            "expireTime": _time(self.expires),
            "usageMetadata": {"totalTokenCount": self.tokens},
        }
        if self.display_name:
            out["displayName"] = self.display_name
        return out


class CachedContents(Wire):
    """``/v1beta/cachedContents``: the caches in :attr:`stored` (also the deleted and
    expired ones' names in :attr:`gone`)."""

    scripted = False

    def __init__(self, token_ok: Callable[[str], bool] | None = None) -> None:
        self.stored: dict[str, Stored] = {}
        self.created = 0  # caches ever made (a test counts creations)
        self.deleted: list[str] = []
        self.token_ok = token_ok  # Vertex AI: whether a bearer token is valid

    def matches(self, method: str, path: str) -> bool:
        return (
            path == "/v1beta/cachedContents"
            or path.startswith("/v1beta/cachedContents/")
            or _VERTEX.match(path) is not None
        )

    def cacheable(self, request: RecordedRequest) -> bool:
        return False

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def live(self, name: str) -> Stored | None:
        stored = self.stored.get(name)
        if stored is not None and stored.expires <= time.time():
            del self.stored[name]
            return None
        return stored

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        path, _, query = request.path.partition("?")
        vertex = _VERTEX.match(path)
        if vertex is not None:
            if self.token_ok is None or not self.token_ok(request.headers.get("authorization", "")):
                return error_plan(
                    401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", {}
                )
            parent = vertex.group(1) + "/"
            name = path.removeprefix("/v1/")
        else:
            if not request.headers.get("x-goog-api-key") and "key=" not in request.path:
                return error_plan(
                    403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers.", {}
                )
            parent = ""
            name = path.removeprefix("/v1beta/")
        method = request.method
        if name == parent + "cachedContents":
            if method == "POST":
                return self._create(request, parent)
            if method == "GET":
                live = [s for s in list(self.stored.values()) if self.live(s.name)]
                return json_plan(200, {"cachedContents": [s.resource() for s in live]})
            return error_plan(405, "INVALID_ARGUMENT", f"{method} is not allowed here", {})
        stored = self.live(name)
        if stored is None:
            return error_plan(403, "PERMISSION_DENIED", _NOT_FOUND, {})
        if method == "GET":
            return json_plan(200, stored.resource())
        if method == "DELETE":
            del self.stored[name]
            self.deleted.append(name)
            return json_plan(200, {})
        if method == "PATCH":
            return self._update(stored, request, parse_qs(query))
        return error_plan(405, "INVALID_ARGUMENT", f"{method} is not allowed here", {})

    def _create(self, request: RecordedRequest, parent: str) -> Plan:
        try:
            body = json.loads(request.body)
        except ValueError:
            return error_plan(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", {})
        if not isinstance(body, dict):
            return error_plan(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", {})
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            return error_plan(
                400,
                "INVALID_ARGUMENT",
                f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                "'cached_content': Cannot find field.",
                {},
            )
        model = body.get("model")
        wanted = f"{parent}publishers/google/models/" if parent else "models/"
        if not isinstance(model, str) or not model.startswith(wanted):
            return error_plan(400, "INVALID_ARGUMENT", f"model: must be {wanted}{{model}}", {})
        expires = self._expiry(body)
        if isinstance(expires, Plan):
            return expires
        fields = {k: body[k] for k in ("contents", "systemInstruction", "tools", "toolConfig")
                  if k in body}  # fmt: skip
        stored = Stored(parent, model, fields, expires, str(body.get("displayName") or ""))
        minimum = _min_tokens(model)
        if stored.tokens < minimum:
            return error_plan(
                400,
                "INVALID_ARGUMENT",
                f"Cached content is too small. total_token_count={stored.tokens}, "
                f"min_total_token_count={minimum}",
                {},
            )
        self.stored[stored.name] = stored
        self.created += 1
        return json_plan(200, stored.resource())

    @staticmethod
    def _expiry(body: dict[str, Any]) -> float | Plan:
        ttl, at = body.get("ttl"), body.get("expireTime")
        if ttl is not None and at is not None:
            return error_plan(400, "INVALID_ARGUMENT", "set one of ttl and expireTime", {})
        if at is not None:
            try:
                return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
            except ValueError:
                return error_plan(400, "INVALID_ARGUMENT", f"expireTime: bad time {at!r}", {})
        match = _TTL.match(str(ttl)) if ttl is not None else None
        if ttl is not None and match is None:
            return error_plan(400, "INVALID_ARGUMENT", f"ttl: bad duration {ttl!r}", {})
        return time.time() + (float(match.group(1)) if match else 3600.0)

    def _update(self, stored: Stored, request: RecordedRequest, query: dict[str, Any]) -> Plan:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return error_plan(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", {})
        # the fields named by updateMask, else those the body sets (google-genai sends none)
        mask = ",".join(query.get("updateMask") or ()) or ",".join(body)
        if not mask or not set(mask.split(",")) <= {"ttl", "expireTime", "expire_time"}:
            return error_plan(400, "INVALID_ARGUMENT", "only ttl or expireTime can change", {})
        expires = self._expiry(body)
        if isinstance(expires, Plan):
            return expires
        stored.expires = expires
        return json_plan(200, stored.resource())

    def expand(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any], int] | Plan:
        """A request naming a cache → the request as the model sees it and the
        cache's tokens, or the API's refusal."""
        if any(k in body for k in ("systemInstruction", "tools", "toolConfig")):
            return error_plan(400, "INVALID_ARGUMENT", IN_REQUEST, {})
        stored = self.live(str(body["cachedContent"]))
        if stored is None:
            return error_plan(403, "PERMISSION_DENIED", _NOT_FOUND, {})
        if stored.model.rpartition("/")[2] != model:
            return error_plan(
                400,
                "INVALID_ARGUMENT",
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"({stored.model}) has to be the same.",
                {},
            )
        whole = {k: v for k, v in body.items() if k != "cachedContent"}
        whole.update({k: v for k, v in stored.fields.items() if k != "contents"})
        whole["contents"] = list(stored.fields.get("contents") or []) + list(
            body.get("contents") or []
        )
        return whole, stored.tokens
