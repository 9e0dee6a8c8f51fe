"""The gateway over real engine-sims and a real NATS, each on its own uvicorn server."""

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import time

import aiohttp
import anthropic
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tensormux.events.v1 import events_pb2
from tmx_config import FleetFile
from tmx_config.fleet import BackendSpec, ModelSpec, TenantSpec, dump_fleet
from tmx_engine_sim.app import build_runner
from tmx_engine_sim.faults import Faults
from tmx_engine_sim.http_api import SimApi
from tmx_engine_sim.settings import Settings as SimSettings
from tmx_eventbus import EventBus, decode_all, subjects
from tmx_gateway.app import Gateway
from tmx_gateway.settings import Settings

MODEL = "sim-model"


@contextlib.asynccontextmanager
async def engine_sims(asgi_server, count, **overrides):
    """`count` engine-sims; `overrides`: settings, each a value for all or a tuple of one per sim."""
    async with contextlib.AsyncExitStack() as stack:
        sims = []
        for i in range(count):
            own = {k: v[i] if isinstance(v, tuple) else v for k, v in overrides.items()}
            settings = SimSettings(**{"models": MODEL, "time_scale": 0.02, "default_max_tokens": 4, **own})
            runner = build_runner(settings)
            runner.start()
            stack.push_async_callback(runner.stop)
            faults = Faults()
            url, _ = await stack.enter_async_context(asgi_server(SimApi(settings, runner, faults, lambda: None).app(),
                                                                 lifespan="off"))
            sims.append((url, faults, runner))
        yield sims


@contextlib.asynccontextmanager
async def gateway(asgi_server, tmp_path, backends, nats_url="", tenants=(), wrap=lambda app: app, **settings):
    """A gateway over `backends` ((id, url) pairs) on its own server; `wrap`: ASGI middleware around its app."""
    fleet = FleetFile(backends=tuple(BackendSpec(id=i, url=u, models=(MODEL,)) for i, u in backends),
                      models=(ModelSpec(name=MODEL, aliases=("alias",)),), tenants=tenants)
    path = tmp_path / "tensormux.yaml"
    dump_fleet(fleet, path)
    settings.setdefault("spool_path", str(tmp_path / "events.spool"))
    gw = Gateway(Settings(fleet_file=str(path), nats_url=nats_url, **settings), fleet)
    async with asgi_server(wrap(gw.starlette())) as (url, _):
        async with aiohttp.ClientSession(url) as http:
            yield http, gw


@contextlib.asynccontextmanager
async def events_on(nats_url: str, subject: str):
    """The events published on `subject` (a wildcard will do) while in the block, decoded, as they arrive (at
    least once each: the publisher's ack barrier repeats a batch's last event)."""
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    events: list = []

    async def take(msg):
        events.extend(decode_all(msg.data, msg.headers))

    sub = await bus.nc.subscribe(subject, cb=take)
    try:
        yield events
    finally:
        await sub.unsubscribe()
        await bus.close()


def chat(**extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": "Say something"}], **extra}


async def test_proxies_chat_and_streams_bytes_unchanged(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        (sim_url, _, _), = sims
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                body = await resp.json()
                assert resp.status == 200 and resp.headers["x-tmx-backend"] == "s1"
            assert body["usage"]["completion_tokens"] == 4
            payload = chat(stream=True, max_tokens=3)
            async with http.post("/v1/chat/completions", json=payload) as resp:
                via_gateway = await resp.read()
            async with aiohttp.ClientSession() as direct, direct.post(f"{sim_url}/v1/chat/completions",
                                                                       json=payload) as resp:
                direct_bytes = await resp.read()
    strip_ids = lambda raw: [  # noqa: E731 - ids and timestamps differ per request, nothing else may
        {k: v for k, v in json.loads(e[6:]).items() if k not in ("id", "created")} if e != "data: [DONE]" else e
        for e in raw.decode().strip().split("\n\n")]
    assert strip_ids(via_gateway) == strip_ids(direct_bytes)


async def test_a_relayed_stream_ends_with_its_done_event_in_the_last_message(asgi_server, tmp_path):
    """The relay holds `[DONE]` until the upstream ends and sends it with the response's end: the server writes
    them at once. The client still gets every byte, in order."""
    bodies: list[tuple[bytes, bool]] = []

    def recording(app):
        async def wrapped(scope, receive, send):
            async def recorded(message):
                if message["type"] == "http.response.body" and scope.get("path") == "/v1/chat/completions":
                    bodies.append((message.get("body", b""), message.get("more_body", False)))
                await send(message)
            await app(scope, receive, recorded)
        return wrapped

    async with engine_sims(asgi_server, 1) as sims:
        (sim_url, _, _), = sims
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)], wrap=recording) as (http, _):
            async with http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=3)) as resp:
                received = await resp.read()
    assert resp.status == 200 and received.endswith(b"data: [DONE]\n\n")
    assert b"".join(body for body, _ in bodies) == received
    assert bodies[-1][1] is False and bodies[-1][0].endswith(b"data: [DONE]\n\n")
    assert all(more for _, more in bodies[:-1]) and all(body for body, _ in bodies)


class RecordingBackend:
    """Answers chat requests and keeps every body it received; its first stream breaks after two events."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.streams = 0

    def app(self) -> Starlette:
        async def chat_endpoint(request: Request):
            self.bodies.append(await request.body())
            if not json.loads(self.bodies[-1]).get("stream"):
                return JSONResponse({"id": "c", "object": "chat.completion", "model": MODEL, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
            self.streams += 1
            breaks = self.streams == 1

            async def events():
                for i, delta in enumerate([{"role": "assistant", "content": ""}, {"content": "a"}, {"content": "b"}]):
                    if breaks and i == 2:
                        raise ConnectionResetError("the replica died mid-stream")
                    yield "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                                                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
                    yield "\n\n"
                yield "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                yield "\n\ndata: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return Starlette(routes=[Route("/v1/chat/completions", chat_endpoint, methods=["POST"])])


async def test_a_body_written_out_again_keeps_its_exact_numbers(asgi_server, tmp_path):
    """Bodies are read with orjson, which reads an integer beyond 64 bits as a float. A body passed on is passed
    byte for byte; one written out again (an alias renamed, a broken stream continued) is parsed exactly first."""
    seed = 123456789012345678901234567890
    backend = RecordingBackend()
    async with asgi_server(backend.app()) as (url0, _), asgi_server(backend.app()) as (url1, _):
        async with gateway(asgi_server, tmp_path, [("r0", url0), ("r1", url1)]) as (http, _):
            plain = ('{"model": "%s", "messages": [{"role": "user", "content": "hi"}], "seed": %d}' % (MODEL, seed))
            for body in (plain, plain.replace(f'"{MODEL}"', '"alias"'),
                         plain.replace('"seed"', '"stream": true, "max_tokens": 8, "seed"')):
                async with http.post("/v1/chat/completions", data=body,
                                     headers={"content-type": "application/json"}) as resp:
                    assert resp.status == 200
                    answer = await resp.read()
    passed_on, renamed, broken, continued = backend.bodies
    assert passed_on == plain.encode()  # untouched
    assert json.loads(renamed)["seed"] == seed and json.loads(renamed)["model"] == MODEL
    assert json.loads(broken)["stream"] and b"data: [DONE]" in answer and b"upstream_stream_broken" not in answer
    continuation = json.loads(continued)
    assert continuation["seed"] == seed and continuation["messages"][-1] == {"role": "assistant", "content": "a"}


async def test_embeddings_completions_aliases_and_models(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            async with http.post("/v1/embeddings", json={"model": "alias", "input": "x"}) as resp:
                assert resp.status == 200 and (await resp.json())["model"] == MODEL
            async with http.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2}) as resp:
                assert (await resp.json())["object"] == "text_completion"
            async with http.get("/v1/models") as resp:
                models = (await resp.json())["data"]
    assert models[0]["id"] == MODEL and models[0]["aliases"] == ["alias"]
    assert models[0]["backends"] == [{"id": "s1", "state": "unknown", "routable": True}]


async def test_the_official_openai_client_retrieves_a_model_by_name_or_alias(asgi_server, tmp_path):
    import openai

    async with gateway(asgi_server, tmp_path, [("s1", "http://127.0.0.1:9")]) as (http, _):
        client = openai.AsyncOpenAI(base_url=f"{str(http._base_url).rstrip('/')}/v1", api_key="unused", max_retries=0)
        by_name, by_alias = await client.models.retrieve(MODEL), await client.models.retrieve("alias")
        listed = [m.id async for m in client.models.list()]
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("org/no-such-model")  # a name with a slash, as hub names have
        await client.close()
    assert by_name.id == by_alias.id == MODEL and listed == [MODEL]
    assert by_alias.model_extra["aliases"] == ["alias"] and by_alias.model_extra["backends"][0]["id"] == "s1"
    assert missing.value.body["code"] == "model_not_found" and "org/no-such-model" in missing.value.body["message"]


async def test_errors_are_openai_shaped(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], max_body_bytes=1000) as (http, gw):
            cases = [
                (b"{oops", 400, "invalid_json"),
                (json.dumps({"messages": []}).encode(), 400, "missing_model"),
                (json.dumps(chat(model="nope")).encode(), 404, "model_not_found"),
                (json.dumps(chat(stream="yes")).encode(), 400, None),
                (json.dumps(chat(pad="x" * 2000)).encode(), 413, "request_too_large"),
            ]
            for payload, status, code in cases:
                async with http.post("/v1/chat/completions", data=payload) as resp:
                    body = await resp.json()
                assert resp.status == status, payload[:40]
                assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["type"]
            gw.fleet.eject("s1", until=float("inf"))
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                body = await resp.json()
            assert resp.status == 503 and body["error"]["code"] == "no_healthy_backend"
            async with http.get("/v1/nothing") as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_route"
            async with http.get("/v1/chat/completions") as resp:  # a proxied path, but not a POST: Starlette's 405
                assert resp.status == 405 and (await resp.json())["error"]["type"] == "api_error"


async def test_a_bug_in_a_handler_is_an_openai_shaped_500_and_the_gateway_goes_on(asgi_server, tmp_path, monkeypatch):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, gw):
            real = gw.fleet.candidates
            monkeypatch.setattr(gw.fleet, "candidates", lambda *a: 1 / 0)
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                body = await resp.json()
            assert resp.status == 500 and body["error"]["code"] == "internal_error"
            monkeypatch.setattr(gw.fleet, "candidates", real)
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                assert resp.status == 200


async def test_metrics_count_requests_tokens_and_inflight(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            for _ in range(3):
                async with http.post("/v1/chat/completions", json=chat(max_tokens=2)) as resp:
                    assert resp.status == 200
            async with http.post("/v1/chat/completions", json=chat(model="nope")) as resp:
                assert resp.status == 404
            async with http.get("/metrics") as resp:
                text = await resp.text()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert samples[f'tmx_gateway_requests_total{{backend="s1",model="{MODEL}",status="200"}}'] == 3
    assert samples[f'tmx_gateway_tokens_total{{kind="completion",model="{MODEL}",tenant="default"}}'] == 6
    assert samples[f'tmx_gateway_request_duration_seconds_count{{model="{MODEL}"}}'] == 3
    assert samples['tmx_gateway_inflight{backend="s1"}'] == 0


async def test_the_responses_api_through_the_gateway_is_routed_metered_and_streamed(asgi_server, tmp_path,
                                                                                    nats_url, tmx_async_wait):
    """OpenAI's Responses API (vLLM serves it) with the official client: by alias, streamed and not, its usage
    (input_tokens / output_tokens, in the final event's response when streamed) metered and audited."""
    import openai

    async with events_on(nats_url, subjects.ALL_AUDIT) as audits, engine_sims(asgi_server, 2) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0]), ("s2", sims[1][0])],
                           nats_url=nats_url) as (http, gw):
            await tmx_async_wait(gw.ready, 10, what="gateway ready")
            client = openai.AsyncOpenAI(base_url=f"{str(http._base_url).rstrip('/')}/v1", api_key="x", max_retries=0)
            reply = await client.responses.create(model="alias", instructions="Be brief.", input="Say something",
                                                  max_output_tokens=3)
            stream = await client.responses.create(model=MODEL, instructions="Be brief.", input="Say something",
                                                   max_output_tokens=3, stream=True)
            events = [event async for event in stream]
            await client.close()
            await tmx_async_wait(lambda: len({a.event_id for a in audits}) == 2, 10, what="audits")
            async with http.get("/metrics") as resp:
                text = await resp.text()
    done = events[-1]
    assert reply.status == "completed" and len(reply.output_text.split()) == 3
    assert done.type == "response.completed" and done.response.output_text == reply.output_text  # deterministic
    audits = list({a.event_id: a for a in audits}.values())  # at least once on the wire; JetStream dedupes by id
    assert [(a.endpoint, a.streamed, a.prompt_tokens, a.completion_tokens) for a in audits] == [
        ("/v1/responses", False, reply.usage.input_tokens, 3), ("/v1/responses", True, reply.usage.input_tokens, 3)]
    assert f'tmx_gateway_tokens_total{{kind="completion",model="{MODEL}",tenant="default"}} 6.0' in text


async def test_api_keys_select_tenants(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        tenants = (TenantSpec(name="acme", api_keys=("sk-acme",)),)
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants) as (http, _):
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                assert resp.status == 401 and (await resp.json())["error"]["type"] == "authentication_error"
            async with http.post("/v1/chat/completions", json=chat(),
                                 headers={"Authorization": "Bearer sk-acme"}) as resp:
                assert resp.status == 200


async def test_a_tenant_held_to_some_models_neither_reaches_nor_sees_the_others(asgi_server, tmp_path):
    seen: list[str] = []

    async def answer(request):
        seen.append((await request.json())["model"])
        return JSONResponse({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    app = Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])
    tenants = (TenantSpec(name="acme", api_keys=("sk-acme",), models=("small-alias",)),
               TenantSpec(name="ops", api_keys=("sk-ops",)))
    async with asgi_server(app, lifespan="off") as (url, _):
        fleet = FleetFile(backends=(BackendSpec(id="b-small", url=url, models=("small",)),
                                    BackendSpec(id="b-large", url=url, models=("large",))),
                          models=(ModelSpec(name="small", aliases=("small-alias",)),), tenants=tenants)
        dump_fleet(fleet, tmp_path / "tensormux.yaml")
        audit = tmp_path / "audit.jsonl"
        gw = Gateway(Settings(fleet_file=str(tmp_path / "tensormux.yaml"), spool_path=str(tmp_path / "spool"),
                              audit_file=str(audit), admin_key="adm"), fleet)
        acme, ops = {"Authorization": "Bearer sk-acme"}, {"Authorization": "Bearer sk-ops"}
        async with asgi_server(gw.starlette()) as (gw_url, _), aiohttp.ClientSession(gw_url) as http:
            for model in ("small", "small-alias"):
                async with http.post("/v1/chat/completions", json={**chat(), "model": model}, headers=acme) as resp:
                    assert resp.status == 200
            async with http.post("/v1/chat/completions", json={**chat(), "model": "large"}, headers=acme) as resp:
                assert resp.status == 404  # as a model that does not exist: nothing is told of it
                refusal = await resp.json()
            async with http.post("/v1/chat/completions", json={**chat(), "model": "huge"}, headers=acme) as resp:
                unknown = await resp.json()
            assert refusal == {"error": {"message": "The model `large` does not exist", "type": "not_found_error",
                                         "param": "model", "code": "model_not_found"}}
            assert unknown["error"] == {**refusal["error"], "message": "The model `huge` does not exist"}
            async with http.post("/v1/chat/completions", json={**chat(), "model": "large"}, headers=ops) as resp:
                assert resp.status == 200  # another tenant's list holds only that tenant
            client = anthropic.AsyncAnthropic(base_url=gw_url, api_key="sk-acme", max_retries=0)
            with pytest.raises(anthropic.NotFoundError, match="does not exist"):
                await client.messages.create(model="large", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
            # token counting too: the gateway's 404, not taken for a backend without /tokenize (501)
            with pytest.raises(anthropic.NotFoundError, match="The model `large` does not exist"):
                await client.messages.count_tokens(model="large", messages=[{"role": "user", "content": "hi"}])
            async with http.get("/v1/models", headers=acme) as resp:
                assert [m["id"] for m in (await resp.json())["data"]] == ["small"]
            for who in (ops, {"Authorization": "Bearer adm"}):
                async with http.get("/v1/models", headers=who) as resp:
                    assert [m["id"] for m in (await resp.json())["data"]] == ["large", "small"]
            async with http.get("/v1/models/large", headers=acme) as resp:
                assert resp.status == 404 and (await resp.json())["error"]["code"] == "model_not_found"
            async with http.get("/v1/models/small-alias", headers=acme) as resp:
                assert (await resp.json())["id"] == "small"
    assert seen == ["small", "small", "large"]  # the refused requests reached no backend
    refused = [r for r in map(json.loads, audit.read_text().splitlines()) if r["http_status"] == 404]
    # the chat request, the Anthropic message and its token count
    assert [(r["tenant"], r["model"], r.get("backend_id", "")) for r in refused] == [("acme", "large", "")] * 3


async def test_a_model_whose_backends_cannot_answer_falls_back_to_the_next_model(asgi_server, tmp_path):
    from conftest import free_port  # noqa: PLC0415 - the shared helper of the root conftest

    seen: list[tuple[str, str]] = []

    def backend(name: str, status: int):
        async def answer(request):
            model = (await request.json())["model"]
            seen.append((name, model))
            if status != 200:
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=status)
            return JSONResponse({"model": model, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    async with asgi_server(backend("busy", 503), lifespan="off") as (busy, _), \
            asgi_server(backend("small", 200), lifespan="off") as (small, _):
        fleet = FleetFile(
            backends=(BackendSpec(id="large-1", url=busy, models=("large",)),
                      BackendSpec(id="large-2", url=dead, models=("large",)),
                      BackendSpec(id="small-1", url=small, models=("small",)),
                      BackendSpec(id="tiny-1", url=dead, models=("tiny",))),
            models=(ModelSpec(name="small", aliases=("small-alias",)),
                    ModelSpec(name="large", fallbacks=("tiny", "small-alias")),
                    ModelSpec(name="tiny", fallbacks=("large",))),
            tenants=(TenantSpec(name="all", api_keys=("sk-all",)),
                     TenantSpec(name="large-only", api_keys=("sk-large",), models=("large", "tiny"))))
        dump_fleet(fleet, tmp_path / "tensormux.yaml")
        audit = tmp_path / "audit.jsonl"
        gw = Gateway(Settings(fleet_file=str(tmp_path / "tensormux.yaml"), spool_path=str(tmp_path / "spool"),
                              audit_file=str(audit), breaker_threshold=100, breaker_cooldown_s=60), fleet)
        async with asgi_server(gw.starlette()) as (gw_url, _), aiohttp.ClientSession(gw_url) as http:
            headers = {"Authorization": "Bearer sk-all", "x-tmx-explain": "1"}
            async with http.post("/v1/chat/completions", json={**chat(), "model": "large"}, headers=headers) as resp:
                assert resp.status == 200 and resp.headers["x-tmx-backend"] == "small-1"
                assert (await resp.json())["model"] == "small"  # the backend was asked for its own model
                assert json.loads(resp.headers["x-tmx-route"])["reason"].endswith("; fallback for large")
            # large's two backends (one 503, one refused), then tiny's (refused), then small's
            assert seen == [("busy", "large"), ("small", "small")]
            assert [gw.fleet.backends[b].failed for b in ("large-1", "large-2", "tiny-1")] == [1, 1, 1]
            seen.clear()
            # streamed; the refused backends' breakers are open now: busy, then small
            async with http.post("/v1/chat/completions", json={**chat(stream=True), "model": "large"},
                                 headers=headers) as resp:
                assert resp.status == 200 and resp.headers["x-tmx-backend"] == "small-1"
                await resp.read()
            assert seen == [("busy", "large"), ("small", "small")]
            # a tenant that may not use small is not moved to it: with no other backend it may use, it gets the
            # busy backend's own answer, as when every backend is busy
            async with http.post("/v1/chat/completions", json={**chat(), "model": "large"},
                                 headers={"Authorization": "Bearer sk-large"}) as resp:
                assert resp.status == 503 and resp.headers["x-tmx-backend"] == "large-1"
            async with http.get("/metrics") as resp:
                text = await resp.text()
    assert 'tmx_gateway_model_fallbacks_total{fallback="tiny",model="large"} 2.0' in text
    assert 'tmx_gateway_model_fallbacks_total{fallback="small",model="tiny"} 2.0' in text
    answered = [r for r in map(json.loads, audit.read_text().splitlines()) if r["http_status"] == 200]
    assert [(r["model"], r["backend_id"], r["routing_reason"].rsplit("; ", 1)[-1]) for r in answered] == [
        ("small", "small-1", "fallback for large")] * 2


@pytest.mark.parametrize("stream", [True, False], ids=["streams' TTFTs", "non-streamed answers' times"])
async def test_the_gateway_learns_which_backend_is_slower(asgi_server, tmp_path, stream):
    # one replica prefills 8x slower (1000 against 8000 tokens/s): ~100 ms against ~12 ms for these prompts; a
    # one-token answer's whole time is its TTFT
    async with engine_sims(asgi_server, 2, time_scale=0.1, prefill_tok_s=(8000.0, 1000.0)) as sims:
        backends = [("fast", sims[0][0]), ("slow", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends) as (http, _):
            for i in range(10):  # in turn, one at a time: each sees the other idle
                payload = chat(stream=stream, max_tokens=1,
                               messages=[{"role": "user", "content": f"{i} " + "ab " * 1000}])
                async with http.post("/v1/chat/completions", json=payload,
                                     headers={"x-tmx-routing": "weighted_round_robin"}) as resp:
                    assert resp.status == 200
                    await resp.read()
            async with http.get("/admin/backends") as resp:
                costs = {b["id"]: b["engine_costs"] for b in (await resp.json())["backends"]}
            cold = chat(stream=True, max_tokens=1, messages=[{"role": "user", "content": "cd " * 1000}])
            async with http.post("/v1/chat/completions", json=cold,
                                 headers={"x-tmx-routing": "prefix_aware", "x-tmx-explain": "1"}) as resp:
                route = json.loads(resp.headers["x-tmx-route"])
                await resp.read()
    assert costs["fast"]["observations"] == costs["slow"]["observations"] == 5
    # their TTFTs are ~1x and ~0.15x the reference's estimate; each fit is pulled toward the two's pooled factor
    # (~0.6; two observations' worth against ~4.5 remembered), leaving factors of ~0.85 and ~0.3
    assert costs["slow"]["prefill_ms_per_token"] > 1.5 * costs["fast"]["prefill_ms_per_token"]
    assert costs["slow"]["factor"] == pytest.approx(costs["slow"]["prefill_ms_per_token"] * 8, rel=1e-3)
    assert route["chosen"] == "fast" and route["scores"]["slow"] > 1.5 * route["scores"]["fast"]


async def test_the_live_ui_reads_fields_the_admin_views_serve(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            async with http.get("/ui") as resp:
                page = await resp.text()
                assert resp.status == 200 and resp.content_type == "text/html"
            async with http.get("/admin/backends") as resp:
                backend = (await resp.json())["backends"][0]
            async with http.get("/v1/models") as resp:
                model = (await resp.json())["data"][0]
    assert 'fetch("admin/backends", auth)' in page and 'fetch("v1/models", auth)' in page
    # every field the page's script reads (x.<field> per backend, per model) is one those views serve
    script = page[page.index("<script>"):]
    backend_part = script[script.index('getElementById("backends")'):script.index('getElementById("models")')]
    model_part = script[script.index('getElementById("models")'):script.index("last = {")]
    assert set(re.findall(r"\bx\.(\w+)", backend_part)) <= set(backend)
    assert set(re.findall(r"\bx\.(\w+)", model_part)) <= set(model)
    assert {"id", "state", "inflight", "served", "failed", "cached_prefix_blocks", "prefix_capacity_blocks"} <= \
        set(re.findall(r"\bx\.(\w+)", backend_part))


# The page's script run in Node against the admin views' own answers, with a stand-in DOM: its first refresh (no
# previous counts) and a second one 2 s later, after 10 more requests. Microtasks all run before a macrotask, so
# once a zero timeout has fired the first refresh (awaiting only already-resolved fetches) has finished.
UI_HARNESS = """
const [script, backends, models] = JSON.parse(require("fs").readFileSync(0, "utf8"));
const els = {}, el = id => (els[id] ??= {innerHTML: "", textContent: ""});
globalThis.document = {getElementById: el};
globalThis.location = {hash: ""};
let clock = 1000;
globalThis.performance = {now: () => clock};
globalThis.setInterval = () => {};
globalThis.fetch = async url => ({ok: true, status: 200,
                                  json: async () => url.startsWith("admin/") ? backends : models});
(0, eval)(script);
setTimeout(async () => {
  const first = {backends: el("backends").innerHTML, status: el("status").textContent};
  clock += 2000;
  backends.backends[0].served += 10;
  await refresh();
  console.log(JSON.stringify({first, second: {backends: el("backends").innerHTML, models: el("models").innerHTML,
                                              status: el("status").textContent}}));
}, 0);
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the page's script")
async def test_the_live_ui_renders_every_backend_and_its_request_rate(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat()) as resp:
                assert resp.status == 200
            async with http.get("/ui") as resp:
                page = await resp.text()
            async with http.get("/admin/backends") as resp:
                backends = await resp.json()
            async with http.get("/v1/models") as resp:
                models = await resp.json()
    script = page[page.index("<script>") + len("<script>"):page.index("</script>")]
    node = subprocess.run(["node", "-e", UI_HARNESS], input=json.dumps([script, backends, models]),
                          capture_output=True, text=True, timeout=30)
    assert node.returncode == 0, node.stderr
    shown = json.loads(node.stdout)
    cells = lambda html: [re.sub(r"<[^>]+>|\\s+", " ", c).strip()  # noqa: E731
                          for c in re.findall(r"<td[^>]*>(.*?)</td>", html, re.S)]
    backend = backends["backends"][0]
    for refresh in (shown["first"], shown["second"]):
        assert refresh["status"].startswith("live, updated"), refresh["status"]
        row = cells(refresh["backends"])
        assert row[0] == "s1" and row[1] == backend["state"], row
        assert f"{backend['cached_prefix_blocks']} / -" in row  # no capacity learned from one answer
    assert cells(shown["first"]["backends"])[6] == "-"  # no rate before a second look
    assert cells(shown["second"]["backends"])[6] == "5.0"  # 10 more answers in 2 s
    assert cells(shown["second"]["backends"])[7] == str(backend["served"] + 10)
    assert cells(shown["second"]["models"])[0] == MODEL


async def test_with_tenants_the_fleet_views_need_keys(asgi_server, tmp_path):
    tenants = (TenantSpec(name="acme", api_keys=("sk-acme",)),)
    acme, admin = {"Authorization": "Bearer sk-acme"}, {"Authorization": "Bearer adm-secret"}

    async def status(http, path, headers=None):
        async with http.get(path, headers=headers or {}) as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, (body or {}).get("error", {}).get("type")

    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants) as (http, _):
            assert await status(http, "/admin/backends", acme) == (403, "permission_error")  # no admin key set
            assert await status(http, "/v1/models") == (401, "authentication_error")
            assert await status(http, "/v1/models", acme) == (200, None)
            assert await status(http, f"/v1/models/{MODEL}") == (401, "authentication_error")
            assert await status(http, f"/v1/models/{MODEL}", acme) == (200, None)
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants,
                           admin_key="adm-secret") as (http, _):
            assert await status(http, "/admin/backends", acme) == (401, "authentication_error")
            assert await status(http, "/admin/backends", admin) == (200, None)
            assert await status(http, "/v1/models", admin) == (200, None)
            async with http.get("/ui") as resp:  # the page holds no data; its script sends the key from #key=
                assert resp.status == 200 and "location.hash" in await resp.text()
            assert await status(http, "/metrics") == (200, None)  # open by default, as scrapers expect
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants, admin_key="adm-secret",
                           metrics_auth=True) as (http, _):
            assert await status(http, "/metrics") == (401, "authentication_error")
            assert await status(http, "/metrics", acme) == (401, "authentication_error")  # a tenant sees no others
            async with http.get("/metrics", headers=admin) as resp:
                assert resp.status == 200 and "tmx_gateway_requests_total" in await resp.text()
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants, metrics_auth=True) as (http, _):
            assert await status(http, "/metrics", acme) == (403, "permission_error")  # tenants but no admin key


async def test_tenants_rate_limits_refuse_with_429_and_settle_tokens_with_usage(asgi_server, tmp_path):
    tenants = (TenantSpec(name="acme", api_keys=("sk-acme",), rpm_limit=2),
               TenantSpec(name="beta", api_keys=("sk-beta",), tpm_limit=1000))
    acme, beta = {"Authorization": "Bearer sk-acme"}, {"Authorization": "Bearer sk-beta"}
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], tenants=tenants) as (http, gw):
            for remaining in (1, 0):
                async with http.post("/v1/chat/completions", json=chat(), headers=acme) as resp:
                    assert resp.status == 200
                    assert resp.headers["x-ratelimit-limit-requests"] == "2"
                    assert resp.headers["x-ratelimit-remaining-requests"] == str(remaining)
            async with http.post("/v1/chat/completions", json=chat(), headers=acme) as resp:
                body = await resp.json()
                assert resp.status == 429 and body["error"]["code"] == "rate_limit_exceeded"
                assert body["error"]["type"] == "rate_limit_error" and resp.headers["retry-after"] in ("29", "30")
            anthropic_call = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
            async with http.post("/v1/messages", json=anthropic_call, headers={"x-api-key": "sk-acme"}) as resp:
                body = await resp.json()
                assert resp.status == 429 and body["type"] == "error"
                assert body["error"]["type"] == "rate_limit_error" and "retry-after" in resp.headers
            # beta reserves prompt + max_tokens (about 280: 256 without max_tokens) of 1000 tokens a minute per request,
            # and gets back what the backend did not use (the sim answers 4 tokens): without settling, the fourth
            # would be refused
            for _ in range(5):
                async with http.post("/v1/chat/completions", json=chat(), headers=beta) as resp:
                    assert resp.status == 200
                    assert 600 < int(resp.headers["x-ratelimit-remaining-tokens"]) < 1000 - 256
            async with http.post("/v1/chat/completions", json=chat(max_tokens=1000), headers=beta) as resp:
                body = await resp.json()
                assert resp.status == 429 and "retry-after" not in resp.headers  # waiting would not help
                assert "more than tenant `beta`'s limit of 1000 tokens per minute" in body["error"]["message"]
            async with http.get("/metrics") as resp:
                text = await resp.text()
    assert 'tmx_gateway_rate_limited_total{limit="requests",tenant="acme"} 2.0' in text
    assert 'tmx_gateway_rate_limited_total{limit="tokens",tenant="beta"} 1.0' in text


async def test_a_backend_cookie_never_reaches_another_request(asgi_server, tmp_path):
    """The gateway's upstream client is shared by every tenant: a Set-Cookie from one answer must not ride
    along on the next request (a browser-style cookie jar would leak one caller's session to the next)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def completions(request):
        seen = request.headers.get("cookie", "")
        response = JSONResponse({"id": "x", "object": "chat.completion", "model": MODEL, "seen_cookie": seen,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                              "finish_reason": "stop"}]})
        response.set_cookie("session", "tenant-a-secret")
        return response

    backend = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    async with asgi_server(backend) as (url, _):
        by_name = url.replace("127.0.0.1", "localhost")  # a jar would keep cookies from a named host (not an IP)
        async with gateway(asgi_server, tmp_path, [("b1", by_name)]) as (http, _):
            bodies = []
            for _ in range(2):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.status == 200 and "set-cookie" not in resp.headers
                    bodies.append(await resp.json())
    assert [b["seen_cookie"] for b in bodies] == ["", ""]


async def test_fails_over_when_a_backend_refuses_or_errors(asgi_server, tmp_path):
    from conftest import free_port  # noqa: PLC0415 - the shared helper of the root conftest

    dead = f"http://127.0.0.1:{free_port()}"
    async with engine_sims(asgi_server, 2) as sims:
        (good_url, _, _), (bad_url, bad_faults, _) = sims
        bad_faults.update({"error_rate": 1.0})
        backends = [("dead", dead), ("erroring", bad_url), ("good", good_url)]
        async with gateway(asgi_server, tmp_path, backends) as (http, gw):
            for _ in range(6):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.status == 200 and resp.headers["x-tmx-backend"] == "good"
            assert gw.fleet.backends["dead"].breaker.state == "open"  # a refused connection opens it at once
            assert gw.fleet.backends["erroring"].failed >= 1


async def test_a_stream_cut_mid_way_ends_with_an_sse_error(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        sims[0][1].update({"drop_after_tokens": 2})
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=6)) as resp:
                body = (await resp.read()).decode()
    events = body.strip().split("\n\n")
    assert "[DONE]" not in body
    error = json.loads(events[-1][len("data: "):])
    assert error["error"]["code"] == "upstream_stream_broken"


async def test_a_responses_stream_cut_mid_way_ends_with_its_own_error_event(asgi_server, tmp_path):
    """The Responses API's stream types its events: a broken one ends with an `error` event numbered after the
    events relayed (it cannot be continued), which OpenAI's client raises."""
    import openai

    request = {"model": MODEL, "input": "Say something", "max_output_tokens": 6, "stream": True}
    async with engine_sims(asgi_server, 1) as sims:
        sims[0][1].update({"drop_after_tokens": 2})
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])]) as (http, _):
            async with http.post("/v1/responses", json=request) as resp:
                events = (await resp.read()).decode().strip().split("\n\n")
            client = openai.AsyncOpenAI(base_url=f"{str(http._base_url).rstrip('/')}/v1", api_key="x", max_retries=0)
            with pytest.raises(openai.APIError) as raised:
                async for _ in await client.responses.create(**{k: v for k, v in request.items() if k != "model"},
                                                             model=MODEL):
                    pass
            await client.close()
    kind, data = events[-1].split("\n")
    error = json.loads(data.removeprefix("data: "))
    relayed = [json.loads(e.split("\ndata: ")[1]) for e in events[:-1]]
    assert kind == "event: error" and error["type"] == "error" and error["code"] == "upstream_stream_broken"
    assert [e["sequence_number"] for e in relayed] + [error["sequence_number"]] == list(range(len(events)))
    assert relayed[0]["type"] == "response.created" and "not continued" in error["message"]
    assert raised.value.message == error["message"] == error["error"]["message"]


def sse_events(raw: bytes) -> list:
    return [json.loads(e[6:]) if e != "data: [DONE]" else e for e in raw.decode().strip().split("\n\n")]


async def test_a_stream_cut_mid_way_is_continued_on_another_backend(asgi_server, tmp_path):
    payload = chat(stream=True, max_tokens=6, stream_options={"include_usage": True})
    async with engine_sims(asgi_server, 2) as sims:
        sims[0][1].update({"drop_after_tokens": 2})
        async with aiohttp.ClientSession() as direct, direct.post(f"{sims[1][0]}/v1/chat/completions",
                                                                   json=payload) as resp:
            unbroken = sse_events(await resp.read())  # the answer without any fault
        backends = [("s1", sims[0][0]), ("s2", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends) as (http, gw):
            # smooth weighted round robin starts with the first backend: the one whose streams break
            headers = {"x-tmx-routing": "weighted_round_robin"}
            async with http.post("/v1/chat/completions", json=payload, headers=headers) as resp:
                assert resp.status == 200 and resp.headers["x-tmx-backend"] == "s1"
                events = sse_events(await resp.read())
            assert gw.fleet.backends["s1"].failed == 1 and gw.fleet.backends["s2"].served == 1
            assert gw.metrics.stream_continuations.labels("continued")._value.get() == 1
    text = lambda evs: "".join(e["choices"][0]["delta"].get("content", "")  # noqa: E731
                               for e in evs if e != "data: [DONE]" and e["choices"])
    assert text(events) == text(unbroken) and len(text(events).split()) == 6  # the whole answer, once
    assert len({e["id"] for e in events if e != "data: [DONE]"}) == 1  # one stream to the client
    assert sum(1 for e in events if e != "data: [DONE]" and e["choices"] and "role" in e["choices"][0]["delta"]) == 1
    assert events[-2]["usage"]["completion_tokens"] == 6 and events[-1] == "data: [DONE]"
    assert [e["choices"][0]["finish_reason"] for e in events[:-2]].count("length") == 1



async def test_a_completion_stream_cut_mid_way_is_continued_on_another_backend(asgi_server, tmp_path):
    payload = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 6, "stream": True,
               "stream_options": {"include_usage": True}}
    async with engine_sims(asgi_server, 2) as sims:
        sims[0][1].update({"drop_after_tokens": 2})
        backends = [("s1", sims[0][0]), ("s2", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends) as (http, gw):
            headers = {"x-tmx-routing": "weighted_round_robin"}  # starts with s1, whose streams break
            async with http.post("/v1/completions", json=payload, headers=headers) as resp:
                assert resp.status == 200 and resp.headers["x-tmx-backend"] == "s1"
                events = sse_events(await resp.read())
            assert gw.fleet.backends["s1"].failed == 1 and gw.fleet.backends["s2"].served == 1
            assert gw.metrics.stream_continuations.labels("continued")._value.get() == 1
        async with aiohttp.ClientSession() as direct, direct.post(f"{sims[0][0]}/v1/completions",
                                                                   json={**payload, "stream": False}) as resp:
            first_two = (await resp.json())["choices"][0]["text"].split()[:2]  # what s1 had sent before breaking
    chunks = [e for e in events if e != "data: [DONE]"]
    text = "".join(e["choices"][0]["text"] for e in chunks if e["choices"])
    assert text.split()[:2] == first_two and len(text.split()) == 6  # the sent part, then the rest: 6 tokens
    assert {e["id"] for e in chunks} == {chunks[0]["id"]} and {e["object"] for e in chunks} == {"text_completion"}
    assert chunks[-1]["usage"]["completion_tokens"] == 6 and events[-1] == "data: [DONE]"
    assert [e["choices"][0]["finish_reason"] for e in chunks if e["choices"]].count("length") == 1

async def test_a_stream_that_cannot_be_continued_ends_with_an_sse_error(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 2) as sims:
        for _, faults, _ in sims:
            faults.update({"drop_after_tokens": 2})  # the continuation breaks too
        backends = [("s1", sims[0][0]), ("s2", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends) as (http, gw):
            async with http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=8)) as resp:
                events = sse_events(await resp.read())
            assert gw.metrics.stream_continuations.labels("failed")._value.get() == 1
    assert events[-1]["error"]["code"] == "upstream_stream_broken" and "continuation failed" in events[-1]["error"]["message"]
    words = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1] if e["choices"]).split()
    assert len(words) == 4  # two from each backend, then the error: never silently truncated


async def test_client_disconnect_cancels_the_upstream_stream(asgi_server, tmp_path, tmx_async_wait):
    async with engine_sims(asgi_server, 1) as sims:
        sim_url, _, runner = sims[0]
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)]) as (http, gw):
            resp = await http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=2000))
            data_events = 0
            while data_events < 5:  # the role event, then four tokens
                data_events += (await resp.content.readline()).startswith(b"data: ")
            assert len(runner.core.running) == 1
            s1 = gw.fleet.backends["s1"]  # streaming: in flight, but its prompt no longer queued for prefill
            assert s1.inflight == 1 and s1.inflight_prompt_tokens > 0 and s1.prefilling_prompt_tokens == 0
            assert s1.inflight_output_tokens <= 2000 - 4  # and the tokens already out are no longer owed
            resp.close()
            await tmx_async_wait(lambda: runner.core.idle, 10, what="upstream cancelled")
            await tmx_async_wait(lambda: gw.fleet.backends["s1"].inflight == 0, 5, what="inflight released")
            assert (s1.inflight_prompt_tokens, s1.prefilling_prompt_tokens) == (0, 0)
    assert runner.core.cache.usage == 0


async def test_client_disconnect_cancels_a_non_streamed_request_too(asgi_server, tmp_path, tmx_async_wait):
    async with engine_sims(asgi_server, 1) as sims:
        sim_url, _, runner = sims[0]
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)]) as (http, gw):
            request = asyncio.create_task(http.post("/v1/chat/completions", json=chat(max_tokens=2000)))
            await tmx_async_wait(lambda: len(runner.core.running) == 1, 10, what="the engine generating")
            request.cancel()  # the client gives up before the answer: its connection closes
            await asyncio.gather(request, return_exceptions=True)
            await tmx_async_wait(lambda: runner.core.idle, 10, what="the upstream request cancelled")
            await tmx_async_wait(lambda: gw.fleet.backends["s1"].inflight == 0, 5, what="inflight released")
            assert gw.fleet.backends["s1"].failed == 0  # a client leaving says nothing about the backend
            gw.metrics.flush()  # the request path tallies its metrics (see metrics.Children)
            assert gw.metrics.requests.labels(MODEL, "s1", "499")._value.get() == 1
            async with http.post("/v1/chat/completions", json=chat()) as resp:  # and the gateway serves on
                assert resp.status == 200
    assert runner.core.cache.usage == 0


async def test_a_non_streamed_prompt_is_presumed_prefilled_while_it_decodes(asgi_server, tmp_path, tmx_async_wait):
    """Nothing shows when a non-streamed answer's prefill ends: at its estimated time the gateway stops counting
    its prompt as prefill queued on the backend, while the request stays in flight."""
    async with engine_sims(asgi_server, 1) as sims:
        sim_url, _, runner = sims[0]
        async with gateway(asgi_server, tmp_path, [("s1", sim_url)]) as (http, gw):
            s1 = gw.fleet.backends["s1"]
            request = asyncio.create_task(http.post("/v1/chat/completions", json=chat(max_tokens=2000)))
            await tmx_async_wait(lambda: len(runner.core.running) == 1, 10, what="the engine generating")
            assert s1.inflight == 1 and s1.inflight_prompt_tokens > 0
            await tmx_async_wait(lambda: s1.prefilling_prompt_tokens == 0, 5, what="the prompt presumed prefilled")
            assert s1.inflight == 1 and s1.inflight_prompt_tokens > 0 and s1.inflight_output_tokens == 2000
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
            await tmx_async_wait(lambda: s1.inflight == 0, 5, what="inflight released")
            assert (s1.inflight_prompt_tokens, s1.prefilling_prompt_tokens, s1.inflight_output_tokens) == (0, 0, 0)
            async with http.post("/v1/chat/completions", json=chat()) as resp:  # a quick answer: released at once
                assert resp.status == 200
            assert (s1.inflight, s1.inflight_prompt_tokens, s1.prefilling_prompt_tokens) == (0, 0, 0)


async def test_publishes_audit_and_outcome_and_follows_health(asgi_server, tmp_path, nats_url, tmx_async_wait):
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    async with engine_sims(asgi_server, 2) as sims:
        backends = [("s1", sims[0][0]), ("s2", sims[1][0])]
        async with gateway(asgi_server, tmp_path, backends, nats_url=nats_url) as (http, gw):
            await tmx_async_wait(gw.ready, 10, what="gateway ready")
            async with http.get("/readyz") as resp:
                assert resp.status == 200
            audits, outcomes = [], []

            async def on_audit(msg):
                audits.extend(decode_all(msg.data, msg.headers))

            async def on_outcome(msg):
                outcomes.extend(decode_all(msg.data, msg.headers))

            sub_a = await bus.nc.subscribe(subjects.ALL_AUDIT, cb=on_audit)
            sub_o = await bus.nc.subscribe(subjects.ALL_SIGNAL, cb=on_outcome)
            trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            async with http.post("/v1/chat/completions", json=chat(),
                                 headers={"x-request-id": "client-42", "traceparent": trace}) as resp:
                request_id = resp.headers["x-tmx-request-id"]
            await tmx_async_wait(lambda: audits and outcomes, 10, what="events")
            assert (await bus.js.stream_info("TMX_AUDIT")).state.messages == 1  # stored, not just broadcast
            assert audits[0].request_id == request_id and audits[0].tenant == "default"
            assert (audits[0].client_request_id, audits[0].traceparent) == ("client-42", trace)  # the client's handles
            assert audits[0].routing_strategy == "least_inflight" and audits[0].completion_tokens == 4
            assert outcomes[0].backend_id == audits[0].backend_id and outcomes[0].http_status == 200
            await bus.publish(subjects.health_backend("s1"), events_pb2.BackendStateChanged(
                backend_id="s1", current=events_pb2.BACKEND_STATE_UNHEALTHY))
            await tmx_async_wait(lambda: not gw.fleet.backends["s1"].routable(0), 10, what="health event applied")
            for _ in range(4):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.headers["x-tmx-backend"] == "s2"
            await sub_a.unsubscribe()
            await sub_o.unsubscribe()
    await bus.close()



async def test_engine_load_snapshots_reach_the_backends(asgi_server, tmp_path, nats_url, tmx_async_wait):
    bus = await EventBus.connect(nats_url, name="test")
    await bus.provision()
    async with engine_sims(asgi_server, 1) as sims:
        async with gateway(asgi_server, tmp_path, [("s1", sims[0][0])], nats_url=nats_url) as (http, gw):
            await tmx_async_wait(gw.ready, 10, what="ready")
            await bus.publish(subjects.health_load("s1"), events_pb2.LoadSnapshot(
                backend_id="s1", engine="vllm", running=3, waiting=2, kv_cache_usage=0.5, prefix_cache_hit_rate=0.25))
            await tmx_async_wait(lambda: gw.fleet.backends["s1"].load is not None, 10, what="load applied")
            async with http.get("/admin/backends") as resp:
                load = (await resp.json())["backends"][0]["engine_load"]
    assert (load["running"], load["waiting"], load["kv_cache_usage"], load["prefix_cache_hit_rate"]) == (3, 2, 0.5, 0.25)
    await bus.close()


async def test_prefix_aware_routing_end_to_end(asgi_server, tmp_path):
    import json as _json

    async with engine_sims(asgi_server, 4) as sims:
        backends = [(f"s{i}", url) for i, (url, _, _) in enumerate(sims)]
        async with gateway(asgi_server, tmp_path, backends) as (http, gw):
            homes, cached = {}, []
            for question in range(3):
                for group in range(4):
                    system = f"You are assistant {group}. " + "Long shared instructions. " * 40
                    body = {"model": MODEL, "max_tokens": 2, "messages": [
                        {"role": "system", "content": system}, {"role": "user", "content": f"question {question}"}]}
                    async with http.post("/v1/chat/completions", json=body,
                                         headers={"x-tmx-routing": "prefix_aware", "x-tmx-explain": "1"}) as resp:
                        reply = await resp.json()
                        route = _json.loads(resp.headers["x-tmx-route"])
                    assert route["strategy"] == "prefix_aware" and set(route["scores"]) == {"s0", "s1", "s2", "s3"}
                    homes.setdefault(group, set()).add(resp.headers["x-tmx-backend"])
                    if question:
                        cached.append(reply["usage"]["prompt_tokens_details"]["cached_tokens"])
            assert all(len(h) == 1 for h in homes.values())  # each system prompt stayed on one backend
            assert len({next(iter(h)) for h in homes.values()}) == 4  # and the groups spread over all four
            assert all(c > 0 for c in cached)  # the engines confirm the cache hits
            async with http.get("/metrics") as resp:
                metrics = await resp.text()
            assert 'tmx_gateway_prefix_predictions_total{outcome="hit_hit"} 8.0' in metrics
            assert 'outcome="miss_hit"' not in metrics
            decided = 'tmx_gateway_routing_decisions_total{kind="%s",strategy="prefix_aware"}'
            assert decided % "cold" + " 4.0" in metrics and decided % "cached" + " 8.0" in metrics
            assert 'kind="saturated"' not in metrics
            async with http.post("/v1/chat/completions", json=chat(), headers={"x-tmx-routing": "magic"}) as resp:
                assert resp.status == 400 and (await resp.json())["error"]["code"] == "unknown_routing_strategy"


@pytest.mark.parametrize("learn", [True, False])
async def test_prefix_aware_learns_what_an_engine_with_a_small_cache_keeps(asgi_server, tmp_path, learn):
    """An engine with 64 KV blocks, and six prompts of ~11 blocks each asked in turn: each is evicted before it
    comes again (least recently used, cyclically), so every prediction of a hit the index's budget allows is
    wrong. The engine's usage says so; the index learns how old a prefix the engine keeps, and predicts none
    (with `LEARN_PREFIX_CAPACITY=false` it goes on predicting hits)."""
    async with engine_sims(asgi_server, 1, num_gpu_blocks=64) as sims:
        async with gateway(asgi_server, tmp_path, [("s0", sims[0][0])], learn_prefix_capacity=learn) as (http, gw):
            async def predictions() -> dict[str, float]:
                async with http.get("/metrics") as resp:
                    text = await resp.text()
                return {k: float(v) for k, v in re.findall(
                    r'^tmx_gateway_prefix_predictions_total{outcome="(\w+)"} (\S+)$', text, re.M)}

            async def one_pass() -> None:
                for group in range(6):
                    system = f"You are assistant {group}. " + "Long shared instructions. " * 40
                    body = {"model": MODEL, "max_tokens": 2, "messages": [
                        {"role": "system", "content": system}, {"role": "user", "content": "question"}]}
                    async with http.post("/v1/chat/completions", json=body,
                                         headers={"x-tmx-routing": "prefix_aware"}) as resp:
                        assert resp.status == 200
                        assert (await resp.json())["usage"]["prompt_tokens_details"]["cached_tokens"] == 0

            for _ in range(5):
                await one_pass()
            before = await predictions()
            assert before["hit_miss"] >= 13  # the budget's 200k blocks halved to the prompts' ages took ~13 misses
            async with http.get("/admin/backends") as resp:
                capacity = (await resp.json())["backends"][0]["prefix_capacity_blocks"]
            await one_pass()
            after = await predictions()
            if learn:
                assert 0 < capacity < 5 * 9  # five other prompts' ~9 blocks each come between one's uses
                assert after["hit_miss"] == before["hit_miss"] and after["miss_miss"] == before["miss_miss"] + 6
            else:
                assert capacity is None and after["hit_miss"] == before["hit_miss"] + 6 == 30


async def test_breaker_opens_on_errors_and_closes_through_a_half_open_trial(asgi_server, tmp_path, tmx_async_wait):
    async with engine_sims(asgi_server, 2) as sims:
        (good_url, _, _), (flaky_url, flaky, _) = sims
        async with gateway(asgi_server, tmp_path, [("good", good_url), ("flaky", flaky_url)],
                           breaker_threshold=2, breaker_cooldown_s=0.3) as (http, gw):
            flaky.update({"error_rate": 1.0})
            for _ in range(8):  # every request still succeeds: failover to "good"
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.status == 200
            breaker = gw.fleet.backends["flaky"].breaker
            assert breaker.state == "open"
            flaky.update({"error_rate": 0.0})
            await tmx_async_wait(lambda: breaker.allows(time.monotonic()), 5, what="cooldown over")
            served = gw.fleet.backends["flaky"].served
            for _ in range(6):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.status == 200
            assert breaker.state == "closed" and gw.fleet.backends["flaky"].served > served


async def test_a_request_deadline_bounds_all_attempts(asgi_server, tmp_path):
    async with engine_sims(asgi_server, 1) as sims:
        sims[0][1].update({"stall_s": 2.0})
        async with gateway(asgi_server, tmp_path, [("slow", sims[0][0])]) as (http, _):
            async with http.post("/v1/chat/completions", json=chat(), headers={"x-tmx-deadline-ms": "300"}) as resp:
                body = await resp.json()
            assert resp.status == 502 and body["error"]["code"] == "upstream_failed"
            assert "TimeoutError" in body["error"]["message"] or "deadline" in body["error"]["message"]


async def test_the_collector_is_tuned_while_the_gateway_runs_and_restored_after(asgi_server, tmp_path):
    import gc

    before = gc.get_threshold()
    async with gateway(asgi_server, tmp_path, [("s1", "http://127.0.0.1:9")], gc_gen0_threshold=12_345) as (http, _):
        async with http.get("/healthz") as resp:
            assert resp.status == 200
        assert gc.get_threshold() == (12_345, *before[1:])
        assert gc.get_freeze_count() > 0  # the start-up heap is out of the collector's way
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_rerank_and_pooling_endpoints_are_routed_metered_and_reserve_no_output(asgi_server, tmp_path):
    """vLLM's rerank (and its Cohere-style /v2), score, classify and pooling routes reach the backend serving the
    model; a rerank's usage (its total alone) is metered as input, and nothing is reserved for output tokens that
    will never come (a tenant's per-minute limit was charged 256 of them per request)."""
    seen = []

    async def pooling(request):
        body = await request.json()
        seen.append((request.url.path, body["model"]))
        if "rerank" in request.url.path:
            return JSONResponse({"id": "rerank-1", "model": body["model"], "usage": {"total_tokens": 30},
                                 "results": [{"index": 1, "relevance_score": 0.9}]})
        return JSONResponse({"id": "x", "object": "list", "data": [],
                             "usage": {"prompt_tokens": 12, "total_tokens": 12}})

    paths = ["/v1/rerank", "/rerank", "/v2/rerank", "/v1/score", "/score", "/classify", "/pooling", "/v1/embeddings"]
    app = Starlette(routes=[Route(path, pooling, methods=["POST"]) for path in paths])
    tenant = TenantSpec(name="acme", api_keys=("sk-acme",), tpm_limit=1000)
    async with asgi_server(app, lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("r1", url)], tenants=(tenant,)) as (http, gw):
            answers = []
            asked = {"model": "alias", "query": "which?", "documents": ["a", "b"], "input": "a"}
            for path in paths:
                async with http.post(path, json=asked, headers={"Authorization": "Bearer sk-acme"}) as resp:
                    answers.append((resp.status, resp.headers["x-tmx-backend"],
                                    int(resp.headers["x-ratelimit-remaining-tokens"])))
            gw.metrics.flush()
            prompt = gw.metrics.tokens.labels("acme", MODEL, "prompt")._value.get()
            completion = gw.metrics.tokens.labels("acme", MODEL, "completion")._value.get()
    assert seen == [(path, MODEL) for path in paths]  # by alias, to the backend serving the model, as itself
    assert all(status == 200 and backend == "r1" for status, backend, _ in answers)
    # the input as estimated from the body the backend got (by the model's name) reserved, no output
    assert answers[0][2] == 1000 - len(json.dumps({**asked, "model": MODEL})) // 4
    assert (prompt, completion) == (3 * 30 + 5 * 12, 0)


async def test_a_server_whose_lines_end_in_crlf_is_streamed_as_it_sends(asgi_server, tmp_path):
    """Servers built on sse-starlette (llama-cpp-python, Xinference) end SSE lines in CRLF: their events reach the
    client one by one, byte for byte, with usage metered and the Anthropic edge translating them (no event was
    found in such a stream: the client got all of it at its end, unmetered)."""
    def event(obj) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\r\n\r\n"

    first = event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]})
    rest = (event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL,
                   "choices": [{"index": 0, "delta": {"content": " world"}, "finish_reason": "stop"}]}) +
            event({"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
                   "usage": {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}}) + b"data: [DONE]\r\n\r\n")
    release = asyncio.Event()

    async def completions(request):
        await request.body()

        async def events():
            yield first
            await release.wait()  # the rest only once the client holds the first (set from then on)
            yield rest
        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    async with asgi_server(app, lifespan="off") as (url, _):
        async with gateway(asgi_server, tmp_path, [("crlf", url)]) as (http, gw):
            async with http.post("/v1/chat/completions", json=chat(stream=True)) as resp:
                got_first = await asyncio.wait_for(resp.content.readuntil(b"\r\n\r\n"), 10)
                release.set()
                got_rest = await resp.read()
            client = anthropic.AsyncAnthropic(base_url=str(http._base_url).rstrip("/"), api_key="x", max_retries=0)
            async with client.messages.stream(model=MODEL, max_tokens=5,
                                              messages=[{"role": "user", "content": "Hi"}]) as stream:
                message = await stream.get_final_message()
            await client.close()
            gw.metrics.flush()
            completion = gw.metrics.tokens.labels("default", MODEL, "completion")._value.get()
    assert (got_first, got_rest) == (first, rest)
    assert message.content[0].text == "Hello world" and message.usage.output_tokens == 2
    assert completion == 2 + 2  # both streams' usage, read from their usage events
