"""`steer-llm stream -a`: files attached from a path, from standard input, and
refused when missing; run as a real subprocess against the emulator."""

from __future__ import annotations

import base64
from pathlib import Path

from steer_llm_sdk.testing import Emulator, Reply
from tests.integration.test_cli import run_cli
from tests.media import pdf, png


async def test_stream_attaches_files_from_paths(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    picture, document = tmp_path / "cat.png", tmp_path / "report.pdf"
    picture.write_bytes(png(3, 3))
    document.write_bytes(pdf())
    emulator.enqueue(Reply(chunks=["A cat."]))
    code, out, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "-a", str(picture), "--attach", str(document),
        "What is this?", env=cli_env,
    )  # fmt: skip
    assert code == 0, err
    assert out == "A cat.\n"
    content = emulator.requests[-1].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["image_url"]["url"] == (
        "data:image/png;base64," + base64.b64encode(png(3, 3)).decode()
    )
    assert content[2]["file"] == {
        "file_data": "data:application/pdf;base64," + base64.b64encode(pdf()).decode(),
        "filename": "report.pdf",
    }


async def test_attach_dash_reads_the_file_from_stdin_not_the_prompt(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    emulator.enqueue(Reply(chunks=["Red."]))
    code, _, err = await run_cli(
        "stream", "-m", "claude-3-haiku-20240307", "-a", "-", "Which colour?",
        env=cli_env, stdin=png(2, 2),
    )  # fmt: skip
    assert code == 0, err
    blocks = emulator.requests[-1].json["messages"][-1]["content"]
    assert blocks[0] == {"type": "text", "text": "Which colour?"}
    assert blocks[1]["source"]["data"] == base64.b64encode(png(2, 2)).decode()


async def test_a_missing_attachment_is_a_usage_error_before_any_request(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "-a", str(tmp_path / "nope.png"), "hi", env=cli_env
    )
    assert code != 0
    assert "nope.png" in err and "cannot read it" in err
    assert emulator.requests == []


def test_readme_files_example_runs(tmp_path: Path) -> None:
    """The README's "Files" example, run as written (a subprocess, its own emulator)."""
    import subprocess
    import sys

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Files: images, documents, audio", 1)[1]
    script = tmp_path / "example.py"
    script.write_text(section.split("```python\n", 1)[1].split("```", 1)[0])
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["A red pixel.", "image/png"]
