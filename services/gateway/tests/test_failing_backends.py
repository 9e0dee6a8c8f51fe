"""Backends that fail or refuse: a request that makes every engine fail (a query of death) must not take the fleet
from everyone else (its 500s count against no backend's circuit breaker unless another backend answered the same
request), and busy backends' 429s reach the client with their retry-after, counting against no one."""

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from .test_gateway_http import MODEL, chat, events_on, gateway  # noqa: TID252

COMPLETION = {"id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def engine(crashes_on: str, seen: list) -> Starlette:
    """An engine that answers 500 to any request whose body holds `crashes_on` (every request if it is "")."""
    async def answer(request):
        body = await request.body()
        seen.append(body)
        if crashes_on.encode() in body:
            return JSONResponse({"error": {"message": "engine crashed", "type": "InternalServerError"}}, 500)
        return JSONResponse(COMPLETION)
    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


def poison() -> dict:
    return chat(messages=[{"role": "user", "content": "\u2620 crash the tokenizer"}])


async def test_requests_every_backend_fails_open_no_breaker(asgi_server, tmp_path):
    seen: list = []
    async with asgi_server(engine("\\u2620", seen), lifespan="off") as (a, _), \
            asgi_server(engine("\\u2620", seen), lifespan="off") as (b, _), \
            asgi_server(engine("\\u2620", seen), lifespan="off") as (c, _):
        async with gateway(asgi_server, tmp_path, [("a", a), ("b", b), ("c", c)], breaker_threshold=3,
                           max_attempts=3, retry_budget_ratio=10.0) as (http, gw):
            for _ in range(5):  # before: three of these opened all three breakers, and the fleet answered 503
                async with http.post("/v1/chat/completions", json=poison()) as resp:
                    assert resp.status == 500 and (await resp.json())["error"]["message"] == "engine crashed"
            breakers = {b.id: (b.breaker.state, b.breaker.failures) for b in gw.fleet.backends.values()}
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                assert resp.status == 200
            at_fault = gw.metrics.requests_at_fault._value.get()
    assert len(seen) == 5 * 3 + 1  # each was still tried on every backend: one might have served it
    assert breakers == {"a": ("closed", 0), "b": ("closed", 0), "c": ("closed", 0)}
    assert at_fault == 5


@pytest.mark.parametrize("sick", ["a", "b"])
async def test_a_backend_that_fails_what_another_serves_is_still_counted(asgi_server, tmp_path, sick):
    seen: list = []
    async with asgi_server(engine("" if sick == "a" else "\\u2620", seen), lifespan="off") as (a, _), \
            asgi_server(engine("" if sick == "b" else "\\u2620", seen), lifespan="off") as (b, _):
        async with gateway(asgi_server, tmp_path, [("a", a), ("b", b)], breaker_threshold=3,
                           retry_budget_ratio=10.0) as (http, gw):
            answers = []
            for _ in range(6):  # `a` first, as round robin starts; then it takes every other request
                async with http.post("/v1/chat/completions", json=poison() if sick == "b" else chat(),
                                     headers={"x-tmx-routing": "weighted_round_robin"}) as resp:
                    answers.append(resp.status)
            state = gw.fleet.backends[sick].breaker.state
            at_fault = gw.metrics.requests_at_fault._value.get()
    if sick == "a":  # what failed on `a` was served by `b`: each failure counts, and `a`'s breaker opens
        assert answers == [200] * 6 and state == "open" and at_fault == 0
    else:  # the poison request fails on both: no verdict on either, whichever took it first
        assert answers == [500] * 6 and state == "closed" and at_fault == 6


async def test_the_health_service_hears_which_outcomes_were_the_requests_fault(asgi_server, tmp_path, nats_url,
                                                                              tmx_async_wait):
    """Every outcome of a request all backends failed carries request_at_fault (the health service's passive
    signal ignores those); a 500 another backend made up for is published as a plain failure."""
    from tmx_eventbus import subjects

    seen: list = []
    async with events_on(nats_url, subjects.ALL_SIGNAL) as outcomes, \
            asgi_server(engine("\\u2620", seen), lifespan="off") as (a, _), \
            asgi_server(engine("", seen), lifespan="off") as (sick, _), \
            asgi_server(engine("\\u2620", seen), lifespan="off") as (c, _):
        async with gateway(asgi_server, tmp_path, [("a", a), ("sick", sick), ("c", c)], nats_url=nats_url,
                           retry_budget_ratio=10.0) as (http, gw):
            await tmx_async_wait(gw.ready, 10, what="gateway ready")
            async with http.post("/v1/chat/completions", json=poison()) as resp:
                poisoned = resp.headers["x-tmx-request-id"]
            headers = {"x-tmx-routing": "weighted_round_robin"}  # starts with a: a, then sick, then c
            for _ in range(2):
                async with http.post("/v1/chat/completions", json=chat(), headers=headers) as resp:
                    assert resp.status == 200
            await tmx_async_wait(lambda: sum(o.request_id != poisoned for o in outcomes) >= 3, 10, what="outcomes")
    of_poison = [(o.backend_id, o.http_status, o.request_at_fault) for o in outcomes if o.request_id == poisoned]
    assert sorted(of_poison) == [("a", 500, True), ("c", 500, True), ("sick", 500, True)]
    others = [(o.backend_id, o.http_status, o.request_at_fault) for o in outcomes if o.request_id != poisoned]
    assert ("sick", 500, False) in others and all(not at_fault for _, _, at_fault in others)


async def test_when_every_backend_is_busy_the_client_gets_their_429_and_retry_after(asgi_server, tmp_path):
    async def busy(request):
        await request.body()
        return JSONResponse({"error": {"message": "too many requests", "type": "rate_limit_error"}}, 429,
                            headers={"retry-after": "7"})

    app = Starlette(routes=[Route("/v1/chat/completions", busy, methods=["POST"])])
    async with asgi_server(app, lifespan="off") as (a, _), asgi_server(app, lifespan="off") as (b, _):
        async with gateway(asgi_server, tmp_path, [("a", a), ("b", b)], retry_budget_ratio=10.0) as (http, gw):
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                answer = resp.status, resp.headers.get("retry-after"), (await resp.json())["error"]["message"]
            breakers = {b.id: (b.breaker.state, b.breaker.failures) for b in gw.fleet.backends.values()}
    assert answer == (429, "7", "too many requests")  # tried on both, then the last one's answer, as it gave it
    assert breakers == {"a": ("closed", 0), "b": ("closed", 0)}  # load is not ill health


def answering(mode: str):
    """A backend whose answers are over the gateway's 2000-byte limit by content-length ("big"), chunked and
    without end ("endless"), chunked and small ("chunked"), a 503 refusal that never ends ("refusing"), or a
    stream whose first event never ends ("event-without-end")."""
    from starlette.responses import StreamingResponse

    async def forever():  # as good as: 5 MB, far past the limit, in 512-byte chunks
        for _ in range(10_000):
            yield b" " * 512
            await asyncio.sleep(0)  # in the same process as the gateway: let it run

    async def small():
        for part in (b'{"id": "chatcmpl-1", ', b'"object": "chat.completion", "choices": []}'):
            yield part

    async def answer(request):
        await request.body()
        if mode == "big":
            return JSONResponse({**COMPLETION, "padding": "x" * 5000})
        if mode == "chunked":
            return StreamingResponse(small(), media_type="application/json")
        if mode == "event-without-end":
            return StreamingResponse(forever(), media_type="text/event-stream")
        return StreamingResponse(forever(), 503 if mode == "refusing" else 200, media_type="application/json")
    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


async def test_an_answer_over_the_limit_is_refused_and_a_refusal_without_end_is_still_a_refusal(asgi_server,
                                                                                              tmp_path):
    """A whole answer is held in memory before it is sent: past max_response_bytes it is a 502 (no verdict on the
    backend: the request may ask for that much), whether its length was declared or it never ends; a 503 whose
    body never ends is read no further than that, and the request goes to another backend."""
    answers = {}
    for mode in ("big", "endless", "chunked", "refusing"):
        async with asgi_server(answering(mode), lifespan="off") as (url, _), \
                asgi_server(engine("\u2620", []), lifespan="off") as (healthy, _):
            fleet = [("a", url)] + ([("b", healthy)] if mode == "refusing" else [])
            async with gateway(asgi_server, tmp_path, fleet, max_response_bytes=2000,
                               retry_budget_ratio=10.0) as (http, gw):
                async with http.post("/v1/chat/completions", json=chat(),
                                     headers={"x-tmx-routing": "weighted_round_robin"}) as resp:
                    body = await resp.json()
                    answers[mode] = (resp.status, resp.headers["x-tmx-backend"],
                                     body["error"]["code"] if resp.status != 200 else body["object"])
                answers[mode] += (gw.fleet.backends["a"].breaker.failures,)
    too_large = (502, "a", "upstream_response_too_large", 0)
    assert answers == {"big": too_large, "endless": too_large, "chunked": (200, "a", "chat.completion", 0),
                       "refusing": (200, "b", "chat.completion", 1)}


async def test_a_refusal_whose_body_breaks_still_sends_the_request_elsewhere(asgi_server, tmp_path):
    """A 503 that declares 1000 bytes of body and sends 5 before the connection drops: the request is still
    retried on the other backend (the broken read escaped the gateway as a 500)."""
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length:"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"err")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with asgi_server(engine("\u2620", []), lifespan="off") as (healthy, _):
            async with gateway(asgi_server, tmp_path, [("a", f"http://127.0.0.1:{port}"), ("b", healthy)],
                               retry_budget_ratio=10.0) as (http, gw):
                async with http.post("/v1/chat/completions", json=chat(),
                                     headers={"x-tmx-routing": "weighted_round_robin"}) as resp:
                    answer = resp.status, resp.headers.get("x-tmx-backend")
                failures = gw.fleet.backends["a"].breaker.failures
    finally:
        server.close()
        await server.wait_closed()
    assert answer == (200, "b") and failures == 1


async def test_a_stream_event_over_the_limit_ends_the_stream_with_an_error(asgi_server, tmp_path):
    """An event is held until its blank line arrives, so the relay hands on whole events: one past
    max_response_bytes (a stream that is not SSE, or a broken one) breaks the stream instead of filling memory."""
    async with asgi_server(answering("event-without-end"), lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("a", url)], max_response_bytes=2000) as (http, gw):
            async with http.post("/v1/chat/completions", json=chat(stream=True)) as resp:
                status, body = resp.status, await resp.read()
            failures = gw.fleet.backends["a"].breaker.failures
    error = json.loads(body.decode().removeprefix("data: "))["error"]
    assert status == 200 and error["code"] == "upstream_stream_broken"
    too_large = "upstream a broke mid-stream: an event exceeds the gateway's limit of 2000 bytes (max_response_bytes)"
    assert error["message"] == f"{too_large}; continuation failed (no other backend to continue on)"
    assert failures == 1
