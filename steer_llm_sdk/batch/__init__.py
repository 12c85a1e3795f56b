"""Batch jobs: many prompts with rate limits, a budget and resume.

    job = client.batch(items, model="gpt-4o-mini", requests_per_minute=500,
                       budget_usd=5.0, journal="job.sqlite", max_tokens=200)
    async for result in job:          # or: summary = await job.run()
        ...

Loaded only when used (``client.batch`` imports it); Ray only with ``engine="ray"``
(:mod:`steer_llm_sdk.batch.ray_engine`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BatchJob", "BatchResult", "BatchSummary", "InvalidItem", "Journal", "content_id"]


def __getattr__(name: str) -> Any:  # lazy: `steer-llm stream` does not load the runner
    if name == "Journal":
        from .journal import Journal

        return Journal
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(name)
