"""``steer-llm serve``: a chat page, ``/api/chat`` (the AI SDK's UI message stream,
resumable with ``--resumable``) and ``/v1/chat/completions`` (OpenAI-compatible) on
one port, over any model this SDK reaches (the local model by default)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ConfigurationError, SteerError
from ..results import Finish, StreamingResponse

__all__ = ["add_parser", "build_app", "run"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
LOCAL_MAX_TOKENS = 640  # as `steer-llm stream` caps the local model
_OPENAI_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
)
_MAX_BODY = 32 * 1024 * 1024


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to ``steer-llm``'s sub-commands."""
    p = subparsers.add_parser(
        "serve",
        help="a chat page, /api/chat (useChat) and /v1/chat/completions on one port",
        description="A chat page, /api/chat (the AI SDK's UI message stream: useChat works "
        "against it; resumable with --resumable) and /v1/chat/completions (OpenAI-compatible) "
        "on one port, over any model this SDK reaches (the local model by default).",
    )
    p.add_argument("-m", "--model", help="the model (default: the local model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument(
        "--token",
        help="bearer token the API requires (default: none on 127.0.0.1, else one is "
        "generated and printed)",
    )
    p.add_argument(
        "--base-url",
        help="the model's server (an OpenAI-compatible one for names this SDK does not know)",
    )
    p.add_argument("--resumable", action="store_true", help="answers survive a reload")
    p.add_argument("--redis", metavar="URL", help="keep resumable answers in Redis")
    p.add_argument(
        "--resume-timeout",
        type=float,
        default=60.0,
        help="seconds an answer runs on while no client listens (default 60)",
    )
    p.add_argument("--keepalive", type=float, default=15.0, help="seconds between keep-alives")
    p.add_argument("--max-tokens", type=int, help="cap each answer")
    p.add_argument("-s", "--system", help="a system prompt for the chat page's conversations")
    p.add_argument("-n", "--no-log", action="store_true", help="do not log exchanges")
    p.set_defaults(func=run)
    return p


class Exchange:
    """One exchange's log entry, written when its answer ends (or fails)."""

    def __init__(self, log: Any, conversation: str, model: str, prompt: str, params: Any):
        self.log = log
        self.conversation = conversation
        self.model = model
        self.prompt = prompt
        self.params = params
        self.started = time.perf_counter()

    def write(self, text: str, response: StreamingResponse | None, error: str | None) -> None:
        if self.log is None or not self.log.enabled:
            return
        usage = dict(response.usage) if response is not None else {}
        try:
            self.log.add(
                conversation_id=self.conversation,
                model=self.model,
                provider=response.provider if response else None,
                prompt=self.prompt,
                response=text,
                options={k: v for k, v in self.params.items() if k != "tools"},
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
                usage=usage or None,
                cost_usd=response.cost_usd if response else None,
                finish_reason=response.finish_reason if response else None,
                time_to_first_token=response.time_to_first_token if response else None,
                duration=response.duration if response else time.perf_counter() - self.started,
                tokens_per_second=response.tokens_per_second if response else None,
                error=error,
            )
        except Exception as exc:  # a broken log never costs the user the answer
            print(f"steer-llm serve: could not write the log ({exc})", file=sys.stderr)

    async def logged(self, stream: Any) -> AsyncIterator[Any]:
        """``stream``, passed through; the exchange logged when it ends."""
        texts: list[str] = []
        response: StreamingResponse | None = None
        error: str | None = "cancelled"
        try:
            async for part in stream:
                if type(part) is Finish:
                    response = part.response
                elif part.type == "text-delta":
                    texts.append(part.text)
                yield part
            error = None
        except Exception as exc:
            error = type(exc).__name__
            raise
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
            text = response.text if response is not None else "".join(texts)
            await asyncio.to_thread(self.write, text, response, error)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Serve:
    """The endpoints of ``steer-llm serve``."""

    def __init__(self, client: Any, model: str, token: str | None, **config: Any) -> None:
        self.client = client
        self.model = model
        self.token = token
        self.resumable: bool = config["resumable"]
        self.store = config["store"]
        self.resume_timeout: float = config["resume_timeout"]
        self.keepalive: float = config["keepalive"]
        self.defaults: dict[str, Any] = dict(config["params"] or {})
        self.system: str | None = config["system"]
        self.log = config["log"]
        from importlib import resources

        self.page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    def denied(self, request: Any) -> Any:
        import hmac

        from starlette.responses import PlainTextResponse

        if self.token is None:
            return None
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            return None
        return PlainTextResponse("a bearer token is required", 401, {"www-authenticate": "Bearer"})

    async def body_of(self, request: Any) -> Any:
        import orjson

        raw = await request.body()
        if len(raw) > _MAX_BODY:
            raise ConfigurationError(f"the request body is over {_MAX_BODY} bytes")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigurationError(f"the request body is not JSON ({exc})") from None

    async def index(self, request: Any) -> Any:
        from starlette.responses import HTMLResponse

        return HTMLResponse(self.page, headers={"cache-control": "no-store"})

    async def chat(self, request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        from .messages import from_ui_messages
        from .response import error_status, stream_response

        if (no := self.denied(request)) is not None:
            return no
        try:
            body = await self.body_of(request)
            messages = from_ui_messages(body)
            chat_id = body.get("id") if isinstance(body, dict) else None
            if not isinstance(chat_id, str) or not chat_id or len(chat_id) > 200:
                chat_id = uuid.uuid4().hex
            if self.system and messages[0].get("role") != "system":
                messages.insert(0, {"role": "system", "content": self.system})
            stream = self.client.stream_events(messages, model=self.model, **self.defaults)
        except ConfigurationError as exc:
            status, message, _ = error_status(exc)
            return PlainTextResponse(message, status)
        prompt = _last_user_text(messages)
        exchange = Exchange(self.log, chat_id, self.model, prompt, self.defaults)
        return stream_response(
            exchange.logged(stream),
            "ui",
            keepalive=self.keepalive,
            resumable=self.resumable,
            chat_id=chat_id,
            store=self.store,
            resume_timeout=self.resume_timeout,
        )

    async def resume(self, request: Any) -> Any:
        from starlette.responses import PlainTextResponse, Response

        from .response import resume_response

        if (no := self.denied(request)) is not None:
            return no
        if not self.resumable:
            return Response(None, 204)
        try:
            return resume_response(
                request.path_params["chat_id"],
                store=self.store,
                last_event_id=request.headers.get("last-event-id"),
                keepalive=self.keepalive,
            )
        except ConfigurationError as exc:
            return PlainTextResponse(str(exc), 400)

    async def completions(self, request: Any) -> Any:
        from .response import stream_response

        if (no := self.denied(request)) is not None:
            return no
        try:
            body = await self.body_of(request)
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ConfigurationError("the body needs a 'messages' list")
            name = body.get("model") or self.model
            if not isinstance(name, str):
                raise ConfigurationError("'model' must be a string")
            call = dict(self.defaults)
            if body.get("max_completion_tokens") is not None:
                call["max_tokens"] = body["max_completion_tokens"]
            call.update({k: body[k] for k in _OPENAI_PARAMS if body.get(k) is not None})
            messages = body["messages"]
            prompt = _last_user_text(messages)
            exchange = Exchange(self.log, uuid.uuid4().hex[:16], name, prompt, call)
            if not body.get("stream"):
                return await _complete(self.client, exchange, messages, name, call)
            stream = self.client.stream_events(messages, model=name, **call)
        except SteerError as exc:
            return _openai_error(exc)
        options = body.get("stream_options") or {}
        response = stream_response(
            exchange.logged(stream), "openai", keepalive=self.keepalive, model=name
        )
        response.encoder.include_usage = bool(options.get("include_usage"))  # type: ignore[attr-defined]
        return response

    async def models(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        if (no := self.denied(request)) is not None:
            return no
        item = {"id": self.model, "object": "model", "created": 0, "owned_by": "steer-llm"}
        return JSONResponse({"object": "list", "data": [item]})


def build_app(
    client: Any,
    model: str,
    *,
    token: str | None = None,
    resumable: bool = False,
    store: Any = None,
    resume_timeout: float = 60.0,
    keepalive: float = 15.0,
    params: dict[str, Any] | None = None,
    system: str | None = None,
    log: Any = None,
    lifespan: Any = None,
) -> Any:
    """The Starlette app of ``steer-llm serve`` (usable on its own, e.g. in tests).
    ``token``: the bearer token the API requires (the page itself is public)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    s = _Serve(
        client,
        model,
        token,
        resumable=resumable,
        store=store,
        resume_timeout=resume_timeout,
        keepalive=keepalive,
        params=params,
        system=system,
        log=log,
    )
    routes = [
        Route("/", s.index),
        Route("/api/chat", s.chat, methods=["POST"]),
        Route("/api/chat/{chat_id}/stream", s.resume, methods=["GET"]),
        Route("/v1/chat/completions", s.completions, methods=["POST"]),
        Route("/v1/models", s.models, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _openai_error(exc: BaseException) -> Any:
    from starlette.responses import JSONResponse

    from .response import error_status

    status, message, headers = error_status(exc)
    kind = {400: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
    return JSONResponse(
        {"error": {"message": message, "type": kind, "code": status}}, status, headers
    )


async def _complete(
    client: Any, exchange: Exchange, messages: Any, model: str, params: dict[str, Any]
) -> Any:
    from starlette.responses import JSONResponse

    try:
        r = await client.stream_with_usage(messages, model=model, **params)
    except SteerError as exc:
        await asyncio.to_thread(exchange.write, "", None, type(exc).__name__)
        return _openai_error(exc)
    await asyncio.to_thread(exchange.write, r.text, r, None)
    message: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in r.tool_calls
        ]
    reason = r.finish_reason if r.finish_reason in ("stop", "length", "tool_calls") else "stop"
    usage = {
        k: int(r.usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    return JSONResponse(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": reason}],
            "usage": usage,
        }
    )


def _model_and_client(args: argparse.Namespace) -> tuple[str, Any, bool]:
    """The model name, a client for it and whether it is the local model."""
    from ..catalog import LOCAL_DEFAULT, resolve_model
    from ..cli_common import UsageError, check_route, resolve_for_cli
    from ..client import SteerLLMClient

    model = args.model or LOCAL_DEFAULT
    if args.base_url:
        try:
            known = resolve_model(model)
        except ConfigurationError:
            known = None
        if known is None or known.provider.local:
            name = model if known is None else known.model
            client = SteerLLMClient(providers={"serve": {"base_url": args.base_url}})
            return f"serve/{name}", client, False
        check_route(known)
        return model, SteerLLMClient(base_urls={known.provider.name: args.base_url}), False
    try:
        route = resolve_for_cli(model)
    except ConfigurationError as exc:
        raise UsageError(str(exc)) from None
    check_route(route)
    return model, SteerLLMClient(), route.provider.local


def run(args: argparse.Namespace) -> int:
    """Run ``steer-llm serve`` until Ctrl-C."""
    import secrets
    import socket

    from ..cli_common import UsageError

    try:
        import uvicorn
    except ImportError:
        raise UsageError(
            "steer-llm serve needs uvicorn: pip install 'steer-llm-sdk[web]'"
        ) from None
    model, client, local = _model_and_client(args)
    token = args.token
    if token is None and args.host not in LOCAL_HOSTS:
        token = secrets.token_urlsafe(24)
    store = None
    if args.resumable:
        from .store import RedisStore, SQLiteStore

        store = RedisStore(args.redis) if args.redis else SQLiteStore()
    elif args.redis:
        raise UsageError("--redis keeps resumable answers: add --resumable")
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    elif local:
        params["max_tokens"] = LOCAL_MAX_TOKENS
    log = None
    if not args.no_log:
        from ..cli_logs import LogStore

        log = LogStore()
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({exc.strerror})") from None
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/"

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if local:
            from ..catalog import resolve_model
            from ..local import ensure_server

            print(f"steer-llm serve: starting the local model {model} ...", file=sys.stderr)
            await ensure_server(resolve_model(model).model)
        print(f"steer-llm serve: {model} on {url}", file=sys.stderr)
        if token:
            print(f"steer-llm serve: token {token}  (page: {url}#token={token})", file=sys.stderr)
        print(f"steer-llm serve: ready {url}", file=sys.stderr, flush=True)
        try:
            yield
        finally:
            await client.aclose()

    app = build_app(
        client,
        model,
        token=token,
        resumable=args.resumable,
        store=store,
        resume_timeout=args.resume_timeout,
        keepalive=args.keepalive,
        params=params,
        system=args.system,
        log=log,
        lifespan=lifespan,
    )
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
    return 0
