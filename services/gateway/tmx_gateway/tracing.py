"""The gateway's spans, when it traces (setting `otlp_traces_endpoint`; see tmx_telemetry.tracing).

Each proxied request is a SERVER span, "POST <path>", in the client's trace when it sent a `traceparent`. Each
attempt at a backend is a CLIENT span under it, "<operation> <model>" (OpenTelemetry's GenAI convention), and the
backend receives that span's context as its `traceparent`: an engine that traces (vLLM's `--otlp-traces-endpoint`)
puts its own spans under the attempt that reached it. A retried or failed-over request shows each attempt, the
failed ones marked as errors with their cause; a stream continued on another backend shows the continuation as one
more attempt. The request span carries the routing decision, the tenant and the usage; it ends when the answer
does (for a stream, at its last event).

Without `otlp_traces_endpoint` the gateway builds none of this: the client's trace context is passed to the
backend as it came."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context

from tmx_telemetry.tracing import PROPAGATOR

# OpenTelemetry's gen_ai.operation.name of each endpoint; the others are named by their path
_OPERATIONS = {"/v1/chat/completions": "chat", "/v1/responses": "chat", "/v1/completions": "text_completion",
               "/v1/embeddings": "embeddings"}


class RequestTraces:
    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    def request(self, path: str, model: str, tenant: str, request_id: str, client_headers: dict[str, str],
                started: float) -> Span:
        """The request's span, begun when it arrived (`started`, on the perf_counter clock), under the client's
        trace context when `client_headers` hold one."""
        began_ns = time.time_ns() - int((time.perf_counter() - started) * 1e9)
        span = self.tracer.start_span(f"POST {path}", context=PROPAGATOR.extract(client_headers),
                                      kind=SpanKind.SERVER, start_time=began_ns)
        if span.is_recording():  # most requests are not, where traces are sampled
            span.set_attributes({"http.request.method": "POST", "url.path": path, "gen_ai.request.model": model,
                                 "tmx.tenant": tenant, "tmx.request_id": request_id})
        return span

    def attempt(self, request_span: Span, number: int, backend_id: str, url: str, endpoint: str, model: str,
                decision) -> Span | None:
        """Attempt `number` (1, 2, ...) at a backend, at `url` + `endpoint`, chosen by `decision`; None when the
        request is not sampled (its backends get the request's unsampled context: nothing below it records)."""
        if not request_span.is_recording():
            return None
        where = urlsplit(url)
        operation = _OPERATIONS.get(endpoint, endpoint.rsplit("/", 1)[-1])
        attributes = {"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                      "server.address": where.hostname or "", "url.full": url + endpoint,
                      "tmx.backend.id": backend_id, "tmx.attempt": number,
                      "tmx.routing.strategy": decision.strategy, "tmx.routing.reason": decision.reason}
        if where.port:
            attributes["server.port"] = where.port
        if decision.scores:
            attributes["tmx.routing.scores"] = json.dumps({k: round(v, 4) for k, v in decision.scores.items()},
                                                          separators=(",", ":"))
        if decision.predicted_cached_tokens:
            attributes["tmx.routing.predicted_cached_tokens"] = decision.predicted_cached_tokens
        return self.tracer.start_span(f"{operation} {model}", context=set_span_in_context(request_span),
                                      kind=SpanKind.CLIENT, attributes=attributes)


def carrying(span: Span, headers: dict[str, str]) -> dict[str, str]:
    """`headers` with `span`'s W3C trace context (traceparent, and tracestate when it has one) in place of the
    client's: what PROPAGATOR.inject writes, at a third of its cost."""
    out = {k: v for k, v in headers.items() if k != "tracestate"}
    c = span.get_span_context()
    out["traceparent"] = f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"
    if c.trace_state:
        out["tracestate"] = c.trace_state.to_header()
    return out


def traceparent(span: Span) -> str:
    """`span`'s context as a W3C traceparent (what the audit event records, to find the trace by)."""
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def answered(span: Span, status: int) -> None:
    """The backend answered this attempt with HTTP `status`."""
    span.set_attribute("http.response.status_code", status)
    if status >= 400:  # a client span's 4xx is an error too (the request it made failed)
        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))


def attempt_ended(span: Span, failed: bool, error: str) -> None:
    """The attempt is over: `failed` by the backend (a broken connection, a 5xx, a stream that broke), with
    `error` saying how, or not."""
    if failed:
        span.set_status(Status(StatusCode.ERROR, error or "failed"))
    span.end()


def request_ended(span: Span, status: int, backend_id: str, usage, ttft_ms: float, error: str,
                  decision) -> None:
    """The request is answered: `status` to the client, from `backend_id` (empty when none answered)."""
    if not span.is_recording():
        span.end()
        return
    span.set_attribute("http.response.status_code", status)
    if backend_id:
        span.set_attribute("tmx.backend.id", backend_id)
    if decision is not None:
        span.set_attribute("tmx.routing.strategy", decision.strategy)
        span.set_attribute("tmx.routing.reason", decision.reason)
    if usage.prompt_tokens or usage.completion_tokens:
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if usage.cached_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_tokens)
    if ttft_ms:
        span.set_attribute("tmx.ttft_ms", round(ttft_ms, 3))
    if error:
        span.set_attribute("tmx.error", error)
    if status >= 500:  # a server span's 4xx is the client's doing, not an error of the gateway's
        span.set_status(Status(StatusCode.ERROR, error or f"HTTP {status}"))
    span.end()
