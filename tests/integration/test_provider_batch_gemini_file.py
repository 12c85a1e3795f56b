"""Gemini batch mode with an uploaded JSONL file (the route past the 20 MB inline
limit; the tests lower ``GeminiBatches.inline_bytes`` instead of sending 20 MB),
against the emulator over real sockets: the same results as the inline route, failed
and expired lines, the split by bytes, the emulator's checks of the file form,
google-genai's own file batch calls, and the results download's caps."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.batch import BatchResult, provider_apis
from steer_llm_sdk.batch.provider_apis import BatchStatus
from steer_llm_sdk.batch.provider_gemini import GeminiBatches
from steer_llm_sdk.errors import InvalidResponseError, SteerError
from steer_llm_sdk.testing import Emulator, Reply
from steer_llm_sdk.testing._gemini_batches import _error as _gemini_error

GEMINI = "gemini-2.5-flash"
KEY = "gemini-test-file-key-123456"


def _client(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(api_keys={"gemini": KEY}, base_urls={"gemini": emu.gemini_base_url})


def _items(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"c{i}", "prompt": f"item {i}: tell me a story"} for i in range(n)]


def _shape(result: BatchResult) -> dict[str, Any]:
    doc = result.to_dict()
    doc["usage"] = sorted(doc["usage"])
    return doc


def _gemini_files(emu: Emulator) -> list[str]:
    return [name for name, f in emu.files.items() if f.api == "gemini"]


async def _run(client: SteerLLMClient, n: int, **kw: Any) -> dict[str, BatchResult]:
    job = client.batch(_items(n), model=GEMINI, mode="provider", poll_interval=0.02, **kw)
    return {r.custom_id: r async for r in job}


async def test_file_route_gives_the_inline_routes_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        inline = await _run(client, 6, max_tokens=12)
        assert [b["input"] for b in emu.batches.submitted] == ["inline"]
        monkeypatch.setattr(GeminiBatches, "inline_bytes", 500)
        before = len(emu.requests)
        got = await _run(client, 6, max_tokens=12, output_path=tmp_path / "out.jsonl")
        (inline_batch, file_batch) = emu.batches.submitted
        assert file_batch["input"] == "file"
        assert file_batch["bodies"] == inline_batch["bodies"]  # the same requests
        assert {cid: _shape(r) for cid, r in got.items()} == {
            cid: _shape(r) for cid, r in inline.items()
        }
        assert all(r.ok for r in got.values())
        # the wire: a resumable upload of a JSONL file, the create naming it, the
        # responses file downloaded; no online request
        requests = emu.requests[before:]
        paths = [r.path.split("?")[0] for r in requests]
        assert not any(p.endswith(":generateContent") for p in paths)
        start = next(r for r in requests if r.path == "/upload/v1beta/files")
        assert start.headers["x-goog-upload-protocol"] == "resumable"
        assert start.headers["x-goog-upload-header-content-type"] == "application/jsonl"
        assert start.headers["x-goog-api-key"] == KEY
        upload = next(r for r in requests if "upload_id=" in r.path)
        assert upload.headers["x-goog-upload-command"] == "upload, finalize"
        assert "x-goog-api-key" not in upload.headers  # the upload URL is its own credential
        lines = [json.loads(x) for x in upload.body.splitlines()]
        assert [set(x) for x in lines] == [{"key", "request"}] * 6
        assert [x["key"] for x in lines] == file_batch["custom_ids"]
        create = next(r for r in requests if r.path.endswith(":batchGenerateContent"))
        config = create.json["batch"]["input_config"]
        assert list(config) == ["file_name"] and config["file_name"].startswith("files/")
        assert any(p.startswith("/download/v1beta/files/batch-") for p in paths)
        # once the results are recorded the job's input and responses files are deleted
        assert _gemini_files(emu) == []
        out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert sorted(x["custom_id"] for x in out) == sorted(inline)


async def test_file_route_failed_and_expired_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeminiBatches, "inline_bytes", 300)
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        emu.add_rule("item 1:", Reply(status=400, error_message="bad item"))
        emu.add_rule("item 3:", Reply(status=503, error_message="overloaded"))
        emu.batches.expire.add("item 2:")
        results = await _run(client, 5)
        assert emu.batches.submitted[0]["input"] == "file"
        assert results["c0"].ok and results["c4"].ok
        c1, c2, c3 = results["c1"].error, results["c2"].error, results["c3"].error
        assert c1 is not None and c1["retryable"] is False and "bad item" in c1["message"]
        assert c1["status_code"] == 400
        assert c2 is not None and c2["retryable"] is True
        assert c3 is not None and c3["retryable"] is True and c3["status_code"] == 503


async def test_split_by_bytes_into_several_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeminiBatches, "inline_bytes", 300)
    monkeypatch.setattr(GeminiBatches, "max_bytes", 600)
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        results = await _run(client, 12)
        assert len(results) == 12 and all(r.ok for r in results.values())
        sizes = [len(b["custom_ids"]) for b in emu.batches.submitted]
        assert sum(sizes) == 12 and len(sizes) > 2
        assert {b["input"] for b in emu.batches.submitted} == {"file"}


def _upload(base: str, data: bytes, name: str = "in.jsonl") -> str:
    start = httpx.post(
        f"{base}/upload/v1beta/files",
        headers={
            "x-goog-api-key": "k",
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(len(data)),
            "x-goog-upload-header-content-type": "application/jsonl",
        },
        json={"file": {"display_name": name}},
    )
    done = httpx.post(
        start.headers["x-goog-upload-url"],
        headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"},
        content=data,
    )
    return str(done.json()["file"]["name"])


def test_the_emulator_refuses_what_the_file_form_refuses() -> None:
    emu = Emulator.start_in_thread(batch_delay=0.05)
    try:
        base = emu.gemini_base_url.removesuffix("/v1beta")
        url = f"{base}/v1beta/models/{GEMINI}:batchGenerateContent"
        request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        good = _upload(base, json.dumps({"key": "a", "request": request}).encode())
        no_request = _upload(base, b'{"key": "a"}\n')
        not_json = _upload(base, b'{"key": "a", "request": \n')

        def create(config: dict[str, Any]) -> httpx.Response:
            doc = {"batch": {"display_name": "t", "input_config": config}}
            return httpx.post(url, headers={"x-goog-api-key": "k"}, json=doc)

        inline = {"requests": {"requests": [{"request": request}]}}
        for config, words in [
            ({"file_name": "files/nothere"}, "does not exist"),
            ({"file_name": good, **inline}, "exactly one"),
            ({}, "exactly one"),
            ({"file_name": no_request}, "line 1 has no request"),
            ({"file_name": not_json}, "line 1 is not JSON"),
        ]:
            answer = create(config)
            assert answer.status_code == 400, config
            assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
            assert words in answer.json()["error"]["message"]
        assert create({"file_name": good}).status_code == 200
        # an uploaded file cannot be downloaded; a download needs alt=media
        got = httpx.get(
            f"{base}/download/v1beta/{good}:download?alt=media", headers={"x-goog-api-key": "k"}
        )
        assert got.status_code == 400
        got = httpx.get(f"{base}/download/v1beta/{good}:download", headers={"x-goog-api-key": "k"})
        assert got.status_code == 400
    finally:
        emu.stop()


def test_google_genai_file_batch_calls_work_against_the_emulator() -> None:
    genai = pytest.importorskip("google.genai")
    emu = Emulator.start_in_thread(batch_delay=0.05)
    try:
        client = genai.Client(
            api_key="g-key", http_options=genai.types.HttpOptions(base_url=emu.gemini_base_url)
        )
        lines = [
            {
                "key": f"k{i}",
                "request": {"contents": [{"role": "user", "parts": [{"text": f"hi {i}"}]}]},
            }
            for i in range(3)
        ]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        uploaded = client.files.upload(
            file=io.BytesIO(data),
            config={"mime_type": "application/jsonl", "display_name": "requests.jsonl"},
        )
        assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(data)
        job = client.batches.create(model=GEMINI, src=uploaded.name, config={"display_name": "f-1"})
        assert job.display_name == "f-1" and job.state.name == "JOB_STATE_RUNNING"
        time.sleep(0.1)
        job = client.batches.get(name=job.name)
        assert job.state.name == "JOB_STATE_SUCCEEDED"
        assert job.dest.file_name and job.dest.file_name.startswith("files/")
        content = client.files.download(file=job.dest.file_name)
        answers = [json.loads(x) for x in content.decode().splitlines()]
        assert [a["key"] for a in answers] == ["k0", "k1", "k2"]
        text = genai.types.GenerateContentResponse.model_validate(answers[0]["response"]).text
        assert text
        assert client.files.get(name=job.dest.file_name).download_uri
        client.files.delete(name=uploaded.name)
        assert uploaded.name not in emu.files
    finally:
        emu.stop()


# -- the results download: capped and time-bounded ---------------------------------------
async def _serve(handler: Any) -> tuple[asyncio.base_events.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _head(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


def _done() -> BatchStatus:
    raw = {"done": True, "metadata": {"output": {"responsesFile": "files/batch-x"}}}
    return BatchStatus(True, "BATCH_STATE_SUCCEEDED", raw=raw)


async def test_results_download_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/jsonl\r\n\r\n")
        line = json.dumps({"key": "t-0", "response": {"candidates": []}}).encode() + b"\n"
        try:
            for _ in range(100_000):
                writer.write(line * 100)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    monkeypatch.setattr(provider_apis, "MAX_DOWNLOAD", 1_000_000)
    server, url = await _serve(endless)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            api = GeminiBatches(http, url, {"x-goog-api-key": KEY})
            with pytest.raises(InvalidResponseError, match="over 1000000 bytes"):
                async for _ in api.outcomes(_done()):
                    pass
    finally:
        server.close()


async def test_results_download_is_time_bounded() -> None:
    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/jsonl\r\n\r\n")
        writer.write(json.dumps({"key": "t-0", "response": {}}).encode() + b"\n")
        await writer.drain()
        await asyncio.sleep(30)  # then nothing

    server, url = await _serve(stall)
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http:
            api = GeminiBatches(http, url, {"x-goog-api-key": KEY})
            got = []
            began = time.monotonic()
            with pytest.raises(SteerError) as caught:
                async for outcome in api.outcomes(_done()):
                    got.append(outcome.line_id)
            assert time.monotonic() - began < 5
            assert got == ["t-0"]  # what came before the stall is kept
            assert KEY not in repr(caught.value) and KEY not in str(caught.value)
    finally:
        server.close()


async def test_a_bad_responses_file_line_is_a_typed_error() -> None:
    async def bad(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        body = b'{"key": "t-0", "response": {}}\n{"nokey": 1}\n'
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server, url = await _serve(bad)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            api = GeminiBatches(http, url, {"x-goog-api-key": KEY})
            with pytest.raises(InvalidResponseError, match="not valid"):
                async for _ in api.outcomes(_done()):
                    pass
            raw = {"done": True, "metadata": {"output": {"responsesFile": "files/../../x"}}}
            with pytest.raises(InvalidResponseError, match="not one"):
                async for _ in api.outcomes(BatchStatus(True, "x", raw=raw)):
                    pass
    finally:
        server.close()


async def test_a_refused_create_deletes_the_uploaded_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GeminiBatches, "inline_bytes", 100)
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        # the create refused once (a 400 for the batch as a whole): every item fails, not
        # retryable, and the input file it named is deleted
        def refuse(model: str, request: Any) -> Any:
            return _gemini_error(400, "INVALID_ARGUMENT", "too many batches")

        monkeypatch.setattr(emu.batches, "_gemini_create", refuse)
        results = await _run(client, 3)
        errors = [r.error for r in results.values()]
        assert all(e is not None and e["status_code"] == 400 for e in errors), errors
        assert all("too many batches" in e["message"] for e in errors if e)
        assert any(r.path == "/upload/v1beta/files" for r in emu.requests)
        assert _gemini_files(emu) == []


async def test_the_key_never_appears_in_a_file_route_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def echo_key(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(x for x in head.split("\r\n") if x.lower().startswith("x-goog-api-key"))
        body = json.dumps(
            {"error": {"code": 403, "message": f"bad {key}", "status": "PERMISSION_DENIED"}}
        ).encode()
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    monkeypatch.setattr(GeminiBatches, "inline_bytes", 100)
    server, url = await _serve(echo_key)
    client = SteerLLMClient(api_keys={"gemini": KEY}, base_urls={"gemini": url})
    try:
        results = [r async for r in client.batch(_items(2), model=GEMINI, mode="provider")]
        assert [r.error and r.error["status_code"] for r in results] == [403, 403]
        for result in results:
            assert KEY not in json.dumps(result.to_dict())
    finally:
        server.close()
        await client.aclose()
