"""Batch jobs: many prompts with rate limits, a budget and resume.

    job = client.batch(items, model="gpt-4o-mini", requests_per_minute=500,
                       budget_usd=5.0, journal="job.sqlite", max_tokens=200)
    async for result in job:          # or: summary = await job.run()
        ...

Imported only when used (``client.batch`` imports it); Ray is imported only by
``engine="ray"`` (:mod:`steer_llm_sdk.batch.ray_engine`).
"""

from .journal import Journal
from .runner import BatchJob, BatchResult, BatchSummary, content_id

__all__ = ["BatchJob", "BatchResult", "BatchSummary", "Journal", "content_id"]
