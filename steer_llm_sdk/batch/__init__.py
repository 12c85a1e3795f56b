"""Batch jobs: many prompts with rate limits, a budget and resume.

    job = client.batch(items, model="gpt-4o-mini", requests_per_minute=500,
                       budget_usd=5.0, journal="job.sqlite", max_tokens=200)
    async for result in job:          # or: summary = await job.run()
        ...

Loaded only when used (``client.batch`` imports it); Ray only with ``engine="ray"``
(:mod:`steer_llm_sdk.batch.ray_engine`). The modules: ``items`` (options, items,
results), ``attempt`` (one item's requests, both engines), ``runner`` (the local
engine), ``recorder`` (its journal and output file), ``ray_engine``, ``journal``,
``limits``, ``cli``. None of them imports the client: what they need of it is
:class:`~steer_llm_sdk.batch.attempt.BatchClient`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .attempt import BatchClient
    from .provider import ProviderBatchJob
    from .ray_engine import RayBatchJob
    from .runner import BatchJob

__all__ = [
    "BatchJob",
    "BatchResult",
    "BatchSummary",
    "InvalidItem",
    "Journal",
    "ProviderBatchJob",
    "RayBatchJob",
    "content_id",
    "make_job",
]


def make_job(
    client: BatchClient, items: Any, model: str | None, **options: Any
) -> BatchJob | RayBatchJob | ProviderBatchJob:
    """``client.batch(...)``: the local engine, Ray with ``engine="ray"``, or the
    providers' batch APIs with ``mode="provider"`` (or ``"auto"``)."""
    from ..errors import ConfigurationError
    from .modes import check_known, choose_mode

    if model is not None and not isinstance(model, str):
        raise ConfigurationError(
            "batch() takes a model name or the name of one of the client's routes (a job "
            "keys its journal and rate windows by name): SteerLLMClient(routes={'smart': "
            "[...]}), then model='smart'"
        )
    check_known(options)
    mode = choose_mode(client, model, options)
    if mode == "provider":
        from .provider import ProviderBatchJob

        return ProviderBatchJob(client, items, model, **options)
    engine = options.pop("engine", "local")
    if engine == "ray":
        from .ray_engine import RayBatchJob

        return RayBatchJob(client, items, model, **options)
    if engine != "local":
        raise ConfigurationError(f"engine={engine!r} is not known: use 'local' or 'ray'")
    for name in ("ray_address", "num_actors", "batch_size", "num_blocks"):
        if name in options:
            raise ConfigurationError(f"{name}= is an option of engine='ray'")
    from .runner import BatchJob

    return BatchJob(client, items, model, **options)


def __getattr__(name: str) -> Any:  # lazy: `steer-llm stream` does not load the runner
    if name == "Journal":
        from .journal import Journal

        return Journal
    if name == "BatchJob":
        from .runner import BatchJob

        return BatchJob
    if name == "ProviderBatchJob":
        from .provider import ProviderBatchJob

        return ProviderBatchJob
    if name == "RayBatchJob":  # Ray itself only when a job runs
        from .ray_engine import RayBatchJob

        return RayBatchJob
    if name in ("BatchResult", "BatchSummary", "InvalidItem", "content_id"):
        from . import items

        return getattr(items, name)
    raise AttributeError(name)
