"""Start, share and stop llama.cpp server processes (one per model and settings)."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import http.client
import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigurationError, SteerError, TimeoutError
from ._model import (
    DEFAULT_LOCAL_MODEL,
    ModelSpec,
    cache_dir,
    chat_template,
    describe,
    gguf_path,
)

logger = logging.getLogger("steer_llm_sdk")

DEFAULT_CTX_SIZE = 8192
DEFAULT_PARALLEL = 4
# The server's cap on one answer when the caller sets no max_tokens: a small model can
# otherwise go on until the context is full (minutes of repetition).
DEFAULT_MAX_TOKENS = 2048
SMOLLM2_REPEAT_PENALTY = 1.15
_CACHE_RAM_MIB = 1024  # llama.cpp's prompt cache; its own default is 8 GiB
_START_TIMEOUT = 300.0  # seconds for the model to load (big GGUFs on slow disks)
_HEALTH_TIMEOUT = 30.0
_STOP_GRACE = 0.5  # then the server is killed: it holds nothing worth a clean stop
_CHILD = Path(__file__).with_name("_child.py")


@dataclass(frozen=True)
class _Settings:
    # 0: chosen when the server starts, from the cores free then (default_threads).
    # Not at each call: the settings are the key of the shared server, and a key that
    # moved with the load average started a second server for the same model.
    threads: int
    ctx_size: int
    parallel: int
    chat_template: str  # STEER_LOCAL_CHAT_TEMPLATE: a built-in name or a Jinja file
    verbosity: int
    max_tokens: int


@dataclass
class _Entry:
    """One server: starting (``future`` pending), running, or failed."""

    label: str
    future: concurrent.futures.Future[str] = field(default_factory=concurrent.futures.Future)
    process: subprocess.Popen[bytes] | None = None
    stopping: bool = False


_lock = threading.Lock()
_servers: dict[tuple[Any, ...], _Entry] = {}


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for llama.cpp: the cores this process may use that are not already busy
    (by the 1-minute load average), at least one.

    One thread per core is the worst choice on a busy machine: llama.cpp's threads
    wait for each other at every layer, so one descheduled thread stalls them all
    (measured on a busy 2-core machine: 4-6 tokens/s with 2 threads, 34-50 with 1)."""
    cores = _cpu_count()
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} must be a whole number") from None
    if number < 1:
        raise ConfigurationError(f"{name}={value!r} must be at least 1")
    return number


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"{name}={value!r} must be a whole number of at least 1")
    return value


def _settings(threads: int | None, ctx_size: int | None, parallel: int | None) -> _Settings:
    verbose = os.environ.get("STEER_LOCAL_VERBOSE", "").strip().lower() in {"1", "true", "yes"}
    return _Settings(
        threads=_positive("threads", threads) or _env_int("STEER_LOCAL_THREADS") or 0,
        ctx_size=_positive("ctx_size", ctx_size)
        or _env_int("STEER_LOCAL_CTX_SIZE")
        or DEFAULT_CTX_SIZE,
        parallel=_positive("parallel", parallel)
        or _env_int("STEER_LOCAL_PARALLEL")
        or DEFAULT_PARALLEL,
        chat_template=os.environ.get("STEER_LOCAL_CHAT_TEMPLATE", "").strip(),
        verbosity=3 if verbose else 1,
        max_tokens=_env_int("STEER_LOCAL_MAX_TOKENS") or DEFAULT_MAX_TOKENS,
    )


def log_path() -> Path:
    """Where llama.cpp's own output goes (errors only, unless STEER_LOCAL_VERBOSE=1)."""
    return cache_dir() / "llama-server.log"


def _log_tail(path: Path, start: int, limit: int = 1500) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    return text[-limit:]


def _read_report(process: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The child's one JSON line, or a dict with "error" if it died or took too long."""
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        process.kill()  # EOF on the pipe ends the read below

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
    finally:
        timer.cancel()
        if process.stdout is not None:
            process.stdout.close()
    if timed_out.is_set():
        return {"error": "timeout"}
    if not line:
        return {"error": f"the llama.cpp process exited (code {process.wait()})"}
    try:
        report = json.loads(line)
    except ValueError:
        return {"error": f"unexpected output from the llama.cpp process: {line[:200]!r}"}
    return report if isinstance(report, dict) else {"error": repr(report)}


def _wait_healthy(url: str, timeout: float) -> None:
    """Poll GET /health until it answers 200 (503 while the model loads)."""
    host, _, port = url.removeprefix("http://").partition(":")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", "/health")
            response = conn.getresponse()
            body = response.read()
            if response.status == 200:
                return
            last = f"HTTP {response.status} {body[:200]!r}"
        except OSError as exc:
            last = str(exc)
        finally:
            conn.close()
        time.sleep(0.05)
    raise TimeoutError(f"llama.cpp at {url} was not healthy after {timeout:.0f}s ({last})")


def _start(entry: _Entry, spec: ModelSpec, settings: _Settings) -> str:
    """Blocking: assemble the GGUF if needed, spawn the child, wait until it serves."""
    started = time.perf_counter()
    path = gguf_path(spec)
    template, use_jinja = chat_template(spec, path, settings.chat_template)
    threads = settings.threads or default_threads()
    config = {
        "model_path": str(path),
        "threads": threads,
        "ctx_size": settings.ctx_size,
        "parallel": settings.parallel,
        "chat_template": template,
        "use_jinja": use_jinja,
        "verbosity": settings.verbosity,
        "cache_ram_mib": _CACHE_RAM_MIB,
        "alias": spec.alias,
        "n_predict": settings.max_tokens,
        # SmolLM2 135M, sampled as llama.cpp does by default, ends a story (finish=stop)
        # in about 1 run of 3 and repeats itself otherwise; with a repetition penalty of
        # 1.15 it ends it in about 7 of 8 (measured, 640-token cap). Other GGUFs keep
        # llama.cpp's default; a request's own repeat_penalty always wins.
        "repeat_penalty": SMOLLM2_REPEAT_PENALTY if spec.packaged == "smollm2" else None,
    }
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as log_file:
        log_start = log_file.tell()
        with _lock:
            if entry.stopping:
                raise SteerError("the local server was stopped while it was starting")
            entry.process = subprocess.Popen(
                [sys.executable, str(_CHILD), json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                # Its own session: a Ctrl-C in the terminal reaches the caller, which
                # then stops the server, instead of killing the server mid-stream.
                start_new_session=True,
                close_fds=True,
            )
    process = entry.process
    report = _read_report(process, _START_TIMEOUT)
    if "address" not in report:
        _terminate(process)
        error = str(report.get("error", report))
        if error == "timeout":
            raise TimeoutError(
                f"llama.cpp did not load {path} within {_START_TIMEOUT:.0f}s (log: {log})"
            )
        tail = _log_tail(log, log_start)
        raise ConfigurationError(
            f"llama.cpp could not serve {path}: {error}" + (f"\n{tail}" if tail else "")
        )
    url = str(report["address"]).rstrip("/")
    if not url.startswith("http"):
        url = "http://" + url
    try:
        _wait_healthy(url, _HEALTH_TIMEOUT)
    except BaseException:
        _terminate(process)
        raise
    logger.info(
        "local model %s served by llama.cpp at %s (pid %d, %d threads, ctx %d) in %.2fs",
        entry.label,
        url,
        process.pid,
        threads,
        settings.ctx_size,
        time.perf_counter() - started,
    )
    return url


def _run_start(key: tuple[Any, ...], entry: _Entry, spec: ModelSpec, settings: _Settings) -> None:
    try:
        url = _start(entry, spec, settings)
    except BaseException as exc:
        with _lock:
            if _servers.get(key) is entry:
                del _servers[key]  # a later call tries again
        entry.future.set_exception(exc)
        return
    entry.future.set_result(url)


async def ensure_server(
    model: str = DEFAULT_LOCAL_MODEL,
    *,
    threads: int | None = None,
    ctx_size: int | None = None,
    parallel: int | None = None,
) -> str:
    """The base URL (``http://127.0.0.1:PORT``, without ``/v1``) of a llama.cpp server
    for ``model``, starting one on first use.

    One server per process for each model and settings, shared by every caller and
    every event loop; concurrent first callers wait for the same start. Assembling the
    GGUF and loading the model run off the event loop. The server stops at exit.
    Raises ConfigurationError for an unknown model or a missing ``local`` extra.
    """
    spec = describe(model)
    settings = _settings(threads, ctx_size, parallel)
    key = (str(spec.path) if spec.path else spec.name.lower(), settings)
    with _lock:
        entry = _servers.get(key)
        if entry is not None and entry.future.done() and entry.process is not None:
            if entry.process.poll() is not None:  # it died: start a new one
                logger.warning(
                    "the llama.cpp server for %s exited (code %s); starting it again",
                    entry.label,
                    entry.process.returncode,
                )
                entry = None
        if entry is None:
            entry = _Entry(label=str(spec.path or spec.name))
            entry.future.set_running_or_notify_cancel()  # a waiter's cancel can't cancel it
            _servers[key] = entry
            threading.Thread(
                target=_run_start,
                args=(key, entry, spec, settings),
                name="steer-local-server-start",
                daemon=True,
            ).start()
    return await asyncio.wrap_future(entry.future)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    stdin: IO[bytes] | None = process.stdin
    try:
        if stdin is not None:
            stdin.close()  # EOF: the child stops llama.cpp and exits
        process.wait(_STOP_GRACE)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        try:
            process.wait(_STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass


def stop_servers() -> None:
    """Stop every local server this process started (also run at exit)."""
    with _lock:
        entries = list(_servers.values())
        _servers.clear()
        for entry in entries:
            entry.stopping = True
    for entry in entries:
        if entry.process is not None:
            _terminate(entry.process)


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    # A forked child must neither share nor stop the parent's servers: drop them, and
    # close its copy of each pipe so that the parent's exit still ends the server.
    for entry in _servers.values():
        if entry.process is not None and entry.process.stdin is not None:
            try:
                entry.process.stdin.close()
            except OSError:
                pass
    _servers.clear()


atexit.register(stop_servers)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
