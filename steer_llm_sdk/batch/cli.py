"""``steer-llm batch INPUT -o OUTPUT -m MODEL ...``: a batch job from the command line.

INPUT is JSONL (one item per line: a prompt string, a list of messages, or an object
with ``custom_id`` and ``prompt`` or ``messages`` plus per-item parameters), or ``-``
for standard input. OUTPUT is JSONL, one result per line. The journal lives next to
the output (``OUTPUT.journal``); when it exists, the command resumes the job.

Ctrl-C stops starting new items and waits for those in flight; a second Ctrl-C stops
at once. Either way the journal stays resumable: run the same command again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["add_parser", "run"]

_READ_LINES = 1024
EXIT_FAILED_ITEMS = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` command to ``steer-llm``'s sub-commands."""
    p = subparsers.add_parser(
        "batch",
        help="run a JSONL file of prompts with rate limits, a budget and resume",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="JSONL file of items, or '-' for standard input")
    p.add_argument("-o", "--output", required=True, help="JSONL file for the results")
    p.add_argument("-m", "--model", help="model for items that name none")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight (default 32)")
    p.add_argument("--rpm", type=float, help="requests per minute (per provider)")
    p.add_argument("--tpm", type=float, help="tokens per minute (per provider)")
    p.add_argument(
        "--budget-usd", type=float, help="stop starting items past this cost (needs --max-tokens)"
    )
    p.add_argument("--max-tokens", type=int, help="cap each answer (needed with --budget-usd)")
    p.add_argument("-t", "--temperature", type=float)
    p.add_argument("-s", "--system", help="a system prompt for every item")
    p.add_argument(
        "--schema",
        help="structured output for every item: a JSON schema file, JSON text, or a short "
        "form such as 'name str, age int, bio: a short biography' (as steer-llm stream)",
    )
    p.add_argument("--max-attempts", type=int, default=5, help="HTTP requests per item (5)")
    p.add_argument("--journal", help="journal path (default: OUTPUT.journal)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument(
        "--mode",
        choices=("online", "provider", "auto"),
        default="online",
        help="online: a request per item (default); provider: the providers' batch APIs "
        "(half price, answers within 24 hours); auto: provider unless --deadline is sooner",
    )
    p.add_argument("--poll-interval", type=float, help="seconds between polls (provider mode, 30)")
    p.add_argument("--deadline", type=float, help="seconds the job may take (with --mode auto)")
    p.add_argument(
        "--retry-online",
        action="store_true",
        help="provider mode: run items that expired or failed with a retryable error online",
    )
    p.add_argument("--address", help="Ray cluster address (with --engine ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the ``batch`` command; returns the exit status."""
    problem = _check_args(args)
    if problem:
        return _fail(problem)
    try:
        return asyncio.run(_main(args, resuming=os.path.exists(_journal_path(args))))
    except KeyboardInterrupt:  # a Ctrl-C before the handlers were installed
        print("\nsteer-llm batch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _fail(message: str) -> int:
    print(f"steer-llm batch: {message}", file=sys.stderr)
    return EXIT_USAGE


def _job_options(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    from ..cli_common import UsageError, parse_schema

    options: dict[str, Any] = {}
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.system:
        options["system"] = args.system
    if args.schema:
        try:
            options["output"] = parse_schema(args.schema)
        except UsageError as exc:
            return {}, str(exc)
    return options, None


def _limits(args: argparse.Namespace, journal: str) -> dict[str, Any]:
    """The job's limits and journal, the same for both engines."""
    return {
        "concurrency": args.concurrency,
        "requests_per_minute": args.rpm,
        "tokens_per_minute": args.tpm,
        "budget_usd": args.budget_usd,
        "max_attempts": args.max_attempts,
        "journal": journal,
    }


def _model_problem(model: str) -> str | None:
    """An unknown model or a missing key, said for the command line, before any item."""
    from ..cli_common import UsageError, check_route, cli_routes, resolve_for_cli

    try:
        check_route(resolve_for_cli(model, cli_routes()))
    except UsageError as exc:
        return str(exc)
    return None


def _routes() -> dict[str, Any]:
    from ..cli_common import cli_routes

    return cli_routes()


def _journal_path(args: argparse.Namespace) -> str:
    return str(args.journal or args.output + ".journal")


def _check_args(args: argparse.Namespace) -> str | None:
    if args.budget_usd is not None and args.max_tokens is None:
        return (
            "--budget-usd needs --max-tokens: each request's worst case (its max tokens at "
            "the model's price) is what keeps the job under the budget"
        )
    if args.input != "-" and not os.path.isfile(args.input):
        return f"no such input file: {args.input}"
    journal = _journal_path(args)
    if os.path.exists(args.output) and not os.path.exists(journal):
        return (
            f"{args.output} exists and has no journal ({journal}): it is not a job to resume; "
            "remove it or choose another output"
        )
    return None


async def _main(args: argparse.Namespace, *, resuming: bool) -> int:
    from ..catalog import default_model_choice
    from ..errors import SteerError

    model = args.model
    if not model:
        model, source = default_model_choice()
        if source != "local":
            note = f"model {model} (the default; -m picks another)"
            print(f"steer-llm batch: {note}", file=sys.stderr)
    options, problem = _job_options(args)
    problem = problem or _model_problem(model)
    if problem:
        return _fail(problem)
    output = args.output
    journal = _journal_path(args)
    if args.engine == "ray":
        return await _run_ray(args, model, options, journal)
    from ..client import SteerLLMClient
    from . import make_job

    total = _count_lines(args.input) if args.input != "-" else None
    async with SteerLLMClient(routes=_routes() or None) as client:
        try:
            job = make_job(
                client,
                _read_items(args.input),
                model,
                output_path=output,
                **_limits(args, journal),
                **_mode_options(args),
                **options,
            )
        except SteerError as exc:
            return _fail(str(exc))
        job.total = total  # type: ignore[union-attr]
        if resuming:
            print(f"steer-llm batch: resuming the job in {journal}", file=sys.stderr)
        interrupts = _install_interrupts(job)
        progress = None
        if sys.stderr.isatty() and not args.no_progress:
            progress = asyncio.create_task(_progress(job))
        try:
            summary = await job.run()
        except SteerError as exc:
            return _fail(str(exc))
        finally:
            if progress is not None:
                progress.cancel()
                await asyncio.gather(progress, return_exceptions=True)
            interrupts()
    print(f"steer-llm batch: {summary}", file=sys.stderr)
    if summary.stopped == "interrupted":
        return EXIT_INTERRUPTED
    if summary.stopped == "budget":
        return EXIT_BUDGET
    return EXIT_FAILED_ITEMS if summary.failed or summary.retryable_failed else 0


def _mode_options(args: argparse.Namespace) -> dict[str, Any]:
    """--mode and the provider mode's options (only those given)."""
    options: dict[str, Any] = {}
    if args.mode != "online":
        options["mode"] = args.mode
    if args.poll_interval is not None:
        options["poll_interval"] = args.poll_interval
    if args.deadline is not None:
        options["deadline"] = args.deadline
    if args.retry_online:
        options["retry_online"] = True
    return options


def _install_interrupts(job: Any) -> Any:
    """First Ctrl-C (or SIGTERM): stop dispatching; second: stop at once (in provider
    mode: cancel the submitted batches and exit)."""
    loop = asyncio.get_running_loop()
    count = 0

    def on_signal() -> None:
        nonlocal count
        count += 1
        if count == 1 and hasattr(job, "batches"):
            job.stop()
            print(
                f"\nsteer-llm batch: no more batches will be submitted; waiting for the "
                f"{job.batches} provider batches submitted (Ctrl-C again to cancel them). "
                "Killed or stopped, run the same command to resume.",
                file=sys.stderr,
            )
        elif count == 1:
            job.stop()
            print(
                f"\nsteer-llm batch: stopping; waiting for {job.in_flight} requests in flight "
                "(Ctrl-C again to stop at once). Run the same command to resume.",
                file=sys.stderr,
            )
        else:
            job.abort()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


def _count_lines(path: str) -> int | None:
    """Non-empty lines (for the ETA); None when it would take long (huge files)."""
    try:
        if os.path.getsize(path) > 2_000_000_000:
            return None
        count = 0
        last = b"\n"
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                count += block.count(b"\n")
                last = block[-1:]
        return count + (last != b"\n")
    except OSError:
        return None


async def _read_items(path: str) -> AsyncIterator[Any]:
    """Items from JSONL, read in a thread a block of lines at a time (memory flat)."""
    import orjson

    from .runner import InvalidItem

    stream = sys.stdin.buffer if path == "-" else await asyncio.to_thread(open, path, "rb")
    number = 0
    try:
        while True:
            lines = await asyncio.to_thread(_read_block, stream)
            if not lines:
                return
            for line in lines:
                number += 1
                if not line.strip():
                    continue
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield InvalidItem(f"line:{number}", f"line {number} is not JSON: {exc}")
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _read_block(stream: Any) -> list[bytes]:
    lines = []
    for _ in range(_READ_LINES):
        line = stream.readline()
        if not line:
            break
        lines.append(line)
    return lines


async def _progress(job: Any) -> None:
    """A progress bar on standard error: rich's when installed, else one line."""
    try:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )
    except ImportError:
        await _plain_progress(job)
        return
    columns = [
        TextColumn("[bold]batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("batch", total=job.total, detail="")
        while True:
            done, detail = _figures(job)
            bar.update(task, completed=done, detail=detail)
            await asyncio.sleep(0.25)


async def _plain_progress(job: Any) -> None:
    while True:
        done, detail = _figures(job)
        total = f"/{job.total}" if job.total else ""
        sys.stderr.write(f"\rbatch {done}{total} {detail}   ")
        sys.stderr.flush()
        await asyncio.sleep(0.5)


def _figures(job: Any) -> tuple[int, str]:
    s = job.summary
    done = s.succeeded + s.failed + s.retryable_failed + s.skipped + s.duplicates
    elapsed = max(1e-9, time.perf_counter() - _figures_start(job))
    rate = (s.succeeded + s.failed) / elapsed
    tokens = s.prompt_tokens + s.completion_tokens
    failed = s.failed + s.retryable_failed
    if hasattr(job, "batches"):  # provider mode
        return done, (
            f"{job.submitted:,} submitted  {job.in_progress:,} in progress  {failed} failed  "
            f"{tokens:,} tokens  ${s.cost_usd:.4f}"
        )
    return done, f"{failed} failed  {rate:.1f}/s  {tokens:,} tokens  ${s.cost_usd:.4f}"


def _figures_start(job: Any) -> float:
    start = getattr(job, "_progress_start", None)
    if start is None:
        start = time.perf_counter()
        job._progress_start = start
    return float(start)


async def _run_ray(
    args: argparse.Namespace, model: str, options: dict[str, Any], journal: str
) -> int:
    """``steer-llm batch --engine ray``."""
    from ..client import SteerLLMClient
    from ..errors import SteerError
    from .ray_engine import RayBatchJob

    if args.input == "-":
        return _fail("--engine ray reads a file, not standard input")
    async with SteerLLMClient(routes=_routes() or None) as client:
        try:
            job = RayBatchJob(
                client,
                args.input,
                model,
                output_path=args.output,
                ray_address=args.address,
                **_limits(args, journal),
                **options,
            )
            summary = await job.run()
        except SteerError as exc:
            return _fail(str(exc))
    print(f"steer-llm batch: {summary}", file=sys.stderr)
    if summary.stopped == "budget":
        return EXIT_BUDGET
    return EXIT_FAILED_ITEMS if summary.failed or summary.retryable_failed else 0
