"""The ``steer-llm`` command: stream from any model in a terminal.

steer-llm stream "Tell me a story"            # the local model when no key is set
echo "Summarise this" | steer-llm stream -    # the prompt from stdin
steer-llm stream --model gpt-4o-mini --usage "Hello"
steer-llm models
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

__all__ = ["main"]

LOCAL_DEFAULT = "local/gemma-3-270m"
# The default model when the user names none: the first provider with a key, else local.
_DEFAULTS = (
    ("OPENAI_API_KEY", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "claude-3-5-haiku-latest"),
    ("XAI_API_KEY", "grok-3-mini"),
)


def default_model() -> str:
    explicit = os.environ.get("STEER_DEFAULT_MODEL")
    if explicit:
        return explicit
    for env, model in _DEFAULTS:
        if os.environ.get(env):
            return model
    return LOCAL_DEFAULT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steer-llm", description="Stream answers from LLMs (OpenAI, Anthropic, local ...)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stream", help="stream an answer to the terminal")
    s.add_argument("prompt", nargs="?", help="the prompt; '-' or omitted reads standard input")
    s.add_argument("-m", "--model", help=f"model name (default: {LOCAL_DEFAULT} without keys)")
    s.add_argument("-s", "--system", help="a system prompt")
    s.add_argument("--max-tokens", type=int, help="cap the answer's length in tokens")
    s.add_argument("-t", "--temperature", type=float)
    s.add_argument("--json", action="store_true", help="JSON mode: print the parsed object")
    s.add_argument(
        "--usage",
        action="store_true",
        help="print usage, cost, time to first token and tokens/s to stderr when done",
    )
    sub.add_parser("models", help="list providers, example models and whether keys are set")
    from .batch.cli import add_parser as add_batch_parser

    add_batch_parser(sub)
    return parser


def _read_prompt(arg: str | None) -> str:
    if arg and arg != "-":
        return arg
    if arg is None and sys.stdin.isatty():
        raise SystemExit("steer-llm: give a prompt, or pipe one in (use '-' for stdin)")
    text = sys.stdin.read()
    if not text.strip():
        raise SystemExit("steer-llm: the prompt from standard input is empty")
    return text


async def _stream(args: argparse.Namespace) -> int:
    import json

    from . import SteerError, SteerLLMClient
    from .models.streaming import StreamingOptions

    prompt = _read_prompt(args.prompt)
    model = args.model or default_model()
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    out = sys.stdout
    async with SteerLLMClient() as client:
        try:
            if args.json:
                response = await client.stream_with_usage(
                    messages,
                    model,
                    response_format={"type": "json_object"},
                    streaming_options=StreamingOptions(enable_json_stream_handler=True),
                    **params,
                )
                print(json.dumps(response.get_json(), indent=2, ensure_ascii=False))
            else:
                options = StreamingOptions(on_delta=lambda text: (out.write(text), out.flush()))
                response = await client.stream_with_usage(
                    messages, model, streaming_options=options, **params
                )
                if not response.text.endswith("\n"):
                    out.write("\n")
        except SteerError as exc:
            print(f"\nsteer-llm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if args.usage:
        usage = response.usage
        cost = "unknown" if response.cost_usd is None else f"${response.cost_usd:.6f}"
        ttft = response.time_to_first_token
        tps = response.tokens_per_second
        print(
            f"[{response.provider}/{response.model}] "
            f"prompt={usage.get('prompt_tokens')} completion={usage.get('completion_tokens')} "
            f"total={usage.get('total_tokens')}{' (estimated)' if usage.get('estimated') else ''}"
            f" cost={cost} first_token={'-' if ttft is None else f'{ttft * 1000:.0f}ms'} "
            f"tokens/s={'-' if tps is None else f'{tps:.1f}'} "
            f"finish={response.finish_reason}",
            file=sys.stderr,
        )
    return 0


def _models() -> int:
    from .catalog import PROVIDERS

    for spec in PROVIDERS.values():
        if spec.local:
            status = "no key needed (pip install 'steer-llm-sdk[local]')"
        elif spec.key_env is None or not spec.key_required:
            status = "no key needed"
        else:
            status = "key set" if os.environ.get(spec.key_env) else f"set {spec.key_env}"
        examples = ", ".join(spec.examples) or f"{spec.name}/<model>"
        print(f"{spec.name:<11} {status:<40} {examples}")
    print(f"\ndefault model now: {default_model()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "models":
        return _models()
    if args.command == "batch":
        from .batch.cli import run as run_batch

        return run_batch(args)
    try:
        return asyncio.run(_stream(args))
    except KeyboardInterrupt:
        print("\nsteer-llm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
