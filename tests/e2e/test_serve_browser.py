"""A real browser (Debian's chromium, driven by Playwright from PyPI) on the page of
`steer-llm serve`: an answer streams in, a reload mid-answer resumes it (no second
model call), and a closed tab closes the upstream call within a second."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the web extra (starlette, uvicorn) is not installed")
pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from playwright import sync_api

from steer_llm_sdk.testing import Emulator, Reply

from ..integration.web_servers import child_env, serve_process
from .conftest import skip_without_local_model

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
WORDS = [f"w{i} " for i in range(50)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def emulator() -> Iterator[Any]:
    emu = Emulator.start_in_thread()
    yield emu
    emu.stop()


def answer(page: Any) -> str:
    return str(
        page.evaluate(
            """() => [...document.querySelectorAll('.assistant .text')]
                     .map((e) => e.textContent).join('|')"""
        )
    )


def idle(page: Any) -> bool:
    return bool(page.evaluate("() => !document.getElementById('send').disabled"))


def wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def ask(page: Any, url: str, text: str) -> None:
    page.goto(url)
    page.fill("#input", text)
    page.press("#input", "Enter")


def test_a_reload_mid_answer_resumes_it(browser: Any, emulator: Any, tmp_path: Path) -> None:
    env = child_env(OPENAI_API_KEY="sk-test-browser", OPENAI_BASE_URL=emulator.openai_base_url)
    env["XDG_DATA_HOME"] = str(tmp_path)
    emulator.enqueue(Reply(chunks=WORDS, delay_between_chunks=0.04))
    args = ["-m", "gpt-4o-mini", "--resumable", "--resume-timeout", "10", "-n"]
    with serve_process(args, env) as url:
        page = browser.new_page()
        ask(page, url, "count to fifty")
        wait_for(lambda: len(answer(page).split()) >= 5, 10)
        assert len(answer(page).split()) < 40  # mid-answer
        page.reload()
        wait_for(lambda: idle(page) and answer(page).count("w49"), 15)
        assert answer(page) == "".join(WORDS)
        assert page.locator(".user").count() == 1 and page.locator(".assistant").count() == 1
        assert len(emulator.emulator.requests) == 1  # resumed, not asked again
        page.close()


def test_a_closed_tab_closes_the_upstream_call(browser: Any, emulator: Any) -> None:
    env = child_env(OPENAI_API_KEY="sk-test-browser", OPENAI_BASE_URL=emulator.openai_base_url)
    emulator.enqueue(Reply(chunks=WORDS * 10, delay_between_chunks=0.04))
    with serve_process(["-m", "gpt-4o-mini", "-n"], env) as url:
        page = browser.new_page()
        ask(page, url, "count")
        wait_for(lambda: len(answer(page).split()) >= 3, 10)
        assert emulator.emulator.open_connections == 1
        page.close()
        closed = time.monotonic()
        wait_for(lambda: emulator.emulator.open_connections == 0, 1.0)
        assert time.monotonic() - closed < 1.0


def test_the_local_model_streams_and_resumes_after_a_reload(browser: Any, tmp_path: Path) -> None:
    skip_without_local_model()
    env = child_env(XDG_DATA_HOME=str(tmp_path))
    with serve_process(["--resumable", "--max-tokens", "200"], env, timeout=180) as url:
        page = browser.new_page()
        ask(page, url, "Tell me a story about a lighthouse keeper")
        wait_for(lambda: len(answer(page).split()) >= 3, 60)
        page.reload()
        # The exchange is logged when the server's call ends (the model's one call):
        # wait for it while the server still runs, then for the reloaded page to show
        # that whole answer.
        log = tmp_path / "steer-llm" / "logs.db"
        wait_for(lambda: log.exists() and _responses(log), 90)
        logged = _responses(log)
        deadline = time.monotonic() + 30
        while not (idle(page) and answer(page) == logged[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        shown = answer(page)
        page.close()
    assert [shown] == logged and _responses(log) == logged  # one call, shown whole


def _responses(log: Path) -> list[str]:
    try:
        with contextlib.closing(sqlite3.connect(log)) as db:
            return [row[0] for row in db.execute("SELECT response FROM responses")]
    except sqlite3.OperationalError:  # the log's table is not written yet
        return []
