"""Malformed input on both sides of the gateway: a client's body nested beyond what a JSON parser reads, and a
backend answering with JSON that is not what its API promises. Each gets a clear error in the caller's API
shape, or passes through untouched; never a 500, never a stream cut short without an error."""

import json

import pytest
from starlette.applications import Starlette
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tmx_gateway.domain.anthropic import StreamTranslator
from tmx_gateway.domain.continuation import read_transcript, rewrite
from tmx_gateway.domain.metering import StreamMeter, Usage, usage_from_body

from .test_gateway_http import MODEL, chat, gateway  # noqa: TID252


def nested(depth: int) -> bytes:
    return b'{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "x": %s%s}' % (
        MODEL.encode(), b"[" * depth, b"]" * depth)


@pytest.mark.parametrize("depth", [1_000, 100_000])
async def test_a_body_nested_too_deep_is_a_400_on_every_edge(asgi_server, tmp_path, depth):
    """orjson stops at 1024 levels and the standard library at Python's recursion limit (~1000): a body past
    both, and one between them that only the exact parser (an alias rewritten, the Anthropic edge) meets."""
    async with gateway(asgi_server, tmp_path, [("s1", "http://127.0.0.1:9")]) as (http, _):
        body = nested(depth)
        async with http.post("/v1/chat/completions", data=body.replace(MODEL.encode(), b"alias")) as resp:
            error = (await resp.json())["error"]
        assert resp.status == 400 and error["code"] == "invalid_json", error
        assert error["message"] == "invalid JSON body: JSON nested too deeply"
        async with http.post("/v1/messages", data=body) as resp:
            answer = await resp.json()
        assert resp.status == 400 and answer["type"] == "error", answer
        assert answer["error"]["type"] == "invalid_request_error" and "invalid JSON body" in answer["error"]["message"]


def backend_answering(body: bytes, content_type: str = "application/json") -> Starlette:
    async def answer(request):
        await request.body()
        return Response(body, media_type=content_type)
    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


NOT_A_COMPLETION = [b"not json", b"[1, 2]", b"5", b'{"choices": 5}', b'{"choices": [5]}',
                    b'{"choices": [{"message": {"tool_calls": [5]}}]}', b'{"usage": {"prompt_tokens": [1]}}',
                    b'{"usage": {"prompt_tokens": 1e400, "completion_tokens": -Infinity}}',
                    b'{"usage": {"prompt_tokens_details": {"cached_tokens": "many"}}}']
# of those, what the Anthropic edge can still translate (an empty message whose usage it cannot read counts 0)
READABLE = set(NOT_A_COMPLETION[-3:])


@pytest.mark.parametrize("answer", NOT_A_COMPLETION)
async def test_a_backend_answer_that_is_not_a_completion_passes_through_or_is_a_502(asgi_server, tmp_path, answer):
    """The OpenAI edge is a proxy: it passes the bytes on as they came (and meters nothing it cannot read). The
    Anthropic edge must translate them: where it cannot, a 502 in Anthropic's error shape."""
    async with asgi_server(backend_answering(answer), lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("s1", url)]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                assert resp.status == 200 and await resp.read() == answer
            async with http.post("/v1/messages", json={"model": MODEL, "max_tokens": 5,
                                                       "messages": [{"role": "user", "content": "hi"}]}) as resp:
                reply = await resp.json()
    if answer in READABLE:  # what it could read, as a message: a usage it cannot read counts nothing
        assert resp.status == 200 and reply["type"] == "message" and reply["role"] == "assistant"
        assert reply["content"] == [] and set(reply["usage"].values()) == {0}, reply
    else:
        assert resp.status == 502 and reply["type"] == "error" and reply["error"]["type"] == "api_error", reply
        assert "not a chat completion" in reply["error"]["message"]


def test_the_anthropic_edge_translates_what_it_can_and_refuses_the_rest():
    """The translation itself, for each of NOT_A_COMPLETION."""
    from tmx_gateway.domain.anthropic import NotACompletion, from_openai
    for answer in NOT_A_COMPLETION:
        if answer in READABLE:
            message = from_openai(json.loads(answer), "m")
            assert message["content"] == [] and message["usage"]["input_tokens"] == 0
        else:
            with pytest.raises(NotACompletion):
                from_openai(json.loads(answer) if answer != b"not json" else "not json", "m")


@pytest.mark.parametrize("usage", [b'{"prompt_tokens": [1]}', b'{"prompt_tokens": 1e400}',
                                   b'{"prompt_tokens": -Infinity}', b'{"prompt_tokens": "x"}',
                                   b'{"prompt_tokens": NaN, "completion_tokens": 3}', b'{"prompt_tokens": -4}',
                                   b'{"prompt_tokens_details": [1], "completion_tokens": 2.0}'])
def test_a_usage_the_meter_cannot_read_counts_nothing_it_cannot_read(usage):
    expected_completion = 3 if b'"completion_tokens": 3' in usage else 2 if b"2.0" in usage else 0
    got = usage_from_body(b'{"usage": %s}' % usage)
    assert got == Usage(completion_tokens=expected_completion)
    meter = StreamMeter()
    meter.feed(b'data: {"choices": [], "usage": %s}\n\ndata: [DONE]\n\n' % usage)
    assert meter.result() == Usage(completion_tokens=expected_completion)


@pytest.mark.parametrize("event", [b"5", b"[1]", b'{"choices": 5}', b'{"choices": [5]}', b'{"error": 5}',
                                   b'{"choices": [{"delta": {"tool_calls": [5]}}]}', b"not json",
                                   b'{"choices": [{"delta": {"content": ["Hi"]}}]}'])
def test_an_anthropic_stream_ends_with_an_error_at_an_event_it_cannot_translate(event):
    translator = StreamTranslator("m")
    good = b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
    out = b"".join(translator.feed(good + b"data: " + event + b"\n\n" + good) + translator.finish())
    names = [line[7:] for line in out.split(b"\n") if line.startswith(b"event: ")]
    assert names == [b"message_start", b"content_block_start", b"content_block_delta", b"error"], out
    assert b"not a chat completion chunk" in out


@pytest.mark.parametrize("event", [b"5", b"not json", b'{"choices": 5}', b'{"choices": [5]}',
                                   b'{"choices": [{"delta": 5}]}', b'{"choices": [{"delta": {"content": 5}}]}',
                                   b'{"choices": [{"text": ["a"]}]}', b"[" * 2000 + b"]" * 2000])
def test_a_broken_stream_with_an_event_that_is_not_a_chunk_is_not_continued(event):
    """Its text cannot be known, so a continuation would repeat or lose some: the stream ends with an error."""
    good = b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
    t = read_transcript([good, b"data: " + event + b"\n\n", good])
    assert t.obstacle == "an event that is not a completion chunk" and t.text == "HiHi"
    assert rewrite(b"data: " + event + b"\n\n", t) == b"data: " + event + b"\n\n"  # passed on as it came


def test_a_continuations_usage_it_cannot_read_counts_the_part_already_sent():
    t = read_transcript([b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'])
    out = rewrite(b'data: {"choices": [], "usage": {"prompt_tokens": "x", "completion_tokens": 2}}\n\n', t)
    assert json.loads(out[6:])["usage"] == {"prompt_tokens": 0, "completion_tokens": 3, "total_tokens": 3}


def backend_breaking_its_stream() -> Starlette:
    """Answers any body (it never parses it) with a stream that breaks after one chunk."""
    async def answer(request):
        await request.body()

        async def events():
            yield b'data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
            raise ConnectionResetError("the engine died")
        return StreamingResponse(events(), media_type="text/event-stream")
    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


async def test_a_broken_stream_whose_request_only_orjson_can_read_ends_with_an_sse_error(asgi_server, tmp_path):
    """A continuation writes the request out again, exactly, so it re-reads it with the standard library, which
    stops ~1000 levels deep where orjson (which read it first) goes to 1024: that stream is not continued."""
    body = nested(1_000).replace(b'"x"', b'"stream": true, "x"')
    async with asgi_server(backend_breaking_its_stream(), lifespan="off") as (url_1, _), \
            asgi_server(backend_breaking_its_stream(), lifespan="off") as (url_2, _):
        async with gateway(asgi_server, tmp_path, [("s1", url_1), ("s2", url_2)]) as (http, _):
            async with http.post("/v1/chat/completions", data=body) as resp:
                assert resp.status == 200
                raw = await resp.read()
    events = raw.decode().strip().split("\n\n")
    assert events[0].startswith('data: {"id": "c1"') and len(events) == 2, raw
    error = json.loads(events[1][6:])["error"]
    assert error["code"] == "upstream_stream_broken" and "nested too deeply" in error["message"]


@pytest.mark.parametrize("sent", [b"", b'{"model": "sim'])
async def test_a_body_that_never_finishes_arriving_is_a_408(asgi_server, tmp_path, sent):
    """A client that sends headers and then trickles its body (or none of it) does not hold a request open
    forever: after body_read_timeout_s the gateway answers 408 and the connection is free to go."""
    import asyncio
    from urllib.parse import urlsplit

    async with gateway(asgi_server, tmp_path, [("s1", "http://127.0.0.1:9")], body_read_timeout_s=0.2) as (http, _):
        url = urlsplit(str(http._base_url))
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\n\r\n" + sent)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length")))
        error = json.loads(await asyncio.wait_for(reader.readexactly(length), 5))["error"]
        writer.close()
    assert head.startswith(b"HTTP/1.1 408") and error["code"] == "request_timeout" and error["type"] == "timeout_error"
    assert error["message"] == "the request body did not arrive within 0.2 s"


async def test_a_clients_trace_context_and_request_id_reach_the_backend_and_nothing_else_does(asgi_server, tmp_path):
    seen: list = []

    async def answer(request):
        seen.append(dict(request.headers))
        return Response(b'{"choices": []}', media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    trace = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=1",
             "x-request-id": "client-42"}
    async with asgi_server(app, lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("s1", url)]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat(), headers={**trace, "authorization": "Bearer k",
                                                                               "cookie": "a=b", "x-other": "1"}):
                pass
            async with http.post("/v1/chat/completions", json=chat()):
                pass
    assert {k: seen[0].get(k) for k in trace} == trace
    assert not {"authorization", "cookie", "x-other"} & set(seen[0])  # a client's credentials stay at the edge
    assert not set(trace) & set(seen[1])  # none invented for a client that sent none
