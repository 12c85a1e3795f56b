"""Typed errors. Every error the SDK raises is a :class:`SteerError`.

Each carries the provider, model, HTTP status, request id and a short excerpt of
the provider's error body where those are known. None of them ever holds an API
key: messages and bodies pass through :func:`redact` before they are stored.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ConnectionError",
    "ContextWindowError",
    "CooldownError",
    "FileDownloadError",
    "FirstTokenTimeoutError",
    "InterruptedInvalidResponseError",
    "InterruptedReadTimeoutError",
    "InterruptedTotalTimeoutError",
    "InvalidResponseError",
    "JSONParseError",
    "MaxStepsError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadTimeoutError",
    "ServerError",
    "SteerError",
    "StreamInterruptedError",
    "TimeoutError",
    "ToolArgumentsError",
    "TotalTimeoutError",
    "redact",
]

_BUILTIN_TIMEOUT = TimeoutError
_BUILTIN_CONNECTION = ConnectionError

# Key-like strings: provider prefixes (sk-, sk-ant-, xai-, gsk_ ...) and bearer tokens.
_KEY_RE = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{8,}|xai-[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9_\-]{8,}"
    r"|AIza[A-Za-z0-9_\-]{35}"
    r"|(?i:bearer)\s+[A-Za-z0-9_\-\.]{8,})"
)
_known_secrets: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a key so that :func:`redact` removes it wherever it appears."""
    if secret and len(secret) >= 4:
        _known_secrets.add(secret)


# A key-shaped start cut off at the end of a truncated text ("... sk-pro").
_CUT_KEY_RE = re.compile(r"(?:sk-|xai-|gsk_|AIza|(?i:bearer)\s+)[A-Za-z0-9_\-\.]*(?=[\W_]{0,4}$)")
_TAIL_RE = re.compile(r"[A-Za-z0-9_\-\.]{4,}(?=[^A-Za-z0-9_\-\.]{0,4}$)")


def redact(text: str) -> str:
    """Remove API keys (known ones and key-shaped strings) from ``text``.

    Also a key cut off by truncation at the end of ``text`` (a prefix of a known key
    of at least 4 characters, or a key-shaped start): text is often an excerpt.
    """
    if not isinstance(text, str):
        text = str(text)
    # Key shapes first, then known keys longest first: replacing a short known key
    # inside a longer key would leave the rest of that key in the text.
    text = _KEY_RE.sub("[REDACTED]", text)
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    tail = _TAIL_RE.search(text)
    if tail is not None:
        run = tail.group()
        for secret in _known_secrets:
            # The longest end of the run that is a start of the secret.
            for start in range(len(run) - 3):
                if secret.startswith(run[start:]):
                    text = text[: tail.start() + start] + "[REDACTED]" + text[tail.end() :]
                    return text
    return _CUT_KEY_RE.sub("[REDACTED]", text)


class SteerError(Exception):
    """Base class of every error raised by steer_llm_sdk.

    ``partial_text`` is the text delivered before the failure, when the call asked
    for it with ``preserve_partial_response=True`` (else None).
    """

    partial_text: str | None = None
    # The URL of the request that failed (without its query), when there was one.
    url: str | None = None
    _REDACTED_FIELDS = frozenset({"message", "request_id", "body"})

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.request_id = request_id
        self.body = body[:4096] if body else None  # redacted whole, then cut (setattr)
        super().__init__(self.message)
        # A chained library exception (httpx, h11) can hold raw response bytes, an
        # echoed key among them: SDK errors carry the useful part in their message and
        # never print the exception they were raised while handling.
        self.__suppress_context__ = True

    def __setattr__(self, name: str, value: Any) -> None:
        # Every string an error exposes is redacted when it is set, before any cut.
        if name in SteerError._REDACTED_FIELDS and value is not None:
            value = redact(value)
            if name == "body":
                value = value[:500]
        object.__setattr__(self, name, value)

    def __str__(self) -> str:
        parts = [self.message]
        ctx = []
        if self.provider:
            ctx.append(f"provider={self.provider}")
        if self.model:
            ctx.append(f"model={self.model}")
        if self.status_code is not None:
            ctx.append(f"status={self.status_code}")
        if self.request_id:
            ctx.append(f"request_id={self.request_id}")
        if self.url and self.url not in self.message:
            ctx.append(f"url={self.url}")
        if ctx:
            parts.append("(" + ", ".join(ctx) + ")")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(SteerError, ValueError):
    """The call cannot be made as configured: missing key, unknown model, bad option."""


class FileDownloadError(ConfigurationError):
    """A file given by URL could not be downloaded by the SDK: refused (a loopback,
    private or link-local address), too large, too many redirects, an HTTP error, a
    timeout, or bytes of no type the protocol takes. ``url`` names it (without its
    query, which may hold a signature); ``status_code`` is the server's, if any."""

    def __init__(self, message: str, *, url: str, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code)
        self.url = url


class APIStatusError(SteerError):
    """The provider answered with an error (an HTTP status, or an error event in the stream).

    ``retryable`` is ``False`` when the provider said another try cannot succeed
    (OpenAI's ``insufficient_quota``, a 429 only billing fixes); ``None`` (the default)
    leaves it to the error's class and status.
    """

    retryable: bool | None = None


class BadRequestError(APIStatusError):
    """HTTP 400 / 422, or an ``invalid_request_error``: the request itself is wrong."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not use this model or feature."""


class NotFoundError(APIStatusError):
    """HTTP 404: unknown model or endpoint."""


class RateLimitError(APIStatusError):
    """HTTP 429. ``retry_after`` holds the seconds the provider asked to wait, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OverloadedError(APIStatusError):
    """HTTP 529 or Anthropic's ``overloaded_error``: the provider is busy; try later."""


class ServerError(APIStatusError):
    """HTTP 5xx or a provider-side ``api_error``."""


class ContextWindowError(BadRequestError):
    """The prompt (with ``max_tokens``) does not fit the model's context window
    (OpenAI's ``context_length_exceeded``, Anthropic's "prompt is too long" and their
    kin). A route moves on to its next (larger) model on it."""


class CooldownError(SteerError):
    """Every deployment a route could use is cooling down after repeated failures
    (its circuit breaker is open): no request was sent. ``until`` is when the first
    one may be tried again (``time.time()`` seconds), ``retry_after`` how long that is."""

    def __init__(self, message: str, *, until: float, retry_after: float, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.until = until
        self.retry_after = retry_after


class ConnectionError(SteerError, _BUILTIN_CONNECTION):
    """The connection could not be made or was lost. Also a built-in :class:`ConnectionError`."""


class TimeoutError(SteerError, _BUILTIN_TIMEOUT):
    """A timeout fired. Also a built-in :class:`TimeoutError`."""


class ConnectTimeoutError(TimeoutError):
    """``connection_timeout`` passed before the connection was made."""


class ReadTimeoutError(TimeoutError):
    """``read_timeout`` passed with no byte from the server."""


class FirstTokenTimeoutError(TimeoutError):
    """``first_token_timeout`` passed before any part of the answer arrived. Not
    retried on the same route: a route moves on to its next entry at once."""

    retryable = False


class TotalTimeoutError(TimeoutError):
    """``total_timeout`` passed for the whole call, retries included."""


class InvalidResponseError(SteerError):
    """The response is not what the protocol promises: garbage or truncated SSE, bad JSON."""


class JSONParseError(InvalidResponseError):
    """JSON mode: the model's text is not valid JSON. ``raw_text`` holds the text."""

    def __init__(self, message: str, *, raw_text: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.raw_text = raw_text


class StreamInterruptedError(SteerError):
    """The stream broke after text was delivered and could not be resumed.

    ``partial_text`` holds the text received so far when
    ``preserve_partial_response=True`` (else ``None``), with ``partial_usage``
    an estimate of its usage. ``cause`` is the underlying error.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str | None = None,
        partial_usage: dict[str, Any] | None = None,
        cause: BaseException | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.partial_text = partial_text
        self.partial_usage = partial_usage
        self.cause = cause
        self.attempts: int | None = None  # HTTP requests made before giving up


class OutputValidationError(InvalidResponseError):
    """The answer does not match ``output=``: ``raw_text`` is what the model said,
    ``errors`` pydantic's list of what is wrong."""

    def __init__(
        self,
        message: str,
        *,
        raw_text: str = "",
        errors: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.raw_text = raw_text
        self.errors = errors or []


class ToolArgumentsError(InvalidResponseError):
    """A tool call's arguments are not a JSON object (``call`` is the ToolCall)."""

    def __init__(self, message: str, *, call: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.call = call


class MaxStepsError(SteerError):
    """``run_tools()`` reached ``max_steps`` with the model still calling tools;
    ``messages`` is the conversation so far, ``response`` the last step's answer."""

    def __init__(
        self, message: str, *, messages: list[Any] | None = None, response: Any = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.messages = messages or []
        self.response = response


class InterruptedReadTimeoutError(ReadTimeoutError, StreamInterruptedError):
    """``read_timeout`` passed after text was delivered. One rule for every timeout:
    it is a :class:`TimeoutError` (the SDK's and Python's) *and* a
    :class:`StreamInterruptedError`, with ``partial_text`` and ``partial_usage``
    when ``preserve_partial_response=True``."""


class InterruptedTotalTimeoutError(TotalTimeoutError, StreamInterruptedError):
    """``total_timeout`` passed after text was delivered: a :class:`TotalTimeoutError`
    and a :class:`StreamInterruptedError`, carrying the partial text and usage."""


class InterruptedInvalidResponseError(InvalidResponseError, StreamInterruptedError):
    """The provider sent something invalid (a field of the wrong type, bad JSON) after
    text was delivered: an :class:`InvalidResponseError` *and* a
    :class:`StreamInterruptedError`, carrying the partial text and usage when
    ``preserve_partial_response=True``."""


def scrub_chain(error: BaseException) -> None:
    """Cut every link of ``error``'s chain (``__cause__``, ``__context__``, and
    ``cause`` of an interruption) that leads to an exception which is not a
    :class:`SteerError`: a library's exception (h11, httpx, orjson ...) can hold raw
    server bytes, an echoed key among them, that no traceback walker may reach. SDK
    errors in the chain stay (their strings are redacted) and are scrubbed in turn."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        cause, context = node.__cause__, node.__context__
        if cause is not None and not isinstance(cause, SteerError):
            node.__cause__ = None
        elif cause is not None:
            stack.append(cause)
        if context is not None and not isinstance(context, SteerError):
            node.__context__ = None
        elif context is not None:
            stack.append(context)
        link = getattr(node, "cause", None)
        if isinstance(link, SteerError):
            stack.append(link)
        elif isinstance(link, BaseException):
            node.cause = None  # type: ignore[attr-defined]


class ClientClosedError(ConfigurationError, RuntimeError):
    """A call on a client that was closed (``aclose()``, the end of its ``async with``
    block, ``SteerLLM.close()``): create a new client. Also a ``RuntimeError``."""
