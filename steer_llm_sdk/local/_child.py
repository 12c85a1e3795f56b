"""The llama.cpp server process: run by path (``python _child.py CONFIG_JSON``).

It runs in a child process, not in the caller's, because constructing
``xllamacpp.Server`` holds the GIL for the whole model load (about a second for the
packaged Gemma, far longer for big models): from a thread of the caller's process
that would still freeze its event loop. Everything here is stdlib + ``xllamacpp``;
nothing of ``steer_llm_sdk`` is imported, so the child starts in ~50 ms.

Protocol with the parent (``_server.py``):

- argv[1]: a JSON object of settings (model path, threads, ctx_size, ...).
- The one line written to the original stdout: ``{"address": "http://127.0.0.1:PORT"}``
  once the model is loaded and the HTTP server listens, or ``{"error": "..."}``.
  Afterwards fd 1 is pointed at fd 2 (the parent's log file), so any stray
  ``printf`` of llama.cpp cannot fill a pipe nobody reads.
- The child serves until its stdin reaches EOF: the parent closes it to stop the
  server, and the OS closes it when the parent dies in any way, so no orphan is left.
  It then leaves with ``os._exit`` at once, never joining llama.cpp's threads.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _params(config: dict[str, Any]) -> Any:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = config["model_path"]
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the OS picks a free port; listening_address reports it
    params.n_ctx = int(config["ctx_size"])
    params.n_parallel = int(config["parallel"])
    # One KV pool shared by the slots: any single request may use the whole context.
    params.kv_unified = True
    params.cpuparams.n_threads = int(config["threads"])
    params.cpuparams_batch.n_threads = int(config["threads"])
    params.verbosity = int(config["verbosity"])  # 1: errors only; 3: llama.cpp's default
    params.ui = False  # no web UI
    if config.get("alias"):
        params.model_alias = {config["alias"]}  # the "model" field of responses
    params.cache_ram_mib = int(config["cache_ram_mib"])  # prompt cache (default 8 GiB)
    params.n_predict = int(config["n_predict"])  # cap when a request sets no max_tokens
    if config.get("repeat_penalty"):  # the default for requests that set none
        params.sampling.penalty_repeat = float(config["repeat_penalty"])
    template = config.get("chat_template") or ""
    if template:
        # A built-in template *name* ("gemma", "chatml", ...) is honoured only with
        # use_jinja=False; with jinja on, the string is taken as template text.
        params.use_jinja = bool(config.get("use_jinja", False))
        params.chat_template = template
    return params


def main() -> int:
    config = json.loads(sys.argv[1])
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        import xllamacpp

        server = xllamacpp.Server(_params(config))
        address = str(server.listening_address)
    except BaseException as exc:  # report every failure to the parent, then exit
        report.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        report.close()
        return 1
    report.write(json.dumps({"address": address}) + "\n")
    report.close()
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (KeyboardInterrupt, OSError):
        pass
    # Exit here, while `server` is still referenced: dropping it would stop llama.cpp's
    # server by joining its HTTP thread, which has been seen to hang for minutes. The
    # process's exit ends every thread and closes the socket at once; nothing is lost.
    sys.stderr.flush()
    os._exit(0 if server is not None else 1)


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: nothing is left to clean up
