"""The HTTP edge: OpenAI-compatible routes proxied to the fleet, plus health, metrics and admin views."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable

import aiohttp
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tmx_eventbus import new_event_id
from tmx_gateway import ui
from tmx_gateway.domain import anthropic, continuation, json_bodies
from tmx_gateway.domain.engine_costs import CostFit
from tmx_gateway.domain.fleet import Attempt, Backend, FleetView
from tmx_gateway.domain.metering import StreamMeter, Usage, usage_from_body
from tmx_gateway.domain.peers import PeerView
from tmx_gateway.domain.rate_limits import Refusal, RateLimiter
from tmx_gateway.domain.resilience import RetryBudget
from tmx_gateway.domain.routing import Decision, RouteRequest, Router, UnknownStrategy
from tmx_gateway.domain.routing.prompt import estimate_tokens, prompt_text
from tmx_gateway.domain.sse import split_events
from tmx_gateway.deadlines import Deadlines
from tmx_gateway.disconnect import FinalChunk, RelayedStream, cancelled_if_client_leaves
from tmx_gateway.domain.tenancy import Caller, Forbidden, Tenancy, Unauthorized
from tmx_gateway import tracing
from tmx_gateway.errors import GatewayError
from tmx_gateway.events import EventPublisher, RequestRecord
from tmx_gateway.metrics import GatewayMetrics
from tmx_gateway.settings import Settings

log = logging.getLogger(__name__)

# what reaches the backend of the client's headers: the body's type, and (when the client sent them) its W3C trace
# context, so an engine that traces (vLLM's --otlp-traces-endpoint) continues the client's trace, and its request
# id, which vLLM adopts as its own (--enable-request-id-headers) so engine logs can be found by it
_FORWARDED_HEADERS = ("content-type", "accept", "traceparent", "tracestate", "x-request-id")
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# endpoints whose models read the input and generate nothing (embeddings; vLLM's and SGLang's rerank, score,
# classification and pooling): no output tokens are reserved against a tenant's limit or counted as decode work
# in flight on the backend
_POOLING = frozenset({"/v1/embeddings", "/v1/rerank", "/rerank", "/v2/rerank", "/v1/score", "/score", "/classify",
                      "/pooling"})
# endpoints that run no model: a tenant's tokens-per-minute is not spent on them (Anthropic does not count token
# counting against a key's token limits either); each is still a request against its requests-per-minute
_TOKEN_FREE = frozenset({"/tokenize", "/detokenize"})


class GatewayApi:
    def __init__(
        self,
        settings: Settings,
        fleet: FleetView,
        router: Callable[[], Router],
        tenancy: Callable[[], Tenancy],
        limiter: RateLimiter,
        metrics: GatewayMetrics,
        publisher: EventPublisher | None,
        ready: Callable[[], bool],
        peers: PeerView | None = None,
        traces: tracing.RequestTraces | None = None,
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self._router = router
        self._tenancy = tenancy
        self.limiter = limiter
        self.metrics = metrics
        self.publisher = publisher
        self._ready = ready
        self.session: aiohttp.ClientSession | None = None  # opened by the app's lifespan
        self.retry_budget = RetryBudget(ratio=settings.retry_budget_ratio)
        self.peers = peers  # with several workers: what they tell each other
        self.traces = traces  # None: the gateway does not trace (see tracing.py)
        # request bodies must arrive within body_read_timeout_s, kept to a quarter of it (at most 1 s) by the
        # sweep the app's lifespan runs (see deadlines.py)
        self.body_deadlines = Deadlines(min(1.0, settings.body_read_timeout_s / 4))

    # --- request intake ------------------------------------------------------------------------------
    async def _read_body(self, request: Request, headers: dict[str, str]) -> bytes:
        limit = self.settings.max_body_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large")
        chunks, size = [], 0
        task = asyncio.current_task()
        # all of it within the timeout: a client trickling a body (or none) cannot hold a request open forever
        self.body_deadlines.watch(task, self.settings.body_read_timeout_s)
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise GatewayError(413, f"request body exceeds {limit} bytes", code="request_too_large")
                chunks.append(chunk)
        except asyncio.CancelledError:
            if not self.body_deadlines.expired(task):
                raise
            raise GatewayError(408, f"the request body did not arrive within {self.settings.body_read_timeout_s:g} s",
                               code="request_timeout") from None
        finally:
            self.body_deadlines.unwatch(task)
        return b"".join(chunks)

    def _parse(self, body: bytes) -> tuple[dict, bytes, str, bool]:
        """The request's payload, body, canonical model name and whether it streams. A body naming a model by an
        alias is written out again with the canonical name, which the backend must see."""
        try:
            payload = json_bodies.parse(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise GatewayError(400, f"invalid JSON body: {exc}", code="invalid_json") from None
        if not isinstance(payload, dict):
            raise GatewayError(400, "request body must be a JSON object", code="invalid_json")
        name = payload.get("model")
        if not isinstance(name, str) or not name:
            raise GatewayError(400, "you must provide a model parameter", param="model", code="missing_model")
        model = self.fleet.resolve_model(name)
        if model is None:
            raise GatewayError(404, f"The model `{name}` does not exist", param="model", code="model_not_found")
        stream = payload.get("stream", False)
        if not isinstance(stream, bool):
            raise GatewayError(400, "stream must be a boolean", param="stream")
        if name != model:
            try:
                payload = json_bodies.parse_exact(body)  # exactly (see json_bodies), as it is written out again
            except ValueError as exc:
                raise GatewayError(400, f"invalid JSON body: {exc}", code="invalid_json") from None
            payload["model"] = model
            body = json.dumps(payload).encode()
        return payload, body, model, stream

    # --- proxying ------------------------------------------------------------------------------------
    async def proxy(self, request: Request) -> Response:
        started = time.perf_counter()
        headers = _headers(request)
        try:
            caller = self._tenancy().identify(headers.get("authorization"))
            body = await self._read_body(request, headers)
            payload, body, model, stream = self._parse(body)
        except Unauthorized as exc:
            return GatewayError(401, str(exc), code="invalid_api_key").response()
        except GatewayError as exc:
            return exc.response()
        except ClientDisconnect:
            return Response(status_code=499)
        return await self._unless_disconnected(
            request, self.forward(request, headers, caller, payload, body, model, stream, request.scope["path"],
                                  started))

    @staticmethod
    async def _unless_disconnected(request: Request, work) -> Response:
        """Await `work` (routing, the upstream call, a whole non-streamed answer); if the client disconnects
        first, cancel it: aiohttp closes the upstream connection, which the engine reads as an abort, and the
        answer is a 499. (Once a stream has started, `RelayedStream` watches for the disconnect itself.)"""
        gone, response = await cancelled_if_client_leaves(request.receive, work)
        return Response(status_code=499) if gone else response

    async def messages(self, request: Request) -> Response:
        """The Anthropic Messages API, translated to the backends' OpenAI chat completions."""
        raw, response = await self._anthropic_call(request, anthropic.to_openai, "/v1/chat/completions")
        if raw is None:
            return response
        if response.status_code != 200:
            return _anthropic_failure(response)
        if isinstance(response, RelayedStream):
            return RelayedStream(_anthropic_stream(response.body_iterator, raw["model"]),
                                 headers=_gateway_headers(response.headers))
        try:
            message = anthropic.from_openai(json_bodies.parse(response.body), raw["model"])
        except ValueError as exc:  # not JSON, or NotACompletion
            log.warning("a backend's answer has no Anthropic translation", extra={
                "backend": response.headers.get("x-tmx-backend"), "error": str(exc)})
            return _anthropic_error(502, f"the backend's answer is not a chat completion ({exc})", response.headers)
        return JSONResponse(message, headers=_gateway_headers(response.headers))

    async def count_tokens(self, request: Request) -> Response:
        """Anthropic's token counting, by a backend's own tokenizer and chat template (vLLM's /tokenize):
        the prompt tokens a Messages request with these messages, system prompt and tools would read."""
        raw, response = await self._anthropic_call(request, anthropic.to_tokenize, "/tokenize")
        if raw is None:
            return response
        # a backend's 404 or 405: an engine without /tokenize (vLLM has it; not every engine does); the gateway's
        # own 404 (a model the caller may not use) names no backend and is passed on as it is
        if response.status_code in (404, 405) and "x-tmx-backend" in response.headers:
            return _anthropic_error(501, f"backend {response.headers.get('x-tmx-backend')} cannot count tokens: "
                                         "it has no /tokenize endpoint", response.headers)
        if response.status_code != 200:
            return _anthropic_failure(response)
        try:
            count = json_bodies.parse(response.body)["count"]
            if type(count) is not int or count < 0:
                raise ValueError(f"count {count!r}")
        except (ValueError, KeyError, TypeError) as exc:
            return _anthropic_error(502, f"the backend's /tokenize answer has no token count ({exc})",
                                    response.headers)
        return JSONResponse({"input_tokens": count}, headers=_gateway_headers(response.headers))

    async def _anthropic_call(self, request: Request, translate: Callable[[dict], dict],
                              endpoint: str) -> tuple[dict | None, Response]:
        """An Anthropic request translated (`translate`) to an OpenAI-shaped one and forwarded to `endpoint`:
        (the Anthropic body, the answer as the gateway would give it an OpenAI client), or (None, the refusal in
        Anthropic's error shape) when the request went nowhere."""
        started = time.perf_counter()
        headers = _headers(request)
        try:
            caller = self._tenancy().identify(headers.get("x-api-key") and f"Bearer {headers['x-api-key']}"
                                              or headers.get("authorization"), sent_as="x-api-key")
            raw = json_bodies.parse_exact(await self._read_body(request, headers))
            if not isinstance(raw, dict):
                raise anthropic.AnthropicRequestError("request body must be a JSON object")
            body = json.dumps(translate(raw)).encode()
            payload, body, model, stream = self._parse(body)
        except Unauthorized as exc:
            return None, _anthropic_error(401, str(exc))
        except anthropic.AnthropicRequestError as exc:
            return None, _anthropic_error(400, exc.message)
        except (ValueError, UnicodeDecodeError) as exc:
            return None, _anthropic_error(400, f"invalid JSON body: {exc}")
        except GatewayError as exc:
            return None, _anthropic_error(exc.status, exc.message)
        except ClientDisconnect:
            return None, Response(status_code=499)
        return raw, await self._unless_disconnected(
            request, self.forward(request, headers, caller, payload, body, model, stream, endpoint, started))

    async def forward(self, request: Request, request_headers: dict[str, str], caller: Caller, payload: dict,
                      body: bytes, model: str, stream: bool, endpoint: str, started: float) -> Response:
        """Route and forward one OpenAI-shaped request, with failover; the response the client gets.
        `request_headers`: the request's headers as a dict (`_headers`)."""
        request_id = new_event_id()  # unique across processes like a uuid4, without a urandom call
        headers = {k: v for k in _FORWARDED_HEADERS if (v := request_headers.get(k))}
        try:
            policy = self._router().policy(model, request_headers.get("x-tmx-routing", ""))
        except UnknownStrategy as exc:
            return GatewayError(400, str(exc), param="x-tmx-routing", code="unknown_routing_strategy").response()
        text = prompt_text(payload) if policy.needs_prompt else ""
        if endpoint in _POOLING:
            max_tokens = 0
        else:
            max_tokens = payload.get("max_completion_tokens", payload.get("max_tokens",
                                                                          payload.get("max_output_tokens")))
            max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 256
        route = RouteRequest(model=model, endpoint=endpoint, prompt_chars=len(body),
                             session_key=request_headers.get("x-session-id", "") or str(payload.get("user") or ""),
                             prompt_text=text, prompt_tokens=estimate_tokens(text, len(body)), max_tokens=max_tokens)
        ctx = _Context(request_id, caller, model, endpoint, stream, started,
                       (request.scope.get("client") or ("",))[0], route, headers)
        if self.traces is not None:
            ctx.span = self.traces.request(request.scope["path"], model, caller.tenant, request_id, request_headers,
                                           started)
        if not caller.may_use(model):  # answered as a model that does not exist (nothing is told of it); audited
            err = GatewayError(404, f"The model `{model}` does not exist", param="model",
                               code="model_not_found")
            self._finish(ctx, None, err.status, Usage(), 0.0, err.message)
            return err.response({"x-tmx-request-id": request_id})
        admission = self.limiter.admit(
            caller.tenant, 0 if endpoint in _TOKEN_FREE else route.prompt_tokens + route.max_tokens, time.monotonic())
        if type(admission) is Refusal:
            return self._refuse(ctx, admission)
        ctx.reserved = admission.tokens
        tried: set[str] = set()
        last_error = ""
        deadline = started + self._deadline_s(request_headers)
        self.retry_budget.on_request(time.monotonic())
        # the models that answer for this one when its backends cannot (the fleet file's `fallbacks`), in order
        if fallbacks := self.fleet.fallbacks(model):
            fallbacks = [m for m in fallbacks if caller.may_use(m)]
        attempt = attempts_here = 0  # attempts made, in all and at the current model
        while True:
            now = time.monotonic()
            candidates = self.fleet.candidates(ctx.model, now, tried) \
                if attempts_here < self.settings.max_attempts else ()
            if not candidates:
                if not fallbacks or time.perf_counter() >= deadline:
                    break
                fallen = self._fall_back(ctx, fallbacks.pop(0), body, request_headers)
                if fallen is not None:
                    payload, body, policy = fallen
                    attempts_here = 0
                continue
            if time.perf_counter() >= deadline:
                last_error = "request deadline passed"
                break
            if attempt and not self.retry_budget.try_spend(now):
                self.metrics.retries.labels("budget_exhausted").inc()
                last_error += "; retry budget exhausted"
                break
            decision = self._choose(policy, ctx.route, candidates)
            if ctx.model != model:
                decision = dataclasses.replace(decision, reason=f"{decision.reason}; fallback for {model}")
            attempt += 1
            attempts_here += 1
            backend = self.fleet.backends[decision.backend_id]
            tried.add(backend.id)
            self._acquire(backend, ctx, decision)
            timeout = aiohttp.ClientTimeout(total=max(0.001, deadline - time.perf_counter()),
                                            sock_connect=self.settings.upstream_connect_timeout_s)
            try:
                upstream = await self.session.post(backend.url + endpoint, data=body, timeout=timeout,
                                                   headers=_outgoing(ctx, headers))
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                self._release(ctx, failed=True, refused=isinstance(exc, aiohttp.ClientConnectorError),
                              error=type(exc).__name__)
                self.metrics.retries.labels("connect").inc()
                last_error = f"{backend.id}: {type(exc).__name__}"
                self._failed_attempt(ctx, backend, 0, type(exc).__name__)
                continue
            except asyncio.CancelledError:
                self._abandoned(ctx, backend, decision)
                raise
            if ctx.attempt_span is not None:
                tracing.answered(ctx.attempt_span, upstream.status)
            if upstream.status in _RETRYABLE_STATUS and self._elsewhere(ctx.model, attempts_here, tried, fallbacks):
                try:
                    await self._drain(upstream)
                except asyncio.CancelledError:
                    self._abandoned(ctx, backend, decision)
                    raise
                # 429 is load, not ill health (nor an answer to the request); a 500 may be the request's own doing
                self._release(ctx, failed=upstream.status != 429, verdict=upstream.status != 429,
                              defer=upstream.status == 500, error=f"HTTP {upstream.status}, retried")
                self.metrics.retries.labels(str(upstream.status)).inc()
                last_error = f"{backend.id}: HTTP {upstream.status}"
                if upstream.status != 500:  # a 500's outcome is published once it is judged (see _judge_suspects)
                    self._failed_attempt(ctx, backend, upstream.status, f"HTTP {upstream.status}")
                continue
            out_headers = {"x-tmx-backend": backend.id, "x-tmx-request-id": request_id}
            if admission.limit_requests:
                out_headers["x-ratelimit-limit-requests"] = str(admission.limit_requests)
                out_headers["x-ratelimit-remaining-requests"] = str(admission.remaining_requests)
            if admission.limit_tokens:
                out_headers["x-ratelimit-limit-tokens"] = str(admission.limit_tokens)
                out_headers["x-ratelimit-remaining-tokens"] = str(admission.remaining_tokens)
            if request_headers.get("x-tmx-explain"):
                out_headers["x-tmx-route"] = json.dumps({
                    "gateway": self.settings.gateway_id, "strategy": decision.strategy,
                    "chosen": decision.backend_id, "reason": decision.reason,
                    "candidates": [b.id for b in candidates],
                    "scores": {k: round(v, 4) for k, v in decision.scores.items()}}, separators=(",", ":"))
            if stream and upstream.status == 200:
                resume, why_not = None, continuation.unsupported(endpoint, payload)
                if not why_not:
                    resume = _Resume(body, headers, policy, tried, deadline,
                                     self.settings.max_attempts - attempts_here)
                return RelayedStream(self._relay(upstream, backend, decision, ctx, resume, why_not),
                                     headers=out_headers)
            return await self._respond(upstream, backend, decision, ctx, out_headers)
        if not tried:
            also = " or its fallbacks" if self.fleet.fallbacks(model) else ""
            err = GatewayError(503, f"no healthy backend serves model `{model}`{also}", code="no_healthy_backend")
        else:
            err = GatewayError(502, f"all attempted backends failed ({last_error})", code="upstream_failed")
        self._finish(ctx, None, err.status, Usage(), 0.0, err.message)
        return err.response({"x-tmx-request-id": request_id})

    def _elsewhere(self, model: str, attempts_here: int, tried: set[str], fallbacks) -> bool:
        """May a refused attempt (429, 5xx) be retried: on another backend of `model`, or on a fallback model?"""
        now = time.monotonic()
        if attempts_here < self.settings.max_attempts and self.fleet.candidates(model, now, tried):
            return True
        return any(self.fleet.candidates(m, now, tried) for m in fallbacks)

    def _fall_back(self, ctx: _Context, model: str, body: bytes, request_headers: dict[str, str]):
        """Turn the request to the fallback `model`: (its payload, body and routing policy), with ctx's model and
        route its; None when the body cannot be written out again (nested deeper than the exact parser reads)."""
        try:
            payload = json_bodies.parse_exact(body)  # exactly (see json_bodies), as it is written out again
            policy = self._router().policy(model, request_headers.get("x-tmx-routing", ""))
        except (ValueError, UnknownStrategy):
            return None
        payload["model"] = model
        body = json.dumps(payload).encode()
        text = prompt_text(payload) if policy.needs_prompt else ""
        self.metrics.fallbacks.labels(ctx.model, model).inc()
        ctx.model = model
        ctx.route = dataclasses.replace(ctx.route, model=model, prompt_chars=len(body), prompt_text=text,
                                        prompt_tokens=estimate_tokens(text, len(body)))
        return payload, body, policy

    async def _read(self, upstream) -> bytes:
        """A whole upstream answer, refused (`AnswerTooLarge`) once it is over max_response_bytes: a backend that
        answers without end (or a request whose answer is that large) cannot take the gateway's memory."""
        limit = self.settings.max_response_bytes
        declared = upstream.content_length
        if declared is not None and declared <= limit:
            return await upstream.read()  # aiohttp reads exactly the declared length
        if declared is None:
            chunks, size = [], 0
            while chunk := await upstream.content.readany():
                size += len(chunk)
                if size > limit:
                    break
                chunks.append(chunk)
            else:
                return b"".join(chunks)
        raise AnswerTooLarge(f"the answer exceeds the gateway's limit of {limit} bytes (max_response_bytes)")

    async def _drain(self, upstream) -> None:
        """Read a refusal's body so that its connection is kept for another request; one whose body breaks, is
        over max_response_bytes or is cancelled is closed instead (it was a refusal all the same)."""
        try:
            await self._read(upstream)
        except (aiohttp.ClientError, asyncio.TimeoutError, AnswerTooLarge):
            upstream.close()
            return
        except asyncio.CancelledError:
            upstream.close()
            raise
        upstream.release()

    async def _respond(self, upstream, backend: Backend, decision: Decision, ctx: _Context, headers) -> Response:
        try:
            data = await self._read(upstream)
            upstream.release()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            upstream.close()
            self._release(ctx, failed=True, error=type(exc).__name__)
            err = GatewayError(502, f"upstream {backend.id} failed mid-response: {type(exc).__name__}")
            self._finish(ctx, backend, err.status, Usage(), 0.0, err.message, decision)
            return err.response(headers)
        except AnswerTooLarge as exc:  # no verdict on the backend: the request may ask for that much
            upstream.close()
            self._release(ctx, failed=False, verdict=False)
            err = GatewayError(502, f"upstream {backend.id}: {exc}", code="upstream_response_too_large")
            self._finish(ctx, backend, err.status, Usage(), 0.0, err.message, decision)
            return err.response(headers)
        except asyncio.CancelledError:  # the client left: close the upstream connection mid-answer
            upstream.close()
            self._abandoned(ctx, backend, decision)
            raise
        usage = usage_from_body(data) if upstream.status == 200 else Usage()
        ctx.attempt.answered(time.monotonic(), usage)  # observes nothing without usage
        self._release(ctx, failed=upstream.status >= 500, defer=upstream.status == 500,
                      error=f"HTTP {upstream.status}" if upstream.status >= 500 else "")
        self._finish(ctx, backend, upstream.status, usage, 0.0, "", decision)
        if upstream.status in (429, 503) and (wait := upstream.headers.get("retry-after")):
            headers["retry-after"] = wait  # the backend's own word on when to come back, for the client's backoff
        return UpstreamAnswer(data, upstream.status, headers, upstream.headers.get("content-type", "application/json"))

    async def _relay(self, upstream, backend: Backend, decision: Decision, ctx: _Context,
                     resume: _Resume | None = None, why_not: str = ""):
        """Pass the stream through byte for byte, in whole SSE events (a client never holds half an event when
        a stream breaks). A stream that breaks mid-way is continued on another backend (see
        `domain.continuation`); where it cannot be, it ends with an SSE error event, never silently."""
        meter = StreamMeter()
        relayed: list[bytes] = []  # the complete events sent, kept only while the stream may be continued
        ttft_ms, status, error, complete = 0.0, 200, "", False
        held = b""  # events from `[DONE]` on, held until the upstream ends, to go out with the response's end
        try:
            async for chunk in upstream.content.iter_any():
                if not ttft_ms:
                    ttft_ms = (time.perf_counter() - ctx.started) * 1000
                    ctx.attempt.first_token(time.monotonic())
                events = meter.feed(chunk)
                if not events:
                    if meter.pending_size > self.settings.max_response_bytes:  # not an SSE stream, or a broken one
                        raise AnswerTooLarge(f"an event exceeds the gateway's limit of "
                                             f"{self.settings.max_response_bytes} bytes (max_response_bytes)")
                    continue
                ctx.attempt.decoded(meter.events - 1)  # ~ a token per event; a chat stream's first is the role
                if resume is not None:
                    relayed.append(events)
                if meter.done:
                    held += events
                    continue
                yield events
            # with a stream that ended without a final blank line, its last bytes, as sent
            held += meter.pending
            complete = True
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status, error = 502, f"upstream {backend.id} broke mid-stream: {type(exc).__name__}"
        except AnswerTooLarge as exc:
            status, error = 502, f"upstream {backend.id} broke mid-stream: {exc}"
        finally:
            if complete:
                upstream.release()
                usage = meter.result()
                ctx.attempt.learn(usage)  # its TTFT, at the prefill its usage reports
            else:
                upstream.close()  # cancels the upstream request (client gone or stream broken)
            self._release(ctx, failed=bool(error), verdict=complete or bool(error), error=error)
            if not complete and not error:
                self._finish(ctx, backend, 499, meter.result(), ttft_ms, "client disconnected", decision)
        if complete:
            if held:
                yield FinalChunk(held)
            self._finish(ctx, backend, status, usage, ttft_ms, error, decision)
            return
        if held:  # the upstream broke after its [DONE]: what it sent reaches the client before the rest
            yield held
        self._failed_attempt(ctx, backend, 502, error)
        transcript = continuation.read_transcript(relayed) if resume is not None else None
        original = None
        if transcript is not None and not transcript.obstacle:
            try:
                original = resume.payload
            except ValueError:  # nested deeper than the exact parser reads (orjson read it)
                transcript.obstacle = "the request is nested too deeply to write out again"
        if transcript is not None and not transcript.obstacle:
            body = continuation.continuation_request(original, transcript)
            if body is None or transcript.finished:  # nothing was missing but the end
                yield continuation.finish_events(transcript)
                self._finish(ctx, backend, 200, meter.result(), ttft_ms, "", decision)
                return
            meter.discard_partial()  # the broken stream's unfinished event is never completed
            async for out in self._continue(ctx, resume, body, transcript, meter, error):
                yield out
            return
        why = transcript.obstacle if transcript is not None else why_not
        self.metrics.stream_continuations.labels("impossible").inc()
        broken = GatewayError(502, f"{error}; not continued: {why}", code="upstream_stream_broken")
        # a Responses stream numbers its events from 0; each has one data line, as the meter counts them
        yield broken.responses_sse_event(meter.events) if ctx.endpoint == "/v1/responses" else broken.sse_event()
        self._finish(ctx, backend, 502, meter.result(), ttft_ms, error, decision)

    async def _continue(self, ctx: _Context, resume: _Resume, body: dict, transcript, meter: StreamMeter,
                        first_error: str):
        """Ask the other backends, in routing order, to continue the answer; relay the first that does."""
        data = json.dumps(body).encode()
        last_error = "no other backend to continue on"  # until one is tried
        for _ in range(max(resume.attempts_left, 0)):
            candidates = self.fleet.candidates(ctx.model, time.monotonic(), resume.tried)
            if not candidates or time.perf_counter() >= resume.deadline:
                break
            decision = self._choose(resume.policy, ctx.route, candidates)
            backend = self.fleet.backends[decision.backend_id]
            resume.tried.add(backend.id)
            self._acquire(backend, ctx, decision)
            timeout = aiohttp.ClientTimeout(total=max(0.001, resume.deadline - time.perf_counter()),
                                            sock_connect=self.settings.upstream_connect_timeout_s)
            try:
                upstream = await self.session.post(backend.url + ctx.endpoint, data=data, timeout=timeout,
                                                   headers=_outgoing(ctx, resume.headers))
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                self._release(ctx, failed=True, refused=isinstance(exc, aiohttp.ClientConnectorError),
                              error=type(exc).__name__)
                last_error = f"{backend.id}: {type(exc).__name__}"
                self._failed_attempt(ctx, backend, 0, type(exc).__name__)
                continue
            if ctx.attempt_span is not None:
                tracing.answered(ctx.attempt_span, upstream.status)
            if upstream.status != 200:
                await self._drain(upstream)
                self._release(ctx, failed=upstream.status >= 500, error=f"HTTP {upstream.status} to a continuation")
                last_error = f"{backend.id}: HTTP {upstream.status}"
                self._failed_attempt(ctx, backend, upstream.status, f"HTTP {upstream.status} to a continuation")
                continue
            complete, broken, pending = False, False, b""
            try:
                async for chunk in upstream.content.iter_any():
                    ctx.attempt.first_token(time.monotonic())
                    events, pending = split_events(pending + chunk)
                    for event in events:
                        out = continuation.rewrite(event + b"\n\n", transcript)
                        if out is not None:
                            meter.feed(out)
                            yield out
                complete = True
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                broken = True
                last_error = f"upstream {backend.id} broke mid-continuation: {type(exc).__name__}"
            finally:
                if complete:
                    upstream.release()
                else:
                    upstream.close()
                self._release(ctx, failed=broken, verdict=complete or broken, error=last_error if broken else "")
                if not complete and not broken:  # the client left during the continuation
                    self._finish(ctx, backend, 499, meter.result(), 0.0, "client disconnected", decision)
            if complete:
                self.metrics.stream_continuations.labels("continued").inc()
                self._finish(ctx, backend, 200, meter.result(), 0.0, "",
                             dataclasses.replace(decision, reason=f"{decision.reason}; continued here after {first_error}"))
                return
            if broken:
                self._failed_attempt(ctx, backend, 502, last_error)
            break  # a continuation that breaks too ends the stream: its part was already sent
        self.metrics.stream_continuations.labels("failed").inc()
        yield GatewayError(502, f"{first_error}; continuation failed ({last_error})",
                           code="upstream_stream_broken").sse_event()
        self._finish(ctx, None, 502, meter.result(), 0.0, f"{first_error}; continuation failed ({last_error})")

    # --- bookkeeping ---------------------------------------------------------------------------------
    def _choose(self, policy, route: RouteRequest, candidates: list[Backend]) -> Decision:
        """The policy's choice, counted by the rule that made it; a prompt prefix it recorded there is told to the peer
        workers too."""
        decision = policy.choose(route, candidates)
        if decision.kind:
            self.metrics.decisions_of(decision.strategy, decision.kind).inc()
        if decision.prefix_blocks and self.peers is not None:
            self.peers.routed_prefix(route.model, policy.name, decision.backend_id, decision.prefix_blocks)
        return decision

    def _refuse(self, ctx: _Context, refusal: Refusal) -> Response:
        """A request over its tenant's rate limit: 429 in the OpenAI shape, with retry-after when waiting helps;
        audited like any other answer."""
        self.metrics.rate_limited.labels(ctx.caller.tenant, refusal.limit).inc()
        self._finish(ctx, None, 429, Usage(), 0.0, refusal.message)
        headers = {"x-tmx-request-id": ctx.request_id}
        if refusal.retry_after_s:
            headers["retry-after"] = str(math.ceil(refusal.retry_after_s))
        return GatewayError(429, refusal.message, code="rate_limit_exceeded").response(headers)

    def _abandoned(self, ctx: _Context, backend: Backend, decision: Decision) -> None:
        """The client disconnected while `backend` was working for it: no verdict on the backend."""
        self._release(ctx, failed=False, verdict=False)
        self._finish(ctx, backend, 499, Usage(), 0.0, "client disconnected", decision)

    def _acquire(self, backend: Backend, ctx: _Context, decision: Decision) -> None:
        """An attempt goes to `backend`: count its work there until `_release`. A non-streamed answer shows nothing
        until it is whole, so its prompt is presumed prefilled at the estimated time, not held as queued
        prefill for its whole decode (which made a busy backend look worse than it was to prefix_aware)."""
        backend.breaker.acquire(time.monotonic())
        attempt = ctx.attempt = Attempt(backend, ctx.route.prompt_tokens, ctx.route.max_tokens,
                                        decision.predicted_cached_tokens, time.monotonic())
        if not ctx.stream:
            ctx.prefill_timer = asyncio.get_running_loop().call_later(attempt.prefill_eta_s, attempt.prefilled)
        self.metrics.inflight_of(backend.id).inc()
        if ctx.span is not None:
            ctx.attempts += 1
            ctx.attempt_span = self.traces.attempt(ctx.span, ctx.attempts, backend.id, backend.url, ctx.endpoint,
                                                   ctx.model, decision)

    def _deadline_s(self, request_headers: dict[str, str]) -> float:
        header = request_headers.get("x-tmx-deadline-ms", "")
        if header.isdigit() and int(header) > 0:
            return min(int(header) / 1000, self.settings.request_deadline_s)
        return self.settings.request_deadline_s

    def _release(self, ctx: _Context, failed: bool, *, refused: bool = False, verdict: bool = True,
                 defer: bool = False, error: str = "") -> None:
        """The current attempt ended. `failed`: the backend failed it (5xx, broken connection) — its breaker counts
        it; `refused`: it refused the connection — the breaker opens at once; `verdict=False`: no evidence either
        way (the client left).

        `defer`: the backend answered HTTP 500, which a request can cause (a query of death: input an engine
        crashes on) as well as a sick backend; its verdict waits in `ctx.suspects` for `_judge_suspects`.
        Connection failures, timeouts and the other 5xx count at once. `error`: how it failed (for its span)."""
        if ctx.attempt_span is not None:
            tracing.attempt_ended(ctx.attempt_span, failed, error)
            ctx.attempt_span = None
        if ctx.prefill_timer is not None:
            ctx.prefill_timer.cancel()
            ctx.prefill_timer = None
        attempt = ctx.attempt
        attempt.ended()
        backend = attempt.backend
        self.metrics.inflight_of(backend.id).dec()
        if defer:
            backend.breaker.release_trial()
            ctx.suspects = [*(ctx.suspects or ()), (backend, (time.perf_counter() - ctx.started) * 1000)]
        elif not verdict:
            backend.breaker.release_trial()
        elif failed:
            backend.breaker.failure(time.monotonic(), hard=refused)
        else:
            backend.breaker.success()
            if ctx.suspects:
                self._judge_suspects(ctx, answered=True)
        if failed:
            backend.failed += 1
        else:
            backend.served += 1

    def _judge_suspects(self, ctx: _Context, answered: bool, final: Backend | None = None) -> bool:
        """The verdict on the backends that answered this request HTTP 500 (`_release(defer=True)`). If another
        backend answered it (`answered`), the request was servable: each 500 counts against its backend's breaker
        and is published as a failed attempt, as any failure is. If no backend answered it and at least two
        answered 500, the request is at fault, not they: no breaker counts it, and its outcomes are published
        with `request_at_fault`, which the health service's passive signal ignores; so a few such requests retried
        across the fleet cannot open every breaker and take the fleet from everyone else. A single 500 with no
        other answer counts, as before (a one-replica pool still notices a replica that fails every request).
        `final`: the backend whose 500 is the request's answer (its outcome is the request's own). Returns
        whether the request was judged at fault."""
        suspects, ctx.suspects = ctx.suspects, None
        at_fault = not answered and len(suspects) >= 2
        now = time.monotonic()
        for backend, latency_ms in suspects:
            if not at_fault:
                backend.breaker.failure(now)
            if backend is not final:
                self._failed_attempt(ctx, backend, 500, "HTTP 500", latency_ms, at_fault)
        if at_fault:
            self.metrics.requests_at_fault.inc()
        return at_fault

    def _failed_attempt(self, ctx: _Context, backend: Backend, status: int, error: str,
                        latency_ms: float | None = None, at_fault: bool = False) -> None:
        if self.publisher is not None:
            self.publisher.record_failed_attempt(
                ctx.request_id, backend.id, ctx.model, ctx.endpoint, status, error,
                (time.perf_counter() - ctx.started) * 1000 if latency_ms is None else latency_ms, at_fault)

    def _finish(self, ctx: _Context, backend: Backend | None, status: int, usage: Usage, ttft_ms: float,
                error: str, decision: Decision | None = None) -> None:
        latency = time.perf_counter() - ctx.started
        backend_id = backend.id if backend else ""
        if ctx.reserved:  # settle the tokens reserved against the tenant's limit with what was used, once
            used = usage.prompt_tokens + usage.completion_tokens
            self.limiter.settle(ctx.caller.tenant, ctx.reserved, used or (ctx.reserved if status < 500 else 0))
            ctx.reserved = 0
        at_fault = self._judge_suspects(ctx, answered=False, final=backend) if ctx.suspects else False
        m = self.metrics
        if backend is not None and 200 <= status < 300:
            backend.observe_latency(latency * 1000, ttft_ms)
        if decision is not None and decision.strategy == "prefix_aware" and status == 200 and not usage.estimated \
                and (usage.prompt_tokens or usage.cached_tokens):
            predicted = "hit" if decision.predicted_cached_tokens else "miss"
            m.prefix_predictions.labels(f"{predicted}_{'hit' if usage.cached_tokens else 'miss'}").inc()
            if usage.cached_reported and usage.prompt_tokens and decision.indexed_tokens and \
                    self.settings.learn_prefix_capacity:
                self._router().observe(ctx.model, decision, ctx.route.prompt_tokens,
                                       usage.cached_tokens / usage.prompt_tokens)
        span, ctx.span = ctx.span, None
        if span is not None:
            tracing.request_ended(span, status, backend_id, usage, ttft_ms, error, decision)
        m.requests_of(ctx.model, backend_id, str(status)).inc()
        m.latency_of(ctx.model).observe(latency)
        if ttft_ms:
            m.ttft_of(ctx.model).observe(ttft_ms / 1000)
        if usage.prompt_tokens:
            m.tokens_of(ctx.caller.tenant, ctx.model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            m.tokens_of(ctx.caller.tenant, ctx.model, "completion").inc(usage.completion_tokens)
        if self.publisher is None:
            return
        self.publisher.record(RequestRecord(
            request_id=ctx.request_id, tenant=ctx.caller.tenant, api_key_id=ctx.caller.api_key_id, model=ctx.model,
            endpoint=ctx.endpoint, backend_id=backend_id, http_status=status, streamed=ctx.stream,
            latency_ms=latency * 1000, ttft_ms=ttft_ms, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
            routing_strategy=decision.strategy if decision else "", routing_reason=decision.reason if decision else "",
            client_ip=ctx.client_ip, error=error, routing_scores=decision.scores if decision else None,
            predicted_cached_tokens=decision.predicted_cached_tokens if decision else 0, request_at_fault=at_fault,
            client_request_id=ctx.forwarded.get("x-request-id", ""),
            # the gateway's span, when it traces: in the client's trace, if the client sent one
            traceparent=tracing.traceparent(span) if span is not None else ctx.forwarded.get("traceparent", ""),
        ))

    # --- the rest of the surface ---------------------------------------------------------------------
    def _refused_view(self, request: Request, admin: bool) -> Response | None:
        """The answer to a caller not allowed this view (see `Tenancy.admit_admin`, `admit_reader`); None if allowed.
        A reader may send its key as an Anthropic client does (x-api-key) and is then answered in Anthropic's
        error shape."""
        refused, _ = self._view(request, admin)
        return refused

    def _view(self, request: Request, admin: bool) -> tuple[Response | None, frozenset[str]]:
        """`_refused_view`'s answer, and the models the caller may see (empty: every model)."""
        visible: frozenset[str] = frozenset()
        authorization = request.headers.get("authorization")
        anthropic_client = not admin and _anthropic_client(request)
        if anthropic_client and not authorization and (key := request.headers.get("x-api-key")):
            authorization = f"Bearer {key}"
        try:
            if admin:
                self._tenancy().admit_admin(authorization, self.settings.admin_key)
            else:
                visible = self._tenancy().admit_reader(authorization, self.settings.admin_key)
        except Unauthorized as exc:
            return (_anthropic_error(401, str(exc)) if anthropic_client else
                    GatewayError(401, str(exc), code="invalid_api_key").response()), visible
        except Forbidden as exc:
            return GatewayError(403, str(exc), code="admin_disabled").response(), visible
        return None, visible

    async def models(self, request: Request) -> Response:
        """The merged catalogue (of the models the caller may use); to an Anthropic client (it sends
        `anthropic-version`), as Anthropic lists models."""
        refused, visible = self._view(request, admin=False)
        if refused is not None:
            return refused
        catalogue = [e for e in self.fleet.catalogue() if not visible or e.name in visible]
        if _anthropic_client(request):
            data = [_anthropic_model(e.name) for e in catalogue]
            return JSONResponse({"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                 "last_id": data[-1]["id"] if data else None})
        now = time.monotonic()
        return JSONResponse({"object": "list", "data": [self._model(e, now) for e in catalogue]})

    async def model(self, request: Request) -> Response:
        """One model of the catalogue (OpenAI's or Anthropic's retrieve), by its name or an alias: the canonical
        entry."""
        refused, visible = self._view(request, admin=False)
        if refused is not None:
            return refused
        name = request.path_params["model"]
        canonical = self.fleet.resolve_model(name)
        entry = next((e for e in self.fleet.catalogue() if e.name == canonical), None)
        if entry is None or visible and entry.name not in visible:
            message = f"The model `{name}` does not exist"
            return _anthropic_error(404, message) if _anthropic_client(request) else \
                GatewayError(404, message, param="model", code="model_not_found").response()
        if _anthropic_client(request):
            return JSONResponse(_anthropic_model(entry.name))
        return JSONResponse(self._model(entry, time.monotonic()))

    def _model(self, entry, now: float) -> dict:
        backends = [self.fleet.backends[b] for b in entry.backend_ids]
        return {"id": entry.name, "object": "model", "created": 0, "owned_by": "tensormux",
                "aliases": list(entry.aliases), "context_length": entry.context_length or None,
                "backends": [{"id": b.id, "state": b.state.value, "routable": b.routable(now)} for b in backends]}

    async def backends(self, request: Request) -> Response:
        if (refused := self._refused_view(request, admin=True)) is not None:
            return refused
        now, router = time.monotonic(), self._router()
        outcomes = self.peers.outcomes if self.peers else lambda b: (b.served, b.failed)

        def row(b: Backend) -> dict:
            # counts are the whole gateway's (its workers' together), as of the peers' last notes; `breaker` is
            # this worker's own
            served, failed = outcomes(b)
            return {"id": b.id, "url": b.url, "models": list(b.models), "state": b.state.value,
                    "routable": b.routable(now), "inflight": b.inflight,
                    "cached_prefix_blocks": router.prefix_blocks(b.id),
                    # the age (blocks routed there since its last use) up to which the index presumes a block still
                    # cached there, as learned from its answers' cached tokens; null until learned
                    "prefix_capacity_blocks": router.prefix_capacity(b.id), "served": served, "failed": failed,
                    "breaker": b.breaker.state.value,
                    # this worker's fit of its engine's costs (learned from the TTFTs its own streams showed): the
                    # reference's times `factor`
                    "engine_costs": _engine_costs(b.costs),
                    "engine_load": None if b.load is None else {
                        "running": b.load.running, "waiting": b.load.waiting, "kv_cache_usage": b.load.kv_cache_usage,
                        "prefix_cache_hit_rate": b.load.prefix_cache_hit_rate, "age_s": round(now - b.load.at, 3)}}
        return JSONResponse({"gateway": self.settings.gateway_id, "peers": self.peers.peers if self.peers else [],
                             "backends": [row(b) for b in self.fleet.backends.values()]})

    async def ui(self, request: Request) -> Response:
        return HTMLResponse(ui.PAGE)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        ready = self._ready()
        body = {"status": "ready" if ready else "not ready"}
        if self.publisher is not None and self.publisher.spool is not None:
            body["events_spooled_bytes"] = self.publisher.spool.size
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        """Open by default, as Prometheus scrapers expect (and vLLM's are); with `metrics_auth` the admin views' rule,
        since the labels name every tenant and backend."""
        if self.settings.metrics_auth and (refused := self._refused_view(request, admin=True)) is not None:
            return refused
        self.metrics.flush()  # this process's tallies; other workers' reach it within their flush interval
        return Response(generate_latest(self.metrics.exposed), media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.proxy, methods=["POST"]),
            Route("/v1/completions", self.proxy, methods=["POST"]),
            Route("/v1/embeddings", self.proxy, methods=["POST"]),
            *(Route(path, self.proxy, methods=["POST"]) for path in sorted(_POOLING - {"/v1/embeddings"})),
            Route("/v1/responses", self.proxy, methods=["POST"]),
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
            Route("/tokenize", self.proxy, methods=["POST"]),
            Route("/detokenize", self.proxy, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.model, methods=["GET"]),
            Route("/admin/backends", self.backends, methods=["GET"]),
            Route("/ui", self.ui, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]


def _headers(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict, built once: each lookup in Starlette's `Headers` scans the whole list,
    and the proxy path looks up nine. The server gives names in lower case; of a repeated header the last wins."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in request.scope["headers"]}


def _engine_costs(fit: CostFit) -> dict:
    costs = fit.costs
    return {"factor": round(fit.factor, 4), "prefill_ms_per_token": round(costs.prefill_ms_per_token, 5),
            "step_ms": round(costs.step_ms, 3), "step_ms_per_seq": round(costs.step_ms_per_seq, 4),
            "overhead_ms": round(fit.overhead_ms, 3), "observations": fit.samples}


def _outgoing(ctx: _Context, headers: dict[str, str]) -> dict[str, str]:
    """The headers an attempt sends its backend: with the attempt's trace context where the request is traced
    (the request's own where it is not sampled)."""
    return headers if ctx.span is None else tracing.carrying(ctx.attempt_span or ctx.span, headers)


def _anthropic_client(request: Request) -> bool:
    """Anthropic's clients send the API version they speak on every request."""
    return "anthropic-version" in request.headers


def _anthropic_model(name: str) -> dict:
    """A model as Anthropic's models API describes one (its creation time unknown here: the epoch)."""
    return {"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"}


def _anthropic_failure(response: Response) -> Response:
    """A failed answer (an OpenAI-shaped error from a backend or the gateway) in Anthropic's error shape; a 499
    (the client left) as it is."""
    if response.status_code == 499:
        return response
    try:
        message = json_bodies.parse(response.body)["error"]["message"]
    except (ValueError, KeyError, TypeError, AttributeError):
        message = f"upstream returned HTTP {response.status_code}"
    return _anthropic_error(response.status_code, message, response.headers)


def _anthropic_error(status: int, message: str, headers=None) -> Response:
    kind = anthropic.ERROR_TYPES.get(status, "api_error")
    return JSONResponse(anthropic.error_body(kind, message), status_code=status,
                        headers=_gateway_headers(headers) if headers else None)


def _gateway_headers(headers) -> dict[str, str]:
    """What the gateway itself adds to an answer (x-tmx-*, rate-limit headers), kept when it is translated."""
    return {k: v for k, v in headers.items() if k.startswith(("x-tmx-", "x-ratelimit-")) or k == "retry-after"}


async def _anthropic_stream(openai_stream, model: str):
    translator = anthropic.StreamTranslator(model)
    try:
        async for chunk in openai_stream:
            for event in translator.feed(chunk if isinstance(chunk, bytes) else chunk.encode()):
                yield event
    finally:
        await openai_stream.aclose()  # closed early (the client left): the relay below releases its upstream now
    for event in translator.finish():
        yield event


class UpstreamAnswer:
    """A non-streamed answer as the backend gave it, with the gateway's headers: an ASGI response with what the
    gateway reads of Starlette's `Response` (`status_code`, `body`, `headers`), without its header normalisation
    and charset logic (1.5 us of the gateway's own ~50 per request, bench/gateway_path_cost.py). The body passes
    through untouched."""

    __slots__ = ("body", "status_code", "headers")

    def __init__(self, body: bytes, status_code: int, headers: dict[str, str], content_type: str) -> None:
        self.body, self.status_code, self.headers = body, status_code, headers
        headers["content-type"] = content_type

    async def __call__(self, scope, receive, send) -> None:
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        raw.append((b"content-length", b"%d" % len(self.body)))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


class AnswerTooLarge(Exception):
    """A backend's whole answer is over the gateway's max_response_bytes."""


class _Resume:
    """What continuing a broken stream on another backend needs from the original request."""

    __slots__ = ("body", "headers", "policy", "tried", "deadline", "attempts_left")

    def __init__(self, body: bytes, headers: dict, policy, tried: set[str], deadline: float,
                 attempts_left: int) -> None:
        self.body, self.headers, self.policy, self.tried = body, headers, policy, tried
        self.deadline, self.attempts_left = deadline, attempts_left

    @property
    def payload(self) -> dict:
        """The request, parsed exactly (see json_bodies): a continuation writes it out again."""
        return json_bodies.parse_exact(self.body)


class _Context:
    __slots__ = ("request_id", "caller", "model", "endpoint", "stream", "started", "client_ip", "route", "reserved",
                 "attempt", "prefill_timer", "suspects", "forwarded", "span", "attempt_span", "attempts")

    def __init__(self, request_id: str, caller: Caller, model: str, endpoint: str, stream: bool, started: float,
                 client_ip: str, route: RouteRequest, forwarded: dict[str, str]) -> None:
        self.request_id, self.caller, self.model, self.endpoint = request_id, caller, model, endpoint
        self.stream, self.started, self.client_ip, self.route = stream, started, client_ip, route
        self.forwarded = forwarded  # the client's headers passed to the backend (its request id, trace context)
        self.reserved = 0  # tokens reserved against the tenant's per-minute limit, settled when it finishes
        self.attempt: Attempt | None = None  # the attempt under way (attempts follow one another)
        self.prefill_timer: asyncio.TimerHandle | None = None  # presumes a non-streamed attempt prefilled
        # the backends that answered 500, with when, not yet judged (see GatewayApi._judge_suspects)
        self.suspects: list[tuple[Backend, float]] | None = None
        self.span = None  # the request's span, while it is traced and under way (see tracing.py)
        self.attempt_span = None  # the current attempt's
        self.attempts = 0  # attempts made, while traced


def not_found(request: Request, exc: Exception) -> Response:
    return GatewayError(404, f"no route {request.method} {request.url.path}", code="unknown_route").response()


def method_not_allowed(request: Request, exc: Exception) -> Response:
    return GatewayError(405, f"method {request.method} not allowed on {request.url.path}").response()


def build_starlette(api: GatewayApi, lifespan) -> Edge:
    routes = api.routes()
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: method_not_allowed})
    return Edge(app, {route.path: route.endpoint for route in routes if route.path in _HOT_PATHS})


_HOT_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", *_POOLING})


class Edge:
    """The ASGI entry point. POSTs to the proxied routes, nearly all of the traffic, go straight to their handler:
    Starlette's middleware stack and route matching were a tenth of the gateway's CPU per request. Everything
    else (other routes, other methods, lifespan) goes through the Starlette app.

    A handler that raises before its response starts gets an OpenAI-shaped 500 (a bug, logged with its trace);
    one that raises while streaming propagates to the server, which closes the connection."""

    def __init__(self, app: Starlette, hot: dict[str, Callable]) -> None:
        self.app = app
        self._hot = hot

    async def __call__(self, scope, receive, send) -> None:
        handler = self._hot.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await handler(Request(scope, receive, send))
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            response = GatewayError(500, "internal gateway error", code="internal_error").response()
        await response(scope, receive, send)
