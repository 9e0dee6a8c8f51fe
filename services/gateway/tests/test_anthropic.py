"""The Anthropic edge: translation unit tests, and the official `anthropic` client through the gateway."""

import json

import anthropic
import pytest

from tmx_gateway.domain.anthropic import (
    AnthropicRequestError,
    NotACompletion,
    StreamTranslator,
    from_openai,
    to_openai,
    to_tokenize,
)

from .test_gateway_http import MODEL, engine_sims, gateway  # noqa: TID252


def test_request_translation_covers_system_tools_and_tool_turns():
    body = {
        "model": "m", "max_tokens": 100, "system": [{"type": "text", "text": "Be brief."}],
        "stop_sequences": ["END"], "temperature": 0.2, "metadata": {"user_id": "u-1"},
        "tools": [{"name": "weather", "description": "Get weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                         {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                      "data": "AAA"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                              {"type": "tool_use", "id": "toolu_1", "name": "weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
        ],
    }
    out = to_openai(body)
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["messages"][1]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}
    assistant = out["messages"][2]
    assert assistant["content"] == "Checking." and assistant["tool_calls"][0]["function"] == {
        "name": "weather", "arguments": json.dumps({"city": "Paris"})}
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
    assert out["tools"][0]["function"]["parameters"] == {"type": "object"} and out["tool_choice"] == "required"
    assert (out["stop"], out["temperature"], out["user"], out["max_tokens"]) == (["END"], 0.2, "u-1", 100)


@pytest.mark.parametrize("body, field", [
    ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 1, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}, "role"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "video"}]}]}, "video"),
    *[({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], name: value}, name)
      for name, value in [("tools", 5), ("tools", [5]), ("tools", [{"name": "f", "input_schema": 5}]),
                          ("metadata", 5), ("metadata", {"user_id": 5}), ("stop_sequences", 5),
                          ("stop_sequences", [5]), ("stream", "yes"), ("temperature", "hot"), ("tool_choice", "auto")]],
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
     "text must be a string"),
    ({"model": "m", "max_tokens": 1, "system": [{"type": "text", "text": [5]}], "messages": [
        {"role": "user", "content": "x"}]}, "text must be a string"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": 5}]}]},
     "source must be an object"),
])
def test_bad_requests_name_the_problem(body, field):
    with pytest.raises(AnthropicRequestError, match=field):
        to_openai(body)


def test_response_translation_with_tool_calls_and_cached_usage():
    message = from_openai({"id": "chatcmpl-9", "choices": [{"finish_reason": "tool_calls", "message": {
        "content": "Let me check.", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 32}}}, "m")
    assert message["id"] == "msg_9" and message["stop_reason"] == "tool_use"
    assert message["content"] == [{"type": "text", "text": "Let me check."},
                                  {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}]
    assert message["usage"] == {"input_tokens": 18, "output_tokens": 7, "cache_read_input_tokens": 32,
                                "cache_creation_input_tokens": 0}


def test_the_stop_sequence_that_ended_an_answer_is_named():
    """vLLM names the stop string that matched in `stop_reason`, SGLang in `matched_stop`; a token id there (an
    EOS) is no sequence of the client's."""
    def stop(**choice):
        message = from_openai({"choices": [{"message": {"content": "x"}, **choice}]}, "m")
        return message["stop_reason"], message["stop_sequence"]

    assert stop(finish_reason="stop", stop_reason="END") == ("stop_sequence", "END")
    assert stop(finish_reason="stop", matched_stop="END") == ("stop_sequence", "END")
    assert stop(finish_reason="stop", matched_stop=128001) == ("end_turn", None)
    assert stop(finish_reason="stop", stop_reason=None) == ("end_turn", None)
    assert stop(finish_reason="length", stop_reason="END") == ("max_tokens", None)
    translator = StreamTranslator("m")
    events = translator.feed(b'data: {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop", '
                             b'"stop_reason": "END"}]}\n\n') + translator.finish()
    delta = json.loads(events[-2].split(b"\n")[1][6:])["delta"]
    assert delta == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert to_openai({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [
        {"name": "f", "input_schema": {}}], "tool_choice": {"type": "auto", "disable_parallel_tool_use": True}})[
        "parallel_tool_calls"] is False


def test_stream_translation_emits_the_anthropic_event_sequence():
    chunks = [
        {"choices": [{"delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"delta": {"content": "Hi"}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "w",
                                                                                        "arguments": "{\"a\""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
    ]
    raw = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    translator = StreamTranslator("m")
    events = []
    for i in range(0, len(raw), 13):  # arbitrary chunk boundaries
        events += translator.feed(raw[i:i + 13])
    events += translator.finish()
    parsed = [(e.split(b"\n")[0].decode()[7:], json.loads(e.split(b"\n")[1][6:])) for e in events]
    assert [name for name, _ in parsed] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_stop", "content_block_start",
        "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert parsed[2][1]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert parsed[4][1]["content_block"]["type"] == "tool_use" and parsed[4][1]["index"] == 1
    assert "".join(p[1]["delta"]["partial_json"] for p in parsed[5:7]) == "{\"a\": 1}"
    assert parsed[8][1]["delta"]["stop_reason"] == "tool_use" and parsed[8][1]["usage"]["output_tokens"] == 3


def test_text_documents_are_read_as_text_and_a_pdf_is_refused_by_name():
    def user(*blocks):
        return to_openai({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": list(blocks)}]})

    out = user({"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain",
                                                                  "data": "Line one."}},
               {"type": "document", "context": "From the wiki", "source": {"type": "content", "content": [
                   {"type": "text", "text": "Para A."}, {"type": "text", "text": "Para B."}]}},
               {"type": "text", "text": "Summarise."})
    assert out["messages"] == [{"role": "user",
                                "content": "Notes\n\nLine one.\n\nFrom the wiki\n\nPara A.Para B.\n\nSummarise."}]
    with pytest.raises(AnthropicRequestError, match="a document's source must be text or content blocks \\(got "
                                                    "'base64'\\): an OpenAI-compatible engine reads no PDF"):
        user({"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}})


def test_thinking_is_switched_through_the_chat_template_and_dropped_from_history():
    body = {"model": "m", "max_tokens": 2048, "top_k": 5, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Weather?"},
                         {"role": "assistant", "content": [
                             {"type": "thinking", "thinking": "The user wants weather.", "signature": "sig"},
                             {"type": "redacted_thinking", "data": "opaque"},
                             {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                       "content": "18C"}]}]}
    out = to_openai(body)
    assert out["chat_template_kwargs"] == {"enable_thinking": True} and out["top_k"] == 5
    assert out["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]}
    off = to_openai({**body, "thinking": {"type": "disabled"}})
    assert off["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in to_openai({k: v for k, v in body.items() if k != "thinking"})
    assert to_tokenize(body)["chat_template_kwargs"] == {"enable_thinking": True}  # no max_tokens to stay below
    for thinking, why in [({"type": "enabled"}, "budget_tokens"), ({"type": "enabled", "budget_tokens": 512},
                                                                     "at least 1024"),
                          ({"type": "enabled", "budget_tokens": 4096}, "below max_tokens"), ({"type": "on"}, "type"),
                          ("yes", "object")]:
        with pytest.raises(AnthropicRequestError, match=why):
            to_openai({**body, "thinking": thinking})


def test_a_reasoning_models_reasoning_becomes_a_thinking_block():
    for field in ("reasoning_content", "reasoning"):  # vLLM before 0.10 and SGLang; vLLM since
        message = from_openai({"id": "chatcmpl-1", "choices": [{"finish_reason": "stop", "message": {
            field: "2 + 2 is 4.", "content": "4"}}]}, "m")
        assert message["content"] == [{"type": "thinking", "thinking": "2 + 2 is 4.", "signature": ""},
                                      {"type": "text", "text": "4"}]
    chunks = [{"choices": [{"delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"delta": {"reasoning_content": "2 + 2"}}]},
              {"choices": [{"delta": {"reasoning_content": " is 4."}}]},
              {"choices": [{"delta": {"content": "4"}, "finish_reason": "stop"}]}]
    translator = StreamTranslator("m")
    events = translator.feed(b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)) + translator.finish()
    parsed = [(e.split(b"\n")[0].decode()[7:], json.loads(e.split(b"\n")[1][6:])) for e in events]
    assert [name for name, _ in parsed] == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert parsed[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [p[1]["delta"] for p in parsed[2:4]] == [{"type": "thinking_delta", "thinking": "2 + 2"},
                                                     {"type": "thinking_delta", "thinking": " is 4."}]
    assert parsed[5][1]["index"] == 1 and parsed[6][1]["delta"] == {"type": "text_delta", "text": "4"}
    with pytest.raises(NotACompletion, match="reasoning is not a string"):
        from_openai({"choices": [{"message": {"reasoning_content": 5}}]}, "m")


async def test_an_anthropic_client_reads_a_reasoning_models_thinking(asgi_server, tmp_path):
    """The official client, streamed and not, against an engine that answers reasoning apart from its text (as
    vLLM does with a reasoning parser); the thinking it sends back in the next turn does not reach the engine."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    received = []

    async def completions(request):
        body = await request.json()
        received.append(body)
        if not body.get("stream"):
            return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL, "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "reasoning": "Add them.",
                                                                  "content": "4"}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 5}})

        async def events():
            for delta in ({"role": "assistant", "content": ""}, {"reasoning_content": "Add"},
                          {"reasoning_content": " them."}, {"content": "4"}):
                chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    asked = [{"role": "user", "content": "2 + 2?"}]
    async with asgi_server(app, lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("r1", url)]) as (http, _):
            client = anthropic.AsyncAnthropic(base_url=str(http._base_url).rstrip("/"), api_key="unused",
                                              max_retries=0)
            thinking = {"type": "enabled", "budget_tokens": 1024}
            reply = await client.messages.create(model=MODEL, max_tokens=2000, thinking=thinking, messages=asked)
            async with client.messages.stream(model=MODEL, max_tokens=2000, messages=asked) as stream:
                final = await stream.get_final_message()
            again = await client.messages.create(model=MODEL, max_tokens=2000, thinking=thinking, messages=[
                *asked, {"role": "assistant", "content": [block.model_dump() for block in reply.content]},
                {"role": "user", "content": "And 3 + 3?"}])
            await client.close()
    assert [(b.type, getattr(b, "thinking", None) or b.text) for b in reply.content] == [("thinking", "Add them."),
                                                                                         ("text", "4")]
    assert [(b.type, getattr(b, "thinking", None) or b.text) for b in final.content] == [("thinking", "Add them."),
                                                                                         ("text", "4")]
    assert again.content[1].text == "4" and received[0]["chat_template_kwargs"] == {"enable_thinking": True}
    assert received[2]["messages"][1] == {"role": "assistant", "content": "4"}  # its thinking left out


async def test_the_official_anthropic_client_through_the_gateway(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 2) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0]), ("s2", sims[1][0])]) as (http, _):
            client = anthropic.AsyncAnthropic(base_url=str(http._base_url).rstrip("/"), api_key="unused",
                                              max_retries=0)
            reply = await client.messages.create(model=MODEL, max_tokens=5, system="You are terse.",
                                                 messages=[{"role": "user", "content": "Hello"}])
            assert reply.role == "assistant" and reply.stop_reason == "max_tokens"
            assert len(reply.content[0].text.split()) == 5 and reply.usage.output_tokens == 5
            assert reply.usage.input_tokens > 0
            async with client.messages.stream(model=MODEL, max_tokens=4,
                                              messages=[{"role": "user", "content": "Hello"}]) as stream:
                text = "".join([t async for t in stream.text_stream])
                final = await stream.get_final_message()
            assert text == final.content[0].text and len(text.split()) == 4
            assert final.stop_reason == "max_tokens" and final.usage.output_tokens == 4
            with pytest.raises(anthropic.NotFoundError) as info:
                await client.messages.create(model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}])
            assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"
            async with http.post("/v1/messages", json={"model": MODEL, "messages": [{"role": "user",
                                                                                     "content": "x"}]}) as resp:
                body = await resp.json()
            assert resp.status == 400 and body["error"]["type"] == "invalid_request_error"
            assert "max_tokens" in body["error"]["message"]
            await client.close()


async def test_a_client_leaving_an_anthropic_stream_cancels_the_upstream_stream(asgi_server, tmp_path, tmx_async_wait):
    async with engine_sims(asgi_server, 1) as sims:
        sim_url, _, runner = sims[0]
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)]) as (http, gw):
            resp = await http.post("/v1/messages", json={"model": MODEL, "max_tokens": 2000, "stream": True,
                                                          "messages": [{"role": "user", "content": "Hello"}]})
            while b"content_block_delta" not in await resp.content.readline():
                pass
            assert len(runner.core.running) == 1 and gw.fleet.backends["s1"].inflight == 1
            resp.close()
            await tmx_async_wait(lambda: runner.core.idle, 10, what="upstream cancelled")
            await tmx_async_wait(lambda: gw.fleet.backends["s1"].inflight == 0, 5, what="inflight released")
            assert gw.fleet.backends["s1"].failed == 0
            gw.metrics.flush()  # the request path tallies its metrics (see metrics.Children)
            assert gw.metrics.requests.labels(MODEL, "s1", "499")._value.get() == 1
    assert runner.core.cache.usage == 0


async def test_with_tenants_an_anthropic_client_authenticates_with_its_x_api_key(asgi_server, tmp_path):
    from tmx_config.fleet import TenantSpec

    tenants = (TenantSpec(name="acme", api_keys=("sk-acme",)),)
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants) as (http, _):
            base = str(http._base_url).rstrip("/")
            keyed = anthropic.AsyncAnthropic(base_url=base, api_key="sk-acme", max_retries=0)
            reply = await keyed.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "x"}])
            async with http.post("/v1/messages", json={"model": MODEL, "max_tokens": 2,
                                                       "messages": [{"role": "user", "content": "x"}]}) as resp:
                missing = await resp.json()
            wrong = anthropic.AsyncAnthropic(base_url=base, api_key="sk-other", max_retries=0)
            with pytest.raises(anthropic.AuthenticationError) as refused:
                await wrong.messages.create(model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "x"}])
            await keyed.close()
            await wrong.close()
    assert reply.usage.output_tokens == 2
    assert resp.status == 401 and missing["error"] == {"type": "authentication_error",
                                                       "message": "missing API key (x-api-key)"}
    assert refused.value.body["error"]["message"] == "invalid API key"


async def test_count_tokens_counts_what_the_same_messages_request_reads(asgi_server, tmp_path):
    """By the backend's own tokenizer (vLLM's /tokenize): the count equals the input tokens a Messages request
    with the same system prompt and messages is billed for."""
    async with engine_sims(asgi_server, 2) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0]), ("s2", sims[1][0])]) as (http, _):
            client = anthropic.AsyncAnthropic(base_url=str(http._base_url).rstrip("/"), api_key="unused",
                                              max_retries=0)
            asked = {"model": MODEL, "system": "You are terse.",
                     "messages": [{"role": "user", "content": "Hello there"},
                                  {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "And?"}]}
            counted = await client.messages.count_tokens(**asked)
            reply = await client.messages.create(max_tokens=2, **asked)
            async with http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": "x"}) as resp:
                refused = await resp.json()
            async with http.post("/v1/messages/count_tokens", json={"model": "nope", "messages": [
                    {"role": "user", "content": "x"}]}) as resp:
                unknown = resp.status, (await resp.json())["error"]["type"]
            async with http.post("/tokenize", json={"model": "alias", "prompt": "Once upon a time"}) as resp:
                tokenized = resp.status, (await resp.json())["count"], resp.headers["x-tmx-backend"]
            await client.close()
    assert counted.input_tokens == reply.usage.input_tokens > 10
    assert refused["type"] == "error" and "messages" in refused["error"]["message"]
    assert unknown == (404, "not_found_error")
    assert tokenized[:2] == (200, 4) and tokenized[2] in ("s1", "s2")  # OpenAI-side /tokenize passes through


async def test_counting_tokens_spends_no_tokens_per_minute(asgi_server, tmp_path):
    """It runs no model: a tenant's tokens-per-minute is untouched by it (and it is answered even with them spent),
    while a Messages request reserves its prompt and max_tokens."""
    from tmx_config.fleet import TenantSpec

    tenant = TenantSpec(name="acme", api_keys=("sk-acme",), tpm_limit=1000)
    asked = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]}
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=(tenant,)) as (http, _):
            key = {"x-api-key": "sk-acme"}
            remaining = []
            for _ in range(2):
                async with http.post("/v1/messages/count_tokens", json=asked, headers=key) as resp:
                    assert resp.status == 200
                    remaining.append(resp.headers["x-ratelimit-remaining-tokens"])
            async with http.post("/v1/messages", json={**asked, "max_tokens": 900}, headers=key) as resp:
                assert resp.status == 200
                remaining.append(resp.headers["x-ratelimit-remaining-tokens"])
    assert remaining[:2] == ["1000", "1000"] and int(remaining[2]) < 100


async def test_count_tokens_says_so_when_the_engine_cannot_tokenize(asgi_server, tmp_path):
    from starlette.applications import Starlette

    async with asgi_server(Starlette(), lifespan="off") as (url, _):  # an engine with no /tokenize: every path 404s
        async with gateway(asgi_server, tmp_path, [("bare", url)]) as (http, _):
            async with http.post("/v1/messages/count_tokens", json={"model": MODEL, "messages": [
                    {"role": "user", "content": "x"}]}) as resp:
                body = await resp.json()
    assert resp.status == 501 and body["type"] == "error"
    assert body["error"]["message"] == "backend bare cannot count tokens: it has no /tokenize endpoint"


async def test_an_anthropic_client_lists_and_retrieves_models_in_its_own_shape(asgi_server, tmp_path):
    """Anthropic's models API through the gateway: its client (x-api-key, anthropic-version) gets the catalogue as
    Anthropic lists models, and errors in Anthropic's shape; an OpenAI client still gets OpenAI's."""
    from tmx_config.fleet import TenantSpec

    tenants = (TenantSpec(name="acme", api_keys=("sk-acme",)),)
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants) as (http, _):
            base = str(http._base_url).rstrip("/")
            client = anthropic.AsyncAnthropic(base_url=base, api_key="sk-acme", max_retries=0)
            listed = [m async for m in client.models.list()]
            retrieved = await client.models.retrieve("alias")
            with pytest.raises(anthropic.NotFoundError) as missing:
                await client.models.retrieve("nope")
            stranger = anthropic.AsyncAnthropic(base_url=base, api_key="sk-nope", max_retries=0)
            with pytest.raises(anthropic.AuthenticationError) as refused:
                await stranger.models.list()
            await client.close()
            await stranger.close()
            async with http.get("/v1/models", headers={"Authorization": "Bearer sk-acme"}) as resp:
                openai_shape = await resp.json()
    assert [(m.type, m.id, m.display_name) for m in listed] == [("model", MODEL, MODEL)]
    assert retrieved.id == MODEL and retrieved.created_at.year == 1970
    assert missing.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                             "message": "The model `nope` does not exist"}}
    assert refused.value.body["error"]["type"] == "authentication_error"
    assert openai_shape["object"] == "list" and openai_shape["data"][0]["object"] == "model"
