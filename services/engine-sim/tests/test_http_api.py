import asyncio
import json

import aiohttp
import pytest

from tmx_engine_sim.app import build_runner
from tmx_engine_sim.faults import Faults
from tmx_engine_sim.http_api import SimApi
from tmx_engine_sim.settings import Settings

MODEL = "sim-model"


@pytest.fixture
async def sim(asgi_server):
    settings = Settings(models=MODEL, time_scale=0.05, default_max_tokens=5, max_model_len=512)
    runner = build_runner(settings)
    faults = Faults()
    refused = []
    api = SimApi(settings, runner, faults, lambda: refused.append(True))
    runner.start()
    async with asgi_server(api.app(), lifespan="off") as (url, _server):
        async with aiohttp.ClientSession(url) as http:
            yield http, faults, refused
    await runner.stop()


def chat(content="Hello there, how are you?", **extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}


async def test_chat_non_stream_shape_and_cached_tokens_on_repeat(sim):
    http, _, _ = sim
    long_prompt = "word " * 100
    async with http.post("/v1/chat/completions", json=chat(long_prompt)) as resp:
        first = await resp.json()
    assert resp.status == 200
    assert first["object"] == "chat.completion"
    assert first["choices"][0]["message"]["role"] == "assistant"
    assert first["choices"][0]["finish_reason"] == "length"
    assert first["usage"]["completion_tokens"] == 5
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    async with http.post("/v1/chat/completions", json=chat(long_prompt)) as resp:
        second = await resp.json()
    assert second["usage"]["prompt_tokens_details"]["cached_tokens"] == (first["usage"]["prompt_tokens"] // 16) * 16
    assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]


async def test_chat_stream_with_usage_and_done(sim):
    http, _, _ = sim
    async with http.post("/v1/chat/completions", json=chat(stream=True, stream_options={"include_usage": True},
                                                           max_tokens=3)) as resp:
        body = (await resp.read()).decode()
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [e[len("data: "):] for e in body.strip().split("\n\n")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert len(content) == 3 and all(content)
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_a_stream_sends_nothing_before_the_prompt_is_prefilled(asgi_server):
    """Like vLLM, the role chunk goes out with the first token: a gateway reads a stream's first bytes as the end
    of its prefill (prefix_aware counts prompts still waiting for them as queued prefill)."""
    settings = Settings(models=MODEL, time_scale=0.05, default_max_tokens=5, max_model_len=512)
    runner = build_runner(settings)  # not started yet: nothing is prefilled
    api = SimApi(settings, runner, Faults(), lambda: None)
    async with asgi_server(api.app(), lifespan="off") as (url, _server):
        async with aiohttp.ClientSession(url) as http:
            async with http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=2)) as resp:
                assert resp.status == 200
                with pytest.raises(asyncio.TimeoutError):  # the prompt waits for the engine: not a byte yet
                    await asyncio.wait_for(resp.content.readany(), 0.3)
                runner.start()
                first = await asyncio.wait_for(resp.content.readany(), 5.0)
    await runner.stop()
    role, token = (json.loads(e[len(b"data: "):]) for e in first.strip().split(b"\n\n")[:2])
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert token["choices"][0]["delta"]["content"]


async def test_continue_final_message_resumes_the_answer_where_the_prefix_stops(sim):
    http, _, _ = sim
    async with http.post("/v1/chat/completions", json=chat(max_tokens=5)) as resp:
        whole = (await resp.json())["choices"][0]["message"]["content"]
    words = whole.split()
    prefix = " ".join(words[:2])
    continued = chat(max_tokens=3, continue_final_message=True, add_generation_prompt=False)
    continued["messages"].append({"role": "assistant", "content": prefix})
    async with http.post("/v1/chat/completions", json=continued) as resp:
        rest = (await resp.json())["choices"][0]["message"]["content"]
    assert prefix + rest == whole  # a deterministic model continues exactly as it would have
    async with http.post("/v1/chat/completions", json={**continued, "stream": True}) as resp:
        events = [json.loads(e[6:]) for e in (await resp.read()).decode().strip().split("\n\n")[:-1]]
    assert prefix + "".join(e["choices"][0]["delta"].get("content", "") for e in events) == whole
    async with http.post("/v1/chat/completions", json=chat(continue_final_message=True)) as resp:
        error = await resp.json()
    assert resp.status == 400 and error["error"]["param"] == "messages"


async def test_completions_and_embeddings(sim):
    http, _, _ = sim
    async with http.post("/v1/completions", json={"model": MODEL, "prompt": "Once upon", "max_tokens": 2}) as resp:
        body = await resp.json()
    text = body["choices"][0]["text"]
    assert body["object"] == "text_completion" and len(text.split()) == 2
    assert text.startswith(" ")  # it continues "Once upon": the next word comes after a space
    async with http.post("/v1/embeddings", json={"model": MODEL, "input": ["a", "b", "a"]}) as resp:
        body = await resp.json()
    vectors = [d["embedding"] for d in body["data"]]
    assert vectors[0] == vectors[2] != vectors[1]
    assert sum(v * v for v in vectors[0]) == pytest.approx(1.0)


@pytest.mark.parametrize("payload, status, param", [
    (b"{not json", 400, None),
    (json.dumps({"model": "other", "messages": []}).encode(), 404, "model"),
    (json.dumps(chat(max_tokens=0)).encode(), 400, "max_tokens"),
    (json.dumps(chat(max_tokens=1000)).encode(), 400, "max_tokens"),
    (json.dumps({"model": MODEL, "messages": "hi"}).encode(), 400, "messages"),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": [5]}]}).encode(), 400, "messages"),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}).encode(),
     400, "messages"),
    (json.dumps({"model": MODEL, "messages": [{"role": "user", "content": {"text": "hi"}}]}).encode(), 400, "messages"),
    (json.dumps({"model": MODEL, "messages": [{"role": 5, "content": "hi"}]}).encode(), 400, "messages"),
    (json.dumps(chat(stream=True, stream_options=5)).encode(), 400, "stream_options"),
    (json.dumps(chat(stream="yes")).encode(), 400, "stream"),
])
async def test_bad_requests_get_openai_errors(sim, payload, status, param):
    """Each of the malformed messages was a 500, which a gateway reads as the engine failing (and retries)."""
    http, _, _ = sim
    async with http.post("/v1/chat/completions", data=payload) as resp:
        body = await resp.json()
    assert resp.status == status
    assert body["error"]["param"] == param and body["error"]["message"]


async def test_injected_errors_and_dropped_streams(sim):
    http, faults, refused = sim
    async with http.post("/admin/faults", json={"error_rate": 1.0}) as resp:
        assert (await resp.json())["error_rate"] == 1.0
    async with http.post("/v1/chat/completions", json=chat()) as resp:
        assert resp.status == 500
    faults.update({"error_rate": 0.0, "drop_after_tokens": 2})
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=5)) as resp:
            await resp.read()
    async with http.post("/admin/faults", json={"nonsense": 1}) as resp:
        assert resp.status == 400
    async with http.post("/admin/faults", json={"refuse": True}) as resp:
        assert resp.status == 200
    assert refused == [True]


async def test_metrics_use_vllm_names(sim):
    http, _, _ = sim
    async with http.post("/v1/chat/completions", json=chat()) as resp:
        await resp.read()
    async with http.get("/metrics") as resp:
        text = await resp.text()
    for name in ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                 "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                 "vllm:time_to_first_token_seconds_bucket", "vllm:time_per_output_token_seconds_bucket"):
        assert name in text
    assert f'vllm:generation_tokens_total{{model_name="{MODEL}"}} 5.0' in text


async def test_tokenize_counts_what_a_completion_of_the_same_prompt_reads(sim):
    http, _, _ = sim
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something"}]
    async with http.post("/tokenize", json={"model": MODEL, "messages": messages}) as resp:
        counted = await resp.json()
    async with http.post("/v1/chat/completions", json={"model": MODEL, "messages": messages, "max_tokens": 1}) as resp:
        read = (await resp.json())["usage"]["prompt_tokens"]
    assert counted["count"] == len(counted["tokens"]) == read and counted["max_model_len"] == 512
    async with http.post("/tokenize", json={"model": MODEL, "prompt": "Once upon a time"}) as resp:
        assert (await resp.json())["count"] == 4
    async with http.post("/tokenize", json={"model": MODEL}) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["param"] == "prompt"


async def test_the_responses_api_through_the_official_client(sim):
    """/v1/responses as vLLM serves it: the same answer as the chat completion of its input, as a Response or
    as the stream of typed events the openai client assembles."""
    import openai

    http, _, _ = sim
    client = openai.AsyncOpenAI(base_url=f"{str(http._base_url).rstrip('/')}/v1", api_key="x", max_retries=0)
    reply = await client.responses.create(model=MODEL, instructions="Be brief.", input="Say something",
                                          max_output_tokens=3)
    async with http.post("/v1/chat/completions", json={"model": MODEL, "max_tokens": 3, "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something"}]}) as resp:
        chat = await resp.json()
    assert reply.output_text == chat["choices"][0]["message"]["content"] and reply.status == "completed"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (chat["usage"]["prompt_tokens"], 3)
    stream = await client.responses.create(model=MODEL, instructions="Be brief.", max_output_tokens=3,
                                           input=[{"role": "user", "content": [{"type": "input_text",
                                                                                "text": "Say something"}]}],
                                           stream=True)
    events = [event async for event in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1]
    assert [e.type for e in events][:2] == ["response.created", "response.in_progress"]
    assert done.type == "response.completed" and deltas == done.response.output_text == reply.output_text
    assert done.response.usage.output_tokens == 3 and [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model=MODEL, input=[{"role": "robot", "content": "x"}])
    await client.close()
