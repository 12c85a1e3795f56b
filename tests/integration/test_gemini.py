"""Gemini end to end over real sockets: the emulator checked against Google's official
``google-genai`` SDK, then every feature of the SDK on the Gemini protocol (tools and
the tool loop, structured output, JSON mode, callbacks, timeouts, retries, typed
errors, key redaction, cache-aware cost, usage estimates), plus hostile servers."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import pytest
from genai_prices import Usage, calc_price
from pydantic import BaseModel

from steer_llm_sdk import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionError,
    Finish,
    InvalidResponseError,
    NotFoundError,
    PartialOutput,
    PermissionDeniedError,
    RateLimitError,
    ReasoningDelta,
    ServerError,
    SteerError,
    SteerLLMClient,
    StreamInterruptedError,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.providers.gemini import GeminiCodec
from steer_llm_sdk.testing import Emulator, Fault, Reply
from steer_llm_sdk.testing._gemini import GEMINI_SIGNATURE

from .replay import ReplayServer

KEY = "AIzaSyTEST-gemini-key-00000000000000000"
MODEL = "gemini-2.5-flash"
STORY = ["Once", " upon", " a", " time", " there", " was", " a", " lighthouse."]
FAST = StreamingOptions(reconnect_delay=0.01)
NO_RETRY = StreamingOptions(retry_on_connection_error=False, preserve_partial_response=True)


def client_for(emu: Emulator | ReplayServer) -> SteerLLMClient:
    url = emu.gemini_base_url if isinstance(emu, Emulator) else emu.url
    return SteerLLMClient(api_keys={"gemini": KEY}, base_urls={"gemini": url})


def sent(emu: Emulator, index: int = -1) -> dict[str, Any]:
    return emu.requests[index].json  # type: ignore[no-any-return]


def get_weather(city: str, units: Literal["c", "f"] = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: The city's name.
    """
    return f"{city}: 21 degrees {units.upper()}, sunny"


def get_time(zone: str) -> dict[str, str]:
    """The local time in a time zone."""
    return {"zone": zone, "time": "14:05"}


# -- the official SDK and this one agree --------------------------------------------
SCRIPTS = {
    "text": Reply(chunks=STORY, usage={"prompt_tokens": 12, "completion_tokens": 8}),
    "default story": Reply(),
    "thoughts": Reply(text="Forty-two.", reasoning="The user wants the answer to everything."),
    "cached": Reply(
        text="From cache.",
        usage={"prompt_tokens": 900, "completion_tokens": 4, "cached_tokens": 700},
    ),
    "max tokens": Reply(text="one two three four five six", finish_reason="MAX_TOKENS"),
    "safety": Reply(text="I cannot", finish_reason="SAFETY"),
    "function calls": Reply(
        tool_calls=[
            {"name": "get_weather", "arguments": {"city": "Paris"}},
            {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
        ]
    ),
    "json": Reply(text=json.dumps({"name": "Ada", "years": 12})),
}
UNIFIED = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def official_usage(meta: Any) -> dict[str, int]:
    prompt = (meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0)
    completion = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": meta.total_token_count,
    }


@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "generate"])
@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_official_google_genai_sdk_agrees(name: str, streamed: bool) -> None:
    from google import genai
    from google.genai import types

    script = SCRIPTS[name]
    prompt = "Tell me a story"
    async with Emulator() as emu, client_for(emu) as client:
        official = genai.Client(
            api_key=KEY,
            http_options=types.HttpOptions(base_url=emu.gemini_base_url, api_version="v1beta"),
        )
        emu.enqueue(script, script)
        if streamed:
            texts, last, streamed_calls = [], None, []
            async for chunk in await official.aio.models.generate_content_stream(
                model=MODEL, contents=prompt
            ):
                texts.append(chunk.text or "")
                streamed_calls += chunk.function_calls or []
                last = chunk
            assert last is not None
            theirs_text, final = "".join(texts), last
            ours = await client.stream_with_usage(prompt, MODEL)
        else:
            final = await official.aio.models.generate_content(model=MODEL, contents=prompt)
            theirs_text = final.text or ""
            streamed_calls = final.function_calls or []
            ours = await client.generate(prompt, MODEL)
        their_calls = [(c.name, c.args) for c in streamed_calls]
        # the official SDK sent what this one sends (same path, same key header)
        assert emu.requests[0].path == emu.requests[1].path
        assert emu.requests[0].headers["x-goog-api-key"] == KEY
        assert emu.requests[1].headers["x-goog-api-key"] == KEY
        assert sent(emu, 0)["contents"] == sent(emu, 1)["contents"]
    their_finish = final.candidates[0].finish_reason.value  # type: ignore[index, union-attr]
    assert ours.text == theirs_text
    assert ours.raw_finish_reason == their_finish
    want_reason = UNIFIED[their_finish]
    if want_reason == "stop" and their_calls:
        want_reason = "tool_calls"
    assert ours.finish_reason == want_reason
    usage = official_usage(final.usage_metadata)
    assert {k: ours.usage[k] for k in usage} == usage
    cached = final.usage_metadata.cached_content_token_count  # type: ignore[union-attr]
    if cached:
        assert ours.usage["cache_info"] == {"cached_tokens": cached, "cache_creation_tokens": 0}
    thoughts = final.usage_metadata.thoughts_token_count  # type: ignore[union-attr]
    if thoughts:
        assert ours.usage["reasoning_tokens"] == thoughts
        assert ours.reasoning_text == script.reasoning
    assert [(c.name, c.args) for c in ours.tool_calls] == their_calls


# -- the request ----------------------------------------------------------------------
async def test_request_mapping() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        await client.stream_with_usage(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                        },
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                    ],
                },
            ],
            MODEL,
            max_tokens=100,
            temperature=0.2,
            top_p=0.9,
            stop=["END"],
            seed=7,
            top_k=20,
            thinking_config={"thinkingBudget": 0},
            safetySettings=[{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        )
        await client.generate("Hi", MODEL)
        request, whole = emu.requests
    body = request.json
    assert request.path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert request.headers["x-goog-api-key"] == KEY and "authorization" not in request.headers
    assert whole.path == f"/v1beta/models/{MODEL}:generateContent"
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}},
    ]
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
        "seed": 7,
        "topK": 20,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["safetySettings"][0]["threshold"] == "BLOCK_NONE"


async def test_unknown_parameters_go_to_the_body_where_the_api_names_them() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(BadRequestError, match='Unknown name "frobnicate"') as info:
            await client.stream_with_usage("Hi", MODEL, frobnicate=1, streaming_options=FAST)
        assert len(emu.requests) == 1  # a 400 is never retried
        assert "INVALID_ARGUMENT" in str(info.value)
        # extra_body wins: its generationConfig is merged last
        await client.stream_with_usage(
            "Hi", MODEL, temperature=0.1, extra_body={"generationConfig": {"temperature": 0.5}}
        )
        assert sent(emu)["generationConfig"] == {"temperature": 0.5}


# -- streaming, events, callbacks -------------------------------------------------------
async def test_stream_events_reasoning_text_and_finish() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=STORY, reasoning="Think of a lighthouse story first."))
        parts = [p async for p in client.stream_events("Story", MODEL)]
    kinds = [p.type for p in parts]
    assert kinds.index("reasoning-delta") < kinds.index("text-delta")
    assert "".join(p.text for p in parts if isinstance(p, ReasoningDelta)) == (
        "Think of a lighthouse story first."
    )
    assert [p.text for p in parts if isinstance(p, TextDelta)] == STORY
    finish = parts[-1]
    assert isinstance(finish, Finish) and finish.reason == "stop" and finish.raw_reason == "STOP"
    assert finish.usage["reasoning_tokens"] > 0
    assert finish.usage["completion_tokens"] == len(STORY) + finish.usage["reasoning_tokens"]


async def test_callbacks() -> None:
    events: list[tuple[str, Any]] = []
    options = StreamingOptions(
        on_start=lambda: events.append(("start", None)),
        on_delta=lambda t: events.append(("delta", t)),
        on_usage=lambda u: events.append(("usage", u["total_tokens"])),
        on_complete=lambda t: events.append(("complete", t)),
        on_error=lambda e: events.append(("error", e)),
    )
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 5, "completion_tokens": 8}))
        await client.stream_with_usage("x", MODEL, streaming_options=options)
        emu.enqueue(Reply(status=400, error_message="bad"))
        with pytest.raises(BadRequestError):
            await client.stream_with_usage("x", MODEL, streaming_options=options)
    kinds = [k for k, _ in events]
    assert kinds == ["start"] + ["delta"] * len(STORY) + ["usage", "complete", "error"]
    assert events[-3] == ("usage", 13) and events[-2] == ("complete", "".join(STORY))


# -- tools -------------------------------------------------------------------------------
async def test_run_tools_two_parallel_calls_then_an_answer() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
                ]
            ),
            Reply(text="It is sunny in Paris and 14:05."),
        )
        response = await client.run_tools(
            "Weather and time in Paris?", MODEL, tools=[get_weather, get_time]
        )
        first, second = sent(emu, 0), sent(emu, 1)
    assert response.text == "It is sunny in Paris and 14:05." and response.steps == 2
    assert response.finish_reason == "stop"
    assert response.usage["prompt_tokens"] > 0 and response.cost_usd and response.cost_usd > 0
    assert [m["role"] for m in response.messages or []] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    (declared,) = first["tools"]
    weather = declared["functionDeclarations"][0]
    assert weather["name"] == "get_weather"
    assert weather["description"] == "Get the current weather in a city."
    assert weather["parametersJsonSchema"]["required"] == ["city"]
    # The calls go back as functionCall parts, and both results in ONE user turn,
    # each named after its call.
    assert [c["role"] for c in second["contents"]] == ["user", "model", "user"]
    calls = [p["functionCall"] for p in second["contents"][1]["parts"]]
    assert calls == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_time", "args": {"zone": "Europe/Paris"}},
    ]
    results = [p["functionResponse"] for p in second["contents"][2]["parts"]]
    assert results == [
        {"name": "get_weather", "response": {"output": "Paris: 21 degrees C, sunny"}},
        {"name": "get_time", "response": {"zone": "Europe/Paris", "time": "14:05"}},
    ]


async def test_gemini_3_thought_signatures_go_back_with_their_calls() -> None:
    """Gemini 3 rejects a function call turn without its signature: to_message()
    carries it, and the conversation goes through; without it, the typed 400."""
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "fc_1"},
                    {"name": "get_weather", "arguments": {"city": "Rome"}, "id": "fc_2"},
                ]
            ),
            Reply(text="Cold in Oslo, warm in Rome."),
        )
        response = await client.run_tools("Weather?", "gemini-3-pro-preview", tools=[get_weather])
        second = sent(emu)
        assert response.text == "Cold in Oslo, warm in Rome."
        model_turn = second["contents"][1]["parts"]
        assert model_turn[0]["thoughtSignature"] == GEMINI_SIGNATURE
        assert "thoughtSignature" not in model_turn[1]  # only the first call is signed
        assert [p["functionCall"]["id"] for p in model_turn] == ["fc_1", "fc_2"]
        ids = [p["functionResponse"]["id"] for p in second["contents"][2]["parts"]]
        assert ids == ["fc_1", "fc_2"]  # Gemini's own ids, echoed
        assert response.messages is not None
        assistant = response.messages[1]
        assert assistant["tool_calls"][0]["steer"]["gemini"]["thoughtSignature"]
        # The same conversation with the signature dropped (as a proxy that keeps
        # only OpenAI fields would): the API's own 400, as a typed error.
        stripped = [
            {
                **m,
                "tool_calls": [
                    {k: v for k, v in c.items() if k != "steer"} for c in m["tool_calls"]
                ],
            }
            if m.get("tool_calls")
            else m
            for m in response.messages[:4]
        ]
        with pytest.raises(BadRequestError, match="missing a thought_signature"):
            await client.stream_with_usage(stripped, "gemini-3-pro-preview", tools=[get_weather])


async def test_the_emulator_rejects_what_gemini_rejects() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        orphan = [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]
        with pytest.raises(BadRequestError, match="immediately after a function call turn"):
            await client.stream_with_usage("x", MODEL, extra_body={"contents": orphan})
        wrong_role = [{"role": "assistant", "parts": [{"text": "Hi"}]}]
        with pytest.raises(BadRequestError, match="valid role: user, model"):
            await client.stream_with_usage("x", MODEL, extra_body={"contents": wrong_role})
        short = [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "f", "args": {}}},
                    {"functionCall": {"name": "f", "args": {}}},
                ],
            },
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        ]
        with pytest.raises(BadRequestError, match="number of function response parts"):
            await client.stream_with_usage("x", MODEL, extra_body={"contents": short})
        # and the SDK itself refuses a tool message that answers no call of the conversation
        with pytest.raises(ConfigurationError, match="answers no tool call"):
            await client.stream_with_usage(
                [
                    {"role": "user", "content": "Hi"},
                    {"role": "tool", "tool_call_id": "call_9", "content": "42"},
                ],
                MODEL,
            )


async def test_tool_choice_maps_to_function_calling_config() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        for choice in ("auto", "none", "required", "get_weather"):
            emu.enqueue(Reply(text="ok"))
            await client.generate("x", MODEL, tools=[get_weather], tool_choice=choice)
        configs = [r.json["toolConfig"]["functionCallingConfig"] for r in emu.requests]
    assert configs == [
        {"mode": "AUTO"},
        {"mode": "NONE"},
        {"mode": "ANY"},
        {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
    ]


async def test_calls_one_per_event_and_a_tool_without_arguments() -> None:
    ping = {"type": "function", "function": {"name": "ping", "parameters": {}}}
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                text="Checking.",
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Oslo"}},
                    {"name": "ping", "arguments": ""},
                ],
                interleave_tool_calls=True,  # Gemini: one call per event
            )
        )
        parts = [p async for p in client.stream_events("x", MODEL, tools=[get_weather, ping])]
        declared = sent(emu)["tools"][0]["functionDeclarations"]
    assert declared[1] == {"name": "ping"}  # no parameters: none declared
    starts = [p for p in parts if isinstance(p, ToolCallStart)]
    ends = [p for p in parts if isinstance(p, ToolCallEnd)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "ping")]
    assert [e.call.id for e in ends] == ["call_0", "call_1"]  # Gemini gave none
    assert ends[0].call.args == {"city": "Oslo"} and ends[1].call.args == {}
    finish = parts[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "tool_calls" and finish.raw_reason == "STOP"


# -- structured output and JSON mode -------------------------------------------------------
class Keeper(BaseModel):
    name: str
    years_of_service: int


async def test_output_model_with_partial_output() -> None:
    answer = json.dumps({"name": "Ada Lovelace", "years_of_service": 12})
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=[answer[i : i + 5] for i in range(0, len(answer), 5)]))
        parts = [p async for p in client.stream_events("Invent one", MODEL, output=Keeper)]
        emu.enqueue(Reply(text=answer))
        whole = await client.generate("Invent one", MODEL, output=Keeper)
        config = sent(emu)["generationConfig"]
    partials = [p.value for p in parts if isinstance(p, PartialOutput)]
    assert partials and partials[-1] == {"name": "Ada Lovelace", "years_of_service": 12}
    finish = parts[-1]
    assert isinstance(finish, Finish)
    assert finish.response.output == Keeper(name="Ada Lovelace", years_of_service=12)
    assert whole.output == Keeper(name="Ada Lovelace", years_of_service=12)
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["name", "years_of_service"]


async def test_json_mode() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        response = await client.stream_with_usage(
            "A product", MODEL, response_format={"type": "json_object"}
        )
        assert response.get_json()["name"] == "Aurora Desk Lamp"
        assert sent(emu)["generationConfig"] == {"responseMimeType": "application/json"}
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
        emu.enqueue(Reply(text='{"a": 1}'))
        response = await client.generate(
            "x", MODEL, response_format={"type": "json_schema", "json_schema": {"schema": schema}}
        )
        assert response.get_json() == {"a": 1}
        assert sent(emu)["generationConfig"]["responseJsonSchema"] == schema


# -- reliability ------------------------------------------------------------------------------
async def test_retries_on_429_with_retry_info_and_on_503() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(status=429, headers={"retry-after": "0.4"}), Reply(chunks=STORY))
        start = time.perf_counter()
        response = await client.stream_with_usage("x", MODEL, streaming_options=FAST)
        assert time.perf_counter() - start >= 0.38  # RetryInfo's retryDelay, honoured
        assert response.attempts == 2 and response.text == "".join(STORY)
        emu.enqueue(Reply(status=503), Reply(status=503), Reply(chunks=STORY))
        response = await client.stream_with_usage("x", MODEL, streaming_options=FAST)
        assert response.attempts == 3
        emu.enqueue(*[Reply(status=429)] * 3)
        with pytest.raises(RateLimitError) as info:
            await client.stream_with_usage(
                "x", MODEL, streaming_options=StreamingOptions(max_reconnect_attempts=0)
            )
    assert info.value.retry_after == 1.0 and "RESOURCE_EXHAUSTED" in str(info.value)


@pytest.mark.parametrize(
    ("status", "name", "cls"),
    [
        (400, "INVALID_ARGUMENT", BadRequestError),
        (403, "PERMISSION_DENIED", PermissionDeniedError),
        (404, "NOT_FOUND", NotFoundError),
        (500, "INTERNAL", ServerError),
        (503, "UNAVAILABLE", ServerError),
    ],
)
async def test_typed_errors_from_the_error_body(status: int, name: str, cls: type) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(*[Reply(status=status, error_message="it went wrong")] * 2)
        with pytest.raises(cls) as info:
            await client.stream_with_usage(
                "x", MODEL, streaming_options=StreamingOptions(max_reconnect_attempts=1)
            )
    error = info.value
    assert error.status_code == status and name in str(error) and "it went wrong" in str(error)
    assert error.provider == "gemini" and error.model == MODEL
    assert len(emu.requests) == (2 if status >= 500 else 1)


async def test_a_bad_key_is_an_authentication_error_and_no_key_is_refused() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            ],
        }
    }
    async with ReplayServer(body=json.dumps(body).encode(), status=400) as server:
        async with client_for(server) as client:
            with pytest.raises(AuthenticationError, match="API key not valid"):
                await client.stream_with_usage("x", MODEL)
    async with Emulator() as emu:
        async with SteerLLMClient(
            api_keys={"gemini": ""}, base_urls={"gemini": emu.gemini_base_url}
        ) as client:
            with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
                await client.stream_with_usage("x", MODEL)
        # Without a key the API refuses the call (403), which the codec types.
        import httpx

        async with httpx.AsyncClient() as http:
            raw = await http.post(
                f"{emu.gemini_base_url}/v1beta/models/{MODEL}:generateContent",
                json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
            )
    error = GeminiCodec.parse_error(raw.status_code, raw.headers, raw.content)
    assert isinstance(error, PermissionDeniedError) and "unregistered callers" in str(error)


async def test_keys_never_appear_in_errors() -> None:
    other = "AIzaSyOTHER-key-the-server-echoed-00000"  # a key the client does not know
    assert len(other) == 39
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(status=400, error_message=f"API key {KEY} and {other} are bad"))
        with pytest.raises(BadRequestError) as info:
            await client.stream_with_usage("x", MODEL)
    error = info.value
    for text in (str(error), repr(error), error.body or "", error.message):
        assert KEY not in text and other not in text and "AIza" not in text
    assert "[REDACTED]" in str(error)


async def test_read_timeout_and_a_broken_stream_cannot_resume() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=STORY, fault=Fault.stall_after(2, seconds=5)))
        options = StreamingOptions(read_timeout=0.5, retry_on_connection_error=False)
        with pytest.raises(StreamInterruptedError) as stalled:
            await client.stream_with_usage("x", MODEL, streaming_options=options)
        assert isinstance(stalled.value, TimeoutError)
        # A break after text: Gemini cannot continue a prefix, so no resumption is tried.
        emu.enqueue(Reply(chunks=STORY, fault=Fault.drop_after(3)), Reply(chunks=STORY))
        requests = len(emu.requests)
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage(
                "Long task", MODEL, streaming_options=FAST.replace(preserve_partial_response=True)
            )
        assert len(emu.requests) == requests + 1
        full = await client.stream_with_usage("Long task", MODEL)
    error = info.value
    assert error.partial_text == "".join(STORY[:3])
    usage = error.partial_usage
    assert usage is not None and usage["estimated"] is True
    assert usage["completion_tokens"] > 0
    # the prompt count is Gemini's own (every event carries it), not an estimate
    assert usage["prompt_tokens"] == full.usage["prompt_tokens"]


async def test_in_band_error_event_is_a_typed_error() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=STORY, fault=Fault.error_event_after(0)), Reply(chunks=STORY))
        response = await client.stream_with_usage("x", MODEL, streaming_options=FAST)
        assert response.attempts == 2  # 503 UNAVAILABLE before any text: retried
        emu.enqueue(Reply(chunks=STORY, fault=Fault.error_event_after(2)))
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage("x", MODEL, streaming_options=NO_RETRY)
    assert isinstance(info.value.cause, ServerError)
    assert "overloaded" in str(info.value.cause) and "UNAVAILABLE" in str(info.value.cause)


async def test_cache_aware_cost_matches_genai_prices() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        usage = {"prompt_tokens": 10_000, "completion_tokens": 500, "cached_tokens": 8_000}
        emu.enqueue(
            Reply(chunks=STORY, usage=usage),
            Reply(chunks=STORY, usage={**usage, "cached_tokens": 0}),
        )
        cached = await client.stream_with_usage("x", MODEL)
        fresh = await client.stream_with_usage("x", MODEL)
    assert cached.usage["cache_info"] == {"cached_tokens": 8_000, "cache_creation_tokens": 0}
    assert cached.usage["prompt_tokens"] == 10_000  # cached tokens are part of it
    price = calc_price(
        Usage(input_tokens=10_000, cache_read_tokens=8_000, output_tokens=500),
        MODEL,
        provider_id="google",
    )
    assert cached.cost_usd == pytest.approx(float(price.total_price))
    assert fresh.cost_usd is not None and cached.cost_usd < fresh.cost_usd


# -- hostile servers ---------------------------------------------------------------------------
def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events)


def text_event(text: Any, **candidate: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, **candidate}]}


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (sse(text_event(5)), "text that is not a string"),
        (sse(text_event("hi"), {"candidates": "nope"}), "unexpected shape|not a list"),
        (
            sse(
                text_event("hi", finishReason="STOP") | {"usageMetadata": {"promptTokenCount": "9"}}
            ),
            "not a whole number",
        ),
        (
            sse(
                {
                    "candidates": [
                        {"content": {"parts": [{"functionCall": {"name": "f", "args": [1]}}]}}
                    ]
                }
            ),
            "args are not an object",
        ),
        (sse(text_event("hi", finishReason=7)), "finish reason is not a string"),
        (b"data: [1, 2]\r\n\r\n", "non-object chunk"),
        (b"data: {not json\r\n\r\n", "not JSON"),
    ],
)
async def test_wrongly_typed_fields_are_invalid_responses(body: bytes, match: str) -> None:
    async with ReplayServer(body=body) as server, client_for(server) as client:
        with pytest.raises(SteerError, match=match) as info:
            await client.stream_with_usage("x", MODEL, streaming_options=NO_RETRY)
    error = info.value
    # After text was delivered, the same error arrives as a StreamInterruptedError
    # whose cause is the InvalidResponseError (the text before it is not lost).
    cause = error.cause if isinstance(error, StreamInterruptedError) else error
    assert isinstance(cause, InvalidResponseError)


async def test_finish_reasons_and_blocked_prompts() -> None:
    malformed = sse(
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}]},
                    "finishReason": "MALFORMED_FUNCTION_CALL",
                    "finishMessage": "Malformed function call: print(x",
                }
            ]
        }
    )
    async with ReplayServer(body=malformed) as server, client_for(server) as client:
        with pytest.raises(InvalidResponseError, match=r"MALFORMED_FUNCTION_CALL.*print"):
            await client.stream_with_usage("x", MODEL, streaming_options=NO_RETRY)
    blocked = sse(
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        }
    )
    async with ReplayServer(body=blocked) as server, client_for(server) as client:
        with pytest.raises(
            BadRequestError, match="blocked the prompt: blockReason PROHIBITED_CONTENT"
        ):
            await client.stream_with_usage("x", MODEL, streaming_options=NO_RETRY)
    # a trailing part-less event carries the finish reason (newer models)
    trailing = sse(
        text_event("Hello"),
        {
            "candidates": [{"finishReason": "RECITATION", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 1,
                "totalTokenCount": 4,
            },
        },
    )
    async with ReplayServer(body=trailing) as server, client_for(server) as client:
        response = await client.stream_with_usage("x", MODEL)
    assert response.text == "Hello" and response.finish_reason == "content_filter"
    assert response.raw_finish_reason == "RECITATION" and response.usage["total_tokens"] == 4


async def test_a_stream_cut_before_its_finish_reason_is_an_error() -> None:
    async with ReplayServer(body=sse(text_event("Hel"), text_event("lo"))) as server:
        async with client_for(server) as client:
            with pytest.raises(StreamInterruptedError) as info:
                await client.stream_with_usage("x", MODEL, streaming_options=NO_RETRY)
    assert isinstance(info.value.cause, ConnectionError)
    assert info.value.partial_text == "Hello"


async def test_a_server_that_ignores_alt_sse_is_read_whole() -> None:
    chunks = [text_event("Hel"), text_event("lo", finishReason="STOP")]
    chunks[-1]["usageMetadata"] = {
        "promptTokenCount": 2,
        "candidatesTokenCount": 1,
        "totalTokenCount": 3,
    }
    async with ReplayServer(
        body=json.dumps(chunks).encode(), content_type="application/json"
    ) as server:
        async with client_for(server) as client:
            response = await client.stream_with_usage("x", MODEL)
    assert response.text == "Hello" and response.usage["total_tokens"] == 3


async def test_stream_without_alt_sse_is_one_json_array() -> None:
    """The emulator, like the API, answers streamGenerateContent without alt=sse with
    one JSON array of responses; the codec reads that form whole too."""
    import httpx

    async with Emulator() as emu, httpx.AsyncClient() as http:
        emu.enqueue(Reply(chunks=STORY, reasoning="Hm."))
        raw = await http.post(
            f"{emu.gemini_base_url}/v1beta/models/{MODEL}:streamGenerateContent",
            headers={"x-goog-api-key": KEY},
            json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
        )
    assert raw.headers["content-type"].startswith("application/json")
    events = raw.json()
    assert isinstance(events, list) and len(events) > len(STORY)
    codec = GeminiCodec()
    assert codec.decode_response(raw.content) == "".join(STORY)
    assert codec.state.reasoning_text == "Hm." and codec.state.finish_reason == "STOP"
    assert codec.state.usage is not None and codec.state.usage["reasoning_tokens"] == 1
