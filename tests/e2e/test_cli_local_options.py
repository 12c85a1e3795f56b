"""`steer-llm -o` with the real local model: llama.cpp's server takes any JSON field
and ignores those it does not know, so the CLI checks the keys against its GET /props
first (an unknown one is a usage error before anything is asked)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from .conftest import skip_without_local_model

pytestmark = pytest.mark.e2e


async def _cli(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("STEER_DEFAULT_MODEL", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steer_llm_sdk.cli", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_an_option_the_local_server_would_ignore_is_refused(tmp_path: Path) -> None:
    skip_without_local_model()
    code, out, err = await _cli(tmp_path, "--max-tokens", "8", "-o", "repeat_penaly", "1.2", "hi")
    assert code == 2 and out == "" and "Traceback" not in err
    assert "-o repeat_penaly" in err and "Did you mean repeat_penalty?" in err
    code, out, err = await _cli(
        tmp_path, "--max-tokens", "8", "-o", "repeat_penalty", "1.3", "-o", "top_k", "20",
        "-o", "grammar", 'root ::= "yes"', "hi",
    )  # fmt: skip
    assert code == 0, err
    assert out == "yes\n"  # the grammar reached llama.cpp
