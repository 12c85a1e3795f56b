"""`steer-llm -m NAME` with a route from routes.toml (the CLI's config directory, or
the file STEER_LLM_ROUTES names), run as a real subprocess against the emulator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from steer_llm_sdk.testing import Emulator

from .test_cli import run_cli

ROUTES = """
# routes.toml
[routes]
smart = [
  "claude-3-haiku-20240307",
  { model = "gpt-4o-mini", temperature = 0.2 },
]
"""


async def test_stream_over_a_route_from_the_config_dir(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "config" / "steer-llm"
    config.mkdir(parents=True)
    (config / "routes.toml").write_text(ROUTES, encoding="utf-8")
    env = {**cli_env, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("STEER_LLM_CONFIG_DIR", None)
    env.pop("STEER_LLM_ROUTES", None)
    emulator.outage("down", status=529, model="claude-3-haiku-20240307")
    code, out, err = await run_cli("stream", "-m", "smart", "--no-log", "Hello", env=env)
    assert code == 0, err
    assert out.strip()
    sent = [r.json for r in emulator.requests]
    assert [s["model"] for s in sent][-1] == "gpt-4o-mini"
    assert sent[-1]["temperature"] == 0.2
    assert "claude-3-haiku-20240307" in json.dumps(sent[0])


async def test_steer_llm_routes_names_another_file(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('fast = ["gpt-4o-mini"]\n', encoding="utf-8")
    env = {**cli_env, "STEER_LLM_ROUTES": str(path)}
    code, out, err = await run_cli("stream", "-m", "fast", "--no-log", "Hello", env=env)
    assert code == 0, err
    assert out.strip()
    missing = {**cli_env, "STEER_LLM_ROUTES": str(tmp_path / "nope.toml")}
    code, _, err = await run_cli("stream", "-m", "fast", "--no-log", "Hello", env=missing)
    assert code == 2 and "no such file" in err
    path.write_text("bad = [{ temperature = 1 }]\n", encoding="utf-8")
    code, _, err = await run_cli("stream", "-m", "bad", "--no-log", "Hello", env=env)
    assert code == 2 and "route 'bad'" in err and "Traceback" not in err


async def test_batch_cli_over_a_route(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(ROUTES, encoding="utf-8")
    env = {**cli_env, "STEER_LLM_ROUTES": str(path)}
    emulator.outage("down", status=503, model="claude-3-haiku-20240307")
    items = tmp_path / "in.jsonl"
    items.write_text("".join(json.dumps({"prompt": f"item {i}"}) + "\n" for i in range(5)))
    out = tmp_path / "out.jsonl"
    code, _, err = await run_cli(
        "batch", str(items), "-o", str(out), "-m", "smart", "--max-tokens", "8", env=env
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all(row.get("error") is None for row in rows)


def test_readme_routes_example_runs(tmp_path: Path) -> None:
    """The README's routes example, run as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Routes: fallbacks, load balancing, cooldowns", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines[:4]] == [
        "east/gpt-4o-mini",
        "west/gpt-4o-mini",
        "east/gpt-4o-mini",
        "west/gpt-4o-mini",
    ]
    assert all("OverloadedError" in line for line in lines[:3])
    assert "claude" not in lines[3]  # cooling down: not tried
    assert lines[4] == "anthropic got 9 requests"
