"""Run the emulator standalone: ``python -m steer_llm_sdk.testing --port 8011``."""

from __future__ import annotations

import argparse
import asyncio

from .emulator import Emulator


async def _serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        host=args.host,
        port=args.port,
        reply_words=args.reply_words,
        chunk_words=args.chunk_words,
        delay_between_chunks=args.delay,
        requests_per_minute=args.rpm,
        tokens_per_minute=args.tpm,
        rate_window=args.rate_window,
        batch_delay=args.batch_delay,
    )
    await emulator.start()
    print(f"OpenAI base URL:    {emulator.openai_base_url}", flush=True)
    print(f"Anthropic base URL: {emulator.anthropic_base_url}", flush=True)
    print(f"Gemini base URL:    {emulator.gemini_base_url}", flush=True)
    print(f"Bedrock endpoint:   {emulator.bedrock_base_url}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="OpenAI + Anthropic wire-protocol emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--reply-words", type=int, default=60, help="words in the default reply")
    parser.add_argument("--chunk-words", type=int, default=1, help="words per streamed chunk")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    parser.add_argument("--rpm", type=float, help="requests per minute per API key (429 above)")
    parser.add_argument("--tpm", type=float, help="tokens per minute per API key (429 above)")
    parser.add_argument(
        "--rate-window", type=float, default=60.0, help="seconds over which limits are counted"
    )
    parser.add_argument(
        "--batch-delay", type=float, default=0.2, help="seconds until a batch (batch APIs) ends"
    )
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
