"""The gateway's spans, exported over OTLP/HTTP to a real HTTP collector, and the trace context its backends get."""

import contextlib
import json

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.tests.test_gateway_http import chat, gateway

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


def _attrs(span_or_resource) -> dict:
    out = {}
    for kv in span_or_resource.attributes:
        v = kv.value
        out[kv.key] = getattr(v, v.WhichOneof("value"))
    return out


@contextlib.asynccontextmanager
async def otlp_collector(asgi_server):
    """An OTLP/HTTP trace receiver: yields its /v1/traces URL and the spans it received, each as
    (resource attributes, span)."""
    spans: list[tuple[dict, Span]] = []

    async def export(request: Request) -> Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        batch = ExportTraceServiceRequest.FromString(await request.body())
        for resource_spans in batch.resource_spans:
            resource = _attrs(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                spans.extend((resource, s) for s in scope_spans.spans)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", export, methods=["POST"])])
    async with asgi_server(app, lifespan="off") as (url, _):
        yield f"{url}/v1/traces", spans


def completion_backend(seen: list[dict], status: int = 200):
    """A backend answering chat completions (streamed or not) with usage, or `status` with an error; `seen`
    gets each request's headers."""

    async def answer(request: Request) -> Response:
        seen.append(dict(request.headers))
        if status != 200:
            return JSONResponse({"error": {"message": "busy"}}, status_code=status)
        usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
                 "prompt_tokens_details": {"cached_tokens": 4}}
        if (await request.json()).get("stream"):
            async def events():
                yield b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
                yield b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":' + \
                    json.dumps(usage).encode() + b"}\n\n"
                yield b"data: [DONE]\n\n"
            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse({"id": "c1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": usage})

    return Starlette(routes=[Route("/v1/chat/completions", answer, methods=["POST"])])


def _parent_of(header: str) -> tuple[str, str]:
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (a root's also says its trace id is random: 03)
    return trace_id, span_id


async def test_a_request_is_a_span_in_the_clients_trace_and_its_backend_continues_it(asgi_server, tmp_path):
    seen: list[dict] = []
    audit = tmp_path / "audit.jsonl"
    async with otlp_collector(asgi_server) as (endpoint, spans):
        async with asgi_server(completion_backend(seen), lifespan="off") as (url, _):
            async with gateway(asgi_server, tmp_path, [("s1", url)], otlp_traces_endpoint=endpoint,
                               gateway_id="gw-7", audit_file=str(audit)) as (http, _):
                async with http.post("/v1/chat/completions", json=chat(), headers={
                        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=1"}) as resp:
                    assert resp.status == 200
                    request_id = resp.headers["x-tmx-request-id"]
                # no spans are exported until the gateway stops (the batch waits 5 s): its shutdown exports them
        assert len(spans) == 2, spans
        (resource, server), (_, client) = sorted(spans, key=lambda s: s[1].kind)
        assert (server.kind, client.kind) == (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT)
        assert resource["service.name"] == "tensormux-gateway" and resource["service.instance.id"] == "gw-7"
        # the request's span is the client's span's child; the attempt's is the request's
        assert server.trace_id.hex() == CLIENT_TRACE and server.parent_span_id.hex() == CLIENT_SPAN
        assert client.trace_id.hex() == CLIENT_TRACE and client.parent_span_id == server.span_id
        assert server.trace_state == "vendor=1"
        # the backend was handed the attempt's span as its parent, and the client's tracestate
        assert _parent_of(seen[0]["traceparent"]) == (CLIENT_TRACE, client.span_id.hex())
        assert seen[0]["tracestate"] == "vendor=1"
        assert server.name == "POST /v1/chat/completions" and client.name == "chat sim-model"
        assert {k: v for k, v in _attrs(server).items() if k != "tmx.ttft_ms"} == {
            "http.request.method": "POST", "url.path": "/v1/chat/completions", "gen_ai.request.model": "sim-model",
            "tmx.tenant": "default", "tmx.request_id": request_id, "http.response.status_code": 200,
            "tmx.backend.id": "s1", "tmx.routing.strategy": "least_inflight",
            "tmx.routing.reason": "least in flight (0) of 1", "gen_ai.usage.input_tokens": 7,
            "gen_ai.usage.output_tokens": 2, "gen_ai.usage.cache_read.input_tokens": 4}
        attempt = _attrs(client)
        assert attempt["url.full"] == f"{url}/v1/chat/completions" and attempt["tmx.attempt"] == 1
        assert (attempt["server.address"], attempt["server.port"]) == ("127.0.0.1", int(url.rsplit(":", 1)[1]))
        assert attempt["http.response.status_code"] == 200 and attempt["gen_ai.operation.name"] == "chat"
        assert server.status.code == client.status.code == Status.STATUS_CODE_UNSET
        # the attempt lies within the request
        assert server.start_time_unix_nano <= client.start_time_unix_nano <= client.end_time_unix_nano \
            <= server.end_time_unix_nano
    # the audit event names the gateway's span, by which its trace is found
    record = json.loads(audit.read_text().splitlines()[0])
    assert record["traceparent"] == f"00-{CLIENT_TRACE}-{server.span_id.hex()}-01"


async def test_a_failed_over_request_shows_each_attempt_and_the_failed_one_is_an_error(asgi_server, tmp_path):
    sick_seen, good_seen = [], []
    async with otlp_collector(asgi_server) as (endpoint, spans):
        async with asgi_server(completion_backend(sick_seen, status=503), lifespan="off") as (sick, _), \
                asgi_server(completion_backend(good_seen), lifespan="off") as (good, _):
            async with gateway(asgi_server, tmp_path, [("sick", sick), ("good", good)],
                               otlp_traces_endpoint=endpoint) as (http, _):
                # weighted round robin starts with the first backend: sick, then good
                async with http.post("/v1/chat/completions", json=chat(stream=True),
                                     headers={"x-tmx-routing": "weighted_round_robin"}) as resp:
                    assert resp.status == 200 and resp.headers["x-tmx-backend"] == "good"
                    await resp.read()
    by_kind = {}
    for _, span in spans:
        by_kind.setdefault(span.kind, []).append(span)
    (server,) = by_kind[Span.SPAN_KIND_SERVER]
    first, second = sorted(by_kind[Span.SPAN_KIND_CLIENT], key=lambda s: _attrs(s)["tmx.attempt"])
    # a trace of the gateway's own, the client having sent none
    assert first.parent_span_id == second.parent_span_id == server.span_id and not server.parent_span_id
    assert first.trace_id == second.trace_id == server.trace_id
    assert (_attrs(first)["tmx.backend.id"], _attrs(second)["tmx.backend.id"]) == ("sick", "good")
    assert _attrs(first)["http.response.status_code"] == 503
    assert first.status.code == Status.STATUS_CODE_ERROR and first.status.message == "HTTP 503, retried"
    assert second.status.code == Status.STATUS_CODE_UNSET and server.status.code == Status.STATUS_CODE_UNSET
    # each backend saw its own attempt as its parent
    assert _parent_of(sick_seen[0]["traceparent"]) == (server.trace_id.hex(), first.span_id.hex())
    assert _parent_of(good_seen[0]["traceparent"]) == (server.trace_id.hex(), second.span_id.hex())
    # a stream's request span ends with the stream, its usage read from the last event
    assert _attrs(server)["gen_ai.usage.output_tokens"] == 2 and _attrs(server)["tmx.backend.id"] == "good"
    assert second.end_time_unix_nano <= server.end_time_unix_nano


async def test_no_backend_left_is_an_error_span(asgi_server, tmp_path):
    seen: list[dict] = []
    async with otlp_collector(asgi_server) as (endpoint, spans):
        async with asgi_server(completion_backend(seen, status=503), lifespan="off") as (url, _):
            async with gateway(asgi_server, tmp_path, [("s1", url)], otlp_traces_endpoint=endpoint) as (http, _):
                async with http.post("/v1/chat/completions", json=chat()) as resp:
                    assert resp.status == 503  # the backend's own answer: there was no other to try
    server = next(s for _, s in spans if s.kind == Span.SPAN_KIND_SERVER)
    client = next(s for _, s in spans if s.kind == Span.SPAN_KIND_CLIENT)
    assert server.status.code == client.status.code == Status.STATUS_CODE_ERROR
    assert client.status.message == "HTTP 503" and _attrs(server)["http.response.status_code"] == 503


async def test_a_request_the_client_did_not_sample_is_not_recorded_but_its_context_passes_on(asgi_server, tmp_path):
    seen: list[dict] = []
    unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    async with otlp_collector(asgi_server) as (endpoint, spans):
        async with asgi_server(completion_backend(seen), lifespan="off") as (url, _):
            async with gateway(asgi_server, tmp_path, [("s1", url)], otlp_traces_endpoint=endpoint) as (http, _):
                async with http.post("/v1/chat/completions", json=chat(), headers={"traceparent": unsampled}) as resp:
                    assert resp.status == 200
    assert spans == []  # parent-based sampling: the client's decision stands
    version, trace_id, parent, flags = seen[0]["traceparent"].split("-")
    # the backend gets the gateway's unsampled span in the client's trace (its parent: the gateway, not the client)
    assert (version, trace_id, flags) == ("00", CLIENT_TRACE, "00") and parent != CLIENT_SPAN
