"""The clouds' side of the emulator: Google Vertex AI and Azure OpenAI.

Each is the protocol the emulator already speaks at the cloud's paths, behind the
cloud's credentials:

- Vertex AI: ``/v1/projects/{p}/locations/{l}/publishers/google/models/{m}:
  streamGenerateContent`` (Gemini) and ``.../publishers/anthropic/models/{m}:
  streamRawPredict`` / ``rawPredict`` (Claude: the Messages body without ``model``,
  with ``anthropic_version``), answered only with a bearer token the emulator issued
  at its OAuth token endpoint ``POST /oauth2/token`` (a service account's JWT grant
  or a user's refresh token), which expires after ``token_lifetime`` seconds or when
  :meth:`CloudState.expire_tokens` is called (then a 401, as Google answers); the GCE
  metadata server's ping, project id and token routes too (``GET /computeMetadata/v1``).
- Azure OpenAI: ``/openai/deployments/{d}/chat/completions?api-version=...``,
  ``/openai/responses?api-version=...`` and the v1 API ``/openai/v1/chat/completions``
  and ``/openai/v1/responses`` (model in the body, no api-version), with ``api-key`` or
  ``Authorization: Bearer``; a missing or unknown api-version is Azure's 404 "Resource
  not found", a malformed one its 400; an unknown deployment a ``DeploymentNotFound``
  404; a prompt containing a word of ``azure_filtered`` the 400 ``content_filter``.

Standard library only.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote

from ._wire import Plan, RecordedRequest, Reply, Settings, Wire, json_plan

__all__ = ["Azure", "CloudState", "Metadata", "TokenEndpoint", "Vertex"]

_VERTEX = re.compile(
    r"^/v1/projects/([^/]+)/locations/([^/]+)/publishers/(google|anthropic)/models/([^/:]+):(\w+)$"
)
_AZURE = re.compile(
    r"^/openai/(?:deployments/([^/]+)/(chat/completions)|(responses)|v1/(chat/completions|responses))$"
)
_AZURE_VERSIONS = frozenset(
    {
        "2024-02-01",
        "2024-06-01",
        "2024-10-21",
        "2024-12-01-preview",
        "2025-01-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
_RESPONSES_SINCE = "2025-03-01-preview"


class CloudState:
    """What the clouds' routes check: issued tokens, keys, deployments, filters."""

    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}  # access token → expiry (time.time())
        self.token_lifetime = 3600  # seconds, the expires_in of each issued token
        self.token_requests = 0  # requests to the token endpoint
        self.refused = 0  # Vertex requests answered 401
        # A check of a service account's JWT signature (signing input, signature) → bool.
        self.jwt_verifier: Callable[[bytes, bytes], bool] | None = None
        self.vertex_project: str | None = None  # only this project (None: any)
        self.azure_keys: set[str] = {"az-test-key-0000000000000000"}
        self.azure_tokens: set[str] = {"entra-test-token-000000000000"}
        self.azure_deployments: set[str] | None = None  # None: every name is deployed
        self.azure_filtered: list[str] = []  # prompt words Azure's content filter refuses

    def issue_token(self) -> tuple[str, int]:
        token = "ya29.emu-" + secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_lifetime
        return token, self.token_lifetime

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (as after a revocation)."""
        self.tokens.clear()

    def token_ok(self, authorization: str) -> bool:
        kind, _, token = authorization.partition(" ")
        expiry = self.tokens.get(token) if kind.lower() == "bearer" else None
        return expiry is not None and expiry > time.time()


def _google_error(status: int, name: str, message: str) -> Plan:
    return json_plan(status, {"error": {"code": status, "message": message, "status": name}})


class TokenEndpoint(Wire):
    """``POST /oauth2/token``: Google's OAuth 2.0 token endpoint, as google-auth uses it."""

    route = ("POST", "/oauth2/token")

    def __init__(self, state: CloudState) -> None:
        self.state = state

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        state = self.state
        state.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = self._check_jwt(form.get("assertion", ""))
        elif grant == "refresh_token":
            problem = None if form.get("refresh_token") and form.get("client_id") else "bad"
        else:
            problem = "unsupported_grant_type"
        if problem is not None:
            return json_plan(
                400, {"error": "invalid_grant", "error_description": f"Invalid grant: {problem}"}
            )
        token, lifetime = state.issue_token()
        return json_plan(
            200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
        )

    def _check_jwt(self, assertion: str) -> str | None:
        try:
            head, payload, signature = assertion.split(".")
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            sig = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (ValueError, TypeError):
            return "not a JWT"
        now = time.time()
        if not str(claims.get("aud", "")).endswith("/token") or not claims.get("iss"):
            return "bad audience or issuer"
        if "cloud-platform" not in str(claims.get("scope", "")):
            return "no cloud-platform scope"
        if not (claims.get("iat", 0) - 300 <= now < claims.get("exp", 0)):
            return "the assertion expired"
        verify = self.state.jwt_verifier
        if verify is not None and not verify(f"{head}.{payload}".encode(), sig):
            return "Invalid JWT Signature."
        return None

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return json_plan(status, {"error": error_type, "error_description": message}, headers)


class Metadata(Wire):
    """The GCE metadata server, as google-auth asks it (``GCE_METADATA_HOST`` and
    ``GCE_METADATA_IP`` pointed here): the ping, the project id, the default service
    account and its token. Every answer needs the ``Metadata-Flavor: Google`` header."""

    _ACCOUNT = "/computeMetadata/v1/instance/service-accounts/default/"

    def __init__(self, state: CloudState) -> None:
        self.state = state

    def matches(self, method: str, path: str) -> bool:
        return method == "GET" and (path == "/" or path.startswith("/computeMetadata/v1/"))

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        flavor = {"metadata-flavor": "Google"}
        if request.headers.get("metadata-flavor") != "Google":
            return Plan(403, "text/html", [b"Missing Metadata-Flavor:Google header."])
        path = request.path.partition("?")[0]
        if path == "/":
            return Plan(200, "application/text", [b"computeMetadata/"], extra_headers=flavor)
        if path == "/computeMetadata/v1/project/project-id":
            project = (self.state.vertex_project or "emulator-project").encode()
            return Plan(200, "application/text", [project], extra_headers=flavor)
        if path == self._ACCOUNT:
            info = {
                "aliases": ["default"],
                "email": "emulator@developer.gserviceaccount.com",
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
            return json_plan(200, info, flavor)
        if path == self._ACCOUNT + "token":
            self.state.token_requests += 1
            token, lifetime = self.state.issue_token()
            answer = {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
            return json_plan(200, answer, flavor)
        return Plan(404, "text/html", [b"Not Found"], extra_headers=flavor)

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return Plan(status, "text/html", [message.encode()])


class Vertex(Wire):
    """Vertex AI's Gemini and Anthropic publishers, behind a bearer token."""

    def __init__(self, state: CloudState, gemini: Wire, messages: Wire) -> None:
        self.state = state
        self.gemini = gemini
        self.messages = messages

    def matches(self, method: str, path: str) -> bool:
        return path.startswith("/v1/projects/")

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        path = request.path.partition("?")[0]
        match = _VERTEX.match(path)
        if request.method != "POST" or match is None:
            return _google_error(404, "NOT_FOUND", f"Requested entity was not found: {path}")
        if not self.state.token_ok(request.headers.get("authorization", "")):
            self.state.refused += 1
            return _google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        project, _, publisher, model, verb = match.groups()
        wanted = self.state.vertex_project
        if wanted is not None and unquote(project) != wanted:
            return _google_error(
                403, "PERMISSION_DENIED", f"Permission denied on resource project {project}."
            )
        body = super().read(request)
        if isinstance(body, Plan) or publisher == "google":
            return body
        if verb not in ("streamRawPredict", "rawPredict"):
            return _google_error(400, "INVALID_ARGUMENT", f"{verb} is not a method of {model}")
        for problem, bad in (
            ("model: Extra inputs are not permitted", "model" in body),
            ("anthropic_version: Field required", not body.get("anthropic_version")),
        ):
            if bad:
                return self.messages.error(400, "invalid_request_error", problem, {})
        return {**body, "model": unquote(model)}

    def cacheable(self, request: RecordedRequest) -> bool:
        return b"cache_control" not in request.body and b'"cachedContent"' not in request.body

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return _google_error(status, "INVALID_ARGUMENT" if status == 400 else error_type, message)

    def plan(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        path, _, query = request.path.partition("?")
        match = _VERTEX.match(path)
        assert match is not None  # read() answered 404 otherwise
        model, verb = match.group(4), match.group(5)
        if match.group(3) == "google":
            inner = RecordedRequest(
                request.method, f"/v1beta/models/{model}:{verb}?{query}", request.headers, b""
            )
            return self.gemini.plan(settings, inner, body, reply)
        inner = RecordedRequest(request.method, "/v1/messages", request.headers, b"")
        return self.messages.plan(settings, inner, body, reply)


def _azure_error(status: int, code: str, message: str, **more: Any) -> Plan:
    return json_plan(status, {"error": {"code": code, "message": message, **more}})


_FILTER_RESULTS = {
    name: {"filtered": False, "severity": "safe"}
    for name in ("hate", "self_harm", "sexual", "violence")
}
_RESULTS_JSON = json.dumps(_FILTER_RESULTS, separators=(",", ":")).encode()
_PROMPT_FILTER = (
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":'
    b'[{"prompt_index":0,"content_filter_results":' + _RESULTS_JSON + b"}]}\n\n"
)


class Azure(Wire):
    """Azure OpenAI's classic and v1 paths, behind ``api-key`` or an Entra ID token."""

    def __init__(self, state: CloudState, chat: Wire, responses: Wire) -> None:
        self.state = state
        self.chat = chat
        self.responses = responses

    def matches(self, method: str, path: str) -> bool:
        return path.startswith("/openai/")

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        state = self.state
        path, _, query = request.path.partition("?")
        headers = request.headers
        kind, _, token = headers.get("authorization", "").partition(" ")
        if headers.get("api-key") not in state.azure_keys and not (
            kind.lower() == "bearer" and token in state.azure_tokens
        ):
            return _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.",
            )
        match = _AZURE.match(path)
        if request.method != "POST" or match is None:
            return _azure_error(404, "404", "Resource not found")
        deployment, _chat, responses, _v1 = match.groups()
        if deployment is not None or responses is not None:  # the classic API
            version = (parse_qs(query).get("api-version") or [""])[0]
            if version and not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", version):
                return _azure_error(400, "BadRequest", "API version not supported")
            if version not in _AZURE_VERSIONS or (responses and version < _RESPONSES_SINCE):
                return _azure_error(404, "404", "Resource not found")
        body = super().read(request)
        if isinstance(body, Plan):
            return body
        name = unquote(deployment) if deployment is not None else str(body.get("model"))
        if state.azure_deployments is not None and name not in state.azure_deployments:
            return _azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        text = request.body.decode("utf-8", "replace").lower()
        if any(word.lower() in text for word in state.azure_filtered):
            return self._filtered()
        return {**body, "model": name}

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return _azure_error(status, str(status), message)

    @staticmethod
    def _filtered() -> Plan:
        results = {**_FILTER_RESULTS, "violence": {"filtered": True, "severity": "high"}}
        return json_plan(
            400,
            {
                "error": {
                    "message": "The response was filtered due to the prompt triggering Azure "
                    "OpenAI's content management policy. Please modify your prompt and retry.",
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": results,
                    },
                }
            },
        )

    def plan(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        path = request.path.partition("?")[0]
        if reply.status >= 400:
            plan = json_plan(
                reply.status,
                {"error": {"code": str(reply.status), "message": reply.error_message or "error"}},
                reply.headers,
            )
            plan.fault = reply.fault
            return plan
        if path.endswith("/responses"):
            inner = RecordedRequest(request.method, "/v1/responses", request.headers, b"")
            return self.responses.plan(settings, inner, body, reply)
        inner = RecordedRequest(request.method, "/v1/chat/completions", request.headers, b"")
        plan = self.chat.plan(settings, inner, body, reply)
        if plan.status == 200 and plan.content_type == "text/event-stream" and plan.pieces:
            # Azure: a first chunk with the prompt's filter results and no choices,
            # then each choice with its own content_filter_results.
            results = b'"index":0,"content_filter_results":' + _RESULTS_JSON + b","
            pieces = [p.replace(b'"index":0,', results) for p in plan.pieces]
            plan.pieces = [_PROMPT_FILTER + pieces[0], *pieces[1:]]
        return plan
